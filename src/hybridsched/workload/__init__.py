"""Synthetic IoT workloads and edge/fog/cloud clusters, with named scenario presets.

* :func:`generate`: a preset's cluster and workload from ``(scenario, n_tasks, load, seed)``.
* :func:`generate_instance`: the same, with the preset's changing conditions (an
  :class:`Instance`); :func:`with_drift` adds drift to any scenario;
  :func:`generate_random_drift` draws a drift pattern per seed (domain randomization).
* :func:`generate_cluster`, :func:`generate_workload`: the two halves, from parameters.
* :func:`make_conditions`, :class:`DriftSpec`, :func:`sample_drift`: drifting conditions
  (``hybridsched.workload.drift``); :class:`MixShift`: a drifting task mix.
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
from hybridsched.workload.drift import (
    CONDITIONS_COLUMNS,
    DriftSpec,
    make_conditions,
    sample_drift,
    sample_drift_spec,
    sample_mix_shift,
)
from hybridsched.workload.generators import (
    DEFAULT_KINDS,
    KIND_NAMES,
    KindProfile,
    MixShift,
    WorkloadParams,
    generate_workload,
)
from hybridsched.workload.scenarios import (
    SCENARIOS,
    Instance,
    Scenario,
    generate,
    generate_instance,
    generate_random_drift,
    get_scenario,
    with_drift,
)

__all__ = [
    "CLOUD",
    "CONDITIONS_COLUMNS",
    "DEFAULT_KINDS",
    "EDGE",
    "FOG",
    "KIND_NAMES",
    "SCENARIOS",
    "ClusterParams",
    "DriftSpec",
    "Instance",
    "KindProfile",
    "MixShift",
    "Scenario",
    "TierSpec",
    "WorkloadParams",
    "generate",
    "generate_cluster",
    "generate_instance",
    "generate_random_drift",
    "generate_workload",
    "get_scenario",
    "make_conditions",
    "sample_drift",
    "sample_drift_spec",
    "sample_mix_shift",
    "with_drift",
]
