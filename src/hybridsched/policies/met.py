"""MET, minimum execution time (Braun et al. 2001).

Each task goes to the node where it executes fastest (work / speed), ignoring
queues and transfers: it overloads the fastest nodes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True, inline="always")
def choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch):
    """The feasible node with the smallest ``work / speed``; returns ``(node, rr)``."""
    for j in range(scratch.shape[0]):
        scratch[j] = st.work_est[i] * inv[1, j] if kernels.fits(st, i, j) else np.inf
    return kernels.argmin(scratch), rr


@register
class MET(KernelPolicy):
    """Minimum execution time: the fastest node for the task, whatever its load."""

    name = "met"
    rule = kernels.MET
