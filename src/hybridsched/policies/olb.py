"""OLB, opportunistic load balancing (Braun et al. 2001).

Each task goes to the node expected to have a core free soonest
(max(now, earliest projected free core)), whatever the task's execution time there.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True)
def choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch):
    """The feasible node with the smallest ``max(now, earliest free core)``."""
    best = np.inf
    arg = -1
    for j in range(st.cores.shape[0]):
        if st.mem_req[i] > st.memory[j]:
            continue
        s = max(d, proj_min[j])
        if s < best:
            best = s
            arg = j
    return arg, rr


@register
class OLB(KernelPolicy):
    """Opportunistic load balancing: the node whose earliest core is free first."""

    name = "olb"
    rule = kernels.OLB
