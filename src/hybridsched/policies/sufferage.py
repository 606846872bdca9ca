"""Sufferage (Maheswaran et al. 1999).

Within a batch, the task with the largest gap between its second-best and best
finish time is placed first, on its best node; repeat.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True)
def score(best, second):
    """The batch task with the highest score goes first: here the largest
    ``second best - best`` (a task with a single feasible node suffers most)."""
    return second - best if second < np.inf else np.inf


@register
class Sufferage(KernelPolicy):
    """Sufferage: first the batch task that would lose most if denied its best node."""

    name = "sufferage"
    rule = kernels.SUFFERAGE
