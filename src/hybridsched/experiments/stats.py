"""Statistics of head-to-head results: means with confidence intervals, paired differences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LOWER_IS_BETTER: dict[str, bool] = {
    "mean_response_s": True,
    "p95_response_s": True,
    "p99_response_s": True,
    "deadline_miss_rate": True,
    "miss_rate_p0": True,
    "energy_j": True,
    "utilization": False,
    "sched_us_per_task": True,
}
"""The metrics compared, and whether lower is better."""


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its confidence interval (Student t; nan for one value)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return float(x.mean()) if x.size else float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean()), float(half)


@dataclass(frozen=True)
class PairedDiff:
    """The focus policy minus another, paired by workload (same load and seed)."""

    metric: str
    """Metric name."""
    other: str
    """The policy compared with."""
    mean: float
    """Mean paired difference (focus - other), in the metric's unit."""
    half_ci: float
    """Half-width of the 95% CI of the mean difference."""
    relative: float
    """Mean difference relative to the other's mean (e.g. -0.15: 15% lower)."""
    relative_half_ci: float
    """``half_ci`` relative to the other's mean."""
    p_value: float
    """Two-sided paired t-test p-value (nan with fewer than two pairs)."""
    n: int
    """Number of pairs."""

    @property
    def significant(self) -> bool:
        """The 95% CI excludes zero."""
        return bool(np.isfinite(self.half_ci) and abs(self.mean) > self.half_ci)

    def percent(self) -> str:
        """The relative difference and its CI half-width in percent, e.g. ``-6.34 % (±0.64)``."""
        return f"{100 * self.relative:+.2f} % (±{100 * self.relative_half_ci:.2f})"


def paired_diff(
    focus: Sequence[float], other: Sequence[float], metric: str, name: str
) -> PairedDiff:
    """Paired difference statistics of two equally ordered samples."""
    from scipy import stats

    a = np.asarray(focus, dtype=float)
    b = np.asarray(other, dtype=float)
    d = a - b
    m, h = mean_ci(d)
    base = float(np.mean(b))
    rel = m / base if base != 0 else float("nan")
    rel_h = h / abs(base) if base != 0 else float("nan")
    p = float(stats.ttest_rel(a, b).pvalue) if d.size >= 2 and np.any(d != d[0]) else float("nan")
    if d.size >= 2 and np.all(d == d[0]):
        p = 0.0 if d[0] != 0 else 1.0
    return PairedDiff(metric, name, m, h, rel, rel_h, p, int(d.size))
