"""Synthetic edge/fog/cloud clusters.

A cluster has three tiers, each described by a :class:`TierSpec` (ranges that
node attributes are drawn from):

* **edge** nodes are small and slow, sit next to one *home* region (a few ms
  away) and are tens of ms from every other region;
* **fog** nodes are mid-sized, with a home region at moderate latency;
* **cloud** nodes are big and fast with large ingress bandwidth, but 50-150 ms
  from every region.

Home regions are assigned round-robin within a tier, so every region has an
edge node as soon as there are at least as many edge nodes as regions. Nodes
are ordered edge, fog, cloud and named ``edge-0``, ``fog-0``, ``cloud-0`` ....
Everything is drawn from the generator passed in: same seed, same cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster
from hybridsched.model import _show as _plain

__all__ = [
    "CLOUD",
    "EDGE",
    "FOG",
    "ClusterParams",
    "TierSpec",
    "as_generator",
    "generate_cluster",
    "tier_specs",
]


def _check_range(owner: str, name: str, value: tuple[float, float], low: float) -> None:
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(f"{owner}.{name}: must be a (low, high) pair of numbers, got {value!r}")
    lo, hi = value
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < low or hi < lo:
        raise ConfigError(
            f"{owner}.{name}: must satisfy {low:g} <= low <= high (finite), got {value!r}"
        )


@dataclass(frozen=True)
class TierSpec:
    """Ranges that the attributes of one tier's nodes are drawn from.

    Integer ranges are inclusive and drawn uniformly; ``speed``, ``memory_mb``
    and ``bandwidth_mb_s`` are drawn log-uniformly (a tier spanning 10x has as
    many nodes in [1, 3] as in [3, 10]); the rest uniformly.
    """

    cores: tuple[int, int]
    """Cores per node, inclusive range, count."""
    speed: tuple[float, float]
    """Speed of one core, GI/s."""
    memory_mb: tuple[float, float]
    """Node memory, MB (rounded to a multiple of 256 MB)."""
    bandwidth_mb_s: tuple[float, float]
    """Ingress bandwidth, MB/s."""
    idle_w_per_core: tuple[float, float]
    """Idle power per core, W (a node's idle power is this times its cores)."""
    dynamic_w_per_core: tuple[float, float]
    """Extra power of one busy core, W (max power = idle + this x cores)."""
    home_latency_s: tuple[float, float]
    """Latency to the node's home region, s."""
    other_latency_s: tuple[float, float]
    """Latency to every other region, s."""

    def __post_init__(self) -> None:
        owner = "TierSpec"
        pair = self.cores
        ok = (
            isinstance(pair, tuple)
            and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
            and 1 <= pair[0] <= pair[1]
        )
        if not ok:
            raise ConfigError(
                f"{owner}.cores: must be a (low, high) pair of integers with 1 <= low <= high, "
                f"got {self.cores!r}"
            )
        for name in ("speed", "memory_mb", "bandwidth_mb_s"):
            _check_range(owner, name, getattr(self, name), low=1e-9)
        for name in (
            "idle_w_per_core",
            "dynamic_w_per_core",
            "home_latency_s",
            "other_latency_s",
        ):
            _check_range(owner, name, getattr(self, name), low=0.0)


def tier_specs(**ranges: tuple[tuple[float, float], ...]) -> tuple[TierSpec, ...]:
    """One :class:`TierSpec` per column of a table: ``attribute=((low, high), ...)``.

    Each keyword is a :class:`TierSpec` field and gives its range in every tier,
    in the same tier order, so a preset's tiers read side by side.
    """
    return tuple(
        TierSpec(**dict(zip(ranges, column, strict=True)))
        for column in zip(*ranges.values(), strict=True)
    )


# The default tiers (the columns, in order):
# EDGE: Raspberry-Pi-to-NUC class gateways next to their region;
# FOG: metro micro-data-centre servers at moderate latency;
# CLOUD: large, fast, well connected, 50-150 ms from every region.
EDGE, FOG, CLOUD = tier_specs(
    cores=((2, 4), (8, 16), (32, 64)),
    speed=((0.5, 1.5), (1.5, 3.0), (2.5, 4.0)),
    memory_mb=((2048.0, 8192.0), (16384.0, 65536.0), (131072.0, 524288.0)),
    bandwidth_mb_s=((20.0, 100.0), (100.0, 500.0), (500.0, 2000.0)),
    idle_w_per_core=((0.8, 1.5), (4.0, 6.0), (3.0, 5.0)),
    dynamic_w_per_core=((1.5, 3.0), (8.0, 12.0), (6.0, 10.0)),
    home_latency_s=((0.001, 0.005), (0.005, 0.015), (0.050, 0.150)),
    other_latency_s=((0.020, 0.060), (0.015, 0.040), (0.050, 0.150)),
)


@dataclass(frozen=True)
class ClusterParams:
    """How many nodes of each tier, how many regions, and the tiers' ranges."""

    n_edge: int = 60
    """Number of edge nodes, count."""
    n_fog: int = 30
    """Number of fog nodes, count."""
    n_cloud: int = 10
    """Number of cloud nodes, count."""
    n_regions: int = 8
    """Number of IoT source regions (gateways), count."""
    edge: TierSpec = field(default=EDGE)
    """Attribute ranges of edge nodes."""
    fog: TierSpec = field(default=FOG)
    """Attribute ranges of fog nodes."""
    cloud: TierSpec = field(default=CLOUD)
    """Attribute ranges of cloud nodes."""

    def __post_init__(self) -> None:
        for name in ("n_edge", "n_fog", "n_cloud", "n_regions"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"ClusterParams.{name}: must be an integer >= 0, got {_plain(v)}")
        if self.n_regions < 1:
            raise ConfigError(f"ClusterParams.n_regions: must be >= 1, got {self.n_regions!r}")
        if self.n_nodes < 1:
            raise ConfigError(
                "ClusterParams: n_edge + n_fog + n_cloud must be >= 1, got "
                f"{self.n_edge} + {self.n_fog} + {self.n_cloud}"
            )
        for name in ("edge", "fog", "cloud"):
            if not isinstance(getattr(self, name), TierSpec):
                raise ConfigError(
                    f"ClusterParams.{name}: must be a TierSpec, got {getattr(self, name)!r}"
                )

    @property
    def n_nodes(self) -> int:
        """Total number of nodes."""
        return self.n_edge + self.n_fog + self.n_cloud


def as_generator(rng: np.random.Generator | int) -> np.random.Generator:
    """A generator from a generator (returned as is) or an integer seed >= 0.

    Raises:
        ConfigError: ``rng`` is neither.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise ConfigError(f"rng: must be a numpy.random.Generator or an integer seed >= 0, got {rng!r}")


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    lo, hi = bounds
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _tier_nodes(
    rng: np.random.Generator, tier: str, spec: TierSpec, n: int, n_regions: int
) -> list[dict[str, Any]]:
    if n == 0:
        return []
    cores = rng.integers(spec.cores[0], spec.cores[1] + 1, size=n)
    speed = np.maximum(np.round(_log_uniform(rng, spec.speed, n), 3), 0.001)
    memory = np.maximum(np.round(_log_uniform(rng, spec.memory_mb, n) / 256.0), 1.0) * 256.0
    bandwidth = np.maximum(np.round(_log_uniform(rng, spec.bandwidth_mb_s, n), 1), 0.1)
    idle = np.round(rng.uniform(*spec.idle_w_per_core, size=n) * cores, 1)
    dynamic = np.round(rng.uniform(*spec.dynamic_w_per_core, size=n) * cores, 1)
    # Round-robin home regions spread a tier evenly over the regions.
    home = np.arange(n) % n_regions
    latency = rng.uniform(*spec.other_latency_s, size=(n, n_regions))
    latency[np.arange(n), home] = rng.uniform(*spec.home_latency_s, size=n)
    latency = np.round(latency, 5)
    return [
        {
            "name": f"{tier}-{i}",
            "tier": tier,
            "cores": int(cores[i]),
            "speed": float(speed[i]),
            "memory_mb": float(memory[i]),
            "bandwidth_mb_s": float(bandwidth[i]),
            "power_idle_w": float(idle[i]),
            "power_max_w": float(idle[i] + dynamic[i]),
            "latency_s": [float(x) for x in latency[i]],
        }
        for i in range(n)
    ]


def generate_cluster(
    params: ClusterParams | None = None,
    rng: np.random.Generator | int = 0,
    name: str = "synthetic",
) -> Cluster:
    """Draw an edge/fog/cloud cluster.

    Args:
        params: tier sizes, number of regions and attribute ranges
            (default: :class:`ClusterParams` ``()``, 60/30/10 nodes, 8 regions).
        rng: a generator, or an integer seed.
        name: the cluster's name.

    Returns:
        The validated cluster; nodes are ordered edge, fog, cloud.

    Raises:
        ConfigError: ``params`` or ``rng`` is invalid.
    """
    params = ClusterParams() if params is None else params
    if not isinstance(params, ClusterParams):
        raise ConfigError(f"params: must be a ClusterParams, got {params!r}")
    gen = as_generator(rng)
    nodes: list[dict[str, Any]] = []
    for tier, spec, n in (
        ("edge", params.edge, params.n_edge),
        ("fog", params.fog, params.n_fog),
        ("cloud", params.cloud, params.n_cloud),
    ):
        nodes.extend(_tier_nodes(gen, tier, spec, n, params.n_regions))
    return Cluster.build(
        {"name": name, "regions": params.n_regions, "nodes": nodes}, source=f"<cluster {name}>"
    )
