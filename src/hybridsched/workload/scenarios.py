"""Named scenario presets: a cluster shape plus a workload shape.

A :class:`Scenario` fixes everything but the scale: :func:`generate` draws its
cluster and a workload of ``n_tasks`` tasks at a target ``load`` from one seed.
A scenario with drift also has changing conditions: :func:`generate_instance`
returns them with the cluster and workload, as an :class:`Instance`;
:func:`with_drift` adds drift to any scenario. The presets are described in
``docs/SCENARIOS.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster, Workload
from hybridsched.workload.clusters import ClusterParams, generate_cluster, tier_specs
from hybridsched.workload.drift import (
    DriftSpec,
    make_conditions,
    sample_drift,
    sample_mix_shift,
)
from hybridsched.workload.generators import (
    MixShift,
    WorkloadParams,
    generate_workload,
    validate_load,
    validate_n_tasks,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SCENARIOS",
    "Instance",
    "Scenario",
    "generate",
    "generate_instance",
    "get_scenario",
    "with_drift",
]


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
    """Arrival process, task kinds, sizes, priorities and deadlines (and a mix shift)."""
    drift: DriftSpec | None = None
    """Slow nodes and degraded links during the run; None: conditions never change."""

    def __post_init__(self) -> None:
        if self.drift is not None and not isinstance(self.drift, DriftSpec):
            raise ConfigError(f"Scenario.drift: must be a DriftSpec or None, got {self.drift!r}")

    @property
    def drifts(self) -> bool:
        """Whether anything drifts: conditions, or the task mix."""
        return self.drift is not None or self.workload.mix_shift is not None


@dataclass(frozen=True, eq=False)
class Instance:
    """One generated problem: a cluster, a workload and the conditions during the run."""

    cluster: Cluster
    """The scenario's cluster (depends on the seed only)."""
    workload: Workload
    """The tasks, at the requested size and load."""
    conditions: pd.DataFrame | None
    """Changing conditions (columns ``hybridsched.workload.drift.CONDITIONS_COLUMNS``) over
    the arrivals, 0 to the last arrival; None when the scenario has no ``drift``."""


def with_drift(
    scenario: str | Scenario,
    drift: DriftSpec | None = None,
    mix_shift: MixShift | None = None,
) -> Scenario:
    """``scenario`` with drift: conditions from ``drift`` and a task mix shifting by
    ``mix_shift``.

    Each left out keeps the scenario's own, or else takes the default
    (:class:`DriftSpec` ``()``, :class:`MixShift` ``()``). The name is kept, so the
    cluster is the one the stationary scenario draws from the same seed.
    """
    sc = scenario if isinstance(scenario, Scenario) else get_scenario(scenario)
    drift = drift if drift is not None else sc.drift or DriftSpec()
    shift = mix_shift if mix_shift is not None else sc.workload.mix_shift or MixShift()
    return replace(sc, drift=drift, workload=replace(sc.workload, mix_shift=shift))


# the 100-node, 8-region city cluster that iot-default, iot-bursty and iot-hetero share
# (iot-hetero with its own tier ranges)
_CITY = ClusterParams(n_edge=60, n_fog=30, n_cloud=10, n_regions=8)

# edge, fog, cloud of iot-hetero
_HETERO_EDGE, _HETERO_FOG, _HETERO_CLOUD = tier_specs(
    cores=((1, 4), (4, 24), (32, 128)),
    speed=((0.2, 1.5), (1.0, 4.0), (2.0, 6.0)),
    memory_mb=((1024.0, 8192.0), (8192.0, 131072.0), (131072.0, 1048576.0)),
    bandwidth_mb_s=((5.0, 100.0), (50.0, 1000.0), (500.0, 4000.0)),
    idle_w_per_core=((0.5, 2.0), (3.0, 8.0), (2.0, 6.0)),
    dynamic_w_per_core=((1.0, 4.0), (6.0, 16.0), (4.0, 12.0)),
    home_latency_s=((0.001, 0.005), (0.004, 0.020), (0.050, 0.150)),
    other_latency_s=((0.020, 0.080), (0.015, 0.050), (0.050, 0.150)),
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
        cluster=_CITY,
        workload=WorkloadParams(n_sensors=2000),
    ),
    Scenario(
        name="iot-bursty",
        description="Same cluster as iot-default; event-dominated arrivals with strong "
        "self-excitation (alarms cascading), deep daily cycle, more urgent tasks.",
        cluster=_CITY,
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
        cluster=replace(_CITY, edge=_HETERO_EDGE, fog=_HETERO_FOG, cloud=_HETERO_CLOUD),
        workload=WorkloadParams(n_sensors=2000, work_data_corr=0.7, work_clip=500.0),
    ),
    Scenario(
        name="iot-drift",
        description="A 60-node IoT cluster (36 edge, 18 fog, 6 cloud; 6 regions) whose "
        "conditions drift: 30-40% of nodes slowed to 0.15-0.6 of their speed for 10-40% "
        "of the run, the access links of 1-2 regions degraded, and a task mix shifting "
        "towards detection and back.",
        cluster=ClusterParams(n_edge=36, n_fog=18, n_cloud=6, n_regions=6),
        workload=WorkloadParams(n_sensors=1200, mix_shift=MixShift()),
        drift=DriftSpec(),
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
    not on ``n_tasks`` or ``load``. A scenario's changing conditions are left out:
    :func:`generate_instance` has them.

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
    inst = _draw(scenario, n_tasks, load, seed, conditions=False)
    return inst.cluster, inst.workload


def generate_instance(
    scenario: str | Scenario, n_tasks: int, load: float, seed: int = 0
) -> Instance:
    """:func:`generate`, with the scenario's changing conditions.

    The cluster and workload are exactly :func:`generate`'s. The conditions come
    from :func:`hybridsched.workload.drift.make_conditions` over a run from 0 to the
    workload's last arrival, with a third child generator of the seed's
    ``SeedSequence``: the same seed draws the same pattern (in shares of the run)
    at any ``n_tasks`` and ``load``.

    Returns:
        An :class:`Instance`; its ``conditions`` is None for a scenario without drift.

    Raises:
        ConfigError: as :func:`generate`.
    """
    return _draw(scenario, n_tasks, load, seed, conditions=True)


def generate_random_drift(
    scenario: str | Scenario, n_tasks: int, load: float, seed: int = 0
) -> Instance:
    """:func:`generate` with drift drawn at random from the seed: domain randomization.

    A task-mix shift (:func:`~hybridsched.workload.drift.sample_mix_shift`) and
    conditions from a random drift spec (:func:`~hybridsched.workload.drift.sample_drift`),
    both from a fourth child generator of the seed's ``SeedSequence``, which
    :func:`generate` does not use: a new drift pattern per seed, the same one for
    the same seed. The trainers' ``drift="random"`` episodes use it
    (:class:`hybridsched.train.rollout.InstanceSpec`).

    Raises:
        ConfigError: as :func:`generate`.
    """
    _check_seed(seed)
    gen = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(4)[3])
    sc = scenario if isinstance(scenario, Scenario) else get_scenario(scenario)
    sc = with_drift(sc, mix_shift=sample_mix_shift(gen, len(sc.workload.kinds)))
    cluster, workload = generate(sc, n_tasks, load, int(seed))
    return Instance(cluster, workload, sample_drift(cluster, float(workload.arrival_s[-1]), gen))


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: must be an integer >= 0, got {seed!r}")


def _draw(
    scenario: str | Scenario, n_tasks: int, load: float, seed: int, conditions: bool
) -> Instance:
    sc = scenario if isinstance(scenario, Scenario) else get_scenario(scenario)
    n = validate_n_tasks(n_tasks)
    rho = validate_load(load)
    _check_seed(seed)
    # spawn(3)[:2] == spawn(2): the cluster and workload are those of before conditions
    cluster_seq, workload_seq, drift_seq = np.random.SeedSequence(int(seed)).spawn(3)
    cluster = generate_cluster(sc.cluster, np.random.default_rng(cluster_seq), name=sc.name)
    workload = generate_workload(
        cluster, sc.workload, n_tasks=n, load=rho, rng=np.random.default_rng(workload_seq)
    )
    frame = None
    if conditions and sc.drift is not None:
        horizon = float(workload.arrival_s[-1])
        frame = make_conditions(cluster, horizon, sc.drift, np.random.default_rng(drift_seq))
    return Instance(cluster, workload, frame)
