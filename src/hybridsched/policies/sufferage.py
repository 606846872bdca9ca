"""Sufferage (Maheswaran et al. 1999).

Within a batch, the task with the largest gap between its second-best and best
finish time is placed first, on its best node; repeat.
"""

from __future__ import annotations

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@register
class Sufferage(KernelPolicy):
    """Sufferage: first the batch task that would lose most if denied its best node."""

    name = "sufferage"
    rule = kernels.SUFFERAGE
