"""Least loaded (join the shortest queue).

Score of a node: (tasks assigned but not started + busy cores) / cores; the
lowest score wins. Ignores speed, data transfer and task size.
"""

from __future__ import annotations

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@register
class LeastLoaded(KernelPolicy):
    """Join the shortest queue: fewest tasks queued or running per core."""

    name = "least-loaded"
    rule = kernels.LEAST_LOADED
