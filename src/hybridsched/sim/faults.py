"""The simulator with options: node failures, estimate noise, shared links and jitter.

:func:`simulate_with_options` is the entry point. With every option off it is
:func:`hybridsched.sim.simulate` (the base model, the fused compiled loop).
Estimate noise alone runs the base engine too, with
:attr:`SimConfig.work_estimate`. Failures and the network need
:class:`FaultEngine`, a subclass of :class:`~hybridsched.sim.engine.Engine`
with the same surface (``next_batch``, ``commit``, ``run``, ``finish``) that
always calls the policy's ``assign``, batch by batch.

The model (``docs/OPTIONS.md`` has the full text):

* **Failures.** Node ``j`` is down on ``[down, up)``. At ``down`` every task
  running on it (unless it finishes exactly then) is killed, and every task
  assigned to it but not started (in transfer or waiting) is displaced; each
  counts a retry and goes back to the scheduler at ``down`` (the next batch
  boundary ``ceil(down / delta) * delta`` when ``delta > 0``), and its data
  moves again. A down node gets no task (the view marks it unavailable) and runs
  nothing. A task that no up node can take waits for one to come back, and is
  rejected when none ever will.
* **Order within an instant** ``t``: node down/up events, then decisions, then
  task events (completions, readiness), then dispatch; with no outage this is
  exactly the base model's order.
* **Shared links.** After its latency, a transfer's data enters the node's
  ingress link, whose bandwidth is split equally among the transfers in it
  (processor sharing); a lone transfer takes ``data / bandwidth`` as in the
  base model.
* **Jitter.** Each transfer's latency is multiplied by a lognormal factor with
  mean 1. The schedulers' view keeps nominal transfer times.

Compiled kernels (numba) work on the base engine's :class:`~hybridsched.sim.core.CoreState`
plus a :class:`FaultArrays` of their own: an indexed event heap (one live event
per task and per link, so displaced tasks leave nothing stale behind) and the
per-node link state. Node events are rare and handled in Python.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import namedtuple
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numba import njit
from numba.core import types
from numba.experimental import structref

from hybridsched.errors import ConfigError, PolicyError, SimulationError
from hybridsched.model import Cluster, Workload
from hybridsched.sim import core
from hybridsched.sim.engine import Engine, SimConfig, SimResult, simulate
from hybridsched.sim.options import (
    WORK_EST_COLUMN,
    SimOptions,
    estimate_work,
    lognormal_factors,
    option_seeds,
)
from hybridsched.sim.view import ClusterView, Policy, TaskBatch

log = logging.getLogger(__name__)

# task phases (FaultArrays.phase)
P_IDLE = 0  # not on a node: undecided, waiting for a re-decision, or parked
P_LATENCY = 1  # in its latency; its event: the data enters the shared link
P_LINK = 2  # data in the shared link (the link's event finishes it)
P_TRANSIT = 3  # in transfer; its event: ready
P_WAITING = 4  # ready, in the node's waiting queue
P_RUNNING = 5  # on a core; its event: finish
P_DONE = 6
P_REJECTED = 7

# FaultArrays.counters
K_HEAP = 0  # events in the heap
K_ACTIVE = 1  # tasks on a node (assigned, not finished)
K_SHARED = 2  # 1: shared links

LINK_TOL = 1e-9
"""A transfer with less than this fraction of its data left when its link's
earliest one finishes is finished too (rounding of the shared-rate updates)."""

FaultArrays = namedtuple(
    "FaultArrays",
    [
        "ev_time",  # float64[n + N] time of each event id (task i: i, link j: n + j)
        "hp_id",  # int64[n + N] binary heap of event ids
        "hp_pos",  # int64[n + N] heap position of each id, -1 when absent
        "phase",  # int64[n]
        "rem",  # float64[n] data left in the link, MB
        "lnext",  # int64[n] link member list
        "lprev",  # int64[n]
        "lhead",  # int64[N]
        "lcount",  # int64[N] transfers in the link
        "lrate",  # float64[N] current rate of each, MB/s
        "lt",  # float64[N] time of the last update of the link
        "down",  # bool[N]
        "mem",  # float64[N] true memory (CoreState.memory is -1 while down)
        "wasted",  # float64[N] core-seconds of killed runs
        "counters",  # int64[4]
    ],
)

_FAULT_FIELDS = (
    ("ev_time", types.float64[::1]),
    ("hp_id", types.int64[::1]),
    ("hp_pos", types.int64[::1]),
    ("phase", types.int64[::1]),
    ("rem", types.float64[::1]),
    ("lnext", types.int64[::1]),
    ("lprev", types.int64[::1]),
    ("lhead", types.int64[::1]),
    ("lcount", types.int64[::1]),
    ("lrate", types.float64[::1]),
    ("lt", types.float64[::1]),
    ("down", types.boolean[::1]),
    ("mem", types.float64[::1]),
    ("wasted", types.float64[::1]),
    ("counters", types.int64[::1]),
)


@structref.register
class _FaultType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class _FaultProxy(structref.StructRefProxy):
    """Opaque handle to the compiled fault state."""


structref.define_boxing(_FaultType, _FaultProxy)
FAULT_TYPE = _FaultType(_FAULT_FIELDS)


@njit(cache=True)
def _make_fault_state(
    ev_time, hp_id, hp_pos, phase, rem, lnext, lprev, lhead, lcount, lrate, lt, down, mem,
    wasted, counters,
):  # fmt: skip
    fs = structref.new(FAULT_TYPE)
    fs.ev_time = ev_time
    fs.hp_id = hp_id
    fs.hp_pos = hp_pos
    fs.phase = phase
    fs.rem = rem
    fs.lnext = lnext
    fs.lprev = lprev
    fs.lhead = lhead
    fs.lcount = lcount
    fs.lrate = lrate
    fs.lt = lt
    fs.down = down
    fs.mem = mem
    fs.wasted = wasted
    fs.counters = counters
    return fs


# ----------------------------------------------------------------------------
# indexed event heap: (time, id), one entry per id at most
# ----------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _lt(fs, a, b):
    ta = fs.ev_time[a]
    tb = fs.ev_time[b]
    return ta < tb or (ta == tb and a < b)


@njit(cache=True)
def _sift_up(fs, k):
    h = fs.hp_id
    pos = fs.hp_pos
    x = h[k]
    while k > 0:
        p = (k - 1) >> 1
        y = h[p]
        if not _lt(fs, x, y):
            break
        h[k] = y
        pos[y] = k
        k = p
    h[k] = x
    pos[x] = k


@njit(cache=True)
def _sift_down(fs, k):
    h = fs.hp_id
    pos = fs.hp_pos
    m = fs.counters[K_HEAP]
    x = h[k]
    while True:
        c = 2 * k + 1
        if c >= m:
            break
        if c + 1 < m and _lt(fs, h[c + 1], h[c]):
            c += 1
        if not _lt(fs, h[c], x):
            break
        h[k] = h[c]
        pos[h[k]] = k
        k = c
    h[k] = x
    pos[x] = k


@njit(cache=True)
def _hp_set(fs, e, t):
    """Schedule event ``e`` at ``t`` (insert, or move it when already scheduled)."""
    k = fs.hp_pos[e]
    if k < 0:
        m = fs.counters[K_HEAP]
        fs.counters[K_HEAP] = m + 1
        fs.hp_id[m] = e
        fs.hp_pos[e] = m
        fs.ev_time[e] = t
        _sift_up(fs, m)
    else:
        old = fs.ev_time[e]
        fs.ev_time[e] = t
        if t < old:
            _sift_up(fs, k)
        else:
            _sift_down(fs, k)


@njit(cache=True)
def _hp_remove(fs, e):
    k = fs.hp_pos[e]
    if k < 0:
        return
    m = fs.counters[K_HEAP] - 1
    fs.counters[K_HEAP] = m
    fs.hp_pos[e] = -1
    if k == m:
        return
    last = fs.hp_id[m]
    fs.hp_id[k] = last
    fs.hp_pos[last] = k
    _sift_up(fs, k)
    _sift_down(fs, fs.hp_pos[last])


# ----------------------------------------------------------------------------
# shared ingress links (processor sharing, equal shares)
# ----------------------------------------------------------------------------


@njit(cache=True)
def _link_update(fs, j, t):
    """Bring the data left of every transfer in link ``j`` to time ``t``."""
    if fs.lcount[j] > 0 and t > fs.lt[j]:
        x = (t - fs.lt[j]) * fs.lrate[j]
        f = fs.lhead[j]
        while f >= 0:
            fs.rem[f] -= x
            f = fs.lnext[f]
    fs.lt[j] = t


@njit(cache=True)
def _link_reschedule(st, fs, j, t):
    n = fs.phase.shape[0]
    k = fs.lcount[j]
    if k == 0:
        _hp_remove(fs, n + j)
        return
    fs.lrate[j] = st.bandwidth[j] / k
    m = np.inf
    f = fs.lhead[j]
    while f >= 0:
        if fs.rem[f] < m:
            m = fs.rem[f]
        f = fs.lnext[f]
    _hp_set(fs, n + j, t + m / fs.lrate[j])


@njit(cache=True)
def _link_remove(fs, j, f):
    p = fs.lprev[f]
    q = fs.lnext[f]
    if p >= 0:
        fs.lnext[p] = q
    else:
        fs.lhead[j] = q
    if q >= 0:
        fs.lprev[q] = p
    fs.lcount[j] -= 1


@njit(cache=True)
def _link_enter(st, fs, i, j, t):
    _link_update(fs, j, t)
    h = fs.lhead[j]
    fs.lprev[i] = -1
    fs.lnext[i] = h
    if h >= 0:
        fs.lprev[h] = i
    fs.lhead[j] = i
    fs.lcount[j] += 1
    fs.rem[i] = st.data[i]
    fs.phase[i] = P_LINK
    _link_reschedule(st, fs, j, t)


@njit(cache=True)
def _make_ready(st, fs, i, j, t):
    st.ready[i] = t
    fs.phase[i] = P_WAITING
    st.wleft[i] = -1
    st.wright[i] = -1
    st.wroot[j] = core._merge(st, st.wroot[j], i)


@njit(cache=True)
def _link_event(st, fs, j, t):
    """The earliest transfer(s) of link ``j`` finish at ``t``."""
    _link_update(fs, j, t)
    first = -1
    m = np.inf
    f = fs.lhead[j]
    while f >= 0:
        if fs.rem[f] < m:
            m = fs.rem[f]
            first = f
        f = fs.lnext[f]
    f = fs.lhead[j]
    while f >= 0:
        nxt = fs.lnext[f]
        if f == first or fs.rem[f] <= LINK_TOL * st.data[f]:
            _link_remove(fs, j, f)
            fs.rem[f] = 0.0
            _make_ready(st, fs, f, j, t)
        f = nxt
    _link_reschedule(st, fs, j, t)


# ----------------------------------------------------------------------------
# the event loop
# ----------------------------------------------------------------------------


@njit(cache=True)
def _dispatch(st, fs, j, t):
    if fs.down[j]:
        return
    while st.n_free[j] > 0 and st.wroot[j] >= 0:
        i = st.wroot[j]
        st.wroot[j] = core._merge(st, st.wleft[i], st.wright[i])
        k = st.n_free[j] - 1
        st.n_free[j] = k
        s = st.free_slots[j, k]
        st.slot_task[j, s] = i
        st.slot_of[i] = s
        st.start[i] = t
        f = t + st.dur[i]
        st.finish[i] = f
        st.busy_s[j] += st.dur[i]
        st.n_queued[j] -= 1
        st.queued_work[j] -= st.work_est[i] / st.speed[j]
        core._unlink(st, i, j)
        fs.phase[i] = P_RUNNING
        _hp_set(fs, i, f)


@njit(cache=True)
def advance(st, fs, until):
    """Process every instant strictly before ``until`` (task events, then dispatch)."""
    n = fs.phase.shape[0]
    n_dirty = 0
    while fs.counters[K_HEAP] > 0 and fs.ev_time[fs.hp_id[0]] < until:
        t = fs.ev_time[fs.hp_id[0]]
        while fs.counters[K_HEAP] > 0 and fs.ev_time[fs.hp_id[0]] == t:
            e = fs.hp_id[0]
            _hp_remove(fs, e)
            if e >= n:
                j = e - n
                _link_event(st, fs, j, t)
            else:
                j = st.node[e]
                ph = fs.phase[e]
                if ph == P_RUNNING:
                    s = st.slot_of[e]
                    st.slot_task[j, s] = -1
                    st.free_slots[j, st.n_free[j]] = s
                    st.n_free[j] += 1
                    fs.phase[e] = P_DONE
                    fs.counters[K_ACTIVE] -= 1
                elif ph == P_TRANSIT:
                    _make_ready(st, fs, e, j, t)
                else:  # P_LATENCY
                    _link_enter(st, fs, e, j, t)
            if not st.is_dirty[j]:
                st.is_dirty[j] = True
                st.dirty[n_dirty] = j
                n_dirty += 1
        for k in range(n_dirty):
            j = st.dirty[k]
            st.is_dirty[j] = False
            _dispatch(st, fs, j, t)
        n_dirty = 0


@njit(cache=True)
def commit_many(st, fs, idx, nodes, d, lat_factor):
    """Assign tasks ``idx[k]`` to ``nodes[k]`` at ``d``; latencies x ``lat_factor[k]``.

    Bookkeeping is :func:`hybridsched.sim.core.commit`'s (the projection uses the
    nominal ready time, what a scheduler would estimate); the transfer is timed
    with the jittered latency, through the shared link when it is on.
    """
    shared = fs.counters[K_SHARED] == 1
    for k in range(idx.shape[0]):
        i = idx[k]
        j = nodes[k]
        st.node[i] = j
        st.decision[i] = d
        lat = st.latency[j, st.region[i]]
        r = d + lat + st.data[i] / st.bandwidth[j]
        st.ready[i] = r
        st.start[i] = np.nan
        st.finish[i] = np.nan
        st.dur[i] = st.work[i] / st.speed[j]
        dur_est = st.work_est[i] / st.speed[j]
        h = st.qhead[j]
        st.qprev[i] = -1
        st.qnext[i] = h
        if h >= 0:
            st.qprev[h] = i
        st.qhead[j] = i
        st.n_queued[j] += 1
        st.queued_work[j] += dur_est
        st.proj_min[j] = core.project(st.proj[j], r, dur_est)
        st.recent[j] = st.recent[j] * np.exp(-(d - st.recent_t[j]) / core.RECENT_TAU_S) + 1.0
        st.recent_t[j] = d
        st.counters[core.C_COMMITTED] += 1
        fs.counters[K_ACTIVE] += 1
        s = d + lat * lat_factor[k]
        if shared and st.data[i] > 0:
            fs.phase[i] = P_LATENCY
            _hp_set(fs, i, s)
        else:
            fs.phase[i] = P_TRANSIT
            _hp_set(fs, i, s + st.data[i] / st.bandwidth[j])


@njit(cache=True)
def check_and_commit(st, fs, idx, nodes, d, lat_factor):
    """:func:`commit_many` when every assignment is valid, else nothing.

    Returns:
        ``(0, -1)`` when committed, else ``(code, k)`` for the first bad entry,
        code 1: index out of range, 2: node down, 3: too little memory.
    """
    n_nodes = st.cores.shape[0]
    for k in range(idx.shape[0]):
        j = nodes[k]
        if j < 0 or j >= n_nodes:
            return 1, k
        if fs.down[j]:
            return 2, k
        if st.mem_req[idx[k]] > st.memory[j]:
            return 3, k
    commit_many(st, fs, idx, nodes, d, lat_factor)
    return 0, -1


@njit(cache=True)
def node_down(st, fs, j, t):
    """Node ``j`` fails at ``t``: kill and displace its tasks.

    Returns:
        (displaced task indices, their decision times, their start times (NaN
        when not started)). Tasks finishing exactly at ``t`` are not killed.
    """
    cap = st.cores[j] + st.n_queued[j]
    out = np.empty(cap, dtype=np.int64)
    dec = np.empty(cap)
    started = np.empty(cap)
    m = 0
    for s in range(st.cores[j]):
        i = st.slot_task[j, s]
        if i >= 0 and st.finish[i] > t:
            fs.wasted[j] += t - st.start[i]
            st.busy_s[j] -= st.finish[i] - t
            st.slot_task[j, s] = -1
            st.free_slots[j, st.n_free[j]] = s
            st.n_free[j] += 1
            _hp_remove(fs, i)
            out[m] = i
            dec[m] = st.decision[i]
            started[m] = st.start[i]
            m += 1
    i = st.qhead[j]
    while i >= 0:
        _hp_remove(fs, i)
        out[m] = i
        dec[m] = st.decision[i]
        started[m] = np.nan
        m += 1
        i = st.qnext[i]
    st.qhead[j] = -1
    st.wroot[j] = -1
    st.n_queued[j] = 0
    st.queued_work[j] = 0.0
    fs.lhead[j] = -1
    fs.lcount[j] = 0
    _hp_remove(fs, fs.phase.shape[0] + j)
    for q in range(m):
        i = out[q]
        fs.phase[i] = P_IDLE
        st.node[i] = -1
        st.decision[i] = np.nan
        st.ready[i] = np.nan
        st.dur[i] = np.nan
        st.start[i] = np.nan
        st.finish[i] = np.nan
        st.slot_of[i] = -1
    fs.counters[K_ACTIVE] -= m
    fs.down[j] = True
    st.memory[j] = -1.0  # no task fits: the compiled rules skip the node
    for c in range(st.cores[j]):
        st.proj[j, c] = np.inf
    st.proj_min[j] = np.inf
    return out[:m], dec[:m], started[:m]


@njit(cache=True)
def node_up(st, fs, j, t):
    """Node ``j`` is back at ``t``, idle."""
    fs.down[j] = False
    st.memory[j] = fs.mem[j]
    for c in range(st.cores[j]):
        st.proj[j, c] = t
    st.proj_min[j] = t


# ----------------------------------------------------------------------------
# the engine
# ----------------------------------------------------------------------------


class _Observed:
    """What a view reads from an engine, with the true work hidden (estimates only)."""

    def __init__(self, engine: Engine) -> None:
        st = engine.state
        self._engine = engine
        self.cluster = engine.cluster
        # same dynamic arrays, but true work and durations replaced by estimates
        self.state = st._replace(work=st.work_est, dur=np.full_like(st.dur, np.nan))
        self.cstate = core.compile_state(self.state)

    @property
    def now(self) -> float:
        return self._engine.now


class _EstimateEngine(Engine):
    """The base engine whose views hide the true work (estimate noise on, nothing else)."""

    def __init__(self, cluster: Cluster, workload: Workload, config: SimConfig) -> None:
        super().__init__(cluster, workload, config)
        self._observed = _Observed(self)

    def _current(self) -> tuple[TaskBatch, ClusterView]:
        end = int(self._batch_start[self._batch + 1])
        tasks = self._task_batch(np.arange(self._pos, end, dtype=np.int64))
        return tasks, self._view(tasks)

    def _view(self, tasks: TaskBatch) -> ClusterView:
        o = self._observed
        q = self.config.queue
        return ClusterView._over(o.state, o.cstate, self.now, self.cluster, tasks, queue=q)


@dataclass(frozen=True, eq=False)
class FaultResult(SimResult):
    """A run with options: per-task results, summary, and what the failures did."""

    outages: dict[str, np.ndarray] = field(default_factory=dict)
    """Outages that happened: node (name), node_index, down_s, up_s (inf: never back)."""
    attempts: dict[str, np.ndarray] = field(default_factory=dict)
    """Interrupted attempts: task_id, node (name), node_index, decision_s, start_s
    (NaN when it had not started), end_s (the failure)."""


class FaultEngine(Engine):
    """The engine with failures, shared links and latency jitter (see the module doc).

    Same surface as :class:`Engine`; the policy is always called through ``assign``.
    Batches hold the tasks decided at one instant: new arrivals and tasks sent
    back by a failure, in decision order (arrival, then task_id); with
    ``decision_interval = 0`` one task at a time.

    Args:
        cluster, workload, config: as for :class:`Engine` (``config.work_estimate``
            carries estimate noise).
        options: the options; estimate noise must already be in ``config``.
        seed: seed of the option randomness (generated outages, jitter), see
            :func:`~hybridsched.sim.options.option_seeds`.
    """

    def __init__(
        self,
        cluster: Cluster,
        workload: Workload,
        config: SimConfig | None = None,
        options: SimOptions | None = None,
        *,
        seed: int | None = 0,
    ) -> None:
        super().__init__(cluster, workload, config)
        options = SimOptions() if options is None else options
        self.options = options
        n = self.n_tasks
        n_nodes = cluster.n_nodes
        # memory is masked (-1) while a node is down, so it needs its own copy
        self.state = self.state._replace(memory=self.state.memory.copy())
        st = self.state
        for a in (st.decision, st.ready, st.dur, st.start, st.finish):
            a.fill(np.nan)  # a rejected task keeps them: it never ran
        self.cstate = core.compile_state(self.state)
        self.farrays = FaultArrays(
            ev_time=np.zeros(n + n_nodes),
            hp_id=np.zeros(n + n_nodes, dtype=np.int64),
            hp_pos=np.full(n + n_nodes, -1, dtype=np.int64),
            phase=np.zeros(n, dtype=np.int64),
            rem=np.zeros(n),
            lnext=np.full(n, -1, dtype=np.int64),
            lprev=np.full(n, -1, dtype=np.int64),
            lhead=np.full(n_nodes, -1, dtype=np.int64),
            lcount=np.zeros(n_nodes, dtype=np.int64),
            lrate=np.zeros(n_nodes),
            lt=np.zeros(n_nodes),
            down=np.zeros(n_nodes, dtype=np.bool_),
            mem=np.array(cluster.memory_mb, dtype=np.float64),
            wasted=np.zeros(n_nodes),
            counters=np.array([0, 0, int(bool(options.shared_links)), 0], dtype=np.int64),
        )
        self.fstate = _make_fault_state(*self.farrays)
        hide = self.config.work_estimate is not None
        self._observed: Any = _Observed(self) if hide else self
        self._unavailable = self.farrays.down.view()
        self._unavailable.setflags(write=False)

        seeds = option_seeds(seed)
        self._jitter_rng = np.random.default_rng(seeds.jitter)
        self._jit_buf = np.zeros(0)
        self._jit_pos = 0
        self._perm_down = np.zeros(n_nodes, dtype=bool)
        self._need_max = float(self.state.mem_req.max())
        self._update_bounds()
        self._node_events: list[tuple[float, int, int, int, float]] = []  # t, seq, kind, j, up
        self._seq = 0
        self._mtbf, self._mttr = options.tier_rates(cluster)
        self._fail_rngs = [np.random.default_rng(s) for s in seeds.failures.spawn(n_nodes)]
        t0 = float(self.state.arrival[0])
        if options.failures is not None:
            tr = options.failures
            nodes = tr.node_index(cluster).tolist()
            for j, down, up in zip(nodes, tr.down_s.tolist(), tr.up_s.tolist(), strict=True):
                self._push_node_event(down, 0, j, up)
        else:
            for j in np.flatnonzero(np.isfinite(self._mtbf)).tolist():
                self._schedule_failure(j, t0)

        self._retries = np.zeros(n, dtype=np.int64)
        self._rejected_at = np.full(n, np.nan)
        self._reason: dict[int, str] = {}
        self._pending: list[tuple[float, int]] = []  # (decision time, task) sent back
        self._parked: set[int] = set()  # wait for a node that fits to come back
        self._outages: list[tuple[int, float, float]] = []  # node, down, up
        self._attempts: list[tuple[int, int, float, float, float]] = []
        self._next_arrival = 0  # next arrival batch
        self._todo = np.zeros(0, dtype=np.int64)  # placeable tasks at the current instant
        self._todo_pos = 0
        self._cur = np.zeros(0, dtype=np.int64)  # the open batch
        self._now = -np.inf
        self._over = False
        self._arange = np.arange(n, dtype=np.int64)
        self._ones = np.ones(1 if self.config.decision_interval == 0 else n)

    # --------------------------------------------------------------- failures

    def _push_node_event(self, t: float, kind: int, j: int, up: float = np.inf) -> None:
        heapq.heappush(self._node_events, (t, self._seq, kind, j, up))
        self._seq += 1

    def _schedule_failure(self, j: int, after: float) -> None:
        """Draw node ``j``'s next outage (exponential up and repair times)."""
        rng = self._fail_rngs[j]
        down = after + self._mtbf[j] * rng.standard_exponential()
        up = down + self._mttr[j] * rng.standard_exponential()
        self._push_node_event(down, 0, j, up)

    def _jitter(self, k: int) -> np.ndarray:
        """The next ``k`` latency factors (drawn in blocks: one draw per call is slow)."""
        if self._jit_pos + k > self._jit_buf.size:
            fresh = lognormal_factors(self._jitter_rng, self.options.latency_jitter, max(k, 4096))
            self._jit_buf = np.concatenate([self._jit_buf[self._jit_pos :], fresh])
            self._jit_pos = 0
        out = self._jit_buf[self._jit_pos : self._jit_pos + k]
        self._jit_pos += k
        return out

    def _redecision_time(self, t: float) -> float:
        delta = float(self.config.decision_interval)
        return t if delta == 0 else float(np.ceil(t / delta) * delta)

    def _apply_node_events(self, t: float) -> None:
        """Apply every node event stamped ``t`` (downs and ups), then unpark or reject."""
        st = self.state
        while self._node_events and self._node_events[0][0] == t:
            _, _, kind, j, up = heapq.heappop(self._node_events)
            if kind == 0:
                if up <= t:  # an empty outage (a zero repair time)
                    if self.options.failures is None:
                        self._schedule_failure(j, t)
                    continue
                idx, dec, started = node_down(self.cstate, self.fstate, j, t)
                self._outages.append((j, t, up))
                for i, d, s in zip(idx.tolist(), dec.tolist(), started.tolist(), strict=True):
                    self._attempts.append((i, j, d, s, t))
                    self._retries[i] += 1
                    heapq.heappush(self._pending, (self._redecision_time(t), i))
                if np.isinf(up):
                    self._perm_down[j] = True
                else:
                    self._push_node_event(up, 1, j)
            else:
                node_up(self.cstate, self.fstate, j, t)
                if self.options.failures is None:
                    self._schedule_failure(j, t)
        self._update_bounds()
        if self._parked:
            for i in sorted(self._parked):
                if st.mem_req[i] <= self._up_mem:
                    self._parked.discard(i)
                    heapq.heappush(self._pending, (self._redecision_time(t), i))
                elif st.mem_req[i] > self._ever_mem:
                    self._parked.discard(i)
                    self._reject(i, t)

    def _update_bounds(self) -> None:
        """Largest memory on an up node, and on a node not down for good, MB."""
        mem = self.farrays.mem
        up = mem[~self.farrays.down]
        ever = mem[~self._perm_down]
        self._up_mem = float(up.max()) if up.size else -np.inf
        self._ever_mem = float(ever.max()) if ever.size else -np.inf

    def _reject(self, i: int, t: float) -> None:
        self.farrays.phase[i] = P_REJECTED
        self._rejected_at[i] = t
        need = float(self.state.mem_req[i])
        self._reason[i] = (
            f"no node that is up can ever take it: it needs {need:g} MB and every node with "
            f"that much memory is down for good at {t:g} s"
        )

    def _triage(self, idx: np.ndarray, t: float) -> np.ndarray:
        """The tasks of ``idx`` that an up node can take; park or reject the others."""
        if self._need_max <= self._up_mem:  # every task fits an up node
            return idx
        need = self.state.mem_req[idx]
        ok = need <= self._up_mem
        for i in idx[~ok].tolist():
            if self.state.mem_req[i] <= self._ever_mem:
                self._parked.add(i)
            else:
                self._reject(i, t)
        return idx[ok]

    # ------------------------------------------------------------- stepping

    @property
    def now(self) -> float:
        """The current decision time (``-inf`` before the first, ``inf`` when done), s."""
        return np.inf if self._over else self._now

    @property
    def done(self) -> bool:
        """True once every task is finished, rejected or placed with nothing left to decide."""
        return self._over

    def _busy(self) -> bool:
        return bool(self.farrays.counters[K_ACTIVE] > 0 or self._parked)

    def _next_instant(self) -> bool:
        """Advance to the next instant with tasks to place; False when there is none."""
        dec, starts = self._dec_time, self._batch_start
        inf = np.inf
        while True:
            b = self._next_arrival
            d_arr = float(dec[starts[b]]) if b < self.n_batches else inf
            d = self._pending[0][0] if self._pending else inf
            d = min(d, d_arr)
            tn = self._node_events[0][0] if self._node_events else inf
            if tn <= d and tn < inf and (d < inf or self._busy()):
                advance(self.cstate, self.fstate, tn)
                if d < inf or self._busy():  # else the run ended before this failure
                    self._apply_node_events(tn)
                continue
            if d == inf:
                advance(self.cstate, self.fstate, inf)
                if self._parked:  # pragma: no cover - parked tasks always have an up event
                    raise SimulationError(f"{len(self._parked)} tasks wait for a node forever")
                return False
            advance(self.cstate, self.fstate, d)
            back = []
            while self._pending and self._pending[0][0] == d:
                back.append(heapq.heappop(self._pending)[1])
            if d_arr == d:
                idx = self._arange[starts[b] : starts[b + 1]]
                self._next_arrival += 1
                if back:
                    idx = np.sort(np.concatenate([idx, np.asarray(back, dtype=np.int64)]))
            else:
                idx = np.sort(np.asarray(back, dtype=np.int64))
            idx = self._triage(idx, d)
            if idx.size:
                self._now = d
                self._todo = idx
                self._todo_pos = 0
                return True

    def next_batch(self) -> tuple[TaskBatch, ClusterView] | None:
        """Advance to the next decision and return its undecided tasks and the view.

        Returns the rest of the open batch when it is only partly committed;
        ``None`` when nothing is left to decide.
        """
        if self._over:
            return None
        if self._cur.size == 0:
            if self._todo_pos >= self._todo.size and not self._next_instant():
                self._over = True
                self._batch = self.n_batches
                return None
            if self.config.decision_interval == 0:
                self._cur = self._todo[self._todo_pos : self._todo_pos + 1]
            else:
                self._cur = self._todo[self._todo_pos :]
            self._batch = max(self._batch, 0)
        tasks = self._task_batch(self._cur)
        return tasks, self._view(tasks)

    def _view(self, tasks: TaskBatch) -> ClusterView:
        o = self._observed
        down = self._unavailable
        return ClusterView._over(
            o.state,
            o.cstate,
            self._now,
            self.cluster,
            tasks,
            queue=self.config.queue,
            unavailable=down,
        )

    def commit(self, nodes: np.ndarray | list[int] | int) -> None:
        """Assign the next ``len(nodes)`` tasks of the open batch.

        Raises:
            PolicyError: wrong length, an index out of range, a node that is down,
                or a node without memory for its task.
        """
        if self._cur.size == 0:
            raise SimulationError("commit: no open decision; call next_batch() first")
        nodes_arr = np.atleast_1d(np.asarray(nodes))
        k = nodes_arr.shape[0]
        if nodes_arr.ndim != 1 or k == 0 or k > self._cur.size:
            raise PolicyError(
                f"commit: expected 1 to {self._cur.size} node indices for this batch, "
                f"got shape {nodes_arr.shape}"
            )
        if nodes_arr.dtype.kind not in "iu":
            raise PolicyError(f"commit: node indices must be integers, got dtype {nodes_arr.dtype}")
        nodes_arr = nodes_arr.astype(np.int64, copy=False)
        idx = self._cur[:k]
        factor = self._jitter(k) if self.options.latency_jitter > 0 else self._ones[:k]
        code, q = check_and_commit(self.cstate, self.fstate, idx, nodes_arr, self._now, factor)
        if code == 2:
            raise PolicyError(
                f"task {int(self.state.task_id[idx[q]])}: node "
                f"{self.cluster.node_names[int(nodes_arr[q])]!r} is down at {self._now:g} s; "
                f"the view marks it unavailable"
            )
        if code:
            self._check_assignment(idx, nodes_arr)  # raises with the base engine's message
        self._cur = self._cur[k:]
        self._todo_pos += k

    # --------------------------------------------------------------- running

    def run(self, policy: Policy, rng: np.random.Generator | int | None = 0) -> SimResult:
        """Run the whole simulation with ``policy`` (``assign`` only) and return the result."""
        if self._batch >= 0:
            raise SimulationError("run: this engine has already started; build a new one")
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        policy.reset(self.cluster, gen)
        while (batch := self.next_batch()) is not None:
            tasks, view = batch
            t = time.perf_counter()
            nodes = policy.assign(tasks, view)
            self.scheduler_seconds += time.perf_counter() - t
            self.commit(nodes)
        return self.finish(policy_name=policy.name)

    def finish(self, policy_name: str = "") -> FaultResult:
        """Simulate to the end (nothing may be left to decide) and summarise."""
        if self._finished is not None:
            return self._finished  # type: ignore[return-value]
        if not self._over:
            if self._cur.size or self.next_batch() is not None:
                raise SimulationError("finish: tasks are still undecided; commit them first")
        st = self.state
        fa = self.farrays
        inv = np.empty_like(self.order)
        inv[self.order] = np.arange(self.order.shape[0])
        done = fa.phase[inv] == P_DONE
        rejected = fa.phase[inv] == P_REJECTED
        if not np.all(done | rejected):  # pragma: no cover - conservation
            raise SimulationError("finish: some tasks neither finished nor were rejected")
        names = np.asarray(self.cluster.node_names, dtype=object)
        node = st.node[inv]
        named = np.where(node >= 0, names[np.maximum(node, 0)], None)
        arrival = st.arrival[inv]
        finish = st.finish[inv]
        abs_deadline = st.abs_deadline[inv]
        reason = np.full(len(inv), "", dtype=object)
        for i, text in self._reason.items():
            reason[int(self.order[i])] = text
        tasks = {
            "task_id": st.task_id[inv],
            "node": named,
            "node_index": node,
            "arrival_s": arrival,
            "decision_s": st.decision[inv],
            "ready_s": st.ready[inv],
            "start_s": st.start[inv],
            "finish_s": finish,
            "response_s": finish - arrival,
            "met_deadline": finish <= abs_deadline,
            "priority": st.priority[inv],
            "status": np.where(done, "finished", "rejected").astype(object),
            "retries": self._retries[inv],
            "rejected_s": self._rejected_at[inv],
            "reason": reason,
        }
        if self.config.work_estimate is not None:
            tasks["work_est_gi"] = st.work_est[inv]
        out = np.asarray(self._outages, dtype=np.float64).reshape(-1, 3)
        onode = out[:, 0].astype(np.int64)
        summary = summarize_options(
            self.cluster,
            arrival=arrival,
            finish=finish,
            abs_deadline=abs_deadline,
            node=node,
            dur=st.dur[inv],
            priority=st.priority[inv],
            done=done,
            retries=self._retries,
            wasted=fa.wasted,
            outage_node=onode,
            outage_down=out[:, 1],
            outage_up=out[:, 2],
        )
        summary["scheduler_seconds"] = self.scheduler_seconds
        summary["policy"] = policy_name
        summary["decision_interval_s"] = float(self.config.decision_interval)
        summary["queue"] = self.config.queue
        att = np.asarray([a[:2] for a in self._attempts], dtype=np.int64).reshape(-1, 2)
        att_t = np.asarray([a[2:] for a in self._attempts], dtype=np.float64).reshape(-1, 3)
        self._finished = FaultResult(
            tasks=tasks,
            summary=summary,
            outages={
                "node": names[onode],
                "node_index": onode,
                "down_s": out[:, 1],
                "up_s": out[:, 2],
            },
            attempts={
                "task_id": st.task_id[att[:, 0]],
                "node": names[att[:, 1]],
                "node_index": att[:, 1],
                "decision_s": att_t[:, 0],
                "start_s": att_t[:, 1],
                "end_s": att_t[:, 2],
            },
        )
        return self._finished  # type: ignore[return-value]


# ----------------------------------------------------------------------------
# summary and entry point
# ----------------------------------------------------------------------------


def summarize_options(
    cluster: Cluster,
    *,
    arrival: np.ndarray,
    finish: np.ndarray,
    abs_deadline: np.ndarray,
    node: np.ndarray,
    dur: np.ndarray,
    priority: np.ndarray,
    done: np.ndarray,
    retries: np.ndarray,
    wasted: np.ndarray,
    outage_node: np.ndarray,
    outage_down: np.ndarray,
    outage_up: np.ndarray,
) -> dict[str, Any]:
    """Summary figures of a run with options; SPEC.md's formulas where they apply.

    Response percentiles are over finished tasks; ``deadline_miss_rate`` is over
    all tasks (a rejected task misses). ``T`` is the last finish. Busy core-seconds
    include killed runs (``wasted_core_s``). A down node draws no power, so
    ``energy_j = sum_j(idle_j * up_j + (max_j - idle_j) * busy_j / cores_j)`` with
    ``up_j`` its time up in ``[t0, T]``. ``utilization`` keeps SPEC's capacity
    ``sum(cores) * (T - t0)``; ``availability`` is the share of that capacity on
    nodes that were up. With no outage and nothing rejected every figure is the
    base model's.
    """
    n = arrival.shape[0]
    n_nodes = cluster.n_nodes
    t0 = float(arrival.min())
    horizon_end = float(finish[done].max()) if done.any() else t0
    span = horizon_end - t0
    down_s = np.zeros(n_nodes)
    if outage_node.size:
        lo = np.maximum(outage_down, t0)
        hi = np.minimum(outage_up, horizon_end)
        np.add.at(down_s, outage_node, np.maximum(hi - lo, 0.0))
    busy = np.bincount(node[done], weights=dur[done], minlength=n_nodes) + wasted
    dynamic = (cluster.power_max_w - cluster.power_idle_w) * busy / cluster.cores
    energy = float(np.sum(cluster.power_idle_w * (span - down_s) + dynamic))
    capacity_s = float(np.sum(cluster.cores)) * span
    missed = ~(finish <= abs_deadline)
    response = (finish - arrival)[done]
    if response.size:
        p50, p95, p99 = np.percentile(response, [50.0, 95.0, 99.0])
        mean = float(np.mean(response))
    else:
        p50 = p95 = p99 = mean = float("nan")
    up_core_s = float(np.sum(cluster.cores * (span - down_s)))
    out: dict[str, Any] = {
        "tasks": int(n),
        "mean_response_s": mean,
        "p50_response_s": float(p50),
        "p95_response_s": float(p95),
        "p99_response_s": float(p99),
        "deadline_miss_rate": float(np.mean(missed)),
        "makespan_s": span,
        "energy_j": energy,
        "utilization": float(np.sum(busy) / capacity_s) if capacity_s > 0 else 0.0,
    }
    out["deadline_miss_rate_by_priority"] = {
        str(int(p)): float(np.mean(missed[priority == p])) for p in np.unique(priority)
    }
    out["finished"] = int(np.count_nonzero(done))
    out["rejected"] = int(n - np.count_nonzero(done))
    out["retries"] = int(np.sum(retries))
    if capacity_s > 0:
        out["availability"] = up_core_s / capacity_s
    else:  # no span (nothing finished): the share of cores up at t0, not a blanket 1.0
        down_at_t0 = np.zeros(n_nodes, dtype=bool)
        down_at_t0[outage_node[(outage_down <= t0) & (t0 < outage_up)]] = True
        out["availability"] = float(np.sum(cluster.cores[~down_at_t0]) / np.sum(cluster.cores))
    out["outages"] = int(outage_node.size)
    out["wasted_core_s"] = float(np.sum(wasted))
    return out


def _with_option_columns(result: SimResult, options: SimOptions) -> SimResult:
    """Add the columns and keys of a run with options to a base-engine result."""
    tasks = dict(result.tasks)
    n = tasks["task_id"].shape[0]
    tasks["status"] = np.full(n, "finished", dtype=object)
    tasks["retries"] = np.zeros(n, dtype=np.int64)
    tasks["rejected_s"] = np.full(n, np.nan)
    tasks["reason"] = np.full(n, "", dtype=object)
    summary = dict(result.summary)
    summary.update(
        finished=n, rejected=0, retries=0, availability=1.0, outages=0, wasted_core_s=0.0
    )
    return FaultResult(tasks=tasks, summary=summary)


def simulate_with_options(
    cluster: Cluster,
    workload: Workload,
    policy: Policy,
    config: SimConfig | None = None,
    options: SimOptions | None = None,
    seed: int | None = 0,
) -> SimResult:
    """Simulate with faults, estimate noise and network options (see the module doc).

    With every option off this is :func:`~hybridsched.sim.simulate`, bit for bit.
    The policy draws from ``numpy.random.default_rng(seed)`` as in the base model;
    the options draw from independent children of ``SeedSequence(seed)``.

    Raises:
        ConfigError: ``config.work_estimate`` set together with ``estimate_cv``.
    """
    config = SimConfig() if config is None else config
    options = SimOptions() if options is None else options
    if not options.active:
        return simulate(cluster, workload, policy, config=config, seed=seed)
    seeds = option_seeds(seed)
    source = "exact"
    if options.estimates_on:
        if config.work_estimate is not None:
            raise ConfigError(
                "options.estimate_cv: config.work_estimate is set already; use one or the other"
            )
        cv = float(options.estimate_cv or 0.0)
        est, source = estimate_work(workload, cv, np.random.default_rng(seeds.estimates))
        if WORK_EST_COLUMN in workload.extra and cv > 0:
            log.warning("estimate_cv=%g is not used: the workload has %s", cv, WORK_EST_COLUMN)
        config = replace(config, work_estimate=est)
    if options.needs_engine:
        engine: Engine = FaultEngine(cluster, workload, config, options, seed=seed)
        result = engine.run(policy, np.random.default_rng(seed))
    else:
        engine = _EstimateEngine(cluster, workload, config)
        result = _with_option_columns(engine.run(policy, np.random.default_rng(seed)), options)
        inv = np.empty_like(engine.order)
        inv[engine.order] = np.arange(engine.order.shape[0])
        result.tasks["work_est_gi"] = engine.state.work_est[inv]
    result.summary["estimates"] = source
    return result
