"""The batch problem: the cost of assigning one decision batch, predicted exactly.

A decision batch of ``B`` tasks is to be placed on ``N`` nodes. The cost of a
candidate assignment is a weighted sum, per task of the batch, of

* its predicted response time (``finish - arrival``), s;
* a penalty when it misses its deadline, weighted by priority class
  (``miss * miss_decay ** priority`` seconds-equivalent);
* the energy it adds, J: the dynamic energy ``(power_max - power_idle) / cores x exec``
  of its execution, plus, for the whole batch, the idle power of the cluster times
  the stretch of the horizon (the predicted last finish of all work) it causes;
* optionally (``displaced``), the delay and the new deadline misses it causes to
  tasks already queued on the node (a priority queue lets an urgent task jump ahead).

Everything is predicted with the simulator's own semantics on the node state at
the decision time (running tasks keep their cores, queued tasks keep their place,
the queue discipline orders the rest), assuming no further arrivals: the per-node
schedule is :func:`hybridsched.sim.core.simulate_node`, the function that
:meth:`~hybridsched.sim.view.ClusterView.predict_finish` uses. For the base model
the prediction is exact: the batch's finish times, misses and energy increase
are what the simulator produces when nothing arrives after the batch.

The cost decomposes by node (each node's schedule depends only on the tasks sent
to it) except for the horizon, a maximum over nodes; the colony, its local
search and the exact oracle rely on that. :func:`build_problem` builds the
:class:`Problem` tuple of arrays once per batch; compiled code takes it or,
faster, its handle from :func:`compile_problem`. The Python helpers
:func:`batch_cost` and :func:`predict` take the tuple.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from hybridsched.errors import ConfigError
from hybridsched.sim import core
from hybridsched.sim.layout import declare, parse_fields
from hybridsched.sim.view import ClusterView, TaskBatch

PROBLEM_FIELDS = parse_fields(
    """
# scalars
d            float64          decision time, s
h0           float64          predicted horizon (last finish of the work already assigned), >= d, s
idle_w       float64          sum of the nodes' idle power, W
w_response   float64          cost per second of response
w_energy     float64          cost per J
w_displaced  float64          factor on the cost caused to tasks already queued
inv_b        float64          1 / B: costs are means over the batch
# nodes
cores        int64[::1]       cores per node
cf           float64[:,::1]   when each core is free, ascending (d when idle; inf beyond cores)
n_idle       int64[::1]       cores free at d
run_last     float64[::1]     last finish of the running tasks (>= d)
# tasks queued (assigned, not started), grouped by node
q_off        int64[::1]       offsets into the q_* arrays, N + 1
q_ready      float64[::1]     ready time of each queued task, s
q_key0       float64[::1]     queue key 0
q_key1       float64[::1]     queue key 1
q_tid        int64[::1]       task id
q_dur        float64[::1]     estimated execution time, s
q_dl         float64[::1]     absolute deadline, s
q_mw         float64[::1]     cost of a missed deadline
q_f0         float64[::1]     predicted finish without the batch, s
q_index      int64[::1]       index of each queued task in the view's compiled state
# the batch
ready        float64[:,::1]   ready time on each node, (B, N), s
dur          float64[:,::1]   execution time on each node, (B, N), s
dyn_j        float64[:,::1]   dynamic energy on each node, (B, N), J
key0         float64[::1]     queue key 0 per task
key1         float64[::1]     queue key 1 per task
tid          int64[::1]       task id
arrival      float64[::1]     arrival time, s
dl           float64[::1]     absolute deadline, s
mw           float64[::1]     cost of a missed deadline
ww           float64[::1]     extra cost per second of predicted waiting for a core
"""
)
"""The one declaration of a batch problem: ``(name, numba type, meaning)``."""

Problem, PROBLEM_TYPE, _make_problem = declare(PROBLEM_FIELDS, "Problem", "Problem", globals())
"""The arrays of one batch problem (see :func:`build_problem`), for compiled code."""


def compile_problem(p: Problem) -> Any:
    """The compiled handle over the same arrays (no copy), for kernels.

    Compiled functions take either; the handle is one pointer, whereas the
    tuple costs a reference-count update per array on every call between
    compiled functions (measured: the colony ran 3x slower on the tuple).
    """
    return _make_problem(p)


@dataclass(frozen=True)
class CostWeights:
    """Weights of the batch cost; a cost is a mean over the batch's tasks.

    With the defaults, one unit of cost is one second of response time.
    """

    response: float = 1.0
    """Cost per second of predicted response time."""
    miss: float = 2.0
    """Cost of a missed deadline of a priority-0 task (seconds of response)."""
    miss_decay: float = 0.5
    """Factor on the miss cost per priority class (priority p costs ``miss * miss_decay**p``)."""
    energy: float = 0.03
    """Cost per joule of energy increase (seconds of response per J)."""
    displaced: float = 1.0
    """Factor on the delay and misses a task causes to tasks already queued (0: ignore)."""
    wait: float = 2.0
    """Extra cost per second a task is predicted to wait for a core, times (1 + priority).

    The prediction assumes no later arrivals; under load, later tasks (more
    urgent ones overtake in a priority queue) make a waiting task wait longer.
    """

    def __post_init__(self) -> None:
        for name in ("response", "miss", "miss_decay", "energy", "displaced", "wait"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ConfigError(f"cost weight {name}: must be a finite number, got {v!r}")
            if v < 0:
                raise ConfigError(f"cost weight {name}: must be >= 0, got {v!r}")
        if self.miss_decay > 1:
            raise ConfigError(f"cost weight miss_decay: must be in [0, 1], got {self.miss_decay!r}")

    def miss_cost(self, priority: np.ndarray) -> np.ndarray:
        """Cost of a missed deadline per task, from its priority class."""
        return self.miss * np.power(self.miss_decay, np.asarray(priority, dtype=np.float64))


@dataclass
class CostFields:
    """Cost weights as policy arguments (a base of the ``aco`` and ``optimal`` policies)."""

    w_response: float = field(
        default=CostWeights.response, metadata={"help": "cost per second of response time"}
    )
    w_miss: float = field(
        default=CostWeights.miss,
        metadata={"help": "cost of a missed deadline at priority 0 (seconds of response)"},
    )
    miss_decay: float = field(
        default=CostWeights.miss_decay,
        metadata={"help": "factor on the miss cost per priority class"},
    )
    w_energy: float = field(
        default=CostWeights.energy, metadata={"help": "cost per joule of energy increase"}
    )
    w_displaced: float = field(
        default=CostWeights.displaced,
        metadata={"help": "factor on the delay and misses caused to queued tasks (0: ignore)"},
    )
    w_wait: float = field(
        default=CostWeights.wait,
        metadata={"help": "extra cost per second of predicted waiting, times (1 + priority)"},
    )

    def cost_weights(self) -> CostWeights:
        """The :class:`CostWeights` these fields describe (validated)."""
        return CostWeights(
            response=self.w_response,
            miss=self.w_miss,
            miss_decay=self.miss_decay,
            energy=self.w_energy,
            displaced=self.w_displaced,
            wait=self.w_wait,
        )


# ----------------------------------------------------------------------------
# building the problem
# ----------------------------------------------------------------------------


@njit(cache=True)
def _snapshot(st, d):
    """Node state at ``d``: core-free times, queued tasks and their finish without the batch."""
    n = st.cores.shape[0]
    ncol = st.proj.shape[1]
    cf = np.full((n, ncol), np.inf)
    n_idle = np.zeros(n, dtype=np.int64)
    run_last = np.empty(n)
    for j in range(n):
        last = d
        for s in range(st.cores[j]):
            ti = st.slot_task[j, s]
            # as core.predict with estimates: the running task's projected end
            v = st.start[ti] + st.work_est[ti] / st.speed[j] if ti >= 0 else d
            cf[j, s] = v
            if v <= d:
                n_idle[j] += 1
            last = max(last, v)
        run_last[j] = last
        cf[j, : st.cores[j]] = np.sort(cf[j, : st.cores[j]])
    q_off = np.zeros(n + 1, dtype=np.int64)
    for j in range(n):
        q_off[j + 1] = q_off[j] + st.n_queued[j]
    m = q_off[n]
    q_idx = np.empty(m, dtype=np.int64)
    q_ready = np.empty(m)
    q_key0 = np.empty(m)
    q_key1 = np.empty(m)
    q_tid = np.empty(m, dtype=np.int64)
    q_dur = np.empty(m)
    q_f0 = np.empty(m)
    q_dl = np.empty(m)
    q_pr = np.empty(m, dtype=np.int64)
    for j in range(n):
        pos = q_off[j]
        i = st.qhead[j]
        while i >= 0:
            q_idx[pos] = i
            q_ready[pos] = st.ready[i]
            q_key0[pos] = st.key0[i]
            q_key1[pos] = st.key1[i]
            q_tid[pos] = st.task_id[i]
            q_dur[pos] = st.work_est[i] / st.speed[j]
            q_dl[pos] = st.abs_deadline[i]
            q_pr[pos] = st.priority[i]
            pos += 1
            i = st.qnext[i]
        lo = q_off[j]
        hi = q_off[j + 1]
        if hi > lo:
            start = core.simulate_node(
                d,
                cf[j, : st.cores[j]],
                q_ready[lo:hi],
                q_key0[lo:hi],
                q_key1[lo:hi],
                q_tid[lo:hi],
                q_dur[lo:hi],
            )
            for k in range(hi - lo):
                q_f0[lo + k] = start[k] + q_dur[lo + k]
    return (cf, n_idle, run_last, q_off, q_idx, q_ready, q_key0, q_key1, q_tid, q_dur, q_f0,
            q_dl, q_pr)  # fmt: skip


def build_problem(tasks: TaskBatch, view: ClusterView, weights: CostWeights) -> Problem:
    """The arrays of the batch problem of ``tasks`` on the cluster of ``view``.

    Args:
        tasks: the decision batch.
        view: the cluster at the decision time.
        weights: the cost weights.

    Returns:
        A :class:`Problem` for :func:`evaluate`, :func:`node_cost` and the colony.
    """
    d = float(view.time)
    q = _snapshot(view.compiled, d)
    cf, n_idle, run_last, q_off, q_idx, q_ready, q_key0, q_key1, q_tid, q_dur, q_f0, q_dl, q_pr = q
    h0 = float(max(run_last.max(), q_f0.max() if q_f0.shape[0] else d))
    c = view.cluster
    dynpow = (c.power_max_w - c.power_idle_w) / c.cores
    dur = np.ascontiguousarray(view.exec_s)
    return Problem(
        d=d,
        h0=h0,
        idle_w=float(np.sum(c.power_idle_w)),
        w_response=float(weights.response),
        w_energy=float(weights.energy),
        w_displaced=float(weights.displaced),
        inv_b=1.0 / len(tasks),
        cores=np.ascontiguousarray(c.cores, dtype=np.int64),
        cf=cf,
        n_idle=n_idle,
        run_last=run_last,
        q_off=q_off,
        q_ready=q_ready,
        q_key0=q_key0,
        q_key1=q_key1,
        q_tid=q_tid,
        q_dur=q_dur,
        q_dl=q_dl,
        q_mw=weights.miss_cost(q_pr),
        q_f0=q_f0,
        q_index=q_idx,
        ready=np.ascontiguousarray(view.ready_s),
        dur=dur,
        dyn_j=dur * dynpow[None, :],
        key0=np.ascontiguousarray(view.queue_keys[0]),
        key1=np.ascontiguousarray(view.queue_keys[1]),
        tid=np.ascontiguousarray(tasks.task_id, dtype=np.int64),
        arrival=np.ascontiguousarray(tasks.arrival_s),
        dl=np.ascontiguousarray(tasks.deadline_abs_s),
        mw=weights.miss_cost(tasks.priority),
        ww=weights.wait * (1.0 + tasks.priority.astype(np.float64)),
    )


# ----------------------------------------------------------------------------
# the per-node schedule and its cost
# ----------------------------------------------------------------------------


MEMO_BITS = 13
"""log2 of the slots of the per-problem table of node costs (see :func:`node_cost_memo`)."""


@njit(cache=True)
def _mix(x):
    # splitmix64 finaliser: a fixed, well-spread 64-bit key per integer
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True)
def make_scratch(p):
    """Preallocated buffers of the functions below, for one problem.

    Returns:
        ``(head, nxt, touched, members, fin, q_fin, buf, ibuf, zkey, mkey, mval, count)``:
        per-node list heads, per-task links, touched nodes, a member list, batch
        and queued finish times, the per-node simulation's inputs, and the
        memo of node costs (two 64-bit keys per task and node, the table's keys,
        its (cost, last finish) values and its number of entries).
    """
    n = p.cores.shape[0]
    b = p.arrival.shape[0]
    qmax = 0
    for j in range(n):
        qmax = max(qmax, p.q_off[j + 1] - p.q_off[j])
    head = np.full(n, -1, dtype=np.int64)
    nxt = np.empty(b, dtype=np.int64)
    touched = np.empty(b, dtype=np.int64)
    members = np.empty(b, dtype=np.int64)
    fin = np.empty(b)
    q_fin = p.q_f0.copy()
    buf = np.empty((6, qmax + b))
    ibuf = np.empty((3, qmax + b), dtype=np.int64)
    # per-task keys from the front, per-node keys from the back (see memo_key)
    zkey = np.empty((2, b + n), dtype=np.uint64)
    for k in range(b + n):
        zkey[0, k] = _mix(np.uint64(2 * k))
        zkey[1, k] = _mix(np.uint64(2 * k + 1))
    size = 1 << MEMO_BITS
    mkey = np.zeros((size, 2), dtype=np.uint64)
    mval = np.empty((size, 2))
    count = np.zeros(1, dtype=np.int64)
    return head, nxt, touched, members, fin, q_fin, buf, ibuf, zkey, mkey, mval, count


SMALL = 48
"""Nodes with at most this many tasks to schedule use :func:`simulate_small`."""


@njit(cache=True)
def simulate_small(t0, cf_sorted, ready, key0, key1, tid, dur, start, order, wait, cfh):
    """:func:`hybridsched.sim.core.simulate_node` for a few tasks, on scratch buffers.

    The same event loop (:func:`hybridsched.sim.core.run_node`, so the same
    start times to the bit), without its allocations and sorts: the core
    times come sorted (a sorted array is a binary min-heap) and the tasks are
    ordered by ready time with an insertion sort. Measured at 0.23 µs instead
    of 0.80 µs for two tasks on two cores (5 tasks: 0.32 vs 0.80 µs).

    Args:
        t0: the current time.
        cf_sorted: core-free times, ascending.
        ready, key0, key1, tid, dur: per task, as in ``simulate_node``.
        start: output, the start time per task.
        order, wait, cfh: scratch, at least ``len(ready)``, ``len(ready)`` and
            ``len(cf_sorted)`` long.
    """
    m = ready.shape[0]
    for i in range(m):
        x = ready[i]
        k = i
        while k > 0 and ready[order[k - 1]] > x:
            order[k] = order[k - 1]
            k -= 1
        order[k] = i
    cf = cfh[: cf_sorted.shape[0]]
    cf[:] = cf_sorted
    core.run_node(t0, cf, ready, key0, key1, tid, dur, order, start, wait)


@njit(cache=True)
def node_schedule(p, j, members, nm, ws):
    """Schedule the first ``nm`` batch tasks of ``members`` on node ``j``.

    Writes the finish time of each member ``t`` to ``ws[4][t]`` and those of
    the node's queued tasks to ``ws[5]`` (indexed like ``p.q_*``); ``ws`` is
    from :func:`make_scratch`.

    Returns:
        the node's last finish (running, queued and new tasks), s.
    """
    fin = ws[4]
    q_fin = ws[5]
    lo = p.q_off[j]
    nq = p.q_off[j + 1] - lo
    last = p.run_last[j]
    if nq + nm <= p.n_idle[j]:
        # a core free at d for every task: each starts when ready (queued tasks
        # keep their start, max(ready, d)); what simulate_node computes, without heaps
        for k in range(nq):
            q_fin[lo + k] = p.q_f0[lo + k]
            last = max(last, p.q_f0[lo + k])
        for k in range(nm):
            t = members[k]
            f = p.ready[t, j] + p.dur[t, j]
            fin[t] = f
            last = max(last, f)
        return last
    m = nq + nm
    buf = ws[6]
    ready = buf[0, :m]
    k0 = buf[1, :m]
    k1 = buf[2, :m]
    dur = buf[3, :m]
    ibuf = ws[7]
    tid = ibuf[0, :m]
    for k in range(nq):
        ready[k] = p.q_ready[lo + k]
        k0[k] = p.q_key0[lo + k]
        k1[k] = p.q_key1[lo + k]
        tid[k] = p.q_tid[lo + k]
        dur[k] = p.q_dur[lo + k]
    for k in range(nm):
        t = members[k]
        ready[nq + k] = p.ready[t, j]
        k0[nq + k] = p.key0[t]
        k1[nq + k] = p.key1[t]
        tid[nq + k] = p.tid[t]
        dur[nq + k] = p.dur[t, j]
    # only the m earliest-free cores can ever be used: the schedule is the same on them
    cf = p.cf[j, : min(m, p.cores[j])]
    if m <= SMALL:
        start = buf[4, :m]
        simulate_small(p.d, cf, ready, k0, k1, tid, dur, start, ibuf[1], ibuf[2], buf[5])
    else:
        start = core.simulate_node(p.d, cf, ready, k0, k1, tid, dur)
    for k in range(nq):
        f = start[k] + dur[k]
        q_fin[lo + k] = f
        last = max(last, f)
    for k in range(nm):
        f = start[nq + k] + dur[nq + k]
        fin[members[k]] = f
        last = max(last, f)
    return last


@njit(cache=True)
def node_cost(p, j, members, nm, ws):
    """Cost of sending the first ``nm`` batch tasks of ``members`` to node ``j``.

    The horizon term is not included (it is a maximum over nodes, see
    :func:`horizon_cost`); ``ws`` is from :func:`make_scratch`.

    Returns:
        ``(cost, last finish on the node)``; the cost is already divided by ``B``.
    """
    if nm == 0:
        return 0.0, _last0(p, j)
    last = node_schedule(p, j, members, nm, ws)
    fin = ws[4]
    q_fin = ws[5]
    wr = p.w_response
    we = p.w_energy
    c = 0.0
    for k in range(nm):
        t = members[k]
        f = fin[t]
        c += wr * (f - p.arrival[t]) + we * p.dyn_j[t, j]
        c += p.ww[t] * (f - p.dur[t, j] - p.ready[t, j])
        if f > p.dl[t]:
            c += p.mw[t]
    lo = p.q_off[j]
    hi = p.q_off[j + 1]
    if hi > lo and p.w_displaced > 0:
        extra = 0.0
        for q in range(lo, hi):
            f = q_fin[q]
            f0 = p.q_f0[q]
            extra += wr * (f - f0)
            if f > p.q_dl[q] and not f0 > p.q_dl[q]:
                extra += p.q_mw[q]
        c += p.w_displaced * extra
    return c * p.inv_b, last


@njit(cache=True)
def memo_key(zkey, j, members, nm):
    """Two independent 64-bit Zobrist keys of the set ``members[:nm]`` on node ``j``."""
    b = zkey.shape[1] - 1
    h1 = zkey[0, b - j]
    h2 = zkey[1, b - j]
    for k in range(nm):
        h1 ^= zkey[0, members[k]]
        h2 ^= zkey[1, members[k]]
    if h1 == np.uint64(0):
        h1 = np.uint64(1)
    return h1, h2


@njit(cache=True)
def memo_get(mkey, h1, h2):
    """The slot of key ``(h1, h2)`` in the memo table: ``(found, slot)``."""
    mask = mkey.shape[0] - 1
    slot = np.int64(h1 & np.uint64(mask))
    while mkey[slot, 0] != np.uint64(0):
        if mkey[slot, 0] == h1 and mkey[slot, 1] == h2:
            return True, slot
        slot = (slot + 1) & mask
    return False, slot


@njit(cache=True)
def memo_put(mkey, mval, count, slot, h1, h2, c, last):
    """Store ``(c, last)`` under ``(h1, h2)`` at the free ``slot`` from :func:`memo_get`.

    The table is cleared when half full (the entry is then stored in the cleared table).
    """
    if 2 * count[0] >= mkey.shape[0]:
        mkey[:] = 0
        count[0] = 0
        slot = np.int64(h1 & np.uint64(mkey.shape[0] - 1))
    count[0] += 1
    mkey[slot, 0] = h1
    mkey[slot, 1] = h2
    mval[slot, 0] = c
    mval[slot, 1] = last


@njit(cache=True)
def _last0(p, j):
    last = p.run_last[j]
    for q in range(p.q_off[j], p.q_off[j + 1]):
        last = max(last, p.q_f0[q])
    return last


@njit(cache=True)
def horizon_cost(p, last):
    """Cost of the energy the idle nodes draw while the horizon stretches to ``last``."""
    if last <= p.h0:
        return 0.0
    return p.w_energy * p.idle_w * (last - p.h0) * p.inv_b


@njit(cache=True)
def evaluate_one(p, nodes, ws):
    """Cost of one assignment ``nodes`` (one node per batch task); ``ws`` from make_scratch.

    Node costs are remembered per (node, set of tasks) in the memo of ``ws``,
    keyed by two independent 64-bit Zobrist hashes (XOR of fixed per-task and
    per-node keys): a wrong hit needs both to collide.
    """
    head, nxt, touched, members = ws[0], ws[1], ws[2], ws[3]
    zkey, mkey, mval, count = ws[8], ws[9], ws[10], ws[11]
    b = nodes.shape[0]
    nt = 0
    for t in range(b - 1, -1, -1):
        j = nodes[t]
        if head[j] < 0:
            touched[nt] = j
            nt += 1
        nxt[t] = head[j]
        head[j] = t
    total = 0.0
    last = p.h0
    for k in range(nt):
        j = touched[k]
        nm = 0
        t = head[j]
        while t >= 0:
            members[nm] = t
            nm += 1
            t = nxt[t]
        head[j] = -1
        h1, h2 = memo_key(zkey, j, members, nm)
        found, slot = memo_get(mkey, h1, h2)
        if found:
            c = mval[slot, 0]
            lj = mval[slot, 1]
        else:
            c, lj = node_cost(p, j, members, nm, ws)
            memo_put(mkey, mval, count, slot, h1, h2, c, lj)
        total += c
        last = max(last, lj)
    return total + horizon_cost(p, last)


@njit(cache=True)
def evaluate(p, assignments):
    """Costs of many assignments, one row of ``assignments`` ``(A, B)`` each."""
    ws = make_scratch(p)
    out = np.empty(assignments.shape[0])
    for a in range(assignments.shape[0]):
        out[a] = evaluate_one(p, assignments[a], ws)
    return out


@njit(cache=True)
def schedule_assigned(p, ws, nodes, j, fin):
    """Schedule on node ``j`` the batch tasks that ``nodes`` sends there.

    Writes their finish times into ``fin`` (per batch task; others untouched).

    Returns:
        the node's last finish, or ``-inf`` when no batch task goes there.
    """
    members = ws[3]
    nm = 0
    for t in range(nodes.shape[0]):
        if nodes[t] == j:
            members[nm] = t
            nm += 1
    if nm == 0:
        return -np.inf
    last = node_schedule(p, j, members, nm, ws)
    for k in range(nm):
        fin[members[k]] = ws[4][members[k]]
    return last


@njit(cache=True)
def _schedule_all(p, nodes):
    """Finish times of the batch and of the queued tasks, and the horizon."""
    ws = make_scratch(p)
    last = p.h0
    for j in range(p.cores.shape[0]):
        last = max(last, schedule_assigned(p, ws, nodes, j, ws[4]))
    return ws[4], ws[5], last


def _check_nodes(p: Problem, nodes: np.ndarray) -> np.ndarray:
    nodes = np.ascontiguousarray(nodes, dtype=np.int64)
    b, n = p.ready.shape
    if nodes.shape[-1] != b or nodes.min(initial=0) < 0 or nodes.max(initial=0) >= n:
        raise ConfigError(
            f"assignment: expected node indices in 0..{n - 1}, one per task of the batch of "
            f"{b}, got shape {nodes.shape}"
        )
    return nodes


def batch_cost(p: Problem, nodes: np.ndarray) -> float | np.ndarray:
    """Cost of an assignment ``(B,)``, or of each row of ``(A, B)`` assignments.

    Compiled code should call :func:`evaluate` on :func:`compile_problem`'s handle.
    """
    nodes = _check_nodes(p, nodes)
    h = compile_problem(p)
    if nodes.ndim == 1:
        return float(evaluate(h, nodes[None, :])[0])
    return evaluate(h, nodes)


def predict(p: Problem, nodes: np.ndarray) -> dict[str, Any]:
    """The predicted outcome of an assignment, term by term.

    Returns:
        ``finish_s`` (per batch task), ``queued_finish_s`` (per queued task, in
        the order of ``p.q_*``), ``response_s`` (mean over the batch),
        ``missed`` (batch tasks missing their deadline), ``energy_j`` (the
        energy increase: dynamic energy plus idle power over the horizon
        stretch), ``horizon_s`` (the new predicted last finish), ``displaced_s``
        (total delay caused to queued tasks) and ``cost``.
    """
    nodes = _check_nodes(p, nodes)
    fin, q_fin, last = _schedule_all(compile_problem(p), nodes)
    b = nodes.shape[0]
    dyn = float(np.sum(p.dyn_j[np.arange(b), nodes]))
    return {
        "finish_s": fin,
        "queued_finish_s": q_fin,
        "response_s": float(np.mean(fin - p.arrival)),
        "missed": int(np.sum(fin > p.dl)),
        "energy_j": dyn + p.idle_w * max(0.0, last - p.h0),
        "horizon_s": float(last),
        "displaced_s": float(np.sum(q_fin - p.q_f0)),
        "cost": batch_cost(p, nodes),
    }
