"""The standard suite: every scenario x loads x seeds, into one Markdown page with plots.

``hybridsched suite`` runs one comparison per scenario (the same runner and
files as ``compare``, under ``OUT/<scenario>/``) and writes a page, by default
``OUT/RESULTS.md`` (the repository's ``docs/RESULTS.md`` only when asked with
``--page``), that gathers the tables, the focus policy's paired differences and
the main plots (copied beside the page).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from hybridsched.experiments.compare import CompareConfig, run_compare
from hybridsched.experiments.report import (
    METRIC_LABELS,
    diff_text,
    focus_diffs,
    load_results,
    load_tables,
    save_results,
    summary_rows,
    write_report,
)
from hybridsched.io import atomic_path

if TYPE_CHECKING:
    from hybridsched.experiments.backends import Backend

SCENARIOS: tuple[str, ...] = ("iot-default", "iot-bursty", "iot-hetero", "iot-large")
LOADS: tuple[float, ...] = (0.5, 0.7, 0.9)


def run_suite(
    base: CompareConfig,
    scenarios: tuple[str, ...],
    out: Path,
    page: Path | None,
    command: str,
    progress: Callable[[str, int, int], None] | None = None,
    backend: Backend | None = None,
) -> Path:
    """Run ``base`` on each scenario, write per-scenario results and the summary page.

    ``page`` defaults to ``out / "RESULTS.md"``. ``backend``: where the runs
    execute (default: the one ``base.backend`` names, started once for the
    whole suite).
    """
    from hybridsched.experiments.backends import make_backend

    page = out / "RESULTS.md" if page is None else page
    own = backend is None
    runner = make_backend(base.backend, base.workers) if backend is None else backend
    record = {"ray_nodes": runner.start()} if base.backend == "ray" else None
    try:
        for sc in scenarios:
            cfg = replace(base, scenario=sc)
            rows = run_compare(
                cfg,
                progress=(lambda k, n, sc=sc: progress(sc, k, n)) if progress else None,
                backend=runner,
            )
            save_results(rows, cfg, out / sc, record)
            write_report(out / sc)
    finally:
        if own:
            runner.close()
    return write_page(scenarios, out, page, command)


def write_page(scenarios: tuple[str, ...], out: Path, page: Path, command: str) -> Path:
    """Compose the summary page from the per-scenario results folders."""
    figures = page.parent / (page.stem.lower() + "_plots")
    figures.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Results: the standard suite",
        "",
        "Produced by one command (from the repository root):",
        "",
        "```bash",
        command,
        "```",
        "",
    ]
    first = True
    for sc in scenarios:
        df, cfg = load_results(out / sc)
        if first:
            lines += [
                f"{cfg.seeds} seeds x {cfg.tasks:,} tasks per workload; decision interval "
                f"{cfg.decision_interval:g} s; `{cfg.queue}` queues; package "
                f"version in each `config.json`. Cells: mean ± 95% CI half-width over seeds."
                + (
                    f" Differences are paired by seed (same workload): focus policy "
                    f"`{cfg.focus_policy}` against the best other scheduler on each metric."
                    if cfg.focus_policy
                    else ""
                ),
                "",
            ]
            first = False
        lines += [f"## {sc}", ""]
        stats = summary_rows(df, cfg)
        for load in sorted({float(x) for x in df["load"]}):
            lines += [f"### load {load:g}", "", *load_tables(df, cfg, stats, load)]
            diffs = focus_diffs(df, cfg, load)
            if diffs:
                lines += [
                    "| metric | best other | focus - best | relative | significant |",
                    "| --- | --- | --- | --- | --- |",
                ]
                for d in diffs:
                    lines.append(
                        f"| {METRIC_LABELS[d.metric]} | {d.other} | {diff_text(d)} | "
                        f"{100 * d.relative:+.1f}% | "
                        f"{'yes' if d.significant else 'no'} |"
                    )
                lines.append("")
            for name in (
                f"cdf_load{load:g}.png",
                f"bar_mean_response_s_load{load:g}.png",
                f"energy_vs_response_load{load:g}.png",
            ):
                src = out / sc / "plots" / name
                if src.exists():
                    dst = figures / f"{sc}_{name}"
                    shutil.copyfile(src, dst)
                    lines += [f"![{sc} {name}]({figures.name}/{dst.name})", ""]
    with atomic_path(page) as tmp:
        tmp.write_text("\n".join(lines))
    return page
