"""ACO: a MAX-MIN ant colony that assigns each decision batch.

The batch problem and its exact cost are in :mod:`hybridsched.policies.cost`,
the colony in :mod:`hybridsched.policies.colony`; this module is the policy
that the registry builds from ``--policy aco --policy-arg key=value``, its
arguments the colony's parameters (:class:`~hybridsched.policies.colony.ColonyParams`)
and the cost weights. The
desirability is pluggable: pass ``heuristic=`` (a callable
``(tasks, view) -> (B, N)``) from Python, for example a learned network's
scores; the CLI uses the classic ``1 / predicted response``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hybridsched.model import Cluster
from hybridsched.policies.base import register
from hybridsched.policies.colony import Colony, ColonyResult, colony_args
from hybridsched.policies.cost import CostFields
from hybridsched.sim.view import ClusterView, TaskBatch


@register
@dataclass
class ACO(colony_args(), CostFields):
    """MAX-MIN ant colony over each batch, minimising response, misses and energy."""

    name: ClassVar[str] = "aco"

    heuristic: Any = field(
        default=None,
        repr=False,
        metadata={"help": "Python only: callable (tasks, view) -> (B, N) desirability"},
    )

    def __post_init__(self) -> None:
        self.params = self.colony_params()
        self.colony = Colony(self.params, self.cost_weights(), self.heuristic)
        self.last: ColonyResult | None = None
        """What the colony found for the latest batch."""

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        """Start a run: the colony's draws come from ``rng``; its memory is cleared."""
        self.colony.reset(cluster, rng)
        self.compile_seconds = self.colony.compile_seconds
        """Seconds this reset spent compiling the colony (outside ``scheduler_seconds``)."""

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        """The colony's best assignment of the batch."""
        self.last = self.colony.solve(tasks, view)
        return self.last.nodes
