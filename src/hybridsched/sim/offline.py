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
exact work; changing conditions, section 12, may be given). Nodes are independent
given the assignment, so a move is priced by re-simulating the two nodes it
touches (:func:`hybridsched.sim.core.run_node`, the simulator's own per-node
event loop; with conditions :func:`_node_cost_cond`, the same loop with the
node's speed changes) and the change of the makespan.
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
from hybridsched.sim.conditions import Conditions
from hybridsched.sim.core import _key_lt, run_node

__all__ = ["FixedAssignment", "OfflineResult", "assignment_cost", "improve_offline"]

_NO_CHANGES = (np.zeros(0), np.zeros(0))


@njit(cache=True)
def _gather(members, j, ready, key0, key1, tid):
    """The ready times on node ``j`` and the queue keys of ``members``, in their order."""
    m = members.shape[0]
    r = np.empty(m)
    k0 = np.empty(m)
    k1 = np.empty(m)
    ti = np.empty(m, dtype=np.int64)
    for k in range(m):
        t = members[k]
        r[k] = ready[t, j]
        k0[k] = key0[t]
        k1[k] = key1[t]
        ti[k] = tid[t]
    return r, k0, k1, ti


@njit(cache=True)
def _node_cost(members, j, t0, ncores, ready, dur, arrival, key0, key1, tid, dyn, w_energy):
    """(total response + w_energy x dynamic energy, last finish) of ``members`` on node ``j``."""
    m = members.shape[0]
    if m == 0:
        return 0.0, t0
    r, k0, k1, ti = _gather(members, j, ready, key0, key1, tid)
    d = np.empty(m)
    for k in range(m):
        d[k] = dur[members[k], j]
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


@njit(cache=True)
def _node_cost_cond(
    members, j, t0, ncores, ready, work, v0, cp_t, cp_v, arrival, key0, key1, tid, dynw, w_energy
):
    """:func:`_node_cost` on a node whose speed changes (docs/MODEL.md section 12).

    The node runs at ``v0`` until its first change point; from ``cp_t[k]`` on it
    runs at ``cp_v[k]``. A task takes the speed in force at its start; a
    change point re-times the tasks running then, ``finish = t + (finish - t) x
    v_old / v`` (the engine's arithmetic, :func:`hybridsched.sim.fault_kernels.set_speed`),
    before the finishes and dispatches of its instant. Dynamic energy is
    ``dynw`` (W per busy core) x the time each task ran.
    """
    m = members.shape[0]
    if m == 0:
        return 0.0, t0
    r, k0, k1, ti = _gather(members, j, ready, key0, key1, tid)
    order = np.argsort(r, kind="mergesort")
    fin = np.full(ncores, np.inf)  # finish per core (inf: free)
    beg = np.zeros(ncores)
    who = np.full(ncores, -1, dtype=np.int64)
    wait = np.empty(m, dtype=np.int64)
    nw = 0
    p = 0
    q = 0
    ncp = cp_t.shape[0]
    v = v0
    done = 0
    busy = 0
    c = 0.0
    last = t0
    while done < m:
        t = np.inf
        if p < m:
            t = max(r[order[p]], t0)
        for s in range(ncores):
            if fin[s] < t:
                t = fin[s]
        if q < ncp and cp_t[q] < t:
            t = cp_t[q]
        while q < ncp and cp_t[q] <= t:
            vn = cp_v[q]
            if vn != v:
                for s in range(ncores):
                    if who[s] >= 0 and fin[s] > t:
                        fin[s] = t + (fin[s] - t) * v / vn
            v = vn
            q += 1
        for s in range(ncores):
            if who[s] >= 0 and fin[s] <= t:
                x = who[s]
                f = fin[s]
                c += f - arrival[members[x]] + w_energy * dynw * (f - beg[s])
                last = max(last, f)
                who[s] = -1
                fin[s] = np.inf
                busy -= 1
                done += 1
        while p < m and r[order[p]] <= t:
            x = order[p]
            k = nw
            nw += 1
            while k > 0:
                par = (k - 1) >> 1
                y = wait[par]
                if _key_lt(k0, k1, r, ti, y, x):
                    break
                wait[k] = y
                k = par
            wait[k] = x
            p += 1
        while nw > 0 and busy < ncores:
            x = wait[0]
            nw -= 1
            if nw > 0:
                lastw = wait[nw]
                k = 0
                while True:
                    ch = 2 * k + 1
                    if ch >= nw:
                        break
                    if ch + 1 < nw and _key_lt(k0, k1, r, ti, wait[ch + 1], wait[ch]):
                        ch += 1
                    if _key_lt(k0, k1, r, ti, lastw, wait[ch]):
                        break
                    wait[k] = wait[ch]
                    k = ch
                wait[k] = lastw
            s = 0
            while who[s] >= 0:
                s += 1
            who[s] = x
            beg[s] = t
            fin[s] = t + work[members[x]] / v
            busy += 1
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

    def __init__(
        self,
        cluster: Cluster,
        workload: Workload,
        decision_interval: float,
        queue: str,
        conditions: Conditions | None = None,
    ):
        if not decision_interval >= 0:
            raise ConfigError(f"decision_interval: must be >= 0, got {decision_interval}")
        if queue not in ("fifo", "priority"):
            raise ConfigError(f"queue: must be 'fifo' or 'priority', got {queue!r}")
        w = workload
        a = w.arrival_s
        decision = decision_times(a, decision_interval)
        self.ready, dur = no_wait_times(cluster, w, decision, slice(None))
        self.dur = np.ascontiguousarray(dur)
        self.dynw = (cluster.power_max_w - cluster.power_idle_w) / cluster.cores
        self.dyn = self.dur * self.dynw
        self.changes: list[tuple[np.ndarray, np.ndarray]] | None = None
        if conditions is not None:
            self._apply(cluster, w, decision, conditions)
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

    def _apply(
        self, cluster: Cluster, w: Workload, decision: np.ndarray, conditions: Conditions
    ) -> None:
        """True ready times and each node's speed changes under ``conditions``.

        A transfer takes the latency and bandwidth in force at its decision
        (a change point stamped at the decision time counts), with the engine's
        operations (:func:`hybridsched.sim.fault_kernels.commit_many`).
        """
        if not isinstance(conditions, Conditions):
            raise ConfigError(f"conditions: must be a Conditions, got {type(conditions).__name__}")
        conditions.check(cluster)
        t, node, factors = conditions.change_points()
        self.speed0 = np.asarray(cluster.speed, dtype=np.float64)
        self.changes = []
        # the fastest the node ever runs, for the search's lower bound
        self.vmax = self.speed0.copy()
        for j in range(cluster.n_nodes):
            rows = np.flatnonzero(node == j)
            if rows.size == 0:
                self.changes.append(_NO_CHANGES)
                continue
            cp_t = np.ascontiguousarray(t[rows])
            cp_v = np.ascontiguousarray(cluster.speed[j] * factors[rows, 0])
            self.changes.append((cp_t, cp_v))
            self.vmax[j] = max(self.vmax[j], float(cp_v.max()))
            # the factors in force at each task's decision (1 before the first change)
            k = np.searchsorted(cp_t, decision, side="right") - 1
            fl = np.where(k >= 0, factors[rows, 1][k], 1.0)
            fb = np.where(k >= 0, factors[rows, 2][k], 1.0)
            lat = cluster.latency_s[j][w.region] * fl
            self.ready[:, j] = (decision + lat) + w.data_mb / (cluster.bandwidth_mb_s[j] * fb)
        self.work = np.ascontiguousarray(w.work_gi, dtype=np.float64)

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
        if self.changes is not None:
            cp_t, cp_v = self.changes[j]
            return _node_cost_cond(
                members,
                j,
                self.t0,
                self.cores[j],
                self.ready,
                self.work,
                self.speed0[j],
                cp_t,
                cp_v,
                self.arrival,
                self.key0,
                self.key1,
                self.tid,
                self.dynw[j],
                w_energy,
            )
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
    conditions: Conditions | None = None,
) -> float:
    """Total response (s) plus ``energy_weight`` x energy (J) of the assignment ``nodes``.

    Equal to what the simulator reports for the same assignment (sum of
    ``response_s`` plus ``energy_weight * energy_j``), with ``conditions``
    (``SimOptions.conditions``) when given.
    """
    run = _Run(cluster, workload, decision_interval, queue, conditions)
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
    conditions: Conditions | None = None,
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
        conditions: windows of node speed, latency and bandwidth
            (:class:`~hybridsched.sim.conditions.Conditions`), known in advance
            like the arrivals; None: the nominal cluster.

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
    run = _Run(cluster, workload, decision_interval, queue, conditions)
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
    if run.changes is not None:
        # under conditions: the least it could be, at the node's fastest speed ever
        fastest = run.work[:, None] / run.vmax[None, :]
        alone = run.ready + fastest * (1.0 + we * run.dynw[None, :]) - run.arrival[:, None]
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
