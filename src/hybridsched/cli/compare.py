"""The ``compare`` and ``report`` commands: the project's main job."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import rich.progress
import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from hybridsched.cli.app import (
    ConditionsOption,
    EstimatesOption,
    PluginOption,
    app,
    console,
    err_console,
    fail,
    load_plugins,
)
from hybridsched.cli.options import (
    Backend,
    Interval,
    Loads,
    Policies,
    Queue,
    RayAddress,
    Scenario,
    Workers,
)
from hybridsched.errors import ConfigError, HybridSchedError
from hybridsched.experiments.compare import QUICK


class TableLayout(str, Enum):
    """How the comparison table is laid out in the terminal."""

    auto = "auto"
    wide = "wide"
    compact = "compact"


COMPARE_EXAMPLE = """Examples:

  hybridsched compare --quick --out results/first-look

  hybridsched compare --scenario iot-bursty --load 0.7 --load 0.9 --seeds 10
  --out results/bursty

  hybridsched compare --config exp.yaml --seeds 3 --out results/exp   (the file,
  with --seeds overridden; a config.json that compare wrote is such a file)

  hybridsched compare --resume --out results/bursty   (after Ctrl-C)"""

_QUICK_HELP = (
    f"A first look in minutes: {QUICK['tasks']:,} tasks per workload and {QUICK['seeds']} "
    "seeds (the defaults, 30,000 and 5, take tens of minutes on 2 cores); "
    "--tasks and --seeds still override it."
)

_FIELDS = {
    # CLI parameter -> CompareConfig field
    "scenario": "scenario",
    "load": "loads",
    "seeds": "seeds",
    "tasks": "tasks",
    "policies": "policies",
    "policy_arg": "policy_args",
    "decision_interval": "decision_interval",
    "queue": "queue",
    "workers": "workers",
    "cluster": "cluster",
    "workload": "workload",
    "focus": "focus",
    "capacity_bound": "capacity_bound",
    "backend": "backend",
    "conditions": "conditions",
    "estimates": "estimates",
}


def _policy_list(text: str | None) -> tuple[str, ...] | None:
    """The schedulers ``--policies`` names (None: the option was not given).

    An empty list (``--policies ""`` or ``,``) is refused: running every
    scheduler instead would take minutes nobody asked for.
    """
    if text is None:
        return None
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    if not names:
        fail(f"--policies {text!r}: names no scheduler; give a comma-separated list, e.g. mct,aco")
    return names


@app.command(epilog=COMPARE_EXAMPLE)
def compare(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Experiment file (YAML or JSON) with the keys of the config.json that "
            "compare writes: scenario, tasks, loads, seeds, policies, policy_args, "
            "decision_interval, queue, workers, cluster, workload, focus, capacity_bound. "
            "Options given on the command line override the file; unknown keys are refused.",
        ),
    ] = None,
    scenario: Scenario = "iot-default",
    load: Loads = None,
    seeds: Annotated[int, typer.Option(help="Seeds per load.")] = 5,
    tasks: Annotated[int, typer.Option(help="Tasks per generated workload.")] = 30_000,
    quick: Annotated[bool, typer.Option("--quick", help=_QUICK_HELP)] = False,
    policies: Policies = None,
    policy_arg: Annotated[
        list[str] | None,
        typer.Option(
            help="Argument for one policy of the run, POLICY.KEY=VALUE (repeatable).",
            show_default=False,
        ),
    ] = None,
    decision_interval: Interval = 0.5,
    queue: Queue = "priority",
    workers: Workers = None,
    cluster: Annotated[
        Path | None, typer.Option(help="Cluster file, with --workload, instead of a scenario.")
    ] = None,
    workload: Annotated[
        Path | None, typer.Option(help="Workload file, with --cluster, instead of a scenario.")
    ] = None,
    conditions: ConditionsOption = None,
    estimates: EstimatesOption = "auto",
    focus: Annotated[
        str | None,
        typer.Option(
            help="Policy compared with the best other.", show_default="hybrid, if it is run"
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            help="Output folder. A fresh run deletes the results, runs and plots a previous "
            "compare left there (other files stay) and refuses a non-empty folder that "
            "compare did not write."
        ),
    ] = Path("results/compare"),
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Go on with the comparison in --out: its finished runs are kept, the others "
            "run. Its settings come from its config.json; options given must agree with "
            "them (--workers and --focus may change).",
        ),
    ] = False,
    capacity_bound: Annotated[
        bool,
        typer.Option(
            help="Also compute each workload's capacity lower bound on the mean response "
            "(about 50 s per 30,000 tasks)."
        ),
    ] = False,
    table: Annotated[
        TableLayout,
        typer.Option(
            help="Table layout: wide (every metric with its 95% CI), compact (fits 100 "
            "columns: fewer metrics, CIs with --ci), auto (wide when it fits the terminal)."
        ),
    ] = TableLayout.auto,
    ci: Annotated[
        bool, typer.Option("--ci", help="Show 95% CIs in the compact table too.")
    ] = False,
    plugin: PluginOption = None,
    policy_args_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--policy-args",
            help="YAML file of policy arguments (as `tune` writes: a `policy` key and the "
            "arguments' names and values); repeatable; --policy-arg overrides it.",
            show_default=False,
        ),
    ] = None,
    backend: Backend = "local",
    ray_address: RayAddress = None,
) -> None:
    """Run schedulers head to head on identical workloads: table, report, plots.

    Each finished run is saved in --out as it ends: Ctrl-C (or SIGTERM) stops at
    once, and --resume completes the comparison later.
    """
    from hybridsched.experiments.compare import check_inputs, run_compare
    from hybridsched.experiments.report import focus_diffs, save_results, write_report
    from hybridsched.experiments.store import ResultsFolder

    given = {
        "scenario": scenario,
        "load": tuple(load) if load else None,
        "seeds": seeds,
        "tasks": tasks,
        "policies": _policy_list(policies),
        "policy_arg": None,
        "decision_interval": decision_interval,
        "queue": queue,
        "workers": workers,
        "cluster": str(cluster) if cluster else None,
        "workload": str(workload) if workload else None,
        "focus": focus,
        "capacity_bound": capacity_bound,
        "backend": backend,
        "conditions": str(conditions) if conditions else None,
        "estimates": estimates,
    }
    progress = {"done": 0, "total": 0}
    runner = None
    try:
        load_plugins(plugin)
        from hybridsched.experiments.backends import make_backend
        from hybridsched.policies.args import read_policy_args

        given["policy_arg"] = _policy_args(policy_arg)
        explicit = {name for name in _FIELDS if _given(ctx, name)}
        if policy_args_file:
            # the files first, then --policy-arg on top, argument by argument
            merged: dict[str, dict[str, str]] = {}
            for f in policy_args_file:
                name, args = read_policy_args(f)
                merged.setdefault(name, {}).update(args)
            for name, args in given["policy_arg"].items():
                merged.setdefault(name, {}).update(args)
            given["policy_arg"] = merged
            explicit.add("policy_arg")
        cfg = _resolve_config(given, explicit, config, quick, out if resume else None)
        check_inputs(cfg)  # bad policies or files fail before the folder is touched
        runner = make_backend(cfg.backend, cfg.workers, ray_address)
        record: dict[str, Any] = {}
        if cfg.backend == "ray":
            record["ray_nodes"] = runner.start()
        store = ResultsFolder.start(out, cfg, record, resume=resume)

        def show(bar: rich.progress.Progress, job: Any, k: int, n: int) -> None:
            if progress["total"] == 0:
                # runs taken from the folder: not counted in the speed behind the ETA
                bar.reset(job, total=n, completed=k)
            bar.update(job, completed=k, total=n)
            progress.update(done=k, total=n)

        with _stop_on_sigterm():
            with _progress(transient=True) as bar:
                job = bar.add_task(f"{len(cfg.policies)} schedulers, {cfg.label}", total=None)
                rows = run_compare(
                    cfg,
                    progress=lambda k, n: show(bar, job, k, n),
                    store=store,
                    # the local pool is run_compare's own default
                    **({"backend": runner} if cfg.backend == "ray" else {}),
                )
            save_results(rows, cfg, out, record)
            report = write_report(out)
    except HybridSchedError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the results in {out}: {exc.strerror or exc}")
    except (KeyboardInterrupt, _Terminated) as exc:
        # counted on disk: the interrupt may fall between a run's save and its count
        saved = len(ResultsFolder(out).finished()) if progress["total"] else 0
        err_console.print(
            f"interrupted: {saved} of {progress['total'] or '?'} runs saved in "
            f"{out}; resume with: hybridsched compare --resume --out {out}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        raise typer.Exit(143 if isinstance(exc, _Terminated) else 130) from None
    finally:
        if runner is not None:
            runner.close()
    import pandas as pd

    df = pd.DataFrame(rows)
    from hybridsched.experiments.report import _loads, headroom, headroom_text, summary_rows

    stats = summary_rows(df, cfg)
    for rho in _loads(df):
        rows_at = [r for r in stats if r["load"] == rho or (rho != rho)]
        console.print(compare_table(cfg, rows_at, rho, table, ci))
        h = headroom(df, cfg, rho)
        if h is not None:
            console.print(headroom_text(h), width=_screen_width())
        diffs = focus_diffs(df, cfg, rho)
        if diffs:
            console.print(diffs_table(cfg, diffs))
    console.print(f"results, report and plots in {out}/ (report: {report})", width=_screen_width())


def _resolve_config(
    given: dict[str, Any],
    explicit: set[str],
    config: Path | None,
    quick: bool,
    resume_from: Path | None,
) -> Any:
    """The run's configuration: defaults < the folder resumed < --config < --quick <
    options given on the command line."""
    from hybridsched.experiments.compare import (
        QUICK,
        CompareConfig,
        default_policies,
        experiment_values,
        read_experiment,
    )
    from hybridsched.experiments.store import resumable_config
    from hybridsched.sim import SimConfig

    values: dict[str, Any] = {}
    if resume_from is not None:
        recorded = resumable_config(resume_from)
        # the worker count and the backend are the machine's, not the experiment's
        recorded = {k: v for k, v in recorded.items() if k not in ("workers", "backend")}
        values.update(experiment_values(recorded, str(resume_from / "config.json")))
    if config is not None:
        values.update(read_experiment(config))
    if quick:
        values.update(QUICK)
    for name in explicit:
        if name == "policy_arg":
            # argument by argument: --policy-arg aco.ants=4 keeps the file's other aco arguments
            merged = {p: dict(a) for p, a in values.get("policy_args", {}).items()}
            for p, args in given[name].items():
                merged.setdefault(p, {}).update(args)
            values["policy_args"] = merged
        elif given[name] is not None:
            values[_FIELDS[name]] = given[name]
    values.setdefault("policies", default_policies())
    SimConfig(
        decision_interval=values.get("decision_interval", CompareConfig.decision_interval),
        queue=values.get("queue", CompareConfig.queue),
    )
    cfg = CompareConfig(**values)
    if not cfg.from_files:
        from hybridsched.workload import get_scenario

        get_scenario(cfg.scenario)
    return cfg


def _given(ctx: typer.Context, name: str) -> bool:
    # by name: typer may carry its own copy of click, and so its own ParameterSource
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


class _Terminated(BaseException):
    """SIGTERM, turned into an exception so that the workers are stopped and the message shown."""


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _progress(transient: bool) -> rich.progress.Progress:
    return rich.progress.Progress(
        "[progress.description]{task.description}",
        rich.progress.BarColumn(),
        rich.progress.MofNCompleteColumn(),
        rich.progress.TimeElapsedColumn(),
        rich.progress.TextColumn("ETA"),
        rich.progress.TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


def _policy_args(items: list[str] | None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        head, sep, value = item.partition("=")
        name, dot, key = head.rpartition(".")
        if not sep or not dot or not name or not key:
            raise ConfigError(f"--policy-arg: expected POLICY.KEY=VALUE, got {item!r}")
        out.setdefault(name.strip(), {})[key.strip()] = value.strip()
    return out


WIDE_COLUMNS: tuple[tuple[str, str, float, int], ...] = (
    ("mean s", "mean_response_s", 1.0, 3),
    ("p95 s", "p95_response_s", 1.0, 2),
    ("p99 s", "p99_response_s", 1.0, 2),
    ("miss %", "deadline_miss_rate", 100.0, 2),
    ("miss % p0", "miss_rate_p0", 100.0, 2),
    ("energy MJ", "energy_j", 1e-6, 3),
    ("util %", "utilization", 100.0, 1),
    ("µs/task", "sched_us_per_task", 1.0, 1),
)
"""Columns of the wide table: header, metric, scale to the shown unit, decimals."""

COMPACT_COLUMNS: tuple[str, ...] = (
    "mean_response_s",
    "p95_response_s",
    "deadline_miss_rate",
    "miss_rate_p0",
    "energy_j",
    "utilization",
)
"""Metrics of the compact table (fits 100 columns, with --ci too)."""


def compare_table(
    cfg: Any,
    rows: list[dict[str, Any]],
    load: float,
    layout: TableLayout | str = TableLayout.auto,
    ci: bool = False,
    on: Console | None = None,
) -> Table:
    """The comparison table at one load.

    ``wide`` has every metric as mean ± 95% CI on one line; ``compact`` fewer
    metrics, the means only, or with ``ci`` the CI half-width under each mean;
    ``auto`` is wide when it fits the width of ``on`` (default: the terminal,
    or ``COLUMNS`` where set), else compact.
    """
    layout = TableLayout(layout)
    if layout is TableLayout.auto:
        wide = compare_table(cfg, rows, load, TableLayout.wide, ci, on)
        target = on or console
        natural = Measurement.get(target, target.options.update_width(10**6), wide).maximum
        fits = natural <= (target.width if on is not None else _screen_width())
        return wide if fits else compare_table(cfg, rows, load, TableLayout.compact, ci, on)
    where = "given workload" if load != load else f"load {load:g}"
    cols = (
        WIDE_COLUMNS
        if layout is TableLayout.wide
        else tuple(c for c in WIDE_COLUMNS if c[1] in COMPACT_COLUMNS)
    )
    with_ci = layout is TableLayout.wide or ci
    what = "mean ± 95% CI" if with_ci else "means; --ci adds 95% CIs"
    table = Table(title=f"{cfg.label}, {where}, {cfg.seeds} seeds ({what})", header_style="bold")
    table.add_column("policy", justify="left", no_wrap=True)
    for name, *_ in cols:
        table.add_column(name, justify="right", overflow="fold")
    sep = "±" if layout is TableLayout.wide else "\n±"
    for r in rows:
        cells = [r["policy"]]
        for _, key, scale, digits in cols:
            mean, half = r[key]
            text = f"{mean * scale:.{digits}f}"
            if with_ci and half == half:
                text += f"{sep}{half * scale:.{digits}f}"
            cells.append(text)
        style = "bold" if r["policy"] == cfg.focus_policy else None
        table.add_row(*cells, style=style)
    return table


def _screen_width() -> int:
    # piped output is 160 columns wide (cli.app), but COLUMNS, where set, is the width
    # the output will be read at
    try:
        return min(console.width, int(os.environ["COLUMNS"]))
    except (KeyError, ValueError):
        return console.width


def diffs_table(cfg: Any, diffs: list[Any]) -> Table:
    """The focus policy against the best other scheduler, metric by metric."""
    from hybridsched.experiments.report import METRIC_LABELS, diff_text

    table = Table(
        title=f"{cfg.focus_policy} minus the best other scheduler (paired by seed, 95% CI)",
        header_style="bold",
    )
    for c in ("metric", "best other", "difference", "relative", "significant"):
        table.add_column(c, justify="right" if c != "metric" else "left", overflow="fold")
    for d in diffs:
        table.add_row(
            METRIC_LABELS[d.metric],
            d.other,
            diff_text(d),
            f"{100 * d.relative:+.1f}%",
            "yes" if d.significant else "no",
        )
    return table


@app.command(epilog="Example:\n\n  hybridsched report results/compare")
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
    except OSError as exc:
        fail(f"cannot write the report in {folder}: {exc.strerror or exc}")
    console.print(f"wrote {path} and {folder / 'plots'}/")


SUITE_EXAMPLE = """Example:

  hybridsched suite --seeds 3 --tasks 2000 --out results/suite

  (writes results/suite/RESULTS.md; the repository's page was made with
  --seeds 10 --tasks 5000 --page docs/RESULTS.md)"""


@app.command(epilog=SUITE_EXAMPLE)
def suite(
    scenarios: Annotated[
        str, typer.Option(help="Comma-separated scenarios.")
    ] = "iot-default,iot-bursty,iot-hetero,iot-large",
    load: Annotated[
        list[float] | None, typer.Option(help="Loads (repeatable).", show_default="0.5, 0.7, 0.9")
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per load.")] = 10,
    tasks: Annotated[int, typer.Option(help="Tasks per workload.")] = 10_000,
    policies: Policies = None,
    decision_interval: Interval = 0.5,
    queue: Queue = "priority",
    workers: Workers = None,
    out: Annotated[Path, typer.Option(help="Results folder.")] = Path("results/suite"),
    page: Annotated[
        Path | None,
        typer.Option(help="The Markdown page to write.", show_default="OUT/RESULTS.md"),
    ] = None,
    backend: Backend = "local",
    ray_address: RayAddress = None,
) -> None:
    """The standard suite: scenarios x loads x seeds into one Markdown page with plots."""
    import sys

    from hybridsched.experiments.backends import make_backend
    from hybridsched.experiments.compare import CompareConfig, default_policies
    from hybridsched.experiments.store import ResultsFolder
    from hybridsched.experiments.suite import LOADS, run_suite
    from hybridsched.sim import SimConfig
    from hybridsched.workload import get_scenario

    runner = None
    try:
        SimConfig(decision_interval=decision_interval, queue=queue)
        names = tuple(s.strip() for s in scenarios.split(",") if s.strip())
        if not names:
            fail(f"--scenarios: give at least one scenario (comma-separated), got {scenarios!r}")
        if page is not None and page.is_dir():
            # found only after the whole suite ran, otherwise
            fail(
                f"--page {page}: is a folder; give the Markdown file to write "
                f"(e.g. {page}/RESULTS.md)"
            )
        for sc in names:
            get_scenario(sc)
        kwargs: dict[str, Any] = {}
        if workers is not None:
            kwargs["workers"] = workers
        base = CompareConfig(
            tasks=tasks,
            loads=tuple(load or LOADS),
            seeds=seeds,
            policies=_policy_list(policies) or default_policies(),
            decision_interval=decision_interval,
            queue=queue,
            backend=backend,
            **kwargs,
        )
        runner = make_backend(base.backend, base.workers, ray_address)
        page = out / "RESULTS.md" if page is None else page
        # an unwritable folder fails now, not after hours of runs
        ResultsFolder(out).check_writable()
        ResultsFolder(page.parent).check_writable()
        command = (
            "hybridsched " + " ".join(sys.argv[1:])
            if sys.argv[1:2] == ["suite"]
            else ("hybridsched suite")
        )
        with _stop_on_sigterm(), _progress(transient=False) as bar:
            jobs = {sc: bar.add_task(sc, total=None) for sc in names}
            path = run_suite(
                base,
                names,
                out,
                page,
                command,
                progress=lambda sc, k, n: bar.update(jobs[sc], completed=k, total=n),
                backend=runner,
            )
    except HybridSchedError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the suite's results: {exc.strerror or exc} ({exc.filename})")
    except (KeyboardInterrupt, _Terminated) as exc:
        err_console.print(
            f"interrupted: the scenarios completed so far are in {out}/", highlight=False
        )
        raise typer.Exit(143 if isinstance(exc, _Terminated) else 130) from None
    finally:
        if runner is not None:
            runner.close()
    console.print(f"wrote {path} (results in {out}/)")
