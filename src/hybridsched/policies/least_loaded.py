"""Least loaded (join the shortest queue).

Score of a node: (tasks assigned but not started + busy cores) / cores; the
lowest score wins. Ignores speed, data transfer and task size.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True, inline="always")
def choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch):
    """The feasible node with the fewest queued and running tasks per core."""
    for j in range(scratch.shape[0]):
        busy = st.cores[j] - st.n_free[j]
        load = (nq[j] + busy) / st.cores[j]
        scratch[j] = load if kernels.fits(st, i, j) else np.inf
    return kernels.argmin(scratch), rr


@register
class LeastLoaded(KernelPolicy):
    """Join the shortest queue: fewest tasks queued or running per core."""

    name = "least-loaded"
    rule = kernels.LEAST_LOADED
