"""Round robin: nodes in index order, one task each, skipping infeasible nodes.

Blind to load and speed; the classic static baseline.
"""

from __future__ import annotations

from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True, inline="always")
def choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch):
    """The first feasible node from the pointer ``rr`` on; returns ``(node, new rr)``."""
    n = st.cores.shape[0]
    for k in range(n):
        j = (rr + k) % n
        if kernels.fits(st, i, j):
            return j, (j + 1) % n
    return -1, rr


@register
class RoundRobin(KernelPolicy):
    """Nodes in turn, skipping those that are down or lack memory for the task."""

    name = "round-robin"
    rule = kernels.ROUND_ROBIN
