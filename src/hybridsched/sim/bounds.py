"""Lower bounds on what any scheduler can achieve on a workload (docs/MODEL.md's model).

A task decided at ``d`` on node ``j`` finishes no earlier than
``d + latency[j, region] + data / bandwidth[j] + work / speed[j]``: that is its
response with no waiting for a core, and the decision time ``d`` is fixed by the
decision interval whatever the scheduler does. So

    response_i >= (d_i - arrival_i) + min over feasible j of (transfer_ij + exec_ij)

for every task of every schedule, and the mean of the right-hand side bounds every
scheduler's mean response. The bound ignores contention entirely (every task gets
its best node to itself), so it is loose when nodes are busy; what it tells is
the headroom: a scheduler cannot be more than ``1 - bound / response`` below
another scheduler's mean ``response`` on the same workload.
"""

from __future__ import annotations

import numpy as np

from hybridsched.model import Cluster, Workload


def decision_times(arrival: np.ndarray, decision_interval: float) -> np.ndarray:
    """When the engine decides each task: its arrival, rounded up to the interval (0: none)."""
    if not decision_interval >= 0:
        raise ValueError(f"decision_interval: must be >= 0, got {decision_interval}")
    if decision_interval == 0:
        return arrival
    return np.ceil(arrival / decision_interval) * decision_interval


def no_wait_times(
    cluster: Cluster, workload: Workload, decision: np.ndarray, rows: slice | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ready and execution times, s, of the tasks ``rows`` on every node (tasks x nodes).

    ``decision`` holds those tasks' decision times (``decision_times``). The
    operations are the engine's, in its order, so the results are bit-identical
    to the simulator's ready and execution times.
    """
    ready = (decision[:, None] + cluster.latency_s[:, workload.region[rows]].T) + (
        workload.data_mb[rows, None] / cluster.bandwidth_mb_s[None, :]
    )
    return ready, workload.work_gi[rows, None] / cluster.speed[None, :]


def response_lower_bound(
    cluster: Cluster, workload: Workload, decision_interval: float = 0.0, chunk: int = 65536
) -> np.ndarray:
    """Per task, the no-waiting lower bound on its response time, s (workload row order).

    Args:
        cluster: the cluster.
        workload: the workload (every task fits some node's memory, as validated).
        decision_interval: the batching interval; 0 decides each task on arrival.
        chunk: tasks per vectorised block (bounds memory at ``chunk x nodes``).
    """
    a = workload.arrival_s
    d = decision_times(a, decision_interval)
    out = np.empty(len(workload))
    for lo in range(0, len(workload), chunk):
        s = slice(lo, lo + chunk)
        ready, ex = no_wait_times(cluster, workload, d[s], s)
        finish = ready + ex
        finish[workload.memory_mb[s, None] > cluster.memory_mb[None, :]] = np.inf
        out[s] = finish.min(axis=1) - a[s]
    return out


_TEMPS = (0.03, 0.01)
"""Soft-min temperatures (s) of the capacity bound's smoothed dual, in turn."""


class _CapacityDual:
    """The Lagrangian dual of :func:`capacity_lower_bound` for one end time.

    ``c``: response by node if finishing by the end time (inf: cannot);
    ``ex``: execution times; ``out``: response bound if finishing after it;
    ``cap``: core-seconds per (window, node); ``kidx``: each task's last
    window (sorted). Prices ``lam`` are flat, window-major.
    """

    def __init__(self, c, ex, out, cap, kidx) -> None:
        self.c, self.ex, self.out, self.cap, self.kidx = c, ex, out, cap, kidx
        windows = cap.shape[0]
        self.starts = np.searchsorted(kidx, np.arange(windows), side="left")
        self.empty = np.diff(np.append(self.starts, len(kidx))) == 0

    def _scores(self, lam: np.ndarray) -> np.ndarray:
        price = np.cumsum(lam.reshape(self.cap.shape), axis=0)[self.kidx]
        return np.concatenate([self.c + self.ex * price, self.out[:, None]], axis=1)

    def exact(self, lam: np.ndarray) -> float:
        """The dual value at ``lam``: a valid bound on the mean response."""
        total = self._scores(lam).min(axis=1).sum() - np.sum(lam.reshape(self.cap.shape) * self.cap)
        return float(total) / len(self.kidx)

    def smoothed(self, lam: np.ndarray, temp: float) -> tuple[float, np.ndarray]:
        """Minus the soft-min dual (below the exact one) per task, and its gradient."""
        n, m = self.ex.shape
        x = self._scores(lam)
        low = x.min(axis=1)
        e = np.exp((low[:, None] - x) / temp)
        tot = e.sum(axis=1)
        val = low - temp * np.log(tot)
        # d val_i / d price_ij = p_ij x exec_ij; a price counts for its window and later ones
        p = e[:, :m] * (self.ex / tot[:, None])
        per = np.add.reduceat(np.vstack([p, np.zeros((1, m))]), self.starts, axis=0)
        per[self.empty] = 0.0
        used = np.cumsum(per[::-1], axis=0)[::-1]
        g = val.sum() - np.sum(lam.reshape(self.cap.shape) * self.cap)
        return -float(g) / n, -(used - self.cap).ravel() / n


def capacity_lower_bound(
    cluster: Cluster,
    workload: Workload,
    decision_interval: float = 0.0,
    *,
    windows: int = 40,
    horizons: tuple[float, ...] = (0.0,),
    iterations: int = 100,
) -> float:
    """A lower bound on every scheduler's mean response that counts node capacity.

    The no-wait bound lets every task have its best node to itself. This one
    also knows that a node has ``cores`` core-seconds per second. Take an end
    time ``tend`` and window starts ``tau_0 < tau_1 < ...``. In any schedule
    each task either finishes by ``tend`` on some node ``j`` (response at least
    its no-wait response there, ``c_ij``) or after ``tend`` (response at least
    ``max(no-wait bound, tend - arrival)``); and the tasks decided at or after
    ``tau_k`` that finish by ``tend`` on ``j`` run inside ``[tau_k, tend]``, so
    their execution times sum to at most ``cores_j x (tend - tau_k)``.
    Relaxing these capacity constraints with prices ``lambda_kj >= 0``
    (Lagrangian relaxation) gives, for *every* ``lambda >= 0``, the bound::

        sum_i min( min_j c_ij + exec_ij x sum_{k: tau_k <= d_i} lambda_kj , out_i )
            - sum_kj lambda_kj x cores_j x (tend - tau_k)

    (weak duality); ``lambda = 0`` is the no-wait bound. The prices are
    maximised with L-BFGS-B on a smoothed dual (a soft-min, which is below the
    min, so still valid) at two decreasing temperatures, and the exact dual value at
    the prices found is returned, maximised over ``horizons`` (``tend`` = last
    decision time + horizon). Every step keeps validity; only the tightness
    depends on the optimiser.

    Args:
        cluster, workload: the instance (base model: no failures, exact work).
        decision_interval: the batching interval; 0 decides each task on arrival.
        windows: number of window starts, evenly spaced over the decision times.
        horizons: seconds after the last decision time tried as ``tend`` (on
            the scenario presets 0 was the best of 0, 5 and 20).
        iterations: L-BFGS-B iterations per temperature.

    Returns:
        The bound on the mean response time, s; at least the mean no-wait bound.
    """
    from scipy.optimize import minimize

    if windows < 1:
        raise ValueError(f"windows: must be >= 1, got {windows}")
    if not horizons or min(horizons) < 0:
        raise ValueError(f"horizons: need at least one, all >= 0, got {horizons}")
    order = np.argsort(workload.arrival_s, kind="stable")
    a = workload.arrival_s[order]
    d = decision_times(a, decision_interval)
    ready, ex = no_wait_times(cluster, workload, d, order)
    finish = ready + ex
    finish[workload.memory_mb[order, None] > cluster.memory_mb[None, :]] = np.inf
    nb = finish.min(axis=1) - a  # the no-wait bound, task by task
    m = ex.shape[1]
    t0 = float(d[0])
    taus = t0 + (float(d[-1]) - t0) * np.arange(windows) / windows
    # task i is in windows 0..kidx[i]; tasks are sorted, so each window's tasks are a run
    kidx = np.searchsorted(taus, d, side="right") - 1
    best = float(nb.mean())
    for h in horizons:
        tend = float(d[-1]) + h
        c = finish - a[:, None]
        c[finish > tend] = np.inf  # cannot finish by tend on that node
        dual = _CapacityDual(
            c, ex, np.maximum(nb, tend - a), cluster.cores * (tend - taus[:, None]), kidx
        )
        lam = np.zeros(windows * m)
        for temp in _TEMPS:
            res = minimize(
                dual.smoothed,
                lam,
                args=(temp,),
                jac=True,
                method="L-BFGS-B",
                bounds=[(0.0, None)] * lam.size,
                options={"maxiter": iterations},
            )
            lam = res.x
            best = max(best, dual.exact(lam))
    return best
