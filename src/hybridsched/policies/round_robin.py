"""Round robin: nodes in index order, one task each, skipping infeasible nodes.

Blind to load and speed; the classic static baseline.
"""

from __future__ import annotations

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@register
class RoundRobin(KernelPolicy):
    """Nodes in turn, skipping those without memory for the task."""

    name = "round-robin"
    rule = kernels.ROUND_ROBIN
