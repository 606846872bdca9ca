"""Random placement: each task goes to a feasible node drawn uniformly at random.

The floor of all baselines; the draws come from the run's generator, so the same
seed gives the same schedule.
"""

from __future__ import annotations

from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True, inline="always")
def choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch):
    """The feasible node that the uniform draw ``u`` in [0, 1) picks, in index order."""
    n = st.cores.shape[0]
    m = 0
    for j in range(n):
        if kernels.fits(st, i, j):
            m += 1
    pick = min(int(u * m), m - 1)
    for j in range(n):
        if kernels.fits(st, i, j):
            if pick == 0:
                return j, rr
            pick -= 1
    return -1, rr


@register
class RandomPolicy(KernelPolicy):
    """Uniformly random feasible node (seeded)."""

    name = "random"
    rule = kernels.RANDOM
