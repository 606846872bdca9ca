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

# the compiled evaluation (cost_kernels), re-exported: callers use ``cost.evaluate`` and the like
from hybridsched.policies.cost_kernels import (
    _schedule_all,
    evaluate,
    evaluate_one,
    horizon_cost,
    make_scratch,
    memo_get,
    memo_key,
    memo_put,
    node_cost,
    node_schedule,
    schedule_assigned,
    simulate_small,
)
from hybridsched.policies.queue_plan import queue_plan
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
# each node's queue plan (policies.queue_plan): its dispatches without the batch
qp_q         int64[::1]       per node from q_off[j]: the queued task (q_* index) of each dispatch
qp_t         float64[::1]     per node from q_off[j]: the time of each dispatch, s
qp_last      float64[::1]     per node from q_off[j] + j: last finish after k dispatches, k = 0..nq
qs_off       int64[::1]       offsets into snap, N + 1
snap         float64[::1]     per node: core-free times (sorted) before each dispatch and after all
qp_max       int64[:,::1]     per node from q_off[j]: sparse table of the plan's blocking dispatches
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


def policy_arg(default: Any, help: str) -> Any:
    """A dataclass field that is a policy argument: its default and its ``--help`` line."""
    return field(default=default, metadata={"help": help})


@dataclass
class CostFields:
    """Cost weights as policy arguments (a base of the ``aco`` and ``optimal`` policies)."""

    w_response: float = policy_arg(CostWeights.response, "cost per second of response time")
    w_miss: float = policy_arg(
        CostWeights.miss, "cost of a missed deadline at priority 0 (seconds of response)"
    )
    miss_decay: float = policy_arg(
        CostWeights.miss_decay, "factor on the miss cost per priority class"
    )
    w_energy: float = policy_arg(CostWeights.energy, "cost per joule of energy increase")
    w_displaced: float = policy_arg(
        CostWeights.displaced, "factor on the delay and misses caused to queued tasks (0: ignore)"
    )
    w_wait: float = policy_arg(
        CostWeights.wait, "extra cost per second of predicted waiting, times (1 + priority)"
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
    q_idx, q_ready, q_key0, q_key1, q_tid, q_dur = core.queue_arrays(m)
    q_f0 = np.empty(m)
    q_dl = np.empty(m)
    q_pr = np.empty(m, dtype=np.int64)
    for j in range(n):
        lo = q_off[j]
        hi = core.gather_queue(
            st, j, lo, q_idx, q_ready, q_key0, q_key1, q_tid, q_dur, core.DUR_EST
        )
        for pos in range(lo, hi):
            q_dl[pos] = st.abs_deadline[q_idx[pos]]
            q_pr[pos] = st.priority[q_idx[pos]]
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


def pair_inputs(tasks: TaskBatch, view: ClusterView) -> tuple:
    """``(d, latency (N, R), region, data, bandwidth, work, speed)`` as contiguous arrays.

    What the compiled per-pair estimates read (:func:`_pair_times` here, the
    colony's desirability): the view's ``ready_s`` and ``exec_s`` come from these.
    """
    c = view.cluster
    return (
        float(view.time),
        np.ascontiguousarray(c.latency_s, dtype=np.float64),
        np.ascontiguousarray(tasks.region, dtype=np.int64),
        np.ascontiguousarray(tasks.data_mb, dtype=np.float64),
        np.ascontiguousarray(c.bandwidth_mb_s, dtype=np.float64),
        np.ascontiguousarray(tasks.work_gi, dtype=np.float64),
        np.ascontiguousarray(c.speed, dtype=np.float64),
    )


@njit(cache=True)
def _pair_times(d, lat, region, data, bw, work, speed, dynpow):
    """``ready``, ``dur`` and ``dyn_j`` of the batch, ``(B, N)`` each, in one pass.

    The view's ``ready_s`` and ``exec_s`` operation for operation (so the same
    bits), without their intermediate arrays.
    """
    b = region.shape[0]
    n = bw.shape[0]
    ready = np.empty((b, n))
    dur = np.empty((b, n))
    dyn = np.empty((b, n))
    for t in range(b):
        r = region[t]
        for j in range(n):
            ready[t, j] = (d + lat[j, r]) + data[t] / bw[j]
            x = work[t] / speed[j]
            dur[t, j] = x
            dyn[t, j] = x * dynpow[j]
    return ready, dur, dyn


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
    cores = np.ascontiguousarray(c.cores, dtype=np.int64)
    qp_q, qp_t, qp_last, qs_off, snap, qp_max = queue_plan(
        d, cf, cores, run_last, q_off, q_ready, q_key0, q_key1, q_tid, q_dur
    )
    dynpow = (c.power_max_w - c.power_idle_w) / c.cores
    ready, dur, dyn_j = _pair_times(
        *pair_inputs(tasks, view), np.ascontiguousarray(dynpow, dtype=np.float64)
    )
    return Problem(
        d=d,
        h0=h0,
        idle_w=float(np.sum(c.power_idle_w)),
        w_response=float(weights.response),
        w_energy=float(weights.energy),
        w_displaced=float(weights.displaced),
        inv_b=1.0 / len(tasks),
        cores=cores,
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
        qp_q=qp_q,
        qp_t=qp_t,
        qp_last=qp_last,
        qs_off=qs_off,
        snap=snap,
        qp_max=qp_max,
        ready=ready,
        dur=dur,
        dyn_j=dyn_j,
        key0=np.ascontiguousarray(view.queue_keys[0]),
        key1=np.ascontiguousarray(view.queue_keys[1]),
        tid=np.ascontiguousarray(tasks.task_id, dtype=np.int64),
        arrival=np.ascontiguousarray(tasks.arrival_s),
        dl=np.ascontiguousarray(tasks.deadline_abs_s),
        mw=weights.miss_cost(tasks.priority),
        ww=weights.wait * (1.0 + tasks.priority.astype(np.float64)),
    )


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


__all__ = [
    "CostFields",
    "CostWeights",
    "Problem",
    "batch_cost",
    "build_problem",
    "compile_problem",
    "evaluate",
    "evaluate_one",
    "horizon_cost",
    "make_scratch",
    "memo_get",
    "memo_key",
    "memo_put",
    "node_cost",
    "node_schedule",
    "pair_inputs",
    "predict",
    "schedule_assigned",
    "simulate_small",
]
