"""Results of a comparison on disk: Parquet/CSV, a Markdown report and PNG plots.

Layout of a results folder::

    config.json        the resolved configuration, seeds and package version
    runs/*.json        one finished run each, saved as it ends (resume; experiments.store)
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
    "energy_j": "energy (MJ)",
    "utilization": "utilization",
    "sched_us_per_task": "scheduling time per task (µs)",
}
"""How each metric reads in tables and plots, with the unit it is shown in."""

METRIC_SCALES: dict[str, float] = {"energy_j": 1e-6}
"""Factor from a metric's stored unit to its shown one (energy is stored in J, shown in MJ)."""


def shown(metric: str, value: float) -> float:
    """A metric's value in the unit of :data:`METRIC_LABELS`."""
    return value * METRIC_SCALES.get(metric, 1.0)


def save_results(
    rows: list[dict[str, Any]],
    cfg: CompareConfig,
    out: Path,
    record: dict[str, Any] | None = None,
) -> None:
    """Write config.json, results.parquet and results.csv (each atomically).

    ``record``: facts of the run for config.json (see
    :func:`~hybridsched.experiments.compare.resolved_config`).
    """
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
    write_json(resolved_config(cfg, record), out / "config.json")


def load_results(out: Path) -> tuple[Any, CompareConfig]:
    """Read a results folder: (DataFrame of runs, configuration).

    Raises:
        ValidationError: a file is missing or unreadable, naming it.
    """
    import pandas as pd

    cfg_path = out / "config.json"
    res_path = out / "results.parquet"
    if cfg_path.exists() and not res_path.exists() and (out / "runs").is_dir():
        raise ValidationError(
            f"{res_path}: missing: the comparison in {out} did not finish; "
            f"complete it with `hybridsched compare --resume --out {out}`"
        )
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

    Returns None for results written before the bound was recorded, or where it does
    not hold (NaN: conditions that speed a node up; :func:`~hybridsched.experiments.
    compare.nominal_bounds_hold`). ``max_reduction``
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
    if bound != bound:  # conditions that speed a node up: the nominal bounds do not hold
        return None
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


def load_tables(df: Any, cfg: CompareConfig, stats: list[dict[str, Any]], load: float) -> list[str]:
    """Markdown lines of one load: its summary table, then the headroom under it (if known).

    Args:
        df: the runs (:func:`load_results`).
        cfg: their configuration.
        stats: :func:`summary_rows` of ``df`` (all loads).
        load: the load; NaN for a given workload.
    """
    lines = [_markdown_table([r for r in stats if _same(r["load"], load)]), ""]
    h = headroom(df, cfg, load)
    if h is not None:
        lines += [headroom_text(h), ""]
    return lines


def diff_text(d: PairedDiff) -> str:
    """A paired difference and its CI half-width in the metric's shown unit."""
    return f"{shown(d.metric, d.mean):+.4g} ± {shown(d.metric, d.half_ci):.2g}"


def write_report(out: Path) -> Path:
    """(Re)write report.md and plots/*.png from a results folder; returns the report path.

    Plots of this report's kind that it does not draw (those of loads no longer
    in the results) are deleted, so the folder shows only what the report does.
    """
    from hybridsched.experiments.plots import plot_all
    from hybridsched.experiments.store import PLOT_PREFIXES

    df, cfg = load_results(out)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    images = plot_all(
        df,
        cfg.policies,
        cfg.focus_policy,
        cfg.label,
        _loads(df),
        METRIC_LABELS,
        METRIC_SCALES,
        plots,
    )
    drawn = {p.name for paths in images.values() for p in paths}
    for f in plots.glob("*.png"):
        if f.name.startswith(PLOT_PREFIXES) and f.name not in drawn:
            f.unlink()
    lines = [
        f"# Comparison: {cfg.label}",
        "",
        _describe(cfg),
        "",
    ]
    stats = summary_rows(df, cfg)
    for load in _loads(df):
        title = "given workload" if load != load else f"load {load:g}"
        lines += [f"## {title}", "", *load_tables(df, cfg, stats, load)]
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
                    f"| {METRIC_LABELS[d.metric]} | {d.other} | {diff_text(d)} "
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
    if cfg.conditions is not None:
        src += f"; conditions `{cfg.conditions}` in every run"
    elif cfg.scenario_drifts:
        src += "; the conditions the scenario draws for each load and seed, in every run"
    # the estimates each scheduler's view showed (auto resolves per scheduler)
    modes: dict[str, list[str]] = {}
    for p in cfg.policies:
        modes.setdefault(cfg.estimates_of(p), []).append(p)
    if len(modes) == 1:
        estimates = f"{next(iter(modes))} estimates"
    else:
        most = max(modes, key=lambda mode: len(modes[mode]))
        named = "; ".join(
            f"{mode} for {', '.join(ps)}" for mode, ps in sorted(modes.items()) if mode != most
        )
        estimates = f"estimates {named}; {most} for the others"
    return (
        f"{src}; {cfg.seeds} seeds; decision interval {cfg.decision_interval:g} s; "
        f"`{cfg.queue}` queues; {estimates}; schedulers: {', '.join(cfg.policies)}. "
        "Each cell: mean ± 95% CI half-width over seeds (Student t)."
    )


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    head = ["policy", *(METRIC_LABELS[m] for m in LOWER_IS_BETTER)]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["policy"]]
        for m in LOWER_IS_BETTER:
            mean, half = (shown(m, v) for v in r[m])
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
