"""Named scenario presets: a cluster shape plus a workload shape.

A :class:`Scenario` fixes everything but the scale: :func:`generate` draws its
cluster and a workload of ``n_tasks`` tasks at a target ``load`` from one seed.
The presets are described in ``docs/SCENARIOS.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster, Workload
from hybridsched.workload.clusters import ClusterParams, TierSpec, generate_cluster
from hybridsched.workload.generators import (
    WorkloadParams,
    generate_workload,
    validate_load,
    validate_n_tasks,
)

__all__ = ["SCENARIOS", "Scenario", "generate", "get_scenario"]


@dataclass(frozen=True)
class Scenario:
    """A named preset: the shape of a cluster and of its workload."""

    name: str
    """Registry key, also the generated cluster's name."""
    description: str
    """One-line summary of what the preset models."""
    cluster: ClusterParams = field(default_factory=ClusterParams)
    """Tier sizes, number of regions and node attribute ranges."""
    workload: WorkloadParams = field(default_factory=WorkloadParams)
    """Arrival process, task kinds, sizes, priorities and deadlines."""


_HETERO_EDGE = TierSpec(
    cores=(1, 4),
    speed=(0.2, 1.5),
    memory_mb=(1024.0, 8192.0),
    bandwidth_mb_s=(5.0, 100.0),
    idle_w_per_core=(0.5, 2.0),
    dynamic_w_per_core=(1.0, 4.0),
    home_latency_s=(0.001, 0.005),
    other_latency_s=(0.020, 0.080),
)
_HETERO_FOG = TierSpec(
    cores=(4, 24),
    speed=(1.0, 4.0),
    memory_mb=(8192.0, 131072.0),
    bandwidth_mb_s=(50.0, 1000.0),
    idle_w_per_core=(3.0, 8.0),
    dynamic_w_per_core=(6.0, 16.0),
    home_latency_s=(0.004, 0.020),
    other_latency_s=(0.015, 0.050),
)
_HETERO_CLOUD = TierSpec(
    cores=(32, 128),
    speed=(2.0, 6.0),
    memory_mb=(131072.0, 1048576.0),
    bandwidth_mb_s=(500.0, 4000.0),
    idle_w_per_core=(2.0, 6.0),
    dynamic_w_per_core=(4.0, 12.0),
    home_latency_s=(0.050, 0.150),
    other_latency_s=(0.050, 0.150),
)


def _registry(*scenarios: Scenario) -> Mapping[str, Scenario]:
    return MappingProxyType({s.name: s for s in scenarios})


SCENARIOS: Mapping[str, Scenario] = _registry(
    Scenario(
        name="iot-small",
        description="Tiny instance for tests: 4 edge, 3 fog, 1 cloud node; 3 regions.",
        cluster=ClusterParams(n_edge=4, n_fog=3, n_cloud=1, n_regions=3),
        workload=WorkloadParams(n_sensors=30),
    ),
    Scenario(
        name="iot-default",
        description="City-scale IoT: 60 edge, 30 fog, 10 cloud nodes; 8 regions; "
        "half periodic sensing, half moderately bursty events.",
        cluster=ClusterParams(n_edge=60, n_fog=30, n_cloud=10, n_regions=8),
        workload=WorkloadParams(n_sensors=2000),
    ),
    Scenario(
        name="iot-bursty",
        description="Same cluster as iot-default; event-dominated arrivals with strong "
        "self-excitation (alarms cascading), deep daily cycle, more urgent tasks.",
        cluster=ClusterParams(n_edge=60, n_fog=30, n_cloud=10, n_regions=8),
        workload=WorkloadParams(
            periodic_fraction=0.2,
            n_sensors=1000,
            branching=0.9,
            burst_decay=2.0,
            daily_amplitude=0.8,
            region_skew=1.0,
            event_priority_probs=(0.6, 0.3, 0.1),
        ),
    ),
    Scenario(
        name="iot-hetero",
        description="Strongly heterogeneous nodes: 60 edge, 30 fog, 10 cloud; 8 regions; "
        "core speeds 0.2-6 GI/s and 1-128 cores; heavier-tailed task sizes.",
        cluster=ClusterParams(
            n_edge=60,
            n_fog=30,
            n_cloud=10,
            n_regions=8,
            edge=_HETERO_EDGE,
            fog=_HETERO_FOG,
            cloud=_HETERO_CLOUD,
        ),
        workload=WorkloadParams(n_sensors=2000, work_data_corr=0.7, work_clip=500.0),
    ),
    Scenario(
        name="iot-large",
        description="Country-scale IoT: 400 edge, 150 fog, 50 cloud nodes; 32 regions.",
        cluster=ClusterParams(n_edge=400, n_fog=150, n_cloud=50, n_regions=32),
        workload=WorkloadParams(n_sensors=20000, region_skew=0.8),
    ),
)
"""The scenario presets, by name (read-only)."""


def get_scenario(name: str) -> Scenario:
    """The preset called ``name``.

    Raises:
        ConfigError: no preset has that name; the message lists the known names.
    """
    try:
        return SCENARIOS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(SCENARIOS))
        raise ConfigError(f"unknown scenario {name!r}; known scenarios: {known}") from None


def generate(
    scenario: str | Scenario, n_tasks: int, load: float, seed: int = 0
) -> tuple[Cluster, Workload]:
    """Draw a scenario's cluster and a workload of ``n_tasks`` tasks at ``load``.

    The cluster and the workload get independent child generators of
    ``numpy.random.SeedSequence(seed)``, so the cluster depends on the seed only,
    not on ``n_tasks`` or ``load``.

    Args:
        scenario: a preset name (see :data:`SCENARIOS`) or a :class:`Scenario`.
        n_tasks: number of tasks, >= 1.
        load: target load rho = mean offered work per second / cluster capacity, > 0.
        seed: integer seed >= 0; the same seed gives identical output.

    Returns:
        ``(cluster, workload)``, both validated.

    Raises:
        ConfigError: unknown scenario, or ``n_tasks``, ``load`` or ``seed`` out of range.
    """
    sc = scenario if isinstance(scenario, Scenario) else get_scenario(scenario)
    n = validate_n_tasks(n_tasks)
    rho = validate_load(load)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: must be an integer >= 0, got {seed!r}")
    cluster_seq, workload_seq = np.random.SeedSequence(int(seed)).spawn(2)
    cluster = generate_cluster(sc.cluster, np.random.default_rng(cluster_seq), name=sc.name)
    workload = generate_workload(
        cluster, sc.workload, n_tasks=n, load=rho, rng=np.random.default_rng(workload_seq)
    )
    return cluster, workload
