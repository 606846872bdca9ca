"""Energy-aware placement.

The energy a task adds on node j is (power_max - power_idle) / cores x its
execution time there. Among nodes where the estimated finish meets the task's
deadline, the least energy wins (ties: earlier finish); when none meets it, MCT.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True, inline="always")
def choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch):
    """Least dynamic energy among nodes meeting the deadline (ties: earlier finish), else MCT."""
    best = np.inf
    arg = -1
    met_arg = -1
    met_best = np.inf
    met_fin = np.inf
    for j in range(st.cores.shape[0]):
        if not kernels.fits(st, i, j):
            continue
        ex = st.work_est[i] * inv[1, j]
        f = max(kernels.ready(st, i, j, d, inv), proj_min[j]) + ex
        if f <= st.abs_deadline[i]:
            e = dynpow[j] * ex
            if e < met_best or (e == met_best and f < met_fin):
                met_best = e
                met_fin = f
                met_arg = j
        if f < best:
            best = f
            arg = j
    if met_arg >= 0:
        return met_arg, rr
    return arg, rr


@register
class EnergyAware(KernelPolicy):
    """Least energy increase among nodes that meet the deadline, else MCT."""

    name = "energy-aware"
    rule = kernels.ENERGY
