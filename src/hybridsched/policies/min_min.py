"""Min-min (Ibarra and Kim 1977; Braun et al. 2001).

Within a batch: compute each unplaced task's best (MCT) finish time, place the
task whose best is smallest, update the projection, repeat. Equals MCT when
the decision interval is 0.
"""

from __future__ import annotations

from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True)
def score(best, second):
    """The batch task with the highest score goes first: here the smallest best finish."""
    return -best


@register
class MinMin(KernelPolicy):
    """Min-min: repeatedly place the batch task with the smallest best completion time."""

    name = "min-min"
    rule = kernels.MIN_MIN
