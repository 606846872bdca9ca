"""MCT, minimum completion time (Braun et al. 2001).

Estimated finish on node j: max(ready_j, earliest projected free core_j) + work / speed_j,
with ready_j = now + latency + data / bandwidth. The task goes to the minimum.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True, inline="always")
def choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch):
    """MCT's node for task ``i``: a branch-free pass (vectorised), then the argmin.

    The signature shared by every single-task rule (see
    :func:`hybridsched.policies.kernels.decide`); returns ``(node, rr)``.
    """
    n = scratch.shape[0]
    lat = inv[2 + st.region[i]]
    inv_bw = inv[0]
    inv_sp = inv[1]
    data = st.data[i]
    work = st.work_est[i]
    need = st.mem_req[i]
    memory = st.memory
    up = st.up
    for j in range(n):
        f = max(d + lat[j] + data * inv_bw[j], proj_min[j]) + work * inv_sp[j]
        scratch[j] = f if up[j] and need <= memory[j] else np.inf
    return kernels.argmin(scratch), rr


@register
class MCT(KernelPolicy):
    """Minimum completion time: the node where the task is estimated to finish first."""

    name = "mct"
    rule = kernels.MCT
