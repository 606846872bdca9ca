"""MCT, minimum completion time (Braun et al. 2001).

Estimated finish on node j: max(ready_j, earliest projected free core_j) + work / speed_j,
with ready_j = now + latency + data / bandwidth. The task goes to the minimum.
"""

from __future__ import annotations

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@register
class MCT(KernelPolicy):
    """Minimum completion time: the node where the task is estimated to finish first."""

    name = "mct"
    rule = kernels.MCT
