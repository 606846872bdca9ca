"""Max-min (Braun et al. 2001).

Like min-min, but the task whose best finish time is largest goes first, so
long tasks are not left to the end of a batch.
"""

from __future__ import annotations

from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True)
def score(best, second):
    """The batch task with the highest score goes first: here the largest best finish."""
    return best


@register
class MaxMin(KernelPolicy):
    """Max-min: repeatedly place the batch task with the largest best completion time."""

    name = "max-min"
    rule = kernels.MAX_MIN
