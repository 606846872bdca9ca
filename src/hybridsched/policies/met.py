"""MET, minimum execution time (Braun et al. 2001).

Each task goes to the node where it executes fastest (work / speed), ignoring
queues and transfers: it overloads the fastest nodes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True)
def choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch):
    """The feasible node with the smallest ``work / speed``; returns ``(node, rr)``."""
    best = np.inf
    arg = -1
    for j in range(st.cores.shape[0]):
        if st.mem_req[i] > st.memory[j]:
            continue
        s = st.work_est[i] * inv[1, j]
        if s < best:
            best = s
            arg = j
    return arg, rr


@register
class MET(KernelPolicy):
    """Minimum execution time: the fastest node for the task, whatever its load."""

    name = "met"
    rule = kernels.MET
