"""ACO: a MAX-MIN ant colony that assigns each decision batch.

The batch problem and its exact cost are in :mod:`hybridsched.policies.cost`,
the colony in :mod:`hybridsched.policies.colony`; this module is the policy
that the registry builds from ``--policy aco --policy-arg key=value``. The
desirability is pluggable: pass ``heuristic=`` (a callable
``(tasks, view) -> (B, N)``) from Python, for example a learned network's
scores; the CLI uses the classic ``1 / predicted response``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster
from hybridsched.policies.base import register
from hybridsched.policies.colony import Colony, ColonyParams, ColonyResult
from hybridsched.policies.cost import CostFields
from hybridsched.sim.view import ClusterView, TaskBatch

_D = ColonyParams()


@register
@dataclass
class ACO(CostFields):
    """MAX-MIN ant colony over each batch, minimising response, misses and energy."""

    name: ClassVar[str] = "aco"

    ants: int = field(default=_D.ants, metadata={"help": "ants per iteration"})
    iterations: int = field(default=_D.iterations, metadata={"help": "iterations per batch"})
    alpha: float = field(default=_D.alpha, metadata={"help": "exponent of the pheromone"})
    beta: float = field(default=_D.beta, metadata={"help": "exponent of the desirability"})
    rho: float = field(default=_D.rho, metadata={"help": "evaporation rate, in (0, 1]"})
    p_best: float = field(
        default=_D.p_best, metadata={"help": "MMAS p_best, sets tau_min, in (0, 1]"}
    )
    candidates: int = field(
        default=_D.candidates, metadata={"help": "candidate nodes per task (most desirable)"}
    )
    global_every: int = field(
        default=_D.global_every,
        metadata={"help": "best-so-far deposits every this many iterations"},
    )
    restart_after: int = field(
        default=_D.restart_after,
        metadata={"help": "reset trails after this many iterations without improvement (0: never)"},
    )
    local_search: int = field(
        default=_D.local_search,
        metadata={"help": "most sweeps of move/swap local search per solution (0: off)"},
    )
    ls_every: int = field(
        default=_D.ls_every,
        metadata={
            "help": "local search on the iteration-best every this many iterations "
            "(0: only on the best seed and the final best)"
        },
    )
    prune: bool = field(
        default=_D.prune,
        metadata={"help": "skip local-search moves that a cheap bound shows cannot pay"},
    )
    swap_limit: int = field(
        default=_D.swap_limit, metadata={"help": "try swaps only in batches up to this size"}
    )
    dynamic_eta: bool = field(
        default=_D.dynamic_eta,
        metadata={"help": "correct the desirability by the ant's own placements"},
    )
    order: str = field(
        default=_D.order, metadata={"help": "construction order: priority, slack or arrival"}
    )
    memory: float = field(
        default=_D.memory,
        metadata={"help": "weight of the cross-batch trail in [0, 1] (0: no memory)"},
    )
    memory_rho: float = field(
        default=_D.memory_rho, metadata={"help": "evaporation rate of the cross-batch trail"}
    )
    size_buckets: int = field(
        default=_D.size_buckets, metadata={"help": "work-size buckets of the memory's classes"}
    )
    explore: float = field(
        default=_D.explore,
        metadata={
            "help": "initial trails around the best seed: tasks an ant places elsewhere "
            "(0: uniform start)"
        },
    )
    seeds: str = field(
        default=",".join(_D.seeds),
        metadata={"help": "comma-separated policies whose assignments seed the colony"},
    )
    heuristic: Any = field(
        default=None,
        repr=False,
        metadata={"help": "Python only: callable (tasks, view) -> (B, N) desirability"},
    )

    def __post_init__(self) -> None:
        seeds = tuple(s.strip() for s in self.seeds.split(",") if s.strip())
        if self.name in seeds:
            raise ConfigError("aco seeds: cannot seed the colony with itself")
        self.params = ColonyParams(
            ants=self.ants,
            iterations=self.iterations,
            alpha=self.alpha,
            beta=self.beta,
            rho=self.rho,
            p_best=self.p_best,
            candidates=self.candidates,
            global_every=self.global_every,
            restart_after=self.restart_after,
            local_search=self.local_search,
            ls_every=self.ls_every,
            swap_limit=self.swap_limit,
            prune=self.prune,
            dynamic_eta=self.dynamic_eta,
            order=self.order,
            memory=self.memory,
            memory_rho=self.memory_rho,
            size_buckets=self.size_buckets,
            explore=self.explore,
            seeds=seeds,
        )
        self.colony = Colony(self.params, self.cost_weights(), self.heuristic)
        self.last: ColonyResult | None = None
        """What the colony found for the latest batch."""

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        """Start a run: the colony's draws come from ``rng``; its memory is cleared."""
        self.colony.reset(cluster, rng)

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        """The colony's best assignment of the batch."""
        self.last = self.colony.solve(tasks, view)
        return self.last.nodes
