"""The scheduling objective that the learned policies minimise, with its weights.

``cost = response * sum(response_s) + sum(miss[priority] * missed) + energy * energy_kj``

Two exact decompositions of that total into per-decision rewards are used:

* per task (the trainer): each decision's cost is its own task's response,
  deadline penalty and dynamic energy; the idle energy of the whole horizon is
  charged to the episode's last decision. Known once the task has run.
* accrued (the Gymnasium environment): each decision is charged what the
  cluster accrues until the next decision (task-seconds in the system, deadlines
  that pass unmet, energy drawn), and the last one what accrues until every
  task is done. Known at once, so an online agent can use it.

Both sum over an episode to ``-cost`` of the run (tested).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numba import njit

from hybridsched.errors import ConfigError
from hybridsched.model import PRIORITY_CLASSES, Cluster

_LAST_CLASS = PRIORITY_CLASSES - 1


@dataclass(frozen=True)
class Objective:
    """Weights of the objective; all >= 0."""

    response: float = 1.0
    """Weight per second of task response time."""
    miss: tuple[float, ...] = (0.0,) * PRIORITY_CLASSES
    """Penalty per missed deadline for each priority class: 0, 1 and >= 2."""
    energy: float = 0.0
    """Weight per kJ of cluster energy (idle and dynamic)."""

    def __post_init__(self) -> None:
        vals = [self.response, self.energy, *self.miss] if isinstance(self.miss, tuple) else []
        if len(self.miss) != PRIORITY_CLASSES or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            for v in vals
        ):
            raise ConfigError(
                "objective: response and energy must be numbers >= 0 and miss a tuple of "
                f"{PRIORITY_CLASSES} numbers >= 0 (priority 0, 1, >=2), got {self!r}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Objective:
        """Build from a mapping such as ``{"response": 1, "miss": [5, 2, 1], "energy": 0}``."""
        data = dict(data or {})
        unknown = set(data) - {"response", "miss", "energy"}
        if unknown:
            raise ConfigError(
                f"objective: unknown key(s) {', '.join(sorted(unknown))}; "
                "known: response, miss, energy"
            )
        if "miss" in data:
            miss = data["miss"]
            if isinstance(miss, (int, float)):
                miss = (miss,) * PRIORITY_CLASSES
            data["miss"] = tuple(float(v) for v in miss)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping (inverse of :meth:`from_dict`)."""
        d = asdict(self)
        d["miss"] = list(self.miss)
        return d

    def miss_weights(self, priority: np.ndarray) -> np.ndarray:
        """The miss penalty of each task, by its priority."""
        return np.asarray(self.miss, dtype=np.float64)[np.minimum(priority, _LAST_CLASS)]

    def task_costs(
        self, cluster: Cluster, st: Any, finish: np.ndarray, idx: Any = slice(None)
    ) -> np.ndarray:
        """Per-task cost: response, deadline penalty and dynamic energy (no idle energy).

        Of the tasks ``idx`` (default: all) of an engine's state ``st``, with the finish
        times ``finish`` (one per task of ``st``: its own, or predicted ones).
        """
        finish = finish[idx]
        cost = self.response * (finish - st.arrival[idx])
        if any(self.miss):
            cost = cost + self.miss_weights(st.priority[idx]) * (finish > st.abs_deadline[idx])
        if self.energy:
            dynpow = (cluster.power_max_w - cluster.power_idle_w) / cluster.cores
            cost = cost + self.energy * 1e-3 * dynpow[st.node[idx]] * st.dur[idx]
        return cost

    def idle_cost(self, cluster: Cluster, t0: float, t_end: float) -> float:
        """Cost of the idle power of every node over ``[t0, t_end]``."""
        if not self.energy:
            return 0.0
        return self.energy * 1e-3 * float(np.sum(cluster.power_idle_w)) * (t_end - t0)

    def total(self, summary: dict[str, Any], tasks: dict[str, np.ndarray]) -> float:
        """The objective of a finished run, from a :class:`~hybridsched.sim.SimResult`."""
        cost = self.response * float(np.sum(tasks["response_s"]))
        if any(self.miss):
            missed = ~tasks["met_deadline"]
            cost += float(np.sum(self.miss_weights(tasks["priority"]) * missed))
        return cost + self.energy * 1e-3 * float(summary["energy_j"])


@njit(cache=True)
def accrue(st, t0, t1, lo, dynpow, idle_w, w_resp, w_miss, w_energy, pending):
    """Cost the cluster accrues over ``[t0, t1)`` (the environment's reward, negated).

    Counts every task that arrived before ``t1``: its time in the system within
    the interval, a deadline that falls in the interval unmet, and the dynamic
    energy of its execution within the interval; plus the idle power of every
    node. ``st`` must be advanced to ``t1`` (instants before it processed), so a
    task that has not started has not finished by ``t1``.

    Args:
        lo: first task (decision order) not yet fully accounted.
        pending: bool scratch, one per task, all False (left so).

    Returns:
        (cost, new ``lo``).
    """
    n = st.arrival.shape[0]
    # the engine leaves start/finish unset until a task starts: find the unstarted ones
    for j in range(st.cores.shape[0]):
        i = st.qhead[j]
        while i >= 0:
            pending[i] = True
            i = st.qnext[i]
    cost = w_energy * 1e-3 * idle_w * (t1 - t0)
    i = lo
    new_lo = lo
    advancing = True
    while i < n and st.arrival[i] < t1:
        started = st.node[i] >= 0 and not pending[i]
        a = st.arrival[i]
        f = st.finish[i] if started else np.inf
        lo_t = max(a, t0)
        hi_t = min(f, t1)
        if hi_t > lo_t:
            cost += w_resp * (hi_t - lo_t)
        dl = st.abs_deadline[i]
        if t0 <= dl < t1 and f > dl:
            cost += w_miss[min(st.priority[i], _LAST_CLASS)]
        if w_energy > 0 and started:
            s = max(st.start[i], t0)
            e = min(f, t1)
            if e > s:
                cost += w_energy * 1e-3 * dynpow[st.node[i]] * (e - s)
        # fully accounted once finished and past its deadline, both before t1
        if advancing and f <= t1 and (dl < t1 or not np.isfinite(dl) or f <= dl):
            new_lo = i + 1
        else:
            advancing = False
        i += 1
    for j in range(st.cores.shape[0]):
        i = st.qhead[j]
        while i >= 0:
            pending[i] = False
            i = st.qnext[i]
    return cost, new_lo
