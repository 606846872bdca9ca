"""MET, minimum execution time (Braun et al. 2001).

Each task goes to the node where it executes fastest (work / speed), ignoring
queues and transfers: it overloads the fastest nodes.
"""

from __future__ import annotations

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@register
class MET(KernelPolicy):
    """Minimum execution time: the fastest node for the task, whatever its load."""

    name = "met"
    rule = kernels.MET
