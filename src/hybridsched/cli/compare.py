"""The ``compare`` and ``report`` commands: the project's main job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from hybridsched.cli.app import PluginOption, app, console, fail, load_plugins
from hybridsched.errors import ConfigError, HybridSchedError


@app.command()
def compare(
    scenario: Annotated[str, typer.Option(help="Scenario preset.")] = "iot-default",
    load: Annotated[list[float] | None, typer.Option(help="Offered load (repeatable).")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per load.")] = 5,
    tasks: Annotated[int, typer.Option(help="Tasks per generated workload.")] = 30_000,
    policies: Annotated[
        str | None,
        typer.Option(help="Comma-separated schedulers (default: every registered one)."),
    ] = None,
    policy_arg: Annotated[
        list[str] | None,
        typer.Option(help="Argument for one policy, POLICY.KEY=VALUE (repeatable)."),
    ] = None,
    decision_interval: Annotated[float, typer.Option(help="Batching interval, s.")] = 0.5,
    queue: Annotated[str, typer.Option(help="fifo or priority.")] = "priority",
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: cores).")] = None,
    cluster: Annotated[
        Path | None, typer.Option(help="Cluster file, with --workload, instead of a scenario.")
    ] = None,
    workload: Annotated[
        Path | None, typer.Option(help="Workload file, with --cluster, instead of a scenario.")
    ] = None,
    focus: Annotated[
        str | None,
        typer.Option(help="Policy compared with the best other (default: hybrid if run)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("results/compare"),
    capacity_bound: Annotated[
        bool,
        typer.Option(
            help="Also compute each workload's capacity lower bound on the mean response "
            "(about 50 s per 30,000 tasks)."
        ),
    ] = False,
    plugin: PluginOption = None,
) -> None:
    """Run schedulers head to head on identical workloads: table, report, plots."""
    from hybridsched.experiments.compare import CompareConfig, default_policies, run_compare
    from hybridsched.experiments.report import focus_diffs, save_results, write_report
    from hybridsched.sim import SimConfig

    try:
        load_plugins(plugin)
        SimConfig(decision_interval=decision_interval, queue=queue)
        if (cluster is None) != (workload is None):
            raise ConfigError("--cluster and --workload go together")
        if workload is None:
            from hybridsched.workload import get_scenario

            get_scenario(scenario)
        kwargs: dict[str, Any] = {}
        if workers is not None:
            kwargs["workers"] = workers
        cfg = CompareConfig(
            scenario=scenario,
            tasks=tasks,
            loads=tuple(load or [0.9]),
            seeds=seeds,
            policies=tuple(p.strip() for p in policies.split(",") if p.strip())
            if policies
            else default_policies(),
            decision_interval=decision_interval,
            queue=queue,
            cluster=str(cluster) if cluster else None,
            workload=str(workload) if workload else None,
            focus=focus,
            policy_args=_policy_args(policy_arg),
            capacity_bound=capacity_bound,
            **kwargs,
        )
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            job = bar.add_task(f"{len(cfg.policies)} schedulers, {cfg.label}", total=None)
            rows = run_compare(cfg, progress=lambda k, n: bar.update(job, completed=k, total=n))
        save_results(rows, cfg, out)
        report = write_report(out)
    except HybridSchedError as exc:
        fail(str(exc))
    import pandas as pd

    df = pd.DataFrame(rows)
    from hybridsched.experiments.report import _loads, headroom, headroom_text, summary_rows

    stats = summary_rows(df, cfg)
    for rho in _loads(df):
        _show_table(cfg, [r for r in stats if r["load"] == rho or (rho != rho)], rho)
        h = headroom(df, cfg, rho)
        if h is not None:
            console.print(headroom_text(h))
        diffs = focus_diffs(df, cfg, rho)
        if diffs:
            _show_diffs(cfg, diffs)
    console.print(f"results, report and plots in {out}/ (report: {report})")


def _policy_args(items: list[str] | None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        head, sep, value = item.partition("=")
        name, dot, key = head.rpartition(".")
        if not sep or not dot or not name or not key:
            raise ConfigError(f"--policy-arg: expected POLICY.KEY=VALUE, got {item!r}")
        out.setdefault(name.strip(), {})[key.strip()] = value.strip()
    return out


def _show_table(cfg: Any, rows: list[dict[str, Any]], load: float) -> None:
    title = (
        f"{cfg.label}: given workload" if load != load else f"{cfg.label}, load {load:g}"
    ) + f", {cfg.seeds} seeds (mean ± 95% CI)"
    table = Table(title=title, header_style="bold")
    cols = [
        ("policy", None, 1.0, 0),
        ("mean s", "mean_response_s", 1.0, 3),
        ("p95 s", "p95_response_s", 1.0, 2),
        ("p99 s", "p99_response_s", 1.0, 2),
        ("miss %", "deadline_miss_rate", 100.0, 2),
        ("miss % p0", "miss_rate_p0", 100.0, 2),
        ("energy MJ", "energy_j", 1e-6, 3),
        ("util %", "utilization", 100.0, 1),
        ("µs/task", "sched_us_per_task", 1.0, 1),
    ]
    for name, *_ in cols:
        table.add_column(name, justify="right" if name != "policy" else "left")
    for r in rows:
        cells = [r["policy"]]
        for _, key, scale, digits in cols[1:]:
            mean, half = r[key]
            text = f"{mean * scale:.{digits}f}"
            if half == half:
                text += f"±{half * scale:.{digits}f}"
            cells.append(text)
        style = "bold" if r["policy"] == cfg.focus_policy else None
        table.add_row(*cells, style=style)
    console.print(table)


def _show_diffs(cfg: Any, diffs: list[Any]) -> None:
    from hybridsched.experiments.report import METRIC_LABELS

    table = Table(
        title=f"{cfg.focus_policy} minus the best other scheduler (paired by seed, 95% CI)",
        header_style="bold",
    )
    for c in ("metric", "best other", "difference", "relative", "significant"):
        table.add_column(c, justify="right" if c != "metric" else "left")
    for d in diffs:
        table.add_row(
            METRIC_LABELS[d.metric],
            d.other,
            f"{d.mean:+.4g} ± {d.half_ci:.2g}",
            f"{100 * d.relative:+.1f}%",
            "yes" if d.significant else "no",
        )
    console.print(table)


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(help="A results folder written by `compare`.")],
) -> None:
    """Regenerate report.md and the plots of a comparison without rerunning it."""
    from hybridsched.experiments.report import write_report

    try:
        if not folder.is_dir():
            raise ConfigError(f"{folder}: not a folder")
        path = write_report(folder)
    except HybridSchedError as exc:
        fail(str(exc))
    console.print(f"wrote {path} and {folder / 'plots'}/")


@app.command()
def suite(
    scenarios: Annotated[
        str, typer.Option(help="Comma-separated scenarios.")
    ] = "iot-default,iot-bursty,iot-hetero,iot-large",
    load: Annotated[list[float] | None, typer.Option(help="Loads (repeatable).")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per load.")] = 10,
    tasks: Annotated[int, typer.Option(help="Tasks per workload.")] = 10_000,
    policies: Annotated[str | None, typer.Option(help="Comma-separated schedulers.")] = None,
    decision_interval: Annotated[float, typer.Option(help="Batching interval, s.")] = 0.5,
    queue: Annotated[str, typer.Option(help="fifo or priority.")] = "priority",
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: cores).")] = None,
    out: Annotated[Path, typer.Option(help="Results folder.")] = Path("results/suite"),
    page: Annotated[Path, typer.Option(help="The Markdown page to write.")] = Path(
        "docs/RESULTS.md"
    ),
) -> None:
    """The standard suite: scenarios x loads x seeds into one Markdown page with plots."""
    import sys

    from hybridsched.experiments.compare import CompareConfig, default_policies
    from hybridsched.experiments.suite import LOADS, run_suite
    from hybridsched.sim import SimConfig
    from hybridsched.workload import get_scenario

    try:
        SimConfig(decision_interval=decision_interval, queue=queue)
        names = tuple(s.strip() for s in scenarios.split(",") if s.strip())
        for sc in names:
            get_scenario(sc)
        kwargs: dict[str, Any] = {}
        if workers is not None:
            kwargs["workers"] = workers
        base = CompareConfig(
            tasks=tasks,
            loads=tuple(load or LOADS),
            seeds=seeds,
            policies=tuple(p.strip() for p in policies.split(",") if p.strip())
            if policies
            else default_policies(),
            decision_interval=decision_interval,
            queue=queue,
            **kwargs,
        )
        command = (
            "hybridsched " + " ".join(sys.argv[1:])
            if sys.argv[1:2] == ["suite"]
            else ("hybridsched suite")
        )
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            jobs = {sc: bar.add_task(sc, total=None) for sc in names}
            path = run_suite(
                base,
                names,
                out,
                page,
                command,
                progress=lambda sc, k, n: bar.update(jobs[sc], completed=k, total=n),
            )
    except HybridSchedError as exc:
        fail(str(exc))
    console.print(f"wrote {path} (results in {out}/)")
