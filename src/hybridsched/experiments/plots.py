"""The plots of a comparison: response-time CDFs, a bar chart per metric, energy
against response.

Each scheduler keeps one style (colour, line style, marker) across every plot
and every comparison (:func:`policy_styles`): the fourteen shipped schedulers
have fourteen distinct colours, and no two of the first sixteen share both line
style and marker. Bar charts keep the competitive schedulers readable: a bar
far above the others (more than :data:`OUTLIER_FACTOR` times the median) is cut
at the top of the axis and labelled with its value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridsched.experiments.compare import HEURISTICS
from hybridsched.experiments.stats import mean_ci
from hybridsched.io import atomic_path

PALETTE: tuple[str, ...] = (
    "#1f77b4",  # blue
    "#ff7f0e",  # orange
    "#2ca02c",  # green
    "#d62728",  # red
    "#9467bd",  # purple
    "#8c564b",  # brown
    "#e377c2",  # pink
    "#7f7f7f",  # grey
    "#bcbd22",  # olive
    "#17becf",  # cyan
    "#000000",  # black
    "#00008b",  # navy
    "#ff00ff",  # magenta
    "#7cfc00",  # lawn green
    "#8b0000",  # dark red
    "#ffd700",  # gold
)
"""Distinct colours, in the order schedulers take them."""

LINESTYLES: tuple[str, ...] = ("-", "--", "-.", ":")
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")

STYLE_ORDER: tuple[str, ...] = (*HEURISTICS, "aco", "hybrid", "rl", "optimal")
"""Shipped schedulers, each with a fixed style whatever else is compared."""

OUTLIER_FACTOR = 4.0
"""A bar above this many times the median bar is cut at the top of its chart."""


@dataclass(frozen=True)
class Style:
    """How one scheduler is drawn."""

    color: str
    """Matplotlib colour."""
    linestyle: str
    """Matplotlib line style."""
    marker: str
    """Matplotlib marker."""


def policy_styles(policies: tuple[str, ...] | list[str]) -> dict[str, Style]:
    """A style per scheduler: shipped ones keep theirs, others take the next free slots."""
    slots = {name: k for k, name in enumerate(STYLE_ORDER)}
    nxt = len(STYLE_ORDER)
    out = {}
    for p in policies:
        if p not in slots:
            slots[p] = nxt
            nxt += 1
        k = slots[p]
        # (k % 4, k // 2 % 8) is a different pair for each k < 16; past the palette
        # the colours repeat, so the line style shifts to keep every triple distinct
        ls = LINESTYLES[(k + k // len(PALETTE)) % len(LINESTYLES)]
        out[p] = Style(PALETTE[k % len(PALETTE)], ls, MARKERS[k // 2 % len(MARKERS)])
    return out


def load_title(load: float) -> str:
    """How a load reads in titles: ``load 0.9``, or ``given workload``."""
    return "given workload" if load != load else f"load {load:g}"


def plot_tag(load: float) -> str:
    """How a load reads in file names: ``load0.9``, or ``files``."""
    return "files" if load != load else f"load{load:g}"


def plot_all(
    df: Any,
    policies: tuple[str, ...],
    focus: str | None,
    label: str,
    loads: list[float],
    metrics: dict[str, str],
    scales: dict[str, float],
    folder: Path,
) -> dict[float, list[Path]]:
    """Write every plot of a comparison into ``folder``; the paths, per load.

    Args:
        df: One row per run (``load``, ``policy``, the metrics, ``response_quantiles``).
        policies: The schedulers, in table order.
        focus: The scheduler drawn thicker, if any.
        label: What the workloads are, for titles.
        loads: The loads to plot (nan: the given workload).
        metrics: Metric column -> axis label (with its unit).
        scales: Metric column -> factor from the stored unit to the label's.
        folder: Where the PNG files go.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = policy_styles(policies)
    images: dict[float, list[Path]] = {}
    for load in loads:
        sub = df[df["load"].isna()] if load != load else df[df["load"] == load]
        tag, where = plot_tag(load), load_title(load)
        paths = [
            _cdf(plt, sub, policies, focus, style, f"{label}, {where}", folder / f"cdf_{tag}.png")
        ]
        for m, axis in metrics.items():
            path = folder / f"bar_{m}_{tag}.png"
            paths.append(
                _bars(
                    plt,
                    sub,
                    policies,
                    style,
                    m,
                    axis,
                    scales.get(m, 1.0),
                    f"{label}, {where}",
                    path,
                )
            )
        path = folder / f"energy_vs_response_{tag}.png"
        paths.append(
            _energy(
                plt,
                sub,
                policies,
                style,
                metrics["energy_j"],
                scales.get("energy_j", 1.0),
                f"{label}, {where}",
                path,
            )
        )
        images[load] = paths
    return images


def _cdf(plt: Any, sub: Any, policies: Any, focus: Any, style: Any, title: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for p in policies:
        q = sub[sub["policy"] == p]["response_quantiles"]
        if q.empty:
            continue
        # quantile curves averaged over seeds
        curve = np.mean(np.stack([np.asarray(v) for v in q]), axis=0)
        probs = np.linspace(0, 1, curve.shape[0])
        s = style[p]
        ax.plot(
            curve,
            probs,
            label=p,
            color=s.color,
            linestyle=s.linestyle,
            marker=s.marker,
            markevery=max(1, curve.shape[0] // 8),
            markersize=4,
            lw=2.4 if p == focus else 1.2,
        )
    ax.set_xscale("log")
    ax.set_xlabel("response time (s), log scale")
    ax.set_ylabel("fraction of tasks")
    ax.set_title(f"Response-time CDF, {title}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(plt, fig, path)


def _bars(
    plt: Any,
    sub: Any,
    policies: Any,
    style: Any,
    m: str,
    axis: str,
    scale: float,
    title: str,
    path: Path,
) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    names, means, halves = [], [], []
    for p in policies:
        vals = sub[sub["policy"] == p][m].to_numpy()
        if vals.size:
            mean, half = mean_ci(vals * scale)
            names.append(p)
            means.append(mean)
            halves.append(0.0 if half != half else half)
    top = outlier_cut(means)
    cut = [top is not None and v > top for v in means]
    shown = [top if c else v for v, c in zip(means, cut, strict=True)]
    errs = [0.0 if c else h for h, c in zip(halves, cut, strict=True)]
    bars = ax.bar(names, shown, yerr=errs, color=[style[p].color for p in names], capsize=3)
    if top is not None:
        # the axis ends just above the tallest bar that is not cut, its CI included
        ax.set_ylim(
            0, 1.08 * max(v + h for v, h, c in zip(means, halves, cut, strict=True) if not c)
        )
        for x, (bar, v, c) in enumerate(zip(bars, means, cut, strict=True)):
            if c:
                bar.set_hatch("//")
                ax.text(
                    x,
                    ax.get_ylim()[1] * 0.97,
                    f"{v:.4g} ↑",
                    rotation=90,
                    ha="center",
                    va="top",
                    fontsize=7,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
                )
        title += "; hatched bars are cut, value inside"
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.set_ylabel(axis)
    ax.set_title(f"{axis}, {title}\n(mean ± 95% CI over seeds)", fontsize=9)
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, path)


def outlier_cut(values: list[float]) -> float | None:
    """The top of a bar chart's axis when some bars would flatten the rest, else None.

    A bar is an outlier above :data:`OUTLIER_FACTOR` times the median of the
    bars; the axis then ends at the tallest bar that is not one.
    """
    v = np.asarray([x for x in values if x == x], dtype=float)
    if v.size < 3:
        return None
    med = float(np.median(v))
    if med <= 0 or v.max() <= OUTLIER_FACTOR * med:
        return None
    return float(v[v <= OUTLIER_FACTOR * med].max())


def _energy(
    plt: Any, sub: Any, policies: Any, style: Any, axis: str, scale: float, title: str, path: Path
) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for p in policies:
        runs = sub[sub["policy"] == p]
        if runs.empty:
            continue
        s = style[p]
        energy = runs["energy_j"].to_numpy() * scale
        ax.scatter(runs["mean_response_s"], energy, s=14, color=s.color, marker=s.marker, alpha=0.4)
        ax.scatter(
            runs["mean_response_s"].mean(),
            energy.mean(),
            s=70,
            color=s.color,
            marker=s.marker,
            edgecolor="black",
            label=p,
        )
    ax.set_xscale("log")
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.set_xlabel("mean response (s), log scale")
    ax.set_ylabel(axis)
    ax.set_title(f"Energy against response, {title}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
