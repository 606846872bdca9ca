"""Synthetic IoT sensing workloads.

The arrival stream mixes two sources, built on a nominal time axis whose unit
is the mean inter-arrival gap (so ``n`` tasks span about ``n`` units):

* **periodic sensor reports**: a fixed population of sensors, each in one
  region, reporting with its own period (log-normally spread) and phase, with
  Gaussian jitter. A sensor's reports share its task kind and priority.
* **event-driven bursts**: a Hawkes self-exciting process, simulated through its
  cluster (branching) representation: *immigrant* events arrive as a Poisson
  process whose rate follows a daily cycle (a sinusoid, compressed so that the
  run sees ``n_cycles`` cycles), and every event spawns ``Poisson(branching)``
  children after exponential delays, in the same region. One generation is
  one vectorised NumPy step.

The first ``n`` arrivals in time order are kept. Each task then gets a kind
(filter, aggregate, detect, compress; an optional :class:`MixShift` moves the
mix towards a second one over the run) with its own heavy-tailed (log-normal)
data size and work, correlated in log space, clipped so that the task fits the
memory of the largest node; a priority class; and a deadline that is a
priority-dependent factor times its service time on a *reference node*
(median speed and bandwidth of the cluster, median latency from its region)
plus transfer. Finally the time axis is stretched so that the realised load,
``sum(work_gi) / (last arrival - first arrival) / cluster capacity``, equals
the target exactly (to rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster, Workload
from hybridsched.workload.clusters import as_generator

__all__ = [
    "DEFAULT_KINDS",
    "KIND_NAMES",
    "MIX_SHAPES",
    "KindProfile",
    "MixShift",
    "WorkloadParams",
    "generate_workload",
    "validate_load",
    "validate_n_tasks",
]

KIND_NAMES: tuple[str, ...] = ("filter", "aggregate", "detect", "compress")
"""Names of the task kinds of :data:`DEFAULT_KINDS`; the ``kind`` column is an index here."""


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _unit(owner: str, name: str, v: object, closed: bool) -> None:
    ok = _finite(v) and 0 <= v and (v <= 1 if closed else v < 1)  # type: ignore[operator]
    if not ok:
        rule = "[0, 1]" if closed else "[0, 1)"
        raise ConfigError(f"{owner}.{name}: must be a number in {rule}, got {_plain(v)}")


def _probs(owner: str, name: str, p: tuple[float, ...], n: int | None, what: str) -> None:
    """Refuse ``p`` unless it is a tuple of ``n`` (None: any number of) probabilities."""
    ok = (
        isinstance(p, tuple)
        and len(p) == (n if n is not None else max(len(p), 1))
        and all(_finite(x) and x >= 0 for x in p)
        and abs(sum(p) - 1.0) <= 1e-9
    )
    if not ok:
        count = "" if n is None else f"{n} "
        raise ConfigError(
            f"{owner}.{name}: must be {count}probabilities (one per {what}) >= 0 summing to 1, "
            f"got {_plain(p)}"
        )


@dataclass(frozen=True)
class KindProfile:
    """Data, work and memory profile of one task kind (log-normal sizes)."""

    data_median_mb: float
    """Median input data size, MB."""
    data_sigma: float
    """Log-space standard deviation of the data size, dimensionless."""
    work_median_gi: float
    """Median compute demand, GI."""
    work_sigma: float
    """Log-space standard deviation of the work, dimensionless."""
    memory_base_mb: float
    """Memory needed regardless of the data, MB."""
    memory_per_data: float
    """Extra memory per MB of input data, MB/MB."""

    def __post_init__(self) -> None:
        for name in ("data_median_mb", "work_median_gi"):
            v = getattr(self, name)
            if not _finite(v) or v <= 0:
                raise ConfigError(
                    f"KindProfile.{name}: must be a finite number > 0, got {_plain(v)}"
                )
        for name in ("data_sigma", "work_sigma", "memory_base_mb", "memory_per_data"):
            v = getattr(self, name)
            if not _finite(v) or v < 0:
                raise ConfigError(
                    f"KindProfile.{name}: must be a finite number >= 0, got {_plain(v)}"
                )


DEFAULT_KINDS: tuple[KindProfile, ...] = (
    # filter: small readings, light work.
    KindProfile(1.0, 1.0, 0.2, 0.8, 64.0, 1.0),
    # aggregate: windows of readings, moderate work.
    KindProfile(8.0, 1.0, 1.0, 1.0, 128.0, 2.0),
    # detect: images or clips through an ML model, heavy work and a model in memory.
    KindProfile(4.0, 0.8, 8.0, 1.0, 512.0, 4.0),
    # compress: large blobs, work roughly proportional to the data.
    KindProfile(32.0, 1.2, 3.0, 1.2, 256.0, 3.0),
)
"""Profiles of the kinds named in :data:`KIND_NAMES`, in that order."""


MIX_SHAPES: tuple[str, ...] = ("sine", "step", "ramp")
"""Shapes of a :class:`MixShift`'s weight over the run."""


@dataclass(frozen=True)
class MixShift:
    """A task mix that drifts over the run, between the workload's own and a second one.

    At the position ``x`` in [0, 1] of a task in the run (its arrival over the
    last arrival), the shift has a weight ``lam(x)`` in [0, 1]. With probability
    ``lam(x)`` the task's kind is redrawn from ``kind_probs``, so the mix at ``x``
    is ``(1 - lam) * own mix + lam * kind_probs``; every task's work is then
    multiplied by ``1 + lam * (work_scale - 1)``. The weight follows ``shape``:

    * ``sine``: ``(1 - cos(2 pi cycles x)) / 2``, from the own mix at the start to
      the second mix at the middle of each cycle and back;
    * ``step``: the sine rounded to 0 or 1 (abrupt switches, two per cycle);
    * ``ramp``: ``x``, one slow change from start to end (``cycles`` is not used).

    The load is still met exactly: the time axis is stretched after the shift.
    """

    kind_probs: tuple[float, ...] = (0.1, 0.1, 0.6, 0.2)
    """The second mix: probability of each kind, one per entry of ``WorkloadParams.kinds``."""
    work_scale: float = 1.0
    """Work multiplier at full weight, > 0 (1: sizes do not drift)."""
    shape: str = "sine"
    """How the weight moves over the run: one of :data:`MIX_SHAPES`."""
    cycles: float = 1.0
    """Number of there-and-back cycles of ``sine`` and ``step`` over the run, > 0."""

    def __post_init__(self) -> None:
        m = "MixShift"
        _probs(m, "kind_probs", self.kind_probs, None, "kind")
        for name in ("work_scale", "cycles"):
            v = getattr(self, name)
            if not _finite(v) or v <= 0:
                raise ConfigError(f"{m}.{name}: must be a finite number > 0, got {_plain(v)}")
        if self.shape not in MIX_SHAPES:
            raise ConfigError(
                f"{m}.shape: must be one of {', '.join(MIX_SHAPES)}, got {self.shape!r}"
            )

    def weight(self, x: np.ndarray) -> np.ndarray:
        """The weight ``lam(x)`` of the second mix at run positions ``x`` in [0, 1]."""
        if self.shape == "ramp":
            return np.clip(x, 0.0, 1.0)
        lam = 0.5 * (1.0 - np.cos(2.0 * np.pi * self.cycles * x))
        return np.where(lam >= 0.5, 1.0, 0.0) if self.shape == "step" else lam


@dataclass(frozen=True)
class WorkloadParams:
    """Shape of a synthetic IoT workload; the scale comes from ``n_tasks`` and ``load``."""

    periodic_fraction: float = 0.5
    """Share of the nominal arrival rate from periodic sensor reports, in [0, 1]."""
    n_sensors: int = 2000
    """Number of periodic sensors, count."""
    period_sigma: float = 0.5
    """Log-space spread of the sensors' periods, dimensionless."""
    jitter: float = 0.05
    """Standard deviation of a report's time jitter, as a fraction of its period."""
    branching: float = 0.5
    """Hawkes branching ratio (mean direct children per event), in [0, 1)."""
    burst_decay: float = 5.0
    """Mean delay of a child event after its parent, in mean inter-arrival gaps."""
    daily_amplitude: float = 0.5
    """Relative amplitude of the daily cycle of event immigrants, in [0, 1]."""
    n_cycles: float = 1.0
    """Number of daily cycles over the run, > 0."""
    region_skew: float = 0.5
    """Zipf exponent of region popularity (0: uniform; region 0 busiest), >= 0."""
    periodic_kind_probs: tuple[float, ...] = (0.45, 0.35, 0.05, 0.15)
    """Probability of each kind for a sensor, one per entry of ``kinds``."""
    event_kind_probs: tuple[float, ...] = (0.1, 0.1, 0.7, 0.1)
    """Probability of each kind for an event task, one per entry of ``kinds``."""
    periodic_priority_probs: tuple[float, ...] = (0.1, 0.5, 0.4)
    """Probability of each priority class (0 first) for a sensor."""
    event_priority_probs: tuple[float, ...] = (0.5, 0.35, 0.15)
    """Probability of each priority class (0 first) for an event task."""
    deadline_factors: tuple[float, ...] = (2.0, 4.0, 10.0)
    """Deadline per priority class, as a multiple of the reference service + transfer time."""
    deadline_jitter: float = 0.5
    """Deadlines are further multiplied by Uniform(1, 1 + this), dimensionless."""
    work_data_corr: float = 0.5
    """Correlation of log work and log data size, in [-1, 1]."""
    work_clip: float = 200.0
    """Work and data are clipped at this multiple of their kind's median, >= 1."""
    kinds: tuple[KindProfile, ...] = field(default=DEFAULT_KINDS)
    """Profiles of the task kinds; the ``kind`` column indexes this tuple."""
    mix_shift: MixShift | None = None
    """A task mix drifting over the run; None: the mix is the same throughout."""

    def __post_init__(self) -> None:
        w = "WorkloadParams"
        _unit(w, "periodic_fraction", self.periodic_fraction, closed=True)
        _unit(w, "branching", self.branching, closed=False)
        _unit(w, "daily_amplitude", self.daily_amplitude, closed=True)
        if isinstance(self.n_sensors, bool) or not isinstance(self.n_sensors, int):
            raise ConfigError(f"{w}.n_sensors: must be an integer >= 1, got {self.n_sensors!r}")
        if self.n_sensors < 1:
            raise ConfigError(f"{w}.n_sensors: must be an integer >= 1, got {self.n_sensors!r}")
        for name in ("period_sigma", "jitter", "region_skew", "deadline_jitter"):
            v = getattr(self, name)
            if not _finite(v) or v < 0:
                raise ConfigError(f"{w}.{name}: must be a finite number >= 0, got {_plain(v)}")
        for name in ("burst_decay", "n_cycles"):
            v = getattr(self, name)
            if not _finite(v) or v <= 0:
                raise ConfigError(f"{w}.{name}: must be a finite number > 0, got {_plain(v)}")
        if not _finite(self.work_data_corr) or abs(self.work_data_corr) > 1:
            raise ConfigError(
                f"{w}.work_data_corr: must be in [-1, 1], got {self.work_data_corr!r}"
            )
        if not _finite(self.work_clip) or self.work_clip < 1:
            raise ConfigError(
                f"{w}.work_clip: must be a finite number >= 1, got {self.work_clip!r}"
            )
        if not isinstance(self.kinds, tuple) or not self.kinds:
            raise ConfigError(f"{w}.kinds: must be a non-empty tuple of KindProfile")
        if not all(isinstance(k, KindProfile) for k in self.kinds):
            raise ConfigError(f"{w}.kinds: every entry must be a KindProfile, got {self.kinds!r}")
        n_kinds = len(self.kinds)
        _probs(w, "periodic_kind_probs", self.periodic_kind_probs, n_kinds, "kinds")
        _probs(w, "event_kind_probs", self.event_kind_probs, n_kinds, "kinds")
        n_prio = len(self.deadline_factors)
        if n_prio == 0 or not all(_finite(f) and f > 0 for f in self.deadline_factors):
            raise ConfigError(
                f"{w}.deadline_factors: must be a non-empty tuple of finite numbers > 0, "
                f"got {self.deadline_factors!r}"
            )
        _probs(w, "periodic_priority_probs", self.periodic_priority_probs, n_prio, "priorities")
        _probs(w, "event_priority_probs", self.event_priority_probs, n_prio, "priorities")
        if self.mix_shift is not None:
            if not isinstance(self.mix_shift, MixShift):
                raise ConfigError(
                    f"{w}.mix_shift: must be a MixShift or None, got {self.mix_shift!r}"
                )
            _probs(w, "mix_shift.kind_probs", self.mix_shift.kind_probs, n_kinds, "kinds")


MAX_TASKS = 50_000_000
"""Most tasks one generated workload may have (about 4 GB of columns)."""
LOAD_RANGE = (1e-6, 1e6)
"""Accepted target loads: far outside, arrival times overflow the model's time bound."""


def validate_n_tasks(n_tasks: object) -> int:
    """Return ``n_tasks`` as an int, or raise :class:`ConfigError` unless it is an integer
    from 1 to :data:`MAX_TASKS`."""
    if isinstance(n_tasks, bool) or not isinstance(n_tasks, (int, np.integer)) or n_tasks < 1:
        raise ConfigError(f"n_tasks: must be an integer >= 1, got {_plain(n_tasks)}")
    if n_tasks > MAX_TASKS:
        raise ConfigError(
            f"n_tasks: must be at most {MAX_TASKS:,} (about 4 GB of columns), got {int(n_tasks):,}"
        )
    return int(n_tasks)


def _plain(v: object) -> str:
    return repr(v.item()) if isinstance(v, np.generic) else repr(v)


def validate_load(load: object) -> float:
    """Return ``load`` as a float, or raise :class:`ConfigError` unless it is finite and > 0."""
    ok = (
        isinstance(load, (int, float, np.integer, np.floating))
        and not isinstance(load, bool)
        and math.isfinite(float(load))
        and float(load) > 0
    )
    if not ok:
        raise ConfigError(
            "load: must be a finite number > 0 (mean offered work per second / cluster "
            f"capacity), got {_plain(load)}"
        )
    if not LOAD_RANGE[0] <= float(load) <= LOAD_RANGE[1]:
        raise ConfigError(
            f"load: must be from {LOAD_RANGE[0]:g} to {LOAD_RANGE[1]:g} (beyond, arrival times "
            f"leave the model's bounds), got {float(load):g}"
        )
    return float(load)


def _region_weights(n_regions: int, skew: float) -> np.ndarray:
    w = np.arange(1, n_regions + 1, dtype=np.float64) ** -skew
    return w / w.sum()


def _periodic(
    rng: np.random.Generator, p: WorkloadParams, horizon: float, weights: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Sensor reports in [0, horizon): times, regions, kinds, priorities."""
    rate = p.periodic_fraction
    if rate == 0.0:
        empty_i = np.zeros(0, dtype=np.int64)
        return np.zeros(0), empty_i, empty_i, empty_i
    s = p.n_sensors
    raw = rng.lognormal(0.0, p.period_sigma, s)
    # Normalise so that the sensors' rates add up to exactly `rate` reports per gap.
    period = raw * (np.sum(1.0 / raw) / rate)
    phase = rng.uniform(0.0, period)
    region = rng.choice(weights.shape[0], size=s, p=weights)
    kind = rng.choice(len(p.periodic_kind_probs), size=s, p=p.periodic_kind_probs)
    prio = rng.choice(len(p.periodic_priority_probs), size=s, p=p.periodic_priority_probs)
    counts = np.where(phase < horizon, np.floor((horizon - phase) / period) + 1, 0)
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    sensor = np.repeat(np.arange(s), counts)
    k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    per = period[sensor]
    t = phase[sensor] + k * per + rng.normal(0.0, 1.0, total) * (p.jitter * per)
    t = np.abs(t)  # reflect the few reports jittered before time 0
    keep = t < horizon
    sensor = sensor[keep]
    return t[keep], region[sensor], kind[sensor], prio[sensor]


def _events(
    rng: np.random.Generator,
    p: WorkloadParams,
    horizon: float,
    cycle_span: float,
    weights: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Hawkes events in [0, horizon): times, regions, kinds, priorities."""
    event_rate = 1.0 - p.periodic_fraction
    base = event_rate * (1.0 - p.branching)
    a = p.daily_amplitude
    if base == 0.0:
        empty_i = np.zeros(0, dtype=np.int64)
        return np.zeros(0), empty_i, empty_i, empty_i
    # Immigrants: inhomogeneous Poisson by thinning a homogeneous one at the peak rate.
    # The cycle starts at its trough ("night") and peaks mid-cycle.
    m = rng.poisson(base * (1.0 + a) * horizon)
    t = rng.uniform(0.0, horizon, m)
    shape = 1.0 + a * np.sin(2.0 * np.pi * p.n_cycles * t / cycle_span - 0.5 * np.pi)
    t = t[rng.uniform(0.0, 1.0 + a, m) < shape]
    r = rng.choice(weights.shape[0], size=t.shape[0], p=weights)
    times, regions = [t], [r]
    # Children, one generation at a time (the branching representation of a Hawkes process).
    while t.shape[0] > 0 and p.branching > 0:
        kids = rng.poisson(p.branching, t.shape[0])
        t = np.repeat(t, kids)
        r = np.repeat(r, kids)
        t = t + rng.exponential(p.burst_decay, t.shape[0])
        keep = t < horizon
        t, r = t[keep], r[keep]
        times.append(t)
        regions.append(r)
    t_all = np.concatenate(times)
    n = t_all.shape[0]
    kind = rng.choice(len(p.event_kind_probs), size=n, p=p.event_kind_probs)
    prio = rng.choice(len(p.event_priority_probs), size=n, p=p.event_priority_probs)
    return t_all, np.concatenate(regions), kind, prio


def _arrival_shape(
    rng: np.random.Generator, p: WorkloadParams, n: int, n_regions: int
) -> tuple[np.ndarray, ...]:
    """The first ``n`` arrivals of the mixed process, sorted: times, regions, kinds, priorities."""
    weights = _region_weights(n_regions, p.region_skew)
    horizon = 1.2 * n + 20.0
    # A bursty Hawkes sample can fall short of n; then draw again over a longer horizon.
    for _ in range(64):
        parts = list(
            zip(
                _periodic(rng, p, horizon, weights),
                _events(rng, p, horizon, float(n), weights),
                strict=True,
            )
        )
        t, region, kind, prio = (np.concatenate(x) for x in parts)
        if t.shape[0] >= n:
            order = np.argsort(t, kind="stable")[:n]
            return t[order], region[order], kind[order], prio[order]
        horizon *= 1.5
    raise RuntimeError(f"could not draw {n} arrivals")  # pragma: no cover - needs 1.5**64 n


def generate_workload(
    cluster: Cluster,
    params: WorkloadParams | None = None,
    n_tasks: int = 1000,
    load: float = 0.7,
    rng: np.random.Generator | int = 0,
) -> Workload:
    """Draw an IoT workload for ``cluster`` at a target load.

    Load is offered work over capacity: the arrival times are scaled so that
    ``sum(work_gi) / (arrival_s.max() - arrival_s.min()) == load * cluster.capacity_gi_s``
    for the drawn sample (to rounding). With a single task, ``arrival_s`` is 0.

    Args:
        cluster: the cluster the workload is for (regions, memory, capacity).
        params: the workload's shape (default: :class:`WorkloadParams` ``()``).
        n_tasks: number of tasks, >= 1.
        load: target load rho, > 0 (above 1 overloads the cluster).
        rng: a generator, or an integer seed.

    Returns:
        The validated workload: ``task_id`` 0..n-1 in arrival order, ``arrival_s``
        starting at 0, and an extra int column ``kind`` (index into ``params.kinds``).

    Raises:
        ConfigError: ``params``, ``n_tasks``, ``load`` or ``rng`` is invalid.
    """
    params = WorkloadParams() if params is None else params
    if not isinstance(params, WorkloadParams):
        raise ConfigError(f"params: must be a WorkloadParams, got {params!r}")
    n = validate_n_tasks(n_tasks)
    rho = validate_load(load)
    gen = as_generator(rng)

    t, region, kind, prio = _arrival_shape(gen, params, n, cluster.n_regions)
    shift = params.mix_shift
    if shift is not None:
        # drawn only with a shift: workloads without one stay the same, bit for bit
        span0 = float(t[-1] - t[0])
        lam = shift.weight((t - t[0]) / span0 if span0 > 0 else np.zeros(n))
        redraw = gen.uniform(0.0, 1.0, n) < lam
        second = gen.choice(len(shift.kind_probs), size=n, p=shift.kind_probs)
        kind = np.where(redraw, second, kind)

    # Heavy-tailed sizes: log-normal per kind, work and data correlated in log space.
    kp = params.kinds
    d_med = np.array([k.data_median_mb for k in kp])[kind]
    d_sig = np.array([k.data_sigma for k in kp])[kind]
    w_med = np.array([k.work_median_gi for k in kp])[kind]
    w_sig = np.array([k.work_sigma for k in kp])[kind]
    m_base = np.array([k.memory_base_mb for k in kp])[kind]
    m_per = np.array([k.memory_per_data for k in kp])[kind]
    z = gen.standard_normal((2, n))
    c = params.work_data_corr
    data = d_med * np.exp(d_sig * z[0])
    work = w_med * np.exp(w_sig * (c * z[0] + math.sqrt(1.0 - c * c) * z[1]))
    clip = params.work_clip
    work = np.minimum(work, w_med * clip)
    if shift is not None and shift.work_scale != 1.0:
        work = work * (1.0 + lam * (shift.work_scale - 1.0))
    max_mem = float(np.max(cluster.memory_mb))
    # Clip data so that the task's memory fits the largest node.
    with np.errstate(divide="ignore"):
        data_cap = np.where(m_per > 0, (max_mem - m_base) / m_per, np.inf)
    data = np.clip(data, 0.0, np.minimum(d_med * clip, np.maximum(data_cap, 0.0)))
    memory = np.minimum(m_base + m_per * data, max_mem)

    # Deadlines: a priority-dependent multiple of service + transfer on a reference node.
    ref_speed = float(np.median(cluster.speed))
    ref_bw = float(np.median(cluster.bandwidth_mb_s))
    ref_lat = np.median(cluster.latency_s, axis=0)[region]
    ref_time = work / ref_speed + ref_lat + data / ref_bw
    factor = np.asarray(params.deadline_factors, dtype=np.float64)[prio]
    deadline = factor * ref_time * gen.uniform(1.0, 1.0 + params.deadline_jitter, n)

    # Stretch the nominal time axis to the target load.
    capacity = cluster.capacity_gi_s
    t = t - t[0]
    span = float(t[-1])
    if span > 0:
        target_span = float(np.sum(work)) / (rho * capacity)
        arrival = t * (target_span / span)
    else:
        arrival = np.zeros(n)

    return Workload.build(
        {
            "task_id": np.arange(n, dtype=np.int64),
            "arrival_s": arrival,
            "region": region.astype(np.int64),
            "data_mb": data,
            "work_gi": work,
            "memory_mb": memory,
            "deadline_s": deadline,
            "priority": prio.astype(np.int64),
            "kind": kind.astype(np.int64),
        },
        cluster=cluster,
        source="<generated workload>",
    )
