"""A clairvoyant reference: improve a finished run's assignment knowing the whole future.

No online scheduler sees tasks before their decision time. This module does:
given a workload, a cluster and the node each task ran on (say, aco's run), it
hill-climbs on the whole run's exact cost by moving one task at a time to
another node, with every arrival known in advance. What it reaches is a point
that a scheduler *could* have produced (each task still decided at its fixed
decision time, on the semantics of docs/MODEL.md), so

* ``1 - improved / start`` is a cut that is achievable on that workload, by
  a clairvoyant search, where :mod:`hybridsched.sim.bounds` only says what is
  impossible;
* it is a local optimum, not the optimum: single-task moves among a few
  candidate nodes, repeated for a number of sweeps.

The cost is the run's total response plus ``energy_weight`` times its energy,
both exactly as the simulator computes them (docs/MODEL.md, base model: no failures,
exact work). Nodes are independent given the assignment, so a move is priced by
re-simulating the two nodes it touches (:func:`hybridsched.sim.core.run_node`,
the simulator's own per-node event loop) and the change of the makespan.
:class:`FixedAssignment` replays any assignment through the engine; a test
checks that the replayed run's cost equals the cost computed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster, Workload
from hybridsched.sim.bounds import decision_times, no_wait_times
from hybridsched.sim.core import run_node

__all__ = ["FixedAssignment", "OfflineResult", "assignment_cost", "improve_offline"]


@njit(cache=True)
def _node_cost(members, j, t0, ncores, ready, dur, arrival, key0, key1, tid, dyn, w_energy):
    """(total response + w_energy x dynamic energy, last finish) of ``members`` on node ``j``."""
    m = members.shape[0]
    if m == 0:
        return 0.0, t0
    r = np.empty(m)
    d = np.empty(m)
    k0 = np.empty(m)
    k1 = np.empty(m)
    ti = np.empty(m, dtype=np.int64)
    for k in range(m):
        t = members[k]
        r[k] = ready[t, j]
        d[k] = dur[t, j]
        k0[k] = key0[t]
        k1[k] = key1[t]
        ti[k] = tid[t]
    cf = np.full(min(m, ncores), t0)
    order = np.argsort(r, kind="mergesort")
    start = np.empty(m)
    wait = np.empty(m, dtype=np.int64)
    run_node(t0, cf, r, k0, k1, ti, d, order, start, wait)
    c = 0.0
    last = t0
    for k in range(m):
        t = members[k]
        f = start[k] + d[k]
        c += f - arrival[t] + w_energy * dyn[t, j]
        last = max(last, f)
    return c, last


@dataclass(frozen=True)
class OfflineResult:
    """The improved assignment and how the search went."""

    nodes: np.ndarray
    """Node index per task, workload row order."""
    cost: tuple[float, ...]
    """Total cost at the start and after each sweep (response s + energy_weight x J)."""
    moved: tuple[int, ...]
    """Tasks moved in each sweep."""


class _Run:
    """The per-(task, node) arrays of a workload on a cluster, in workload row order."""

    def __init__(self, cluster: Cluster, workload: Workload, decision_interval: float, queue: str):
        if not decision_interval >= 0:
            raise ConfigError(f"decision_interval: must be >= 0, got {decision_interval}")
        if queue not in ("fifo", "priority"):
            raise ConfigError(f"queue: must be 'fifo' or 'priority', got {queue!r}")
        w = workload
        a = w.arrival_s
        self.ready, dur = no_wait_times(
            cluster, w, decision_times(a, decision_interval), slice(None)
        )
        self.dur = np.ascontiguousarray(dur)
        self.dyn = self.dur * ((cluster.power_max_w - cluster.power_idle_w) / cluster.cores)
        self.feasible = w.memory_mb[:, None] <= cluster.memory_mb[None, :]
        self.arrival = np.ascontiguousarray(a, dtype=np.float64)
        if queue == "priority":
            self.key0 = w.priority.astype(np.float64)
            self.key1 = np.ascontiguousarray(a + w.deadline_s, dtype=np.float64)
        else:
            self.key0 = np.zeros(len(w))
            self.key1 = self.key0
        self.tid = np.ascontiguousarray(w.task_id, dtype=np.int64)
        self.cores = np.ascontiguousarray(cluster.cores, dtype=np.int64)
        self.t0 = float(a.min())
        self.idle_w = float(np.sum(cluster.power_idle_w))

    def check(self, nodes: np.ndarray) -> np.ndarray:
        nodes = np.asarray(nodes)
        n, n_nodes = self.feasible.shape
        if nodes.shape != (n,):
            raise ConfigError(f"nodes: need one node index per task ({n}), got shape {nodes.shape}")
        if not np.issubdtype(nodes.dtype, np.integer):
            raise ConfigError(f"nodes: must be integer node indices, got dtype {nodes.dtype}")
        bad = np.flatnonzero((nodes < 0) | (nodes >= n_nodes))
        if bad.size:
            k = int(bad[0])
            raise ConfigError(
                f"nodes: task row {k + 1}: node index {int(nodes[k])} is not in 0..{n_nodes - 1}"
            )
        bad = np.flatnonzero(~self.feasible[np.arange(n), nodes])
        if bad.size:
            k = int(bad[0])
            raise ConfigError(
                f"nodes: task row {k + 1}: node {int(nodes[k])} has less memory than the task needs"
            )
        return nodes.astype(np.int64)

    def node_cost(self, members: np.ndarray, j: int, w_energy: float) -> tuple[float, float]:
        return _node_cost(
            members,
            j,
            self.t0,
            self.cores[j],
            self.ready,
            self.dur,
            self.arrival,
            self.key0,
            self.key1,
            self.tid,
            self.dyn,
            w_energy,
        )


def assignment_cost(
    cluster: Cluster,
    workload: Workload,
    nodes: np.ndarray,
    *,
    decision_interval: float = 0.0,
    queue: str = "fifo",
    energy_weight: float = 0.0,
) -> float:
    """Total response (s) plus ``energy_weight`` x energy (J) of the assignment ``nodes``.

    Equal to what the simulator reports for the same assignment (sum of
    ``response_s`` plus ``energy_weight * energy_j``).
    """
    run = _Run(cluster, workload, decision_interval, queue)
    nodes = run.check(nodes)
    total, last = 0.0, run.t0
    for j in range(len(run.cores)):
        c, lj = run.node_cost(np.flatnonzero(nodes == j), j, energy_weight)
        total += c
        last = max(last, lj)
    return total + energy_weight * run.idle_w * (last - run.t0)


def improve_offline(
    cluster: Cluster,
    workload: Workload,
    nodes: np.ndarray,
    *,
    decision_interval: float = 0.0,
    queue: str = "fifo",
    energy_weight: float = 0.03,
    candidates: int = 12,
    sweeps: int = 3,
    seed: int | np.random.Generator = 0,
    progress: Callable[[int, int], None] | None = None,
) -> OfflineResult:
    """Hill-climb on the whole run's cost from ``nodes``, one task move at a time.

    Each sweep visits every task once, in a random order drawn from ``seed``,
    and moves it to whichever of its ``candidates`` feasible nodes with the
    earliest no-wait finish lowers the cost most (if any does). A sweep that
    moves nothing ends the search.

    Args:
        cluster, workload: the instance (base model).
        nodes: the starting node index per task, workload row order.
        decision_interval, queue: as for the simulator.
        energy_weight: seconds of response one joule is worth (0: response only).
        candidates: nodes tried per task.
        sweeps: the most passes over the tasks.
        seed: the visiting order's randomness.
        progress: called as ``progress(done, total)`` after every 1,000 task visits.

    Raises:
        ConfigError: a bad argument, or a node index out of range or without
            the memory a task needs (naming the task's row).
    """
    if candidates < 1:
        raise ConfigError(f"candidates: must be >= 1, got {candidates}")
    if sweeps < 0:
        raise ConfigError(f"sweeps: must be >= 0, got {sweeps}")
    if not energy_weight >= 0:
        raise ConfigError(f"energy_weight: must be >= 0, got {energy_weight}")
    run = _Run(cluster, workload, decision_interval, queue)
    node = run.check(nodes).copy()
    rng = np.random.default_rng(seed)
    n, n_nodes = run.feasible.shape
    we = float(energy_weight)
    idle_cost = we * run.idle_w
    members = [np.flatnonzero(node == j) for j in range(n_nodes)]
    cost = np.empty(n_nodes)
    last = np.empty(n_nodes)
    for j in range(n_nodes):
        cost[j], last[j] = run.node_cost(members[j], j, we)
    score = np.where(run.feasible, run.ready + run.dur, np.inf)
    # a task's own cost on a node with nothing else: response and dynamic energy
    alone = score - run.arrival[:, None] + we * run.dyn
    k = min(candidates, n_nodes)
    cand = np.argsort(score, axis=1, kind="stable")[:, :k]

    def total() -> float:
        return float(cost.sum() + idle_cost * (last.max() - run.t0))

    history = [total()]
    moved_per_sweep: list[int] = []
    for sweep in range(sweeps):
        moved = 0
        for visit, i in enumerate(rng.permutation(n)):
            a = node[i]
            without = members[a][members[a] != i]
            ca, la = run.node_cost(without, a, we)
            t_before = last.max()
            la_old = last[a]
            last[a] = la
            best, bj, bc, bl = -1e-9, -1, 0.0, 0.0
            gain_a = ca - cost[a] + idle_cost * (last.max() - t_before)
            for j in cand[i]:
                if j == a or not run.feasible[i, j]:
                    continue
                if gain_a + alone[i, j] >= best:
                    # even alone on j the task could not make this the best move
                    # (pruning; an insertion that speeds others up is not tried)
                    continue
                cj, lj = run.node_cost(np.append(members[j], i), j, we)
                lj_old = last[j]
                last[j] = lj
                delta = (ca - cost[a]) + (cj - cost[j]) + idle_cost * (last.max() - t_before)
                last[j] = lj_old
                if delta < best:
                    best, bj, bc, bl = delta, int(j), cj, lj
            if bj < 0:
                last[a] = la_old
            else:
                members[a] = without
                cost[a] = ca
                members[bj] = np.append(members[bj], i)
                cost[bj] = bc
                last[bj] = bl
                node[i] = bj
                moved += 1
            if progress is not None and (visit + 1) % 1000 == 0:
                progress(sweep * n + visit + 1, sweeps * n)
        history.append(total())
        moved_per_sweep.append(moved)
        if moved == 0:
            break
    if progress is not None:
        progress(sweeps * n, sweeps * n)
    return OfflineResult(nodes=node, cost=tuple(history), moved=tuple(moved_per_sweep))


class FixedAssignment:
    """A policy that replays a given node per task (by task id), to simulate an assignment."""

    name = "fixed"

    def __init__(self, workload: Workload, nodes: np.ndarray) -> None:
        tid = np.asarray(workload.task_id, dtype=np.int64)
        self._order = np.argsort(tid, kind="stable")
        self._tid = tid[self._order]
        self._nodes = np.asarray(nodes, dtype=np.int64)[self._order]

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        """Nothing to prepare: the assignment is fixed."""

    def assign(self, tasks, view) -> np.ndarray:
        """The given node of each task of the batch."""
        return self._nodes[np.searchsorted(self._tid, tasks.task_id)]
