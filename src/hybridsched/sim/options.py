"""Options beyond the base model: node failures, estimate noise and a congested network.

Every option is off by default; with all of them off the simulator is the exact
base model of docs/MODEL.md (:func:`hybridsched.sim.simulate` with ``options=``
then runs the base engine). See ``docs/OPTIONS.md``.

* :class:`SimOptions`: the typed, validated options of one run.
* :class:`FailureTrace` and :func:`read_failures`: explicit node outages from a
  CSV or Parquet file with columns ``node, down_s, up_s``.
* :func:`parse_tier_values`: the CLI's ``--mtbf`` / ``--mttr`` syntax.
* :func:`estimate_work`: what the schedulers see of each task's work.
* :func:`option_seeds`: the independent random streams the options draw from.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybridsched.errors import ConfigError, ValidationError
from hybridsched.model import MAX_TIME_S, Cluster, Workload, parse_number, table_rows

ALL_TIERS = "*"
"""Key of a per-tier value that applies to every tier (a bare number on the CLI)."""

WORK_EST_COLUMN = "work_est_gi"
"""Workload column that, when present, holds the schedulers' work estimates, GI."""

DEFAULT_MAX_RETRIES = 100
"""Default of :attr:`SimOptions.max_retries`."""

FAILURE_COLUMNS: tuple[str, ...] = ("node", "down_s", "up_s")
"""The columns of a failures file."""


# ----------------------------------------------------------------------------
# explicit outages
# ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FailureTrace:
    """Node outages: node ``node[k]`` is down on ``[down_s[k], up_s[k])``.

    Built by :meth:`build` (or :func:`read_failures`): outages of one node do
    not overlap, outages that touch are merged, rows are sorted by
    ``(down_s, node)``. ``up_s = inf`` is a node that never comes back.
    """

    node: tuple[str, ...]
    """Node name per outage."""
    down_s: np.ndarray
    """Start of each outage, s (float64 >= 0)."""
    up_s: np.ndarray
    """End of each outage, s (> down_s; inf: the node never comes back)."""
    source: str = "<failures>"
    """Where the trace came from, for messages."""

    def __len__(self) -> int:
        return len(self.node)

    @classmethod
    def build(
        cls,
        columns: Mapping[str, Any],
        cluster: Cluster | None = None,
        source: str = "<failures>",
    ) -> FailureTrace:
        """Validate outage columns and build the trace.

        Args:
            columns: ``node`` (names), ``down_s`` and ``up_s`` (numbers; an empty
                ``up_s`` is a node that never comes back), one entry per outage.
            cluster: when given, every node name must be one of its nodes.
            source: the file name, used in messages.

        Raises:
            ValidationError: naming the source, the row (1-based, data rows),
                the column, the value and the rule.
        """
        needs = f"a failures file needs {', '.join(FAILURE_COLUMNS)}"
        table_rows(columns, FAILURE_COLUMNS, FAILURE_COLUMNS, needs, source)
        names = node_names(columns["node"], cluster, source)
        down, up = time_intervals(columns, "down_s", "up_s", source, "never comes back")
        # per node, in time order: refuse overlaps, merge outages that touch
        rows_of: dict[str, list[int]] = {}
        for k, name in enumerate(names):
            rows_of.setdefault(name, []).append(k)
        merged: list[tuple[float, str, float]] = []
        for name, rows in rows_of.items():
            rows.sort(key=lambda r: (down[r], up[r]))
            cur_down, cur_up, cur_row = down[rows[0]], up[rows[0]], rows[0]
            for r in rows[1:]:
                if down[r] < cur_up:
                    raise ValidationError(
                        f"{source}: row {r + 1}: the outage of node {name!r} on "
                        f"[{down[r]:g}, {up[r]:g}) overlaps the one at row {cur_row + 1} on "
                        f"[{cur_down:g}, {cur_up:g}); outages of one node must not overlap"
                    )
                if down[r] == cur_up:  # back up and down again at once: one outage
                    cur_up, cur_row = up[r], r
                    continue
                merged.append((cur_down, name, cur_up))
                cur_down, cur_up, cur_row = down[r], up[r], r
            merged.append((cur_down, name, cur_up))
        merged.sort()
        return cls(
            node=tuple(m[1] for m in merged),
            down_s=_readonly(np.asarray([m[0] for m in merged], dtype=np.float64)),
            up_s=_readonly(np.asarray([m[2] for m in merged], dtype=np.float64)),
            source=source,
        )

    def node_index(self, cluster: Cluster) -> np.ndarray:
        """Node index of each outage in ``cluster``.

        Raises:
            ConfigError: a node name the cluster does not have.
        """
        pos = {nm: j for j, nm in enumerate(cluster.node_names)}
        out = np.empty(len(self.node), dtype=np.int64)
        for k, nm in enumerate(self.node):
            if nm not in pos:
                raise ConfigError(
                    f"failures ({self.source}): node {nm!r} is not in cluster {cluster.name!r}"
                )
            out[k] = pos[nm]
        return out


def node_names(raw: Any, cluster: Cluster | None, source: str) -> list[str]:
    """The ``node`` column of an input file as names, each checked against ``cluster``.

    Raises:
        ValidationError: an empty cell, or a name the cluster does not have
            (naming the source, the row and the value).
    """
    names = []
    known = set(cluster.node_names) if cluster is not None else None
    for k, v in enumerate(raw):
        if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "":
            raise ValidationError(
                f"{source}: row {k + 1}, column node: must be a node name, got {_plain(v)}"
            )
        name = str(v).strip()
        if known is not None and name not in known:
            listed = ", ".join(cluster.node_names[:8]) + (", ..." if cluster.n_nodes > 8 else "")
            raise ValidationError(
                f"{source}: row {k + 1}, column node: unknown node {name!r}; the cluster's "
                f"nodes are {listed}"
            )
        names.append(name)
    return names


def time_intervals(
    columns: Mapping[str, Any], lo: str, hi: str, source: str, open_end: str
) -> tuple[np.ndarray, np.ndarray]:
    """Columns ``lo`` and ``hi`` of an input file as intervals ``[lo, hi)``, s.

    ``lo`` is finite, in ``[0, MAX_TIME_S]``; ``hi`` is > ``lo`` and at most
    ``MAX_TIME_S``, or empty or ``inf`` (``open_end`` says what that means).

    Raises:
        ValidationError: naming the source, the row, the column, the value and the rule.
    """
    start = _numbers(columns[lo], lo, source, empty=None)
    end = _numbers(columns[hi], hi, source, empty=np.inf)
    for k in range(start.shape[0]):
        if not (np.isfinite(start[k]) and 0 <= start[k] <= MAX_TIME_S):
            raise ValidationError(
                f"{source}: row {k + 1}, column {lo}: must be a finite number of seconds "
                f">= 0 and <= {MAX_TIME_S:g}, got {_plain(start[k])}"
            )
        if not end[k] > start[k]:
            raise ValidationError(
                f"{source}: row {k + 1}, column {hi}: must be > {lo} ({_plain(start[k])}) or "
                f"empty ({open_end}), got {_plain(end[k])}"
            )
        if not (end[k] <= MAX_TIME_S or end[k] == np.inf):
            raise ValidationError(
                f"{source}: row {k + 1}, column {hi}: must be at most {MAX_TIME_S:g} seconds "
                f"or empty ({open_end}), got {_plain(end[k])}"
            )
    return start, end


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _plain(v: Any) -> str:
    """A number as a user wrote it (``5.0``, not ``np.float64(5.0)``)."""
    return repr(v.item()) if isinstance(v, np.generic) else repr(v)


def _numbers(raw: Any, name: str, source: str, empty: float | None) -> np.ndarray:
    """Column ``name`` as float64; empty cells become ``empty`` (``None``: refused)."""
    arr = np.asarray(raw)
    if arr.dtype.kind == "b":
        raise ValidationError(f"{source}: column {name}: must be numbers, got booleans")
    if arr.dtype.kind in "iuf":
        out = arr.astype(np.float64)
        blank = np.isnan(out)
    else:
        out = np.empty(arr.shape[0], dtype=np.float64)
        blank = np.zeros(arr.shape[0], dtype=bool)
        for k, v in enumerate(arr):
            if v is None or (isinstance(v, str) and v.strip() == ""):
                blank[k] = True
                continue
            try:
                out[k] = parse_number(v)
            except (TypeError, ValueError):
                raise ValidationError(
                    f"{source}: row {k + 1}, column {name}: must be a number, got {_plain(v)}"
                ) from None
            if isinstance(v, str) and np.isnan(out[k]):  # text "nan" is not an empty cell
                raise ValidationError(
                    f"{source}: row {k + 1}, column {name}: must be a number, got nan"
                )
            blank[k] = np.isnan(out[k])  # a missing value of a pandas frame
    if blank.any():
        if empty is None:
            k = int(np.argmax(blank))
            raise ValidationError(
                f"{source}: row {k + 1}, column {name}: must be a number, got an empty value"
            )
        out[blank] = empty
    return out


def read_failures(path: str | os.PathLike[str], cluster: Cluster | None = None) -> FailureTrace:
    """Read and validate a failures file (CSV or Parquet: ``node, down_s, up_s``).

    Args:
        path: the file.
        cluster: when given, node names are checked against it.

    Raises:
        ValidationError: the file is missing or unreadable, or a row breaks a rule
            (the message names the file, the row and the column).
    """
    from hybridsched.io import read_table

    p = Path(path)
    return FailureTrace.build(read_table(p, refuse_nan=True), cluster=cluster, source=str(p))


# ----------------------------------------------------------------------------
# the options
# ----------------------------------------------------------------------------


def parse_tier_values(text: str, option: str) -> dict[str, float]:
    """Parse ``"3600"`` (every tier) or ``"edge=3600,fog=86400"`` into tier -> seconds.

    Raises:
        ConfigError: naming the option, the bad item and the accepted forms.
    """
    out: dict[str, float] = {}
    for item in (s.strip() for s in str(text).split(",")):
        if not item:
            continue
        tier, eq, value = item.rpartition("=")
        key = tier.strip() if eq else ALL_TIERS
        try:
            out[key] = float(value)
        except ValueError:
            raise ConfigError(
                f"{option}: cannot read {item!r}; use seconds for every tier (3600) or "
                f"TIER=SECONDS pairs separated by commas (edge=3600,fog=86400)"
            ) from None
    if not out:
        raise ConfigError(f"{option}: expected seconds or TIER=SECONDS pairs, got {text!r}")
    return out


TierSeconds = float | Mapping[str, float] | tuple[tuple[str, float], ...] | None
"""Seconds for every tier (a number), per tier (a mapping), or normalised ``(tier, s)`` pairs."""


MIN_FAILURE_MEAN_S = 0.01
"""Smallest accepted mean time to failure or to repair, s."""
MAX_REPAIR_MEAN_S = 1e9
"""Largest accepted mean time to repair, s (the model's time bound)."""


def _tier_map(value: Any, name: str) -> tuple[tuple[str, float], ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = {ALL_TIERS: float(value)}
    if not isinstance(value, Mapping):
        if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
            value = dict(value)
        else:
            raise ConfigError(
                f"options.{name}: must be seconds (a number) or a mapping tier -> seconds, "
                f"got {value!r}"
            )
    if not value:
        raise ConfigError(f"options.{name}: must name at least one tier, got an empty mapping")
    out = []
    for tier, v in value.items():
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        if not ok:
            raise ConfigError(
                f"options.{name}[{tier!r}]: must be a finite number of seconds > 0, got {_plain(v)}"
            )
        # bounds that keep a run finite and its arithmetic exact: a mean below 10 ms makes
        # millions of failure events per simulated second; a repair beyond 1e9 s (the time
        # bound of docs/MODEL.md) pushes event times past what float64 resolves
        if v < MIN_FAILURE_MEAN_S or (name == "mttr_s" and v > MAX_REPAIR_MEAN_S):
            raise ConfigError(
                f"options.{name}[{tier!r}]: must be >= {MIN_FAILURE_MEAN_S:g} s"
                + (f" and <= {MAX_REPAIR_MEAN_S:g} s" if name == "mttr_s" else "")
                + f", got {_plain(v)}"
            )
        out.append((str(tier), float(v)))
    return tuple(sorted(out))


MAX_CV = 100.0
"""Largest accepted coefficient of variation: beyond, lognormal draws overflow float64."""


def _cv(value: Any, name: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0:
        raise ConfigError(
            f"options.{name}: must be a finite number >= 0 (a CV), got {_plain(value)}"
        )
    if value > MAX_CV:
        raise ConfigError(
            f"options.{name}: must be at most {MAX_CV:g} (a CV; larger draws overflow), "
            f"got {_plain(value)}"
        )


@dataclass(frozen=True)
class SimOptions:
    """Faults, uncertainty and congestion: every field off by default.

    Failures come either from an explicit :class:`FailureTrace` or from
    exponential times to failure and to repair per node tier (``mtbf_s`` and
    ``mttr_s``, both required together); not both.
    """

    failures: FailureTrace | None = field(default=None, compare=False)
    """Explicit node outages; ``None``: no trace."""
    mtbf_s: TierSeconds = None
    """Mean time between failures per tier, s: a number (every tier) or tier -> s;
    normalised to sorted ``(tier, s)`` pairs. Tiers left out never fail."""
    mttr_s: TierSeconds = None
    """Mean time to repair per tier, s, same form and tiers as ``mtbf_s``."""
    estimate_cv: float | None = None
    """Estimate noise: ``None`` off; else the schedulers see the workload's
    ``work_est_gi`` column when it has one, or true work x lognormal noise with
    mean 1 and this coefficient of variation (unitless)."""
    latency_jitter: float = 0.0
    """Coefficient of variation of a lognormal factor (mean 1) on each transfer's latency."""
    shared_links: bool = False
    """Each node's ingress bandwidth is shared fairly by the transfers in flight to it."""
    max_retries: int = DEFAULT_MAX_RETRIES
    """A task interrupted by failures more than this many times is rejected
    (reason ``retry limit``): with failures much more frequent than tasks are
    long, no attempt would ever finish. An integer >= 0; no option on its own."""
    conditions: Any = field(default=None, compare=False)
    """Windows of node speed, latency and bandwidth
    (:class:`~hybridsched.sim.conditions.Conditions`); ``None``: nominal throughout."""
    estimates: str = "nominal"
    """The schedulers' execution and transfer estimates: ``nominal`` (the cluster
    file's speed, latency, bandwidth) or ``observed`` (corrected by what completed
    and running tasks revealed; docs/MODEL.md section 12)."""

    def __post_init__(self) -> None:
        if self.failures is not None and not isinstance(self.failures, FailureTrace):
            raise ConfigError(
                f"options.failures: must be a FailureTrace (see read_failures), "
                f"got {type(self.failures).__name__}"
            )
        mtbf = _tier_map(self.mtbf_s, "mtbf_s")
        mttr = _tier_map(self.mttr_s, "mttr_s")
        object.__setattr__(self, "mtbf_s", mtbf)
        object.__setattr__(self, "mttr_s", mttr)
        if (mtbf is None) != (mttr is None):
            given, other = ("mtbf_s", "mttr_s") if mtbf is not None else ("mttr_s", "mtbf_s")
            raise ConfigError(f"options.{other}: must be given with options.{given}, got None")
        if mtbf is not None and mttr is not None:
            a = [t for t, _ in mtbf]
            b = [t for t, _ in mttr]
            if a != b:
                raise ConfigError(
                    f"options.mttr_s: must name the same tiers as mtbf_s ({', '.join(a)}), "
                    f"got {', '.join(b)}"
                )
            if self.failures is not None:
                raise ConfigError(
                    "options.failures: give either a failures trace or mtbf_s/mttr_s, not both"
                )
        if self.conditions is not None:
            from hybridsched.sim.conditions import Conditions

            if not isinstance(self.conditions, Conditions):
                raise ConfigError(
                    f"options.conditions: must be a Conditions (see read_conditions), "
                    f"got {type(self.conditions).__name__}"
                )
        if self.estimates not in ("nominal", "observed"):
            raise ConfigError(
                f"options.estimates: must be one of nominal, observed, got {self.estimates!r}"
            )
        if self.estimate_cv is not None:
            _cv(self.estimate_cv, "estimate_cv")
        _cv(self.latency_jitter, "latency_jitter")
        r = self.max_retries
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 0:
            raise ConfigError(f"options.max_retries: must be an integer >= 0, got {_plain(r)}")
        if not isinstance(self.shared_links, (bool, np.bool_)):
            raise ConfigError(
                f"options.shared_links: must be True or False, got {self.shared_links!r}"
            )

    @property
    def failures_on(self) -> bool:
        """Nodes can fail (a trace or MTBF/MTTR)."""
        return self.failures is not None or self.mtbf_s is not None

    @property
    def estimates_on(self) -> bool:
        """The schedulers see estimates instead of the true work."""
        return self.estimate_cv is not None

    @property
    def network_on(self) -> bool:
        """Transfers are re-timed (jitter or shared links)."""
        return self.latency_jitter > 0 or bool(self.shared_links)

    @property
    def conditions_on(self) -> bool:
        """Node speed, latency or bandwidth change in time windows."""
        return self.conditions is not None

    @property
    def needs_engine(self) -> bool:
        """The run needs the options engine (failures, network or conditions); estimates
        alone do not."""
        return self.failures_on or self.network_on or self.conditions_on or self.observed

    @property
    def observed(self) -> bool:
        """The schedulers' estimates follow observations."""
        return self.estimates == "observed"

    @property
    def active(self) -> bool:
        """Any option is on; ``False`` is exactly the base model."""
        return self.failures_on or self.estimates_on or self.needs_engine

    def tier_rates(self, cluster: Cluster) -> tuple[np.ndarray, np.ndarray]:
        """MTBF and MTTR per node of ``cluster``, s (inf MTBF: the node never fails).

        Raises:
            ConfigError: a tier the cluster does not have.
        """
        n = cluster.n_nodes
        mtbf = np.full(n, np.inf)
        mttr = np.full(n, np.inf)
        if self.mtbf_s is None or self.mttr_s is None:
            return mtbf, mttr
        tiers = np.asarray(cluster.tiers, dtype=object)
        known = sorted(set(cluster.tiers))
        pairs = list(zip(self.mtbf_s, self.mttr_s, strict=True))
        # the catch-all first, so that a named tier wins over it
        pairs.sort(key=lambda p: p[0][0] != ALL_TIERS)
        for (tier, f), (_, r) in pairs:
            if tier == ALL_TIERS:
                sel = np.ones(n, dtype=bool)
            else:
                sel = tiers == tier
                if not sel.any():
                    raise ConfigError(
                        f"options.mtbf_s: tier {tier!r} is not in cluster {cluster.name!r}; its "
                        f"tiers are {', '.join(repr(t) for t in known)}"
                    )
            mtbf[sel] = f
            mttr[sel] = r
        return mtbf, mttr

    def to_dict(self) -> dict[str, Any]:
        """The resolved options, for summary.json."""
        return {
            "failures": None if self.failures is None else self.failures.source,
            "failure_outages": None if self.failures is None else len(self.failures),
            "mtbf_s": None if self.mtbf_s is None else dict(self.mtbf_s),
            "mttr_s": None if self.mttr_s is None else dict(self.mttr_s),
            "estimate_cv": self.estimate_cv,
            "latency_jitter": float(self.latency_jitter),
            "shared_links": bool(self.shared_links),
            **({"max_retries": int(self.max_retries)} if self.failures_on else {}),
            **({"estimates": self.estimates} if self.observed else {}),
            **(
                {"conditions": self.conditions.source, "condition_windows": len(self.conditions)}
                if self.conditions is not None
                else {}
            ),
        }


# ----------------------------------------------------------------------------
# randomness and estimates
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionSeeds:
    """Independent streams of one run's option randomness (children of ``SeedSequence(seed)``).

    The policy keeps ``numpy.random.default_rng(seed)``, exactly as in the base
    model, so turning an option on does not change the policy's own draws.
    """

    estimates: np.random.SeedSequence
    """Estimate noise."""
    failures: np.random.SeedSequence
    """Generated outages (spawned again, one child per node)."""
    jitter: np.random.SeedSequence
    """Latency jitter, one draw per transfer."""


def option_seeds(seed: int | None) -> OptionSeeds:
    """The option streams of a run with seed ``seed``."""
    est, fail, jit = np.random.SeedSequence(seed).spawn(3)
    return OptionSeeds(estimates=est, failures=fail, jitter=jit)


def lognormal_factors(rng: np.random.Generator, cv: float, size: int) -> np.ndarray:
    """``size`` lognormal factors with mean 1 and coefficient of variation ``cv``.

    ``cv = 0`` gives exact ones (no draw).
    """
    if cv == 0:
        return np.ones(size)
    sigma2 = math.log1p(cv * cv)
    return rng.lognormal(-0.5 * sigma2, math.sqrt(sigma2), size)


def estimate_work(
    workload: Workload, cv: float, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """The work the schedulers see, GI per workload row, and where it came from.

    The workload's ``work_est_gi`` column when it has one (``cv`` is then not
    used), else true work x :func:`lognormal_factors`.

    Raises:
        ValidationError: a ``work_est_gi`` value that is not a finite number > 0
            (naming the row).
    """
    if WORK_EST_COLUMN in workload.extra:
        raw = workload.extra[WORK_EST_COLUMN]
        est = _numbers(raw, WORK_EST_COLUMN, "workload", empty=None)
        bad = ~(np.isfinite(est) & (est > 0))
        if bad.any():
            k = int(np.argmax(bad))
            raise ValidationError(
                f"workload: row {k + 1}, column {WORK_EST_COLUMN}: must be a finite number > 0, "
                f"got {_plain(est[k])}"
            )
        return est, f"column {WORK_EST_COLUMN}"
    est = workload.work_gi * lognormal_factors(rng, cv, len(workload))
    return est, f"lognormal cv={cv:g}"
