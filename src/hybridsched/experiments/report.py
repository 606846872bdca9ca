"""Results of a comparison on disk: Parquet/CSV, a Markdown report and PNG plots.

Layout of a results folder::

    config.json        the resolved configuration, seeds and package version
    results.parquet    one row per (load, seed, policy) run, with response quantiles
    results.csv        the same without the quantiles
    report.md          tables, the focus policy's differences, the plots
    plots/*.png        response-time CDFs, one bar chart per metric, energy vs response

:func:`write_report` rebuilds ``report.md`` and the plots from the first three
files alone (``hybridsched report DIR``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hybridsched.errors import ValidationError
from hybridsched.experiments.compare import CompareConfig, config_from_dict, resolved_config
from hybridsched.experiments.stats import LOWER_IS_BETTER, PairedDiff, mean_ci, paired_diff
from hybridsched.io import atomic_path, write_json, write_table

METRIC_LABELS: dict[str, str] = {
    "mean_response_s": "mean response (s)",
    "p95_response_s": "p95 response (s)",
    "p99_response_s": "p99 response (s)",
    "deadline_miss_rate": "deadline miss rate",
    "miss_rate_p0": "miss rate, priority 0",
    "energy_j": "energy (J)",
    "utilization": "utilization",
    "sched_us_per_task": "scheduling time per task (µs)",
}


def save_results(rows: list[dict[str, Any]], cfg: CompareConfig, out: Path) -> None:
    """Write config.json, results.parquet and results.csv (each atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {k: [r[k] for r in rows] for k in rows[0]}
    table = pa.table(cols)
    with atomic_path(out / "results.parquet") as tmp:
        pq.write_table(table, str(tmp))
    write_table(
        {k: np.asarray(v) for k, v in cols.items() if k != "response_quantiles"},
        out / "results.csv",
    )
    write_json(resolved_config(cfg), out / "config.json")


def load_results(out: Path) -> tuple[Any, CompareConfig]:
    """Read a results folder: (DataFrame of runs, configuration).

    Raises:
        ValidationError: a file is missing or unreadable, naming it.
    """
    import pandas as pd

    cfg_path = out / "config.json"
    res_path = out / "results.parquet"
    for p in (cfg_path, res_path):
        if not p.exists():
            raise ValidationError(f"{p}: missing; is {out} a folder written by `compare`?")
    try:
        cfg = config_from_dict(json.loads(cfg_path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValidationError(f"{cfg_path}: not a compare configuration: {exc}") from None
    try:
        df = pd.read_parquet(res_path)
    except Exception as exc:
        raise ValidationError(f"{res_path}: cannot be read as Parquet: {exc}") from None
    return df, cfg


def summary_rows(df: Any, cfg: CompareConfig) -> list[dict[str, Any]]:
    """Per (load, policy): mean and CI half-width of every metric."""
    out = []
    for load in _loads(df):
        sub = _at_load(df, load)
        for p in cfg.policies:
            runs = sub[sub["policy"] == p]
            if runs.empty:
                continue
            row: dict[str, Any] = {"load": load, "policy": p, "runs": len(runs)}
            for m in LOWER_IS_BETTER:
                row[m] = mean_ci(runs[m].to_numpy())
            out.append(row)
    return out


def focus_diffs(df: Any, cfg: CompareConfig, load: float) -> list[PairedDiff]:
    """The focus policy against the best other policy on each metric (paired by seed)."""
    focus = cfg.focus_policy
    if focus is None:
        return []
    sub = _at_load(df, load)
    mine = sub[sub["policy"] == focus].set_index("seed").sort_index()
    diffs = []
    for m, lower in LOWER_IS_BETTER.items():
        others = [p for p in cfg.policies if p != focus]
        if not others or mine.empty:
            continue
        means = {p: sub[sub["policy"] == p][m].mean() for p in others}
        best = min(others, key=lambda p: means[p]) if lower else max(others, key=means.get)
        theirs = sub[sub["policy"] == best].set_index("seed").sort_index()
        seeds = mine.index.intersection(theirs.index)
        diffs.append(
            paired_diff(mine.loc[seeds, m].to_numpy(), theirs.loc[seeds, m].to_numpy(), m, best)
        )
    return diffs


def headroom(df: Any, cfg: CompareConfig, load: float) -> dict[str, Any] | None:
    """The no-waiting lower bound on mean response against the best other scheduler.

    Returns None for results written before the bound was recorded. ``max_reduction``
    is the most any scheduler could lower the best other's mean response on these
    workloads (``1 - bound / best``; :mod:`hybridsched.sim.bounds`).
    """
    if "bound_mean_response_s" not in df.columns:
        return None
    sub = _at_load(df, load)
    others = [p for p in cfg.policies if p != cfg.focus_policy] or list(cfg.policies)
    means = {p: float(sub[sub["policy"] == p]["mean_response_s"].mean()) for p in others}
    means = {p: m for p, m in means.items() if m == m}
    if not means:
        return None
    best = min(means, key=means.get)
    bound = float(sub["bound_mean_response_s"].mean())
    out: dict[str, Any] = {
        "bound": bound,
        "best": best,
        "best_mean": means[best],
        "max_reduction": 1.0 - bound / means[best],
    }
    if "capacity_bound_mean_response_s" in sub.columns:
        cap = float(sub["capacity_bound_mean_response_s"].mean())
        if cap == cap:
            out["capacity_bound"] = cap
            out["capacity_max_reduction"] = 1.0 - cap / means[best]
    return out


def headroom_text(h: dict[str, Any]) -> str:
    """One or two sentences on the headroom (plain text, also valid Markdown)."""
    text = (
        f"No-waiting lower bound on the mean response (any scheduler): {h['bound']:.4g} s. "
        f"The best other scheduler ({h['best']}, {h['best_mean']:.4g} s) is "
        f"{100 * (h['best_mean'] / h['bound'] - 1):.1f}% above it, so no scheduler can be "
        f"more than {100 * h['max_reduction']:.1f}% below it on these workloads."
    )
    if "capacity_bound" in h:
        text += (
            f" Capacity lower bound (also counts each node's cores): "
            f"{h['capacity_bound']:.4g} s, so no scheduler can be more than "
            f"{100 * h['capacity_max_reduction']:.1f}% below {h['best']}."
        )
    return text


def write_report(out: Path) -> Path:
    """(Re)write report.md and plots/*.png from a results folder; returns the report path."""
    df, cfg = load_results(out)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    images = _plot_all(df, cfg, plots)
    lines = [
        f"# Comparison: {cfg.label}",
        "",
        _describe(cfg),
        "",
    ]
    stats = summary_rows(df, cfg)
    for load in _loads(df):
        title = "given workload" if load != load else f"load {load:g}"
        lines += [
            f"## {title}",
            "",
            _markdown_table([r for r in stats if _same(r["load"], load)]),
            "",
        ]
        h = headroom(df, cfg, load)
        if h is not None:
            lines += [headroom_text(h), ""]
        diffs = focus_diffs(df, cfg, load)
        if diffs:
            lines += [
                f"**{cfg.focus_policy}** against the best other scheduler per metric "
                "(paired by seed; 95% CI; negative = lower):",
                "",
                "| metric | best other | difference | relative | p | significant |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            for d in diffs:
                lines.append(
                    f"| {METRIC_LABELS[d.metric]} | {d.other} | {d.mean:+.4g} ± {d.half_ci:.2g} "
                    f"| {100 * d.relative:+.1f}% | {d.p_value:.3g} | "
                    f"{'yes' if d.significant else 'no'} |"
                )
            lines.append("")
        for img in images.get(load, []):
            lines += [f"![{img.stem}](plots/{img.name})", ""]
    path = out / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path


def _describe(cfg: CompareConfig) -> str:
    if cfg.from_files:
        src = f"cluster `{cfg.cluster}`, workload `{cfg.workload}`"
    else:
        src = f"scenario `{cfg.scenario}`, {cfg.tasks:,} tasks per workload"
    return (
        f"{src}; {cfg.seeds} seeds; decision interval {cfg.decision_interval:g} s; "
        f"`{cfg.queue}` queues; schedulers: {', '.join(cfg.policies)}. "
        "Each cell: mean ± 95% CI half-width over seeds (Student t)."
    )


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    head = ["policy", *(METRIC_LABELS[m] for m in LOWER_IS_BETTER)]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["policy"]]
        for m in LOWER_IS_BETTER:
            mean, half = r[m]
            cells.append(f"{mean:.4g}" + (f" ± {half:.2g}" if half == half else ""))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _loads(df: Any) -> list[float]:
    """The distinct loads, NaN (a given workload) first and once (NaNs never compare
    equal, so a set would keep one per row)."""
    vals = [float(x) for x in df["load"]]
    nan = [float("nan")] if any(x != x for x in vals) else []
    return nan + sorted({x for x in vals if x == x})


def _same(a: float, b: float) -> bool:
    return (a != a and b != b) or a == b


def _at_load(df: Any, load: float) -> Any:
    return df[df["load"].isna()] if load != load else df[df["load"] == load]


def _plot_all(df: Any, cfg: CompareConfig, folder: Path) -> dict[float, list[Path]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images: dict[float, list[Path]] = {}
    colors = plt.get_cmap("tab20")
    color = {p: colors(k % 20) for k, p in enumerate(cfg.policies)}
    for load in _loads(df):
        sub = _at_load(df, load)
        tag = "files" if load != load else f"load{load:g}"
        paths = []
        # response-time CDFs: quantile curves averaged over seeds
        fig, ax = plt.subplots(figsize=(7, 4.5))
        probs = None
        for p in cfg.policies:
            q = sub[sub["policy"] == p]["response_quantiles"]
            if q.empty:
                continue
            curve = np.mean(np.stack([np.asarray(v) for v in q]), axis=0)
            probs = np.linspace(0, 1, curve.shape[0])
            ax.plot(curve, probs, label=p, color=color[p], lw=2 if p == cfg.focus_policy else 1)
        ax.set_xscale("log")
        ax.set_xlabel("response time (s), log scale")
        ax.set_ylabel("fraction of tasks")
        ax.set_title(f"Response-time CDF, {cfg.label} {tag}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        paths.append(_save(fig, folder / f"cdf_{tag}.png"))
        # one bar chart per metric
        for m, label in METRIC_LABELS.items():
            fig, ax = plt.subplots(figsize=(7, 4))
            names, means, halves = [], [], []
            for p in cfg.policies:
                vals = sub[sub["policy"] == p][m].to_numpy()
                if vals.size:
                    mean, half = mean_ci(vals)
                    names.append(p)
                    means.append(mean)
                    halves.append(0.0 if half != half else half)
            ax.bar(names, means, yerr=halves, color=[color[p] for p in names], capsize=3)
            ax.set_ylabel(label)
            ax.set_title(f"{label}, {cfg.label} {tag} (mean ± 95% CI)")
            ax.tick_params(axis="x", rotation=45, labelsize=8)
            ax.grid(axis="y", alpha=0.3)
            paths.append(_save(fig, folder / f"bar_{m}_{tag}.png"))
        # energy against response
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for p in cfg.policies:
            runs = sub[sub["policy"] == p]
            if runs.empty:
                continue
            ax.scatter(runs["mean_response_s"], runs["energy_j"], s=14, color=color[p], alpha=0.5)
            ax.scatter(
                runs["mean_response_s"].mean(),
                runs["energy_j"].mean(),
                s=70,
                color=color[p],
                edgecolor="black",
                label=p,
            )
        ax.set_xscale("log")
        ax.set_xlabel("mean response (s), log scale")
        ax.set_ylabel("energy (J)")
        ax.set_title(f"Energy against response, {cfg.label} {tag}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        paths.append(_save(fig, folder / f"energy_vs_response_{tag}.png"))
        images[load] = paths
    return images


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
