"""Energy-aware placement.

The energy a task adds on node j is (power_max - power_idle) / cores x its
execution time there. Among nodes where the estimated finish meets the task's
deadline, the least energy wins (ties: earlier finish); when none meets it, MCT.
"""

from __future__ import annotations

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@register
class EnergyAware(KernelPolicy):
    """Least energy increase among nodes that meet the deadline, else MCT."""

    name = "energy-aware"
    rule = kernels.ENERGY
