"""OLB, opportunistic load balancing (Braun et al. 2001).

Each task goes to the node expected to have a core free soonest
(max(now, earliest projected free core)), whatever the task's execution time there.
"""

from __future__ import annotations

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@register
class OLB(KernelPolicy):
    """Opportunistic load balancing: the node whose earliest core is free first."""

    name = "olb"
    rule = kernels.OLB
