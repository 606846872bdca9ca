"""OPTIMAL: the batch problem solved exactly with OR-Tools CP-SAT, for small batches.

The oracle for the colony (tests, benchmarks). The batch cost of
:mod:`hybridsched.policies.cost` is a sum of per-node costs (each node's exact
schedule depends only on the set of batch tasks it gets) plus a horizon term
that is the largest of per-node terms. So the problem is an exact set
partition: enumerate, for every node ``j``, every set ``S`` of the tasks that
fit in its memory, compute its cost ``c(j, S)`` and last finish with the
simulator's semantics, and let CP-SAT choose one set per node so that every
task is covered once::

    minimise   sum_{j,S} c(j, S) x[j,S] + h
    subject to sum_S x[j,S] = 1                      for every node j
               sum_{j, S containing t} x[j,S] = 1     for every task t
               h >= sum_S e(j, S) x[j,S]              for every node j
               x binary

with ``e(j, S)`` the horizon cost if node ``j``'s last finish were the
horizon. There are up to ``N * 2^B`` columns, so batches above ``max_tasks``
are refused. Costs are scaled to integers for CP-SAT (about 1e-9 relative
rounding); the returned cost is re-evaluated exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numba import njit

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster
from hybridsched.policies import cost as costmod
from hybridsched.policies.base import register
from hybridsched.sim.view import ClusterView, TaskBatch

log = logging.getLogger(__name__)

MAX_TASKS = 16
"""The largest batch the oracle accepts at all (``2^16`` sets per node)."""


@njit(cache=True)
def node_columns(p, j, masks):
    """Cost and last finish on node ``j`` of each set of batch tasks (bit ``t``: task ``t``)."""
    ws = costmod.make_scratch(p)
    members = np.empty(p.arrival.shape[0], dtype=np.int64)
    out_c = np.empty(masks.shape[0])
    out_l = np.empty(masks.shape[0])
    for k in range(masks.shape[0]):
        nm = 0
        for t in range(p.arrival.shape[0]):
            if (masks[k] >> t) & 1:
                members[nm] = t
                nm += 1
        out_c[k], out_l[k] = costmod.node_cost(p, j, members, nm, ws)
    return out_c, out_l


@njit(cache=True)
def _horizon_costs(p, last):
    out = np.empty(last.shape[0])
    for k in range(last.shape[0]):
        out[k] = costmod.horizon_cost(p, last[k])
    return out


def _submasks(full: int) -> np.ndarray:
    """Every subset of the bits of ``full``, as int64."""
    bits = [b for b in range(full.bit_length()) if (full >> b) & 1]
    idx = np.arange(1 << len(bits), dtype=np.int64)
    out = np.zeros_like(idx)
    for k, b in enumerate(bits):
        out |= ((idx >> k) & 1) << b
    return out


@dataclass(frozen=True)
class OptimalResult:
    """The oracle's answer for one batch."""

    nodes: np.ndarray
    """An optimal assignment, one node index per task."""
    cost: float
    """Its exact cost."""
    optimal: bool
    """True when CP-SAT proved optimality (else the time limit stopped it)."""
    columns: int
    """Number of (node, task set) columns in the model."""


def solve_batch(
    p: costmod.Problem,
    feasible: np.ndarray,
    *,
    max_tasks: int = 10,
    max_columns: int = 200_000,
    time_limit_s: float = 30.0,
    workers: int = 1,
) -> OptimalResult:
    """Solve one batch problem exactly.

    Args:
        p: the batch problem (:func:`hybridsched.policies.cost.build_problem`).
        feasible: ``(B, N)`` bool, the nodes with memory for each task.
        max_tasks: refuse larger batches.
        max_columns: refuse models with more (node, task set) columns.
        time_limit_s: CP-SAT's time limit, s.
        workers: CP-SAT's search workers (1 is deterministic).

    Raises:
        ConfigError: the batch is too large for the oracle, or has a task that
            fits no node.
    """
    from ortools.sat.python import cp_model

    b, n = feasible.shape
    if b > max_tasks:
        raise ConfigError(
            f"optimal: a batch of {b} tasks is above the limit of {max_tasks} (the exact model "
            f"has up to nodes x 2^tasks columns); use a smaller decision interval, or raise "
            f"--policy-arg max_tasks (at most {MAX_TASKS})"
        )
    if not feasible.any(axis=1).all():
        raise ConfigError("optimal: a task of the batch fits on no node")
    fmask = (feasible.astype(np.int64) << np.arange(b, dtype=np.int64)[:, None]).sum(axis=0)
    n_cols = int(sum(1 << int(np.sum(feasible[:, j])) for j in range(n)))
    if n_cols > max_columns:
        raise ConfigError(
            f"optimal: the batch of {b} tasks on {n} nodes needs {n_cols} columns, above the "
            f"limit of {max_columns}; use a smaller batch or cluster"
        )
    cols = []
    c_all, e_all = [], []
    h = costmod.compile_problem(p)
    for j in range(n):
        masks = _submasks(int(fmask[j]))
        c, last = node_columns(h, j, masks)
        e = _horizon_costs(h, last)
        cols.append(masks)
        c_all.append(c)
        e_all.append(e)
    top = max(
        max(float(np.abs(c).max()), float(e.max())) for c, e in zip(c_all, e_all, strict=True)
    )
    scale = 1e9 / max(top, 1e-12)

    model = cp_model.CpModel()
    cover: list[list] = [[] for _ in range(b)]
    objective = []
    hz = model.NewIntVar(0, round(scale * max(float(e.max()) for e in e_all)) + 1, "h")
    xs = []
    for j in range(n):
        xj = [model.NewBoolVar(f"x{j}_{k}") for k in range(cols[j].shape[0])]
        xs.append(xj)
        model.AddExactlyOne(xj)
        ci = np.rint(scale * c_all[j]).astype(np.int64)
        ei = np.rint(scale * e_all[j]).astype(np.int64)
        for k, mask in enumerate(cols[j]):
            if ci[k]:
                objective.append(int(ci[k]) * xj[k])
            m = int(mask)
            while m:
                t = (m & -m).bit_length() - 1
                cover[t].append(xj[k])
                m &= m - 1
        model.Add(hz >= sum(int(ei[k]) * xj[k] for k in range(len(xj)) if ei[k]))
    for t in range(b):
        model.AddExactlyOne(cover[t])
    model.Minimize(sum(objective) + hz)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = 0
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    status = solver.Solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise ConfigError(f"optimal: CP-SAT found no solution ({solver.StatusName(status)})")
    nodes = np.full(b, -1, dtype=np.int64)
    for j in range(n):
        for k, x in enumerate(xs[j]):
            if solver.Value(x):
                m = int(cols[j][k])
                while m:
                    t = (m & -m).bit_length() - 1
                    nodes[t] = j
                    m &= m - 1
    proved = status == cp_model.OPTIMAL
    if not proved:
        log.warning(
            "optimal: time limit of %.3g s reached; the assignment may be suboptimal", time_limit_s
        )
    return OptimalResult(
        nodes=nodes, cost=float(costmod.batch_cost(p, nodes)), optimal=proved, columns=n_cols
    )


@register
@dataclass
class Optimal(costmod.CostFields):
    """Exact batch optimum by CP-SAT (small batches only; an oracle for tests)."""

    name: ClassVar[str] = "optimal"

    max_tasks: int = field(
        default=10, metadata={"help": f"refuse batches with more tasks (at most {MAX_TASKS})"}
    )
    time_limit_s: float = field(default=30.0, metadata={"help": "CP-SAT time limit per batch, s"})
    workers: int = field(default=1, metadata={"help": "CP-SAT workers (1: deterministic)"})

    def __post_init__(self) -> None:
        mt = self.max_tasks
        if isinstance(mt, bool) or not isinstance(mt, (int, np.integer)) or not 0 < mt <= MAX_TASKS:
            raise ConfigError(f"optimal max_tasks: must be an integer in 1..{MAX_TASKS}, got {mt}")
        if not self.time_limit_s > 0:
            raise ConfigError(f"optimal time_limit_s: must be > 0, got {self.time_limit_s!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"optimal workers: must be an integer >= 1, got {self.workers!r}")
        self.weights = self.cost_weights()
        self.last: OptimalResult | None = None
        """The oracle's answer for the latest batch."""

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        """Nothing to prepare: the oracle is deterministic."""

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        """An optimal assignment of the batch (see :func:`solve_batch`)."""
        if len(tasks) > self.max_tasks:
            raise ConfigError(
                f"optimal: the batch at t={view.time:g} s has {len(tasks)} tasks, above the "
                f"limit max_tasks={self.max_tasks} (the exact model has up to nodes x 2^tasks "
                f"columns); use a smaller decision interval, or raise --policy-arg max_tasks "
                f"(at most {MAX_TASKS})"
            )
        p = costmod.build_problem(tasks, view, self.weights)
        self.last = solve_batch(
            p,
            np.asarray(view.feasible),
            max_tasks=self.max_tasks,
            time_limit_s=self.time_limit_s,
            workers=self.workers,
        )
        return self.last.nodes
