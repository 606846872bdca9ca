"""Generated drift: conditions that change during a run.

:func:`make_conditions` draws a *conditions frame* for a cluster and a run of
``horizon_s`` seconds from a :class:`DriftSpec`: the input of the simulator's
changing conditions (``--conditions F.csv``; docs/MODEL.md, section 12). Its
columns are exactly :data:`CONDITIONS_COLUMNS`:

* ``node``: a node name of the cluster;
* ``start_s``, ``end_s``: the window, ``0 <= start_s < end_s <= horizon_s``;
* ``speed``, ``latency``, ``bandwidth``: multipliers (> 0) on the node's
  per-core speed, its latency to every region and its ingress bandwidth during
  the window (1: unchanged).

Windows of one node never overlap. Two things drift:

* **Slow nodes** (co-tenancy, thermal throttling): a share of the nodes, picked
  with a per-tier weight (edge nodes throttle more often), is slowed to a
  factor of its speed for a share of the run, in one or more windows.
* **Degraded links**: a share of the regions has its access network degraded
  (more latency, less bandwidth) for a share of the run. The format carries
  per-node multipliers, so a degraded region maps onto the nodes *homed* there:
  a node of a tier in ``DriftSpec.link_tiers`` (edge and fog by default) whose
  nearest region is the degraded one gets the latency multiplier on its latency
  to every region and the bandwidth multiplier on its ingress bandwidth. A
  node's network attachment is its home gateway, so everything that reaches it
  crosses the degraded link. Cloud nodes are equally far from every region and
  have no home: region degradation leaves them alone.

Where a slow window and a link window of one node overlap, the rows are split
at every boundary so that each row holds the multipliers in force; adjacent
pieces with the same multipliers are merged.

Everything comes from the generator passed in; the draws do not depend on
``horizon_s`` (windows are drawn as shares of the run), so one seed gives the
same pattern, scaled, at every horizon. :func:`sample_drift_spec` and
:func:`sample_drift` draw a random spec from wide ranges, for training on
varied drift (domain randomization).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster
from hybridsched.model import _show as _plain
from hybridsched.workload.clusters import as_generator
from hybridsched.workload.generators import MIX_SHAPES, MixShift

if TYPE_CHECKING:
    import pandas as pd  # imported where a frame is built: `generate` stays pandas-free

__all__ = [
    "CONDITIONS_COLUMNS",
    "DriftSpec",
    "empty_conditions",
    "home_regions",
    "make_conditions",
    "sample_drift",
    "sample_drift_spec",
    "sample_mix_shift",
    "write_conditions",
]

CONDITIONS_COLUMNS: tuple[str, ...] = ("node", "start_s", "end_s", "speed", "latency", "bandwidth")
"""Columns of a conditions frame, in order; ``node`` has pandas' string dtype (``str``), the
rest float64."""

_DIGITS = 3
"""Multipliers are rounded to this many decimals (a readable file), then clipped to their range."""


def _pair(owner: str, name: str, v: object, low: float, high: float, low_open: bool) -> None:
    ok = (
        isinstance(v, tuple)
        and len(v) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        and all(math.isfinite(x) for x in v)  # type: ignore[arg-type]
        and (v[0] > low if low_open else v[0] >= low)  # type: ignore[operator]
        and v[0] <= v[1] <= high  # type: ignore[operator]
    )
    if not ok:
        lo_rule = f"{low:g} {'<' if low_open else '<='} low"
        hi_rule = "" if math.isinf(high) else f" <= {high:g}"
        raise ConfigError(
            f"{owner}.{name}: must be a (low, high) pair with {lo_rule} <= high{hi_rule}, "
            f"got {_plain(v)}"
        )


@dataclass(frozen=True)
class DriftSpec:
    """How conditions drift during a run; every share is of the nodes, regions or run.

    A range ``(low, high)`` is drawn uniformly: the node and region shares once
    per call, a window share once per node or region, a factor once per window;
    ``(x, x)`` fixes the value.
    """

    node_share: tuple[float, float] = (0.3, 0.4)
    """Share of the nodes that are slowed at some time, in [0, 1] (rounded to a node count)."""
    slowdown: tuple[float, float] = (0.15, 0.6)
    """Speed multiplier of a slowed node during a window, in [1e-6, 1e6] (below 1: slower)."""
    window_share: tuple[float, float] = (0.1, 0.4)
    """Share of the run a slowed node spends slowed, all its windows together, in (0, 1]."""
    windows_per_node: tuple[int, int] = (1, 2)
    """Number of windows that time is split into, per node, integers >= 1."""
    tier_weights: tuple[tuple[str, float], ...] = (("edge", 1.5), ("fog", 1.0), ("cloud", 1.0))
    """Relative odds of a node being slowed, by tier (> 0; tiers not listed: 1)."""
    region_share: tuple[float, float] = (0.2, 0.3)
    """Share of the regions whose access network is degraded at some time, in [0, 1]."""
    link_window_share: tuple[float, float] = (0.1, 0.4)
    """Share of the run a degraded region spends degraded, in (0, 1]."""
    link_windows: tuple[int, int] = (1, 2)
    """Number of windows that time is split into, per region, integers >= 1."""
    latency_factor: tuple[float, float] = (1.5, 4.0)
    """Latency multiplier of the nodes homed in a degraded region, in [1, 1e6]."""
    bandwidth_factor: tuple[float, float] = (0.2, 0.7)
    """Ingress bandwidth multiplier of the nodes homed in a degraded region, in [1e-6, 1]."""
    link_tiers: tuple[str, ...] = ("edge", "fog")
    """Tiers whose nodes have a home region (their nearest); other tiers keep their links."""

    def __post_init__(self) -> None:
        d = "DriftSpec"
        for name in ("node_share", "region_share"):
            _pair(d, name, getattr(self, name), 0.0, 1.0, low_open=False)
        for name in ("window_share", "link_window_share"):
            _pair(d, name, getattr(self, name), 0.0, 1.0, low_open=True)
        # the multipliers a conditions file accepts (docs/MODEL.md section 12)
        from hybridsched.sim.conditions import MAX_FACTOR, MIN_FACTOR

        _pair(d, "slowdown", self.slowdown, MIN_FACTOR, MAX_FACTOR, low_open=False)
        _pair(d, "latency_factor", self.latency_factor, 1.0, MAX_FACTOR, low_open=False)
        _pair(d, "bandwidth_factor", self.bandwidth_factor, MIN_FACTOR, 1.0, low_open=False)
        for name in ("windows_per_node", "link_windows"):
            v = getattr(self, name)
            ok = (
                isinstance(v, tuple)
                and len(v) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
                and 1 <= v[0] <= v[1] <= 1000
            )
            if not ok:
                raise ConfigError(
                    f"{d}.{name}: must be a (low, high) pair of integers with "
                    f"1 <= low <= high <= 1000, got {_plain(v)}"
                )
        tw = self.tier_weights
        ok = isinstance(tw, tuple) and all(
            isinstance(p, tuple)
            and len(p) == 2
            and isinstance(p[0], str)
            and isinstance(p[1], (int, float))
            and not isinstance(p[1], bool)
            and math.isfinite(p[1])
            and p[1] > 0
            for p in tw
        )
        if not ok:
            raise ConfigError(
                f"{d}.tier_weights: must be (tier, weight) pairs with weights > 0, got {_plain(tw)}"
            )
        lt = self.link_tiers
        if not isinstance(lt, tuple) or not all(isinstance(t, str) for t in lt):
            raise ConfigError(f"{d}.link_tiers: must be a tuple of tier names, got {_plain(lt)}")


def empty_conditions() -> pd.DataFrame:
    """A conditions frame with no window (nothing changes): the columns and their dtypes."""
    return _frame([], [], [], [], [], [])


def _frame(node: Sequence[str], *numbers: Sequence[float]) -> pd.DataFrame:
    """The frame of these columns, in :data:`CONDITIONS_COLUMNS` order."""
    import pandas as pd

    data: dict[str, object] = {"node": pd.Series(node, dtype=str)}
    for name, values in zip(CONDITIONS_COLUMNS[1:], numbers, strict=True):
        data[name] = np.asarray(values, dtype=np.float64)
    return pd.DataFrame(data, columns=list(CONDITIONS_COLUMNS))


def home_regions(cluster: Cluster, link_tiers: Iterable[str] = ("edge", "fog")) -> np.ndarray:
    """Each node's home region (its nearest; ties: the lowest index), or -1 for a node
    whose tier is not in ``link_tiers`` (it has no home and no access link to degrade)."""
    home = np.argmin(cluster.latency_s, axis=1).astype(np.int64)
    tiers = set(link_tiers)
    has_home = np.array([t in tiers for t in cluster.tiers], dtype=bool)
    return np.where(has_home, home, -1)


def _count(rng: np.random.Generator, share: tuple[float, float], n: int) -> int:
    """A count out of ``n`` from a share drawn uniformly in ``share``, rounded half up."""
    return min(n, math.floor(rng.uniform(share[0], share[1]) * n + 0.5))


def _windows(
    rng: np.random.Generator, share: tuple[float, float], count: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows in the unit run: total length drawn in ``share``, split
    into a number drawn in ``count`` at uniform cuts, placed with uniform gaps."""
    total = rng.uniform(share[0], share[1])
    m = int(rng.integers(count[0], count[1] + 1))
    cuts = np.sort(rng.uniform(0.0, 1.0, m - 1))
    lengths = np.diff(np.concatenate(([0.0], cuts, [1.0]))) * total
    # m sorted points in the free time (1 - total): the gap before each window
    gaps = np.sort(rng.uniform(0.0, 1.0 - total, m))
    start = gaps + np.concatenate(([0.0], np.cumsum(lengths)[:-1]))
    return start, start + lengths


def _factor(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    lo, hi = bounds
    return np.clip(np.round(rng.uniform(lo, hi, n), _DIGITS), lo, hi)


def make_conditions(
    cluster: Cluster,
    horizon_s: float,
    spec: DriftSpec | None = None,
    rng: np.random.Generator | int = 0,
) -> pd.DataFrame:
    """Draw changing conditions for ``cluster`` over a run of ``horizon_s`` seconds.

    Args:
        cluster: the cluster; rows name its nodes, in its node order.
        horizon_s: length of the run, s (a generated workload's last arrival), finite
            and >= 0; with 0 nothing drifts.
        spec: how conditions drift (default: :class:`DriftSpec` ``()``).
        rng: a generator, or an integer seed.

    Returns:
        A frame with exactly the columns :data:`CONDITIONS_COLUMNS`, rows sorted by
        node (cluster order) then start; per node, windows do not overlap, and
        ``0 <= start_s < end_s <= horizon_s``.

    Raises:
        ConfigError: ``spec``, ``horizon_s`` or ``rng`` is invalid.
    """
    spec = DriftSpec() if spec is None else spec
    if not isinstance(spec, DriftSpec):
        raise ConfigError(f"spec: must be a DriftSpec, got {spec!r}")
    ok = isinstance(horizon_s, (int, float, np.integer, np.floating)) and not isinstance(
        horizon_s, bool
    )
    if not ok or not math.isfinite(float(horizon_s)) or float(horizon_s) < 0:
        raise ConfigError(f"horizon_s: must be a finite number >= 0, got {_plain(horizon_s)}")
    gen = as_generator(rng)
    horizon = float(horizon_s)
    n = cluster.n_nodes
    # episodes[j]: (start, end, speed, latency, bandwidth) in run shares, one source each
    episodes: list[list[tuple[float, float, float, float, float]]] = [[] for _ in range(n)]

    weights = dict(spec.tier_weights)
    p = np.array([weights.get(t, 1.0) for t in cluster.tiers], dtype=np.float64)
    k = _count(gen, spec.node_share, n)
    slowed = np.sort(gen.choice(n, size=k, replace=False, p=p / p.sum()))
    for j in slowed:
        start, end = _windows(gen, spec.window_share, spec.windows_per_node)
        speed = _factor(gen, spec.slowdown, start.shape[0])
        episodes[j].extend((a, b, s, 1.0, 1.0) for a, b, s in zip(start, end, speed, strict=True))

    home = home_regions(cluster, spec.link_tiers)
    r = cluster.n_regions
    degraded = np.sort(gen.choice(r, size=_count(gen, spec.region_share, r), replace=False))
    for region in degraded:
        start, end = _windows(gen, spec.link_window_share, spec.link_windows)
        lat = _factor(gen, spec.latency_factor, start.shape[0])
        bw = _factor(gen, spec.bandwidth_factor, start.shape[0])
        for j in np.flatnonzero(home == region):
            episodes[j].extend(zip(start, end, [1.0] * len(start), lat, bw, strict=True))

    rows: list[tuple[str, float, float, float, float, float]] = []
    if horizon > 0:
        for j, eps in enumerate(episodes):
            rows.extend(
                (cluster.node_names[j], a * horizon, min(b * horizon, horizon), *mult)
                for a, b, mult in _flatten(eps)
            )
    return _frame(*zip(*rows, strict=True)) if rows else empty_conditions()


def _flatten(
    episodes: list[tuple[float, float, float, float, float]],
) -> list[tuple[float, float, tuple[float, float, float]]]:
    """One node's episodes (speed ones never overlap each other, nor link ones) as
    non-overlapping windows holding the multipliers in force, equal neighbours merged."""
    if not episodes:
        return []
    bounds = sorted({x for e in episodes for x in e[:2]})
    out: list[tuple[float, float, tuple[float, float, float]]] = []
    for a, b in pairwise(bounds):
        speed, latency, bandwidth, covered = 1.0, 1.0, 1.0, False
        for s, e, sp, lat, bw in episodes:
            if s <= a and b <= e:
                speed, latency, bandwidth = speed * sp, latency * lat, bandwidth * bw
                covered = True
        if not covered:
            continue
        mult = (speed, latency, bandwidth)
        if out and out[-1][1] == a and out[-1][2] == mult:
            out[-1] = (out[-1][0], b, mult)
        else:
            out.append((a, b, mult))
    return out


def write_conditions(frame: pd.DataFrame, path: Path) -> None:
    """Write a conditions frame as CSV (no index; ``end_s`` as written, never empty here)."""
    frame.to_csv(path, index=False, columns=list(CONDITIONS_COLUMNS))


# --- domain randomization --------------------------------------------------------------------


def _range(rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float]:
    """A sub-range of [lo, hi]: two uniform draws, sorted, rounded to 3 decimals."""
    a, b = np.sort(np.round(rng.uniform(lo, hi, 2), 3))
    return float(a), float(b)


def sample_drift_spec(rng: np.random.Generator | int = 0) -> DriftSpec:
    """A random :class:`DriftSpec` from wide ranges, for training on varied drift.

    Each range of the spec is itself drawn: node share within 0-0.6, slowdown
    within 0.1-1 (so some windows barely slow), windows cover 5-60% of the run in
    1-3 pieces, region share within 0-0.5, latency factor within 1-5, bandwidth
    factor within 0.1-1, and each tier's weight log-uniform in 1/4-4. About one
    draw in ten has no slowed node at all, so a policy also sees calm runs.
    """
    gen = as_generator(rng)
    calm = gen.uniform() < 0.1
    share = _range(gen, 0.0, 0.6)
    tiers = ("edge", "fog", "cloud")
    tier_w = np.round(np.exp(gen.uniform(math.log(0.25), math.log(4.0), len(tiers))), 3)
    return DriftSpec(
        node_share=(0.0, 0.0) if calm else share,
        slowdown=_range(gen, 0.1, 1.0),
        window_share=_range(gen, 0.05, 0.6),
        windows_per_node=tuple(sorted(int(x) for x in gen.integers(1, 4, 2))),  # type: ignore[arg-type]
        tier_weights=tuple(zip(tiers, (float(w) for w in tier_w), strict=True)),
        region_share=_range(gen, 0.0, 0.5),
        link_window_share=_range(gen, 0.05, 0.6),
        link_windows=tuple(sorted(int(x) for x in gen.integers(1, 4, 2))),  # type: ignore[arg-type]
        latency_factor=_range(gen, 1.0, 5.0),
        bandwidth_factor=_range(gen, 0.1, 1.0),
    )


def sample_drift(
    cluster: Cluster, horizon_s: float, rng: np.random.Generator | int = 0
) -> pd.DataFrame:
    """Conditions from a random spec (:func:`sample_drift_spec`), both from ``rng``.

    For training: call it per episode with the episode's generator, so the
    learned policy meets a new drift pattern every time.
    """
    gen = as_generator(rng)
    return make_conditions(cluster, horizon_s, sample_drift_spec(gen), gen)


def sample_mix_shift(rng: np.random.Generator | int = 0, n_kinds: int = 4) -> MixShift:
    """A random :class:`MixShift` for ``n_kinds`` kinds: a Dirichlet(1) second mix, a
    work scale log-uniform in 1/2-2, a random shape and 0.5-3 cycles."""
    gen = as_generator(rng)
    probs = np.round(gen.dirichlet(np.ones(n_kinds)), 6)
    probs[-1] = 1.0 - probs[:-1].sum()
    return MixShift(
        kind_probs=tuple(float(x) for x in np.maximum(probs, 0.0)),
        work_scale=float(np.round(np.exp(gen.uniform(math.log(0.5), math.log(2.0))), 3)),
        shape=MIX_SHAPES[int(gen.integers(len(MIX_SHAPES)))],
        cycles=float(np.round(gen.uniform(0.5, 3.0), 3)),
    )
