"""The (task, node) pair features that the learned policies score.

One row of ``F`` numbers describes placing one task on one node. Every feature
is relative (to the task's best estimated response, to the cluster's mean node)
or bounded, so that one network scores clusters of any size and scale.

For task ``i`` decided at time ``d`` on node ``j``, with MCT's estimate
``ef_j = max(ready_j, available_j) + exec_j - d`` and ``m = min_j ef_j`` over the
feasible nodes (the best response MCT expects, > 0):

====  ==================  ==========================================================
 #    name                value
====  ==================  ==========================================================
 0    regret              ``sq((ef_j - m) / m)``: how much later than the best
 1    is_best             1 where ``ef_j == m`` (MCT's choice and its ties)
 2    exec                ``sq(exec_j / m)``
 3    transfer            ``sq((ready_j - d) / m)``: latency + data / bandwidth
 4    wait                ``sq(max(available_j - ready_j, 0) / m)``: queueing delay
 5    backlog             ``sq(queued_work_j / cores_j / m)``: unstarted work per core
 6    busy                busy cores / cores
 7    speed               ``log(speed_j)`` minus its cluster mean
 8    cores               ``log(cores_j)`` minus its cluster mean
 9    energy              ``sq`` of the task's dynamic energy on ``j`` over its
                          minimum, minus 1
10    idle_power          ``log1p(idle W per core)`` minus its cluster mean
11    recent              decayed recent assignments / cores
12    slack               ``(deadline - d - ef_j) / (deadline - arrival)`` in [-1, 1];
                          1 without a deadline
13    meets_deadline      1 when ``d + ef_j <= deadline``
14    task_scale          ``log1p(m)`` (m in seconds)
15-17 priority            one-hot of priority 0, 1, >= 2
18    obs_exec            ``log`` of the node's observed execution factor (realized over
                          nominal, :meth:`NodeObservations.exec_factor`); 0: as nominal
19    obs_transfer        ``log`` of its observed transfer factor; 0: as nominal
20    running             ``sq(running_ratio)``: its longest running task's elapsed
                          over nominal time (0: nothing runs)
====  ==================  ==========================================================

Features 18-20 are what the view observes (docs/MODEL.md 12.1): they are the
same whether the view's estimates are ``nominal`` or ``observed`` (with
``observed``, features 0-5 and 12-14 also follow the corrected estimates,
because they read the view's). Without observations (the base model) they are
0. They are per node, so they travel in the node table
(:func:`observe_nodes` refreshes them before each decision); a caller that
never refreshes them sees the neutral 0s. A network made for the first 18
features (format 1 checkpoints, before observations) reads only those.

Here ``sq(x) = x / (1 + x)`` maps ``[0, inf]`` onto ``[0, 1]`` (cheaper than a
logarithm in the hot loop). Infeasible nodes (down, or memory) get all-zero rows; the
mask says which they are.

:func:`pair_features` is the reference, pure NumPy, from a
:class:`~hybridsched.sim.view.TaskBatch` and a
:class:`~hybridsched.sim.view.ClusterView`. :func:`pair_features_one` is its
compiled twin for one task on the engine's arrays, used by the batched training
rollouts and by the ``rl`` policy; the two agree to float32 rounding (tested).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.model import PRIORITY_CLASSES, Cluster
from hybridsched.sim import core
from hybridsched.sim.view import ClusterView, TaskBatch

FEATURE_NAMES: tuple[str, ...] = (
    "regret",
    "is_best",
    "exec",
    "transfer",
    "wait",
    "backlog",
    "busy",
    "speed",
    "cores",
    "energy",
    "idle_power",
    "recent",
    "slack",
    "meets_deadline",
    "task_scale",
    # one-hot of the priority class (PRIORITY_CLASSES of them, the last one "or above")
    "priority_0",
    "priority_1",
    "priority_2plus",
    # what the view observes per node (node table columns 4-6, see observe_nodes)
    "obs_exec",
    "obs_transfer",
    "running",
)
"""Names of the pair features, in column order."""

N_FEATURES = len(FEATURE_NAMES)
"""Number of pair features ``F``."""

N_BASE_FEATURES = FEATURE_NAMES.index("obs_exec")
"""Features before observations existed (18): what format 1 checkpoints read."""

# Columns of the node table (see node_table and observe_nodes).
_S_LOG_SPEED, _S_LOG_CORES, _S_DYNPOW, _S_IDLE = 0, 1, 2, 3
_S_OBS = 4  # obs_exec, obs_transfer, running: refreshed per decision
N_STATIC = 7


def node_table(cluster: Cluster) -> np.ndarray:
    """Per-node columns the features need, ``(N, 7)`` float64.

    Columns: centred log speed, centred log cores, dynamic power per busy core
    (W), centred ``log1p`` of idle power per core, then the observed columns
    (features 18-20), 0 (nothing observed) until :func:`observe_nodes` fills them.
    """
    log_speed = np.log(cluster.speed)
    log_cores = np.log(cluster.cores.astype(np.float64))
    dynpow = (cluster.power_max_w - cluster.power_idle_w) / cluster.cores
    idle = np.log1p(cluster.power_idle_w / cluster.cores)
    return np.ascontiguousarray(
        np.stack(
            [
                log_speed - log_speed.mean(),
                log_cores - log_cores.mean(),
                dynpow,
                idle - idle.mean(),
                *np.zeros((3, cluster.n_nodes)),
            ],
            axis=1,
        )
    )


def observed_columns(view: ClusterView) -> np.ndarray:
    """Features 18-20 of every node from what ``view`` observes, ``(N, 3)`` float64."""
    obs = view.observations
    t = float(view.time)
    return np.stack(
        [
            np.log(obs.exec_factor(t)),
            np.log(obs.transfer_factor(t)),
            _squash(obs.running_ratio),
        ],
        axis=1,
    )


def observe_nodes(table: np.ndarray, view: ClusterView) -> np.ndarray:
    """Refresh the observed columns of a :func:`node_table` in place from ``view``; returns it.

    Call it once per decision instant (the observations change as tasks complete).
    """
    table[:, _S_OBS : _S_OBS + 3] = observed_columns(view)
    return table


def pair_features(tasks: TaskBatch, view: ClusterView) -> np.ndarray:
    """Pair features of every (task, node) of a batch, ``(B, N, F)`` float32.

    Every task is described against the same view (the cluster at the decision
    time, before any task of the batch is placed). Infeasible pairs are zero;
    ``view.feasible`` is the mask.
    """
    c = view.cluster
    static = node_table(c)
    d = view.time
    feasible = view.feasible
    ready = view.ready_s
    avail = view.available_s[None, :]
    ex = view.exec_s
    ef = view.est_finish_s - d
    ef_masked = np.where(feasible, ef, np.inf)
    m = ef_masked.min(axis=1, keepdims=True)
    dyn = static[None, :, _S_DYNPOW] * ex
    e_min = np.where(feasible, dyn, np.inf).min(axis=1, keepdims=True)
    cores = c.cores.astype(np.float64)[None, :]
    deadline = tasks.deadline_abs_s[:, None]
    arrival = tasks.arrival_s[:, None]
    has_dl = np.isfinite(deadline)
    span = np.where(has_dl, deadline - arrival, 1.0)
    slack = np.where(has_dl, np.clip((deadline - d - ef) / span, -1.0, 1.0), 1.0)
    meets = np.where(has_dl, (d + ef) <= deadline, True)
    cls = np.minimum(tasks.priority[:, None], PRIORITY_CLASSES - 1)
    shape = ef.shape
    cols = [
        _squash((ef - m) / m),
        (ef == m).astype(np.float64),
        _squash(ex / m),
        _squash((ready - d) / m),
        _squash(np.maximum(avail - ready, 0.0) / m),
        np.broadcast_to(_squash(view.queued_work_s[None, :] / cores / m), shape),
        np.broadcast_to(view.busy_cores[None, :] / cores, shape),
        np.broadcast_to(static[None, :, _S_LOG_SPEED], shape),
        np.broadcast_to(static[None, :, _S_LOG_CORES], shape),
        _energy(dyn, e_min),
        np.broadcast_to(static[None, :, _S_IDLE], shape),
        np.broadcast_to(view.recent_assignments[None, :] / cores, shape),
        slack,
        meets.astype(np.float64),
        np.broadcast_to(np.log1p(m), shape),
        *(np.broadcast_to((cls == k).astype(np.float64), shape) for k in range(PRIORITY_CLASSES)),
        *(np.broadcast_to(col[None, :], shape) for col in observed_columns(view).T),
    ]
    out = np.stack(cols, axis=2).astype(np.float32)
    out[~feasible] = 0.0
    return out


def _energy(dyn: np.ndarray, e_min: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(e_min > 0, (dyn - e_min) / e_min, np.where(dyn > e_min, np.inf, 0.0))
    return _squash(ratio)


def _squash(x: np.ndarray) -> np.ndarray:
    """``x / (1 + x)``: maps ``[0, inf]`` onto ``[0, 1]`` without a transcendental call."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(x), 1.0, x / (1.0 + x))


@njit(cache=True)
def _squash1(x):
    if x == np.inf:
        return 1.0
    return x / (1.0 + x)


@njit(cache=True)
def pair_features_one(st, i, d, proj_min, queued_work, recent, recent_t, static, out, mask):
    """Compiled twin of :func:`pair_features` for task ``i`` at time ``d``.

    Reads the engine's arrays through ``st`` except for the per-node state passed
    explicitly, so that a caller can describe tentative placements on copies.

    Args:
        st: the engine's compiled state.
        i: the task (decision-order index).
        d: the decision time, s.
        proj_min, queued_work, recent, recent_t: per-node state (the engine's or copies).
        static: :func:`node_table` of the cluster (observed columns refreshed by
            :func:`observe_nodes` for this decision, or left at 0).
        out: ``(>= N, F)`` float32, written in rows ``0..N-1``.
        mask: ``(>= N,)`` bool, written in ``0..N-1``.

    Returns:
        the index of the first node with the best estimate (MCT's choice).
    """
    n = st.cores.shape[0]
    est = np.empty((3, n))
    best, task = node_estimates(st, i, d, proj_min, static, est, mask)
    nodes = (proj_min, queued_work, recent, recent_t, static)
    pair_rows(st, i, d, nodes, est, task, mask, np.arange(n), out)
    return best


@njit(cache=True)
def node_estimates(st, i, d, proj_min, static, est, mask):
    """The per-node estimates of task ``i`` that its feature rows read, one pass over the nodes.

    Writes ``est (3, >= N)`` (ready, execution and estimated response ``ef``
    of every feasible node) and ``mask (>= N,)`` (feasible: up, memory fits).

    Returns:
        ``(best, (m, e_min, log1p(m)))``: the first node with ``ef == m`` (-1:
        none), then what :func:`pair_rows` reads: the least ``ef`` and the least
        dynamic energy over the feasible nodes, and the task scale.
    """
    n = st.cores.shape[0]
    r = st.region[i]
    work = st.work_est[i]
    m = np.inf
    e_min = np.inf
    best = -1
    for j in range(n):
        ok = st.up[j] and st.mem_req[i] <= st.memory[j]  # up: available; memory: fits
        mask[j] = ok
        if not ok:
            continue
        ready = (d + st.latency[j, r]) + st.data[i] / st.bandwidth[j]
        ex = work / st.speed[j]
        ef = (max(ready, max(d, proj_min[j])) + ex) - d
        est[0, j] = ready
        est[1, j] = ex
        est[2, j] = ef
        if ef < m:
            m = ef
            best = j
        dyn = static[j, 2] * ex
        if dyn < e_min:
            e_min = dyn
    return best, (m, e_min, np.log1p(m))


@njit(cache=True)
def pair_rows(st, i, d, nodes, est, task, mask, js, out):
    """The feature rows of task ``i`` on nodes ``js``: node ``js[q]``'s into ``out[q]``.

    A row is all zero where ``mask`` says the node is infeasible. ``nodes``:
    ``(proj_min, queued_work, recent, recent_t, static)`` as
    :func:`pair_features_one` takes them; ``est``, ``task`` and ``mask``: what
    :func:`node_estimates` gave for ``i``.
    """
    proj_min, queued_work, recent, recent_t, static = nodes
    m, e_min, scale = task
    dl = st.abs_deadline[i]
    has_dl = np.isfinite(dl)
    span = dl - st.arrival[i] if has_dl else 1.0
    p = min(st.priority[i], PRIORITY_CLASSES - 1)
    for q in range(js.shape[0]):
        j = js[q]
        row = out[q]
        if not mask[j]:
            row[:] = 0.0
            continue
        ready = est[0, j]
        ex = est[1, j]
        ef = est[2, j]
        avail = max(d, proj_min[j])
        cores = float(st.cores[j])
        row[0] = _squash1((ef - m) / m)
        row[1] = 1.0 if ef == m else 0.0
        row[2] = _squash1(ex / m)
        row[3] = _squash1((ready - d) / m)
        wait = avail - ready
        row[4] = _squash1(wait / m) if wait > 0.0 else 0.0
        qw = queued_work[j]
        row[5] = _squash1(qw / cores / m)
        row[6] = (cores - st.n_free[j]) / cores
        row[7] = static[j, 0]
        row[8] = static[j, 1]
        dyn = static[j, 2] * ex
        if e_min > 0:
            ratio = (dyn - e_min) / e_min
        elif dyn > e_min:
            ratio = np.inf
        else:
            ratio = 0.0
        row[9] = _squash1(ratio)
        row[10] = static[j, 3]
        rc = recent[j]
        row[11] = rc * np.exp(-(d - recent_t[j]) / core.RECENT_TAU_S) / cores if rc != 0.0 else 0.0
        if has_dl:
            row[12] = min(max((dl - d - ef) / span, -1.0), 1.0)
            row[13] = 1.0 if d + ef <= dl else 0.0
        else:
            row[12] = 1.0
            row[13] = 1.0
        row[14] = scale
        for k in range(PRIORITY_CLASSES):
            row[15 + k] = 1.0 if p == k else 0.0
        for k in range(3):
            row[15 + PRIORITY_CLASSES + k] = static[j, 4 + k]


@njit(cache=True)
def place_tentative(st, i, j, d, proj, proj_min, queued_work, recent, recent_t):
    """Update copies of the per-node state as if task ``i`` went to node ``j`` at ``d``.

    Mirrors :func:`hybridsched.sim.core.commit` on the quantities the features read.
    """
    ready = (d + st.latency[j, st.region[i]]) + st.data[i] / st.bandwidth[j]
    dur = st.work_est[i] / st.speed[j]
    proj_min[j] = core.project(proj[j], ready, dur)
    queued_work[j] += dur
    recent[j] = recent[j] * np.exp(-(d - recent_t[j]) / core.RECENT_TAU_S) + 1.0
    recent_t[j] = d
