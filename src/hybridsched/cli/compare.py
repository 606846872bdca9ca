"""The ``compare`` command: the project's main job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from hybridsched.cli.app import app, console, fail
from hybridsched.errors import HybridSchedError


@app.command()
def compare(
    scenario: Annotated[str, typer.Option(help="Scenario preset.")] = "iot-default",
    load: Annotated[list[float] | None, typer.Option(help="Offered load (repeatable).")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per load.")] = 5,
    tasks: Annotated[int, typer.Option(help="Tasks per workload.")] = 20_000,
    policies: Annotated[
        str | None, typer.Option(help="Comma-separated schedulers (default: all heuristics).")
    ] = None,
    decision_interval: Annotated[float, typer.Option(help="Batching interval, s.")] = 0.5,
    queue: Annotated[str, typer.Option(help="fifo or priority.")] = "priority",
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: cores).")] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("results/compare"),
) -> None:
    """Run schedulers head to head on identical workloads; table, CSV and Parquet."""
    from hybridsched.experiments.compare import (
        DEFAULT_POLICIES,
        CompareConfig,
        mean_ci,
        resolved_config,
        run_compare,
    )
    from hybridsched.io import write_json, write_table
    from hybridsched.sim import SimConfig

    try:
        SimConfig(decision_interval=decision_interval, queue=queue)
        kwargs = {}
        if workers is not None:
            kwargs["workers"] = workers
        cfg = CompareConfig(
            scenario=scenario,
            tasks=tasks,
            loads=tuple(load or [0.9]),
            seeds=seeds,
            policies=tuple(p.strip() for p in policies.split(","))
            if policies
            else DEFAULT_POLICIES,
            decision_interval=decision_interval,
            queue=queue,
            **kwargs,
        )
        from hybridsched.workload import get_scenario

        get_scenario(scenario)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("simulating", total=None)
            rows = run_compare(cfg, progress=lambda k, n: bar.update(task, completed=k, total=n))
        cols = {k: [r[k] for r in rows] for k in rows[0]}
        write_table(cols, out / "results.parquet")
        write_table(cols, out / "results.csv")
        write_json(resolved_config(cfg), out / "config.json")
    except HybridSchedError as exc:
        fail(str(exc))
    for rho in cfg.loads:
        table = Table(
            title=f"{scenario}, load {rho}, {cfg.seeds} seeds x {cfg.tasks:,} tasks "
            f"(mean ± 95% CI)",
            header_style="bold",
        )
        for c in (
            "policy",
            "mean resp s",
            "p95 s",
            "p99 s",
            "miss %",
            "miss % p0",
            "energy MJ",
            "util %",
            "sched µs/task",
        ):
            table.add_column(c, justify="right")
        for p in cfg.policies:
            sel = [r for r in rows if r["policy"] == p and r["load"] == rho]

            def f(key: str, scale: float = 1.0, digits: int = 3, sel=sel) -> str:
                m, h = mean_ci([r[key] * scale for r in sel])
                return f"{m:.{digits}f} ± {h:.{digits}f}" if h == h else f"{m:.{digits}f}"

            table.add_row(
                p,
                f("mean_response_s"),
                f("p95_response_s", digits=2),
                f("p99_response_s", digits=2),
                f("deadline_miss_rate", 100, 2),
                f("miss_rate_p0", 100, 2),
                f("energy_j", 1e-6, 3),
                f("utilization", 100, 1),
                f("sched_us_per_task", 1, 1),
            )
        console.print(table)
    console.print(f"results in {out}/results.parquet, results.csv and config.json")
