"""Random placement: each task goes to a feasible node drawn uniformly at random.

The floor of all baselines; the draws come from the run's generator, so the same
seed gives the same schedule.
"""

from __future__ import annotations

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@register
class RandomPolicy(KernelPolicy):
    """Uniformly random feasible node (seeded)."""

    name = "random"
    rule = kernels.RANDOM
