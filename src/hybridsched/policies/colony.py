"""A MAX-MIN ant colony over the batch problem of :mod:`hybridsched.policies.cost`.

Per decision batch of ``B`` tasks:

1. **Desirability.** A pluggable ``heuristic(tasks, view) -> eta`` scores every
   (task, node) pair, ``(B, N)``, higher is better, 0 for a node that cannot take
   the task (or only listed pairs, a :class:`~hybridsched.policies.candidates.Listed`,
   the others 0). The default is the classic ``eta = 1 / predicted response``, with
   MCT's estimate ``est_finish - now``; a learned policy can supply its own.
2. **Candidate lists.** Each task considers only its ``k`` most desirable
   feasible nodes (plus the nodes the seed assignments chose), so a
   construction step costs ``O(k)`` whatever the cluster size.
3. **Construction order** (dynamic prioritisation): most urgent first, by
   priority class, then deadline slack ``deadline - best estimated finish``.
4. **Ants.** Ant ``a`` places the tasks in that order, task ``i`` on candidate
   node ``j`` with probability proportional to ``tau_ij^alpha * eta'_ij^beta``,
   where ``eta' = eta * (r0 / r)`` corrects the desirability by the load the ant
   itself has already put on ``j``: ``r0`` and ``r`` are the task's estimated
   response on ``j`` before and after the ant's own earlier placements
   (list-scheduled on the node's projected core-free times, as MCT does). With
   the default heuristic, ``eta'`` is exactly ``1 / r``.
5. **Evaluation** by the exact batch cost (:func:`~hybridsched.policies.cost.evaluate_one`,
   with its per-(node, task set) memo).
6. **MAX-MIN pheromone.** ``tau`` lives in ``[tau_min, tau_max]`` (``tau_max = 1``;
   ``tau_min`` from ``p_best`` as in Stützle and Hoos 2000). Each iteration it
   evaporates by ``rho`` and the iteration-best ant deposits ``rho * tau_max`` on
   its choices; every ``global_every``-th iteration the best-so-far deposits
   instead. After ``restart_after`` iterations without improvement the trails
   are reset to their initial values.
7. **Seeds.** The best-so-far starts as the best of the seed policies'
   assignments (MCT, EDF-MCT and max-min by default) and is replaced only by a
   strictly cheaper one: the colony is never worse than its seeds. The initial
   trails lean to it (``explore``): its choices start at ``tau_max`` and the
   other candidates of each task are scaled so that an ant places about
   ``explore`` tasks elsewhere; ``explore = 0`` is the classic uniform start.
8. **Local search** (optional): first-improvement moves (a task to another of
   its candidates) and swaps (two tasks on different nodes exchange them, in
   small batches), each evaluated exactly on the two nodes it changes, with
   don't-look bits and a cheap bound that skips hopeless moves. It improves the
   best seed first, then every ``ls_every``-th iteration-best ant near where it
   differs from the best-so-far (an iterated local search driven by the ants).
   A batch of more than ``ant_limit`` tasks gets no ants: the polished seed is
   its answer (there the ants' search cost far more than it found).
9. **Memory across batches.** A persistent trail ``M[class, node]``, with the
   class of a task its (region, priority class, size bucket of work), initialises
   the batch's trails: ``tau0 = tau_max * (1 - memory + memory * M)`` (before the
   lean to the seed, which keeps the ratios among the other candidates). After
   each batch, ``M`` evaporates by ``memory_rho`` for the classes in the batch and
   the batch's best assignment deposits ``memory_rho`` on its (class, node) pairs.

The per-batch loop (construction, evaluation, local search, pheromone update)
is one compiled kernel, :func:`hybridsched.policies.ants.run_mmas`; the local
search is in :mod:`hybridsched.policies.local_search`. This module holds the
parameters (:class:`ColonyParams`, the one place they are declared: the ``aco``
and ``hybrid`` policies take theirs as arguments through :func:`colony_args`)
and the :class:`Colony` that prepares each batch for the kernel.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, get_type_hints

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.model import PRIORITY_CLASSES, Cluster
from hybridsched.policies import cost as costmod
from hybridsched.policies.ants import (
    Construction,
    MMASParams,
    ant_scratch,
    construct_ant,
    construct_numpy,
    polish,
    run_mmas,
    search_state,
)
from hybridsched.policies.candidates import (
    Listed,
    best_finish,
    completion_candidates,
    completion_heuristic,
    estimate_inputs,
    listed_candidates,
    top_candidates,
)
from hybridsched.policies.cost import policy_arg
from hybridsched.policies.local_search import alone_cost_bound
from hybridsched.sim.view import ClusterView, TaskBatch

Heuristic = Callable[[TaskBatch, ClusterView], np.ndarray | Listed]
"""``heuristic(tasks, view) -> eta``: desirability ``(B, N)``, >= 0, 0 where infeasible
(or a :class:`~hybridsched.policies.candidates.Listed`: on listed pairs only)."""

MEMORY_MIN = 0.05
"""Floor of the cross-batch trail (its ceiling is 1, the neutral value it starts at)."""

log = logging.getLogger(__name__)

ORDERS = ("priority", "slack", "arrival")
"""Construction orders: priority then slack (default), slack only, or decision order."""


@dataclass(frozen=True)
class ColonyParams:
    """Parameters of the MAX-MIN ant system (see the module docstring).

    The one declaration of each parameter: its type, default and help (the
    field's ``metadata``) are also those of the policies' arguments
    (:func:`colony_args`).
    """

    ants: int = policy_arg(8, "ants per iteration")
    iterations: int = policy_arg(8, "iterations per batch")
    ant_limit: int = policy_arg(
        1024,
        "ants only on batches up to this many tasks; a larger batch gets the best seed "
        "polished by local search (0: no limit)",
    )
    alpha: float = policy_arg(1.0, "exponent of the pheromone")
    beta: float = policy_arg(2.0, "exponent of the desirability")
    rho: float = policy_arg(0.2, "evaporation rate of the batch's trails, in (0, 1]")
    p_best: float = policy_arg(0.05, "MMAS p_best, sets tau_min, in (0, 1]")
    candidates: int = policy_arg(8, "candidate nodes per task (most desirable)")
    global_every: int = policy_arg(3, "best-so-far deposits every this many iterations")
    restart_after: int = policy_arg(
        5, "reset trails after this many iterations without improvement (0: never)"
    )
    local_search: int = policy_arg(
        10, "most sweeps of move/swap local search per solution (0: off)"
    )
    ls_every: int = policy_arg(
        2,
        "local search on the iteration-best every this many iterations "
        "(0: only on the best seed and the final best)",
    )
    ls_limit: int = policy_arg(
        0,
        "local search of iteration-best ants only on batches up to this many tasks; a larger "
        "batch gets it on the best seed and the final best only, as with ls_every=0 (0: no limit)",
    )
    ls_gap: float = policy_arg(
        0.0,
        "local search of an iteration-best ant only when its cost is within this fraction of "
        "the best so far (0: always)",
    )
    prune: bool = policy_arg(True, "skip local-search moves that a cheap bound shows cannot pay")
    prune_alone: bool = policy_arg(
        False,
        "with prune: skip a move also when the task alone on the new node (its queue "
        "included) costs no less than the move saves; a heuristic, faster on long queues",
    )
    swap_limit: int = policy_arg(32, "try swaps only in batches up to this size")
    dynamic_eta: bool = policy_arg(True, "correct the desirability by the ant's own placements")
    order: str = policy_arg("priority", "construction order: priority, slack or arrival")
    memory: float = policy_arg(0.5, "weight of the cross-batch trail in [0, 1] (0: no memory)")
    memory_rho: float = policy_arg(0.1, "evaporation rate of the cross-batch trail")
    size_buckets: int = policy_arg(4, "work-size buckets of the memory's classes")
    explore: float = policy_arg(
        4.0,
        "initial trails around the best seed: tasks an ant places elsewhere (0: uniform start)",
    )
    seeds: tuple[str, ...] = policy_arg(
        ("mct", "edf-mct", "max-min"),
        "comma-separated policies whose assignments seed the colony",
    )

    def __post_init__(self) -> None:
        ints = {
            "ants": 1,
            "iterations": 0,
            "ant_limit": 0,
            "candidates": 1,
            "global_every": 1,
            "restart_after": 0,
            "local_search": 0,
            "ls_every": 0,
            "ls_limit": 0,
            "swap_limit": 0,
            "size_buckets": 1,
        }
        for name, lo in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ConfigError(f"aco {name}: must be an integer >= {lo}, got {v!r}")
        for name, lo, hi, lo_open in (
            ("alpha", 0.0, math.inf, False),
            ("beta", 0.0, math.inf, False),
            ("rho", 0.0, 1.0, True),
            ("p_best", 0.0, 1.0, True),
            ("memory", 0.0, 1.0, False),
            ("memory_rho", 0.0, 1.0, True),
            ("explore", 0.0, math.inf, False),
            ("ls_gap", 0.0, math.inf, False),
        ):
            v = getattr(self, name)
            bad = isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
            if bad or v < lo or v > hi or (lo_open and v == lo):
                rule = f"in ({lo:g}, {hi:g}]" if lo_open else f">= {lo:g}"
                if hi != math.inf and not lo_open:
                    rule = f"in [{lo:g}, {hi:g}]"
                raise ConfigError(f"aco {name}: must be a number {rule}, got {v!r}")
        if self.order not in ORDERS:
            raise ConfigError(f"aco order: must be one of {', '.join(ORDERS)}, got {self.order!r}")

    def kernel_params(self, tau_min: float, batch_size: int) -> MMASParams:
        """What :func:`~hybridsched.policies.ants.run_mmas` takes for a batch of this size."""
        # above ls_limit, local search only on the polished seed and the final best
        limited = self.ls_limit > 0 and batch_size > self.ls_limit
        return MMASParams(
            alpha=float(self.alpha),
            beta=float(self.beta),
            rho=float(self.rho),
            tau_min=float(tau_min),
            global_every=int(self.global_every),
            restart_after=int(self.restart_after),
            ls_sweeps=int(self.local_search),
            ls_every=0 if limited else int(self.ls_every),
            ls_gap=float(self.ls_gap),
            swaps=batch_size <= self.swap_limit,
            prune=bool(self.prune),
            dynamic=bool(self.dynamic_eta),
        )


def colony_args(*names: str, defaults: dict[str, Any] | None = None) -> type:
    """A dataclass base that makes colony parameters a policy's arguments.

    Args:
        names: the parameters to expose (all of :class:`ColonyParams` when none),
            each with its type, default and help; ``seeds`` becomes a
            comma-separated string, as ``--policy-arg seeds=mct,olb`` gives it.
        defaults: this policy's own defaults of some of them (the others keep
            :class:`ColonyParams`'s).

    Returns:
        a dataclass with those fields and a method ``colony_params()`` that
        builds the validated :class:`ColonyParams` (the others at their defaults).
    """
    hints = get_type_hints(ColonyParams)
    known = [f.name for f in fields(ColonyParams)]
    defaults = defaults or {}
    hidden = sorted(set(defaults) - set(names)) if names else []
    if hidden:
        raise ValueError(f"colony_args: defaults for parameters not exposed: {hidden}")
    unknown = sorted((set(names) | set(defaults)) - set(known))
    if unknown:
        raise ValueError(f"colony_args: unknown parameter(s) {unknown}; known: {known}")
    spec = []
    for f in fields(ColonyParams):
        if names and f.name not in names:
            continue
        typ, default = hints[f.name], defaults.get(f.name, f.default)
        if f.name == "seeds":
            typ, default = str, ",".join(default)
        spec.append((f.name, typ, field(default=default, metadata=f.metadata)))
    exposed = tuple(name for name, _, _ in spec)

    def colony_params(self: Any) -> ColonyParams:
        """The :class:`ColonyParams` of these arguments (validated)."""
        values = {name: getattr(self, name) for name in exposed}
        if "seeds" in values:
            seeds = tuple(s.strip() for s in values["seeds"].split(",") if s.strip())
            if self.name in seeds:
                raise ConfigError(f"{self.name} seeds: cannot seed the colony with itself")
            values["seeds"] = seeds
        return ColonyParams(**values)

    return make_dataclass("ColonyArgs", spec, namespace={"colony_params": colony_params})


@dataclass(frozen=True)
class ColonyResult:
    """What the colony found for one batch."""

    nodes: np.ndarray
    """The best assignment, one node index per task."""
    cost: float
    """Its cost (:mod:`hybridsched.policies.cost`)."""
    seed_cost: float
    """The cost of the best seed assignment (the colony's starting point)."""
    evaluations: int
    """Assignments evaluated (ants, local search moves count one each)."""
    problem: Any = None
    """The batch problem's compiled handle (:func:`hybridsched.policies.cost.compile_problem`)."""


# ----------------------------------------------------------------------------
# the colony
# ----------------------------------------------------------------------------


_WARM = False


def warm_engine() -> Any:
    """A tiny run (2 nodes, 4 tasks, interval 0.5 s, priority queues) to compile kernels on."""
    from hybridsched.model import Workload
    from hybridsched.sim import Engine

    node = {
        "cores": 2,
        "speed": 1.0,
        "memory_mb": 1000.0,
        "bandwidth_mb_s": 10.0,
        "power_idle_w": 10.0,
        "power_max_w": 30.0,
        "latency_s": [0.01],
    }
    cluster = Cluster.build(
        {
            "name": "warm-up",
            "regions": 1,
            "nodes": [{"name": "a", **node}, {"name": "b", **node, "speed": 2.0}],
        }
    )
    n = 4
    workload = Workload.build(
        {
            "task_id": list(range(n)),
            "arrival_s": [0.0, 0.1, 0.2, 0.3],
            "region": [0] * n,
            "data_mb": [1.0] * n,
            "work_gi": [1.0, 2.0, 3.0, 4.0],
            "memory_mb": [10.0] * n,
            "deadline_s": [1.0, 2.0, 8.0, float("inf")],
            "priority": [0, 1, 2, 0],
        },
        cluster=cluster,
    )
    return Engine(cluster, workload, decision_interval=0.5, queue="priority")


def warm_up() -> float:
    """Compile the colony's kernels (or load them from numba's cache), once per process.

    Solves the batch of :func:`warm_engine` with a throwaway colony of default
    parameters, so that the first real batch does not pay for compilation and
    a run's ``scheduler_seconds`` (which times ``assign`` only) counts deciding,
    not compiling. :meth:`Colony.reset` calls it; the draws of the run are not
    touched (the throwaway colony has its own generator).

    Returns:
        the seconds it took, 0 when the kernels were warm already.
    """
    global _WARM
    if _WARM:
        return 0.0
    t = time.perf_counter()
    engine = warm_engine()
    colony = Colony(ColonyParams(ants=2, iterations=2))
    colony.reset(engine.cluster, np.random.default_rng(0), warm=False)
    batch = engine.next_batch()
    if batch is not None:
        colony.solve(*batch)
    _WARM = True
    seconds = time.perf_counter() - t
    log.info("colony kernels ready in %.2f s (compiled or loaded from the cache)", seconds)
    return seconds


class Colony:
    """A MAX-MIN ant colony that assigns decision batches (see the module docstring).

    Args:
        params: the colony's parameters.
        weights: the batch cost's weights.
        heuristic: the desirability; default :func:`completion_heuristic`.
    """

    def __init__(
        self,
        params: ColonyParams | None = None,
        weights: costmod.CostWeights | None = None,
        heuristic: Heuristic | None = None,
    ) -> None:
        self.params = params or ColonyParams()
        self.weights = weights or costmod.CostWeights()
        if heuristic is not None and not callable(heuristic):
            raise ConfigError(f"aco heuristic: must be callable, got {heuristic!r}")
        self.heuristic: Heuristic = heuristic or completion_heuristic
        self._rng = np.random.default_rng(0)
        self._seeds: list = []
        self._memory = np.ones((0, 0))
        self._best: np.ndarray | None = None  # earliest finish per task, from the candidate pass
        self.compile_seconds = 0.0
        """Seconds the latest :meth:`reset` spent compiling or loading the kernels."""

    def reset(self, cluster: Cluster, rng: np.random.Generator, warm: bool = True) -> None:
        """Start a run on ``cluster``: forget the memory, re-seed, build the seed policies.

        With ``warm``, first make sure the kernels are compiled (:func:`warm_up`,
        once per process); ``compile_seconds`` says how long that took this time.
        """
        from hybridsched.policies.base import make_policy

        self.compile_seconds = warm_up() if warm else 0.0

        self._rng = rng
        self._seeds = []
        for name, child in zip(self.params.seeds, rng.spawn(len(self.params.seeds)), strict=True):
            pol = make_policy(name)
            pol.reset(cluster, child)
            self._seeds.append(pol)
        n_classes = cluster.n_regions * PRIORITY_CLASSES * self.params.size_buckets
        self._memory = np.ones((n_classes, cluster.n_nodes))

    def task_classes(self, tasks: TaskBatch) -> np.ndarray:
        """The memory's class of each task: (region, priority class, size bucket)."""
        nb = self.params.size_buckets
        # bucket edges 0.5, 2, 8, ... GI (x4 apart)
        size = np.floor(np.log(np.maximum(tasks.work_gi, 1e-300) / 0.5) / np.log(4.0)) + 1
        size = np.clip(size, 0, nb - 1).astype(np.int64)
        prio = np.minimum(tasks.priority, PRIORITY_CLASSES - 1)
        return (tasks.region * PRIORITY_CLASSES + prio) * nb + size

    def construction_order(
        self, tasks: TaskBatch, view: ClusterView, best: np.ndarray | None = None
    ) -> np.ndarray:
        """Task indices, most urgent first (see :attr:`ColonyParams.order`).

        ``best``: each task's earliest estimated finish, when already known.
        """
        b = len(tasks)
        if self.params.order == "arrival":
            return np.arange(b, dtype=np.int64)
        if best is None:
            best = best_finish(*estimate_inputs(tasks, view))
        slack = tasks.deadline_abs_s - best
        if self.params.order == "slack":
            return np.lexsort((np.arange(b), slack)).astype(np.int64)
        return np.lexsort((np.arange(b), slack, tasks.priority)).astype(np.int64)

    def candidates(
        self, eta: np.ndarray, seeds: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most desirable nodes per task, with every seed's node among them.

        Returns:
            ``cand (B, K)`` (best first; padding repeats the last valid one) and
            ``ncand (B,)``, the number of valid entries.
        """
        feasible = np.ones(eta.shape, dtype=np.bool_)
        feasible.flags.writeable = False  # the view's mask is read-only: one compiled variant
        cand, ncand, _ = self._candidates(eta, feasible, seeds)
        return cand, ncand

    def _candidates(
        self,
        eta: np.ndarray | Listed | None,
        feasible: np.ndarray,
        seeds: Sequence[np.ndarray],
        times: tuple | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`candidates` on the feasible pairs, with ``eta`` on them (padded alike).

        With ``times`` ``(d, ready, dur, available)`` instead of ``eta``, the
        desirability is :func:`completion_heuristic`'s, computed in the pass;
        with a :class:`Listed` ``eta``, the matrix it stands for.
        """
        b, n = feasible.shape
        k = min(self.params.candidates, n)
        sd = np.zeros((len(seeds), b), dtype=np.int64)
        for i, x in enumerate(seeds):
            sd[i] = x
        feasible = np.ascontiguousarray(feasible)
        self._best = None
        if isinstance(eta, Listed):
            nodes = np.ascontiguousarray(eta.nodes, dtype=np.int64)
            values = np.ascontiguousarray(eta.eta, dtype=np.float64)
            cand, ncand, val = listed_candidates(nodes, values, feasible, k, sd)
            self._best = eta.best
        elif times is None:
            eta = np.ascontiguousarray(eta, dtype=np.float64)
            cand, ncand, val = top_candidates(eta, feasible, k, sd)
        else:
            cand, ncand, val, self._best = completion_candidates(feasible, k, sd, *times)
        width = max(int(ncand.max(initial=0)), 1)
        cand, val = cand[:, :width], val[:, :width]
        # pad beyond ncand with a valid node so that every entry is an index
        last = np.maximum(ncand - 1, 0)[:, None]
        pad = np.arange(width) >= ncand[:, None]
        cand = np.where(pad, np.take_along_axis(cand, last, axis=1), cand)
        val = np.where(pad, np.take_along_axis(val, last, axis=1), val)
        return np.ascontiguousarray(cand), ncand, np.ascontiguousarray(val)

    def solve(self, tasks: TaskBatch, view: ClusterView) -> ColonyResult:
        """Assign one batch: seeds, then the MAX-MIN ant system; update the memory."""
        prm = self.params
        b = len(tasks)
        pt = costmod.build_problem(tasks, view, self.weights)
        p = costmod.compile_problem(pt)
        seeds = [np.asarray(pol.assign(tasks, view), dtype=np.int64) for pol in self._seeds]
        ws = costmod.make_scratch(p)
        seed_costs = [costmod.evaluate_one(p, s, ws) for s in seeds]
        if seeds:
            i = int(np.argmin(seed_costs))
            best, best_cost = seeds[i].copy(), float(seed_costs[i])
        else:
            best, best_cost = None, np.inf
        if self.heuristic is completion_heuristic:
            # the default desirability, computed inside the candidate pass
            avail = np.array(view.available_s, dtype=np.float64)
            times = (float(view.time), pt.ready, pt.dur, avail)
            cand, ncand, etab = self._candidates(None, view.feasible, seeds, times)
        else:
            eta = self.heuristic(tasks, view)
            if not isinstance(eta, Listed):
                eta = np.asarray(eta, dtype=np.float64)
                if eta.shape != (b, view.n_nodes):
                    raise ConfigError(
                        f"aco heuristic: must return shape {(b, view.n_nodes)}, got {eta.shape}"
                    )
            cand, ncand, etab = self._candidates(eta, view.feasible, seeds)
        if np.any(ncand == 0):
            raise ConfigError("aco heuristic: gives no node with eta > 0 to some task")
        order = self.construction_order(tasks, view, self._best)
        etab = etab * etab if prm.beta == 2.0 else etab**prm.beta
        cls = self.task_classes(tasks)
        tau0 = 1.0 - prm.memory + prm.memory * self._memory[cls[:, None], cand]
        if best is None:
            best = np.ascontiguousarray(cand[:, 0])
            best_cost = costmod.evaluate_one(p, best, ws)
        best = np.ascontiguousarray(best)
        start = best.copy()
        tau_min = self._tau_min(b, cand.shape[1])
        kp = prm.kernel_params(tau_min, b)
        lb = alone_cost_bound(p, ws, cand, ncand) if kp.prune and prm.prune_alone else None
        ls = search_state(p, cand, ncand, kp.prune, lb)
        evals = 0
        if kp.ls_sweeps > 0:
            best_cost, evals = polish(p, ws, best, cand, ncand, kp.ls_sweeps, kp.swaps, ls)
        # a large batch gets no ants: their search costs far more than it finds there
        iterations = prm.iterations if prm.ant_limit == 0 or b <= prm.ant_limit else 0
        if iterations > 0 and seeds and prm.explore > 0 and prm.alpha > 0:
            tau0 = self._near_seed(tau0, cand, ncand, etab, start)
        tau0 = np.ascontiguousarray(np.clip(tau0, tau_min, 1.0))
        u = self._rng.random((iterations, prm.ants, b))
        con = Construction.of_problem(pt, view, order, cand, ncand, etab)
        cost, e = run_mmas(p, ws, u, con, tau0, kp, best, float(best_cost), ls)
        evals += e
        self._remember(cls, best)
        seed_cost = float(min(seed_costs)) if seeds else float("nan")
        return ColonyResult(
            nodes=best, cost=float(cost), seed_cost=seed_cost, evaluations=evals, problem=p
        )

    def _near_seed(
        self,
        tau0: np.ndarray,
        cand: np.ndarray,
        ncand: np.ndarray,
        etab: np.ndarray,
        best: np.ndarray,
    ) -> np.ndarray:
        """Initial trails around the best seed: its choices at ``tau_max``, the others
        scaled per task so that an ant places about ``explore`` tasks elsewhere (keeping
        their ratios, hence the memory's preferences)."""
        prm = self.params
        b = cand.shape[0]
        valid = np.arange(cand.shape[1]) < ncand[:, None]
        on = (cand == best[:, None]) & valid
        w = np.where(valid, etab, 0.0)
        e_seed = np.sum(np.where(on, w, 0.0), axis=1)
        off = np.sum(np.where(valid & ~on, tau0**prm.alpha * w, 0.0), axis=1)
        p = min(0.5, prm.explore / b)  # wanted chance that a task leaves the seed's node
        with np.errstate(divide="ignore", invalid="ignore"):
            f = (p * e_seed / ((1.0 - p) * off)) ** (1.0 / prm.alpha)
        f = np.where((off > 0) & np.isfinite(f), f, 1.0)
        return np.where(on, 1.0, f[:, None] * tau0)

    def _tau_min(self, b: int, k: int) -> float:
        # Stützle and Hoos (2000): tau_min = tau_max (1 - p_dec) / ((avg - 1) p_dec)
        p_dec = self.params.p_best ** (1.0 / max(b, 1))
        avg = max(k / 2.0, 2.0)
        return float(min(1.0, (1.0 - p_dec) / ((avg - 1.0) * p_dec)))

    def _remember(self, cls: np.ndarray, best: np.ndarray) -> None:
        prm = self.params
        if prm.memory == 0:
            return
        m = self._memory
        present = np.unique(cls)
        m[present] *= 1.0 - prm.memory_rho
        pairs = np.unique(cls * m.shape[1] + best)  # one deposit per (class, node) pair
        m.reshape(-1)[pairs] += prm.memory_rho
        m[present] = np.clip(m[present], MEMORY_MIN, 1.0)


__all__ = [
    "Colony",
    "ColonyParams",
    "ColonyResult",
    "Construction",
    "Heuristic",
    "ant_scratch",
    "colony_args",
    "completion_heuristic",
    "construct_ant",
    "construct_numpy",
    "run_mmas",
]
