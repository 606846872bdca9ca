"""Synthetic IoT workloads and edge/fog/cloud clusters, with named scenario presets.

* :func:`generate`: a preset's cluster and workload from ``(scenario, n_tasks, load, seed)``.
* :func:`generate_cluster`, :func:`generate_workload`: the two halves, from parameters.
* :data:`SCENARIOS`, :func:`get_scenario`, :class:`Scenario`: the presets.
"""

from __future__ import annotations

from hybridsched.workload.clusters import (
    CLOUD,
    EDGE,
    FOG,
    ClusterParams,
    TierSpec,
    generate_cluster,
)
from hybridsched.workload.generators import (
    DEFAULT_KINDS,
    KIND_NAMES,
    KindProfile,
    WorkloadParams,
    generate_workload,
)
from hybridsched.workload.scenarios import SCENARIOS, Scenario, generate, get_scenario

__all__ = [
    "CLOUD",
    "DEFAULT_KINDS",
    "EDGE",
    "FOG",
    "KIND_NAMES",
    "SCENARIOS",
    "ClusterParams",
    "KindProfile",
    "Scenario",
    "TierSpec",
    "WorkloadParams",
    "generate",
    "generate_cluster",
    "generate_workload",
    "get_scenario",
]
