"""OLB, opportunistic load balancing (Braun et al. 2001).

Each task goes to the node expected to have a core free soonest
(max(now, earliest projected free core)), whatever the task's execution time there.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True, inline="always")
def choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch):
    """The feasible node with the smallest ``max(now, earliest free core)``."""
    for j in range(scratch.shape[0]):
        scratch[j] = max(d, proj_min[j]) if kernels.fits(st, i, j) else np.inf
    return kernels.argmin(scratch), rr


@register
class OLB(KernelPolicy):
    """Opportunistic load balancing: the node whose earliest core is free first."""

    name = "olb"
    rule = kernels.OLB
