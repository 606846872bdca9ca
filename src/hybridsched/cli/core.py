"""Core commands: generate, simulate, policies."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from hybridsched.cli.app import (
    ConditionsOption,
    EstimatesOption,
    PluginOption,
    app,
    check_number,
    check_seed,
    console,
    err_console,
    fail,
    load_plugins,
)
from hybridsched.errors import HybridSchedError

if TYPE_CHECKING:
    from hybridsched.workload import Scenario

GENERATE_EXAMPLES = """
[bold]Examples[/]

  hybridsched generate --scenario iot-default --tasks 10000 --load 0.8 --seed 1

  hybridsched generate --scenario iot-small --tasks 500 --out w.csv --cluster-out c.json

  hybridsched generate --scenario iot-drift --tasks 8000 --load 0.85 --conditions-out cond.csv

  hybridsched generate --scenario iot-bursty --drift --drift-share 0.5 --drift-slowdown 0.2:0.5
"""

_CONDITIONS_DEFAULT = Path("conditions.csv")
"""Where ``generate`` writes a drifting scenario's conditions without --conditions-out."""

_DRIFT_OPTIONS = {
    "node_share": "--drift-share",
    "slowdown": "--drift-slowdown",
    "window_share": "--drift-window",
    "region_share": "--drift-regions",
}


@app.command(epilog=GENERATE_EXAMPLES)
def generate(
    scenario: Annotated[
        str, typer.Option(help="Scenario preset (docs/SCENARIOS.md).")
    ] = "iot-default",
    tasks: Annotated[int, typer.Option(help="Number of tasks, 1 to 50,000,000.")] = 10_000,
    load: Annotated[
        float, typer.Option(help="Offered work / cluster capacity, 1e-6 to 1e6.")
    ] = 0.8,
    seed: Annotated[int, typer.Option(help="Random seed, an integer >= 0.")] = 0,
    out: Annotated[Path, typer.Option(help="Workload file to write (.parquet or .csv).")] = Path(
        "workload.parquet"
    ),
    cluster_out: Annotated[
        Path, typer.Option(help="Cluster file to write (.yaml or .json).")
    ] = Path("cluster.yaml"),
    conditions_out: Annotated[
        Path | None,
        typer.Option(
            help="Conditions file to write (.csv), for simulate --conditions. Default: "
            "conditions.csv when the scenario drifts, else none; without drift it gets "
            "the header only (nothing changes).",
            show_default=False,
        ),
    ] = None,
    drift: Annotated[
        bool | None,
        typer.Option(
            "--drift/--no-drift",
            help="Add drift (slow nodes, degraded links, a shifting task mix) to the "
            "scenario, or take it away. Default: the scenario's own.",
            show_default=False,
        ),
    ] = None,
    drift_share: Annotated[
        str | None,
        typer.Option(
            help="Share of nodes slowed (implies --drift), LO:HI or one value in [0, 1]; "
            "default 0.3:0.4."
        ),
    ] = None,
    drift_slowdown: Annotated[
        str | None,
        typer.Option(
            help="Speed multiplier of a slowed node (implies --drift), LO:HI or one value "
            "> 0; default 0.15:0.6."
        ),
    ] = None,
    drift_window: Annotated[
        str | None,
        typer.Option(
            help="Share of the run a slowed node is slow (implies --drift), LO:HI in "
            "(0, 1]; default 0.1:0.4."
        ),
    ] = None,
    drift_regions: Annotated[
        str | None,
        typer.Option(
            help="Share of regions with degraded links (implies --drift), LO:HI in "
            "[0, 1]; default 0.2:0.3."
        ),
    ] = None,
) -> None:
    """Generate a synthetic IoT workload and its cluster from a scenario preset.

    With drift (scenario iot-drift, or --drift) it also writes the conditions
    during the run (docs/SCENARIOS.md, "Drift").
    """
    from hybridsched.io import atomic_paths, check_writable, write_cluster, write_workload
    from hybridsched.workload import generate_instance, get_scenario
    from hybridsched.workload.drift import empty_conditions, write_conditions

    ranges = {
        "node_share": drift_share,
        "slowdown": drift_slowdown,
        "window_share": drift_window,
        "region_share": drift_regions,
    }
    given = {k: v for k, v in ranges.items() if v is not None}
    try:
        _check_suffix(out, (".parquet", ".pq", ".csv"), "--out")
        _check_suffix(cluster_out, (".yaml", ".yml", ".json"), "--cluster-out")
        if conditions_out is not None:
            _check_suffix(conditions_out, (".csv",), "--conditions-out")
        if drift is False and given:
            fail(
                f"{_DRIFT_OPTIONS[next(iter(given))]}: cannot be used with --no-drift; "
                "leave one of them out"
            )
        check_seed(seed)
        sc = _drifted(get_scenario(scenario), drift, given)
        if conditions_out is None and sc.drift is not None:
            conditions_out = _CONDITIONS_DEFAULT
        check_writable(out.parent, "--out")
        check_writable(cluster_out.parent, "--cluster-out")
        if conditions_out is not None:
            check_writable(conditions_out.parent, "--conditions-out")
        inst = generate_instance(sc, tasks, load, seed)
        cluster, workload = inst.cluster, inst.workload
        frame = inst.conditions if inst.conditions is not None else empty_conditions()
        paths = [cluster_out, out] + ([conditions_out] if conditions_out is not None else [])
        # all files or none: a failed write leaves no cluster without its workload
        with atomic_paths(paths) as tmps:
            write_cluster(cluster, tmps[0])
            write_workload(workload, tmps[1])
            if conditions_out is not None:
                write_conditions(frame, tmps[2])
    except HybridSchedError as exc:
        fail(str(exc))
    except MemoryError:
        fail(f"--tasks {tasks:,}: not enough memory for that many tasks; use fewer")
    except KeyboardInterrupt as exc:
        from hybridsched.interrupts import InterruptedAfterCommit, ignore_further

        ignore_further()
        if isinstance(exc, InterruptedAfterCommit):
            err_console.print("interrupted: the files were already written", highlight=False)
        else:
            err_console.print("interrupted: nothing written", highlight=False)
        raise typer.Exit(130) from None
    conditions_note = ""
    if conditions_out is not None:
        conditions_note = (
            f" and {len(frame):,} condition windows on {frame['node'].nunique()} nodes "
            f"to {conditions_out}"
        )
    console.print(
        f"wrote [bold]{len(workload):,}[/] tasks to {out}, {cluster.n_nodes} nodes "
        f"({cluster.n_regions} regions) to {cluster_out}{conditions_note}"
    )
    stale = _CONDITIONS_DEFAULT
    if conditions_out is None and stale.exists():
        # an earlier run's default conditions file, beside this run's files: left as it
        # is (it may be the user's), but it does not belong to this workload
        err_console.print(
            f"note: {stale} is not from this run (this workload does not drift); do not "
            "pass it to simulate --conditions with these files, or write an empty one "
            "with --conditions-out",
            highlight=False,
        )


def _drifted(sc: Scenario, drift: bool | None, ranges: dict[str, str]) -> Scenario:
    """The scenario with drift added (``--drift`` or any range given), removed
    (``--no-drift``), or as it is; the ranges replace those of its drift spec."""
    from hybridsched.workload import with_drift
    from hybridsched.workload.drift import DriftSpec

    if drift is False:
        return replace(sc, drift=None, workload=replace(sc.workload, mix_shift=None))
    if not drift and not ranges:
        return sc
    sc = with_drift(sc)
    fields = {k: _parse_range(v, _DRIFT_OPTIONS[k]) for k, v in ranges.items()}
    try:
        return replace(sc, drift=replace(sc.drift or DriftSpec(), **fields))
    except HybridSchedError as exc:
        # the library names its field (DriftSpec.slowdown); the user typed the option
        named = [f for f in ranges if f"DriftSpec.{f}:" in str(exc)]
        where = f"{_DRIFT_OPTIONS[named[0]]} {ranges[named[0]]}: " if named else ""
        fail(f"{where}{exc}")


def _parse_range(text: str, option: str) -> tuple[float, float]:
    """``LO:HI`` or one value ``X`` (meaning ``X:X``) as a pair of floats."""
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        fail(f"{option} {text}: must be LO:HI or one number (e.g. 0.3:0.4 or 0.35)")
    return values[0], values[1]


SIMULATE_EXAMPLES = """
[bold]Examples[/]

  hybridsched simulate --cluster c.yaml --workload w.parquet --policy mct --out runs/mct

  hybridsched simulate --cluster c.yaml --workload w.parquet --policy aco
  --policy-arg ants=16 --decision-interval 0.5

  hybridsched simulate --cluster c.yaml --workload w.parquet --timeline --out runs/tl

  hybridsched simulate --cluster c.yaml --workload w.parquet --mtbf edge=3600 --mttr edge=60

  hybridsched simulate --cluster c.yaml --workload w.parquet --plugin my_scheds
  --policy my-policy
"""


@app.command(epilog=SIMULATE_EXAMPLES)
def simulate(
    cluster: Annotated[Path, typer.Option(help="Cluster file (.yaml/.json).")],
    workload: Annotated[Path, typer.Option(help="Workload file (.parquet/.csv).")],
    policy: Annotated[str, typer.Option(help="Scheduler name (hybridsched policies).")] = "mct",
    decision_interval: Annotated[
        float, typer.Option(help="Batching interval in seconds; 0 decides each task on arrival.")
    ] = 0.0,
    queue: Annotated[str, typer.Option(help="Queue discipline: fifo or priority.")] = "fifo",
    seed: Annotated[int, typer.Option(help="Seed of the policy's randomness, >= 0.")] = 0,
    policy_arg: Annotated[
        list[str] | None, typer.Option(help="Policy argument KEY=VALUE (repeatable).")
    ] = None,
    policy_args_file: Annotated[
        Path | None,
        typer.Option(
            "--policy-args",
            help="YAML file of the policy's arguments (as `tune` writes it); "
            "--policy-arg overrides it.",
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            help="Output folder: tasks, summary.json (with per-node totals), the timeline."
        ),
    ] = Path("out"),
    csv: Annotated[bool, typer.Option(help="Write CSV tables instead of Parquet.")] = False,
    failures: Annotated[
        Path | None,
        typer.Option(
            help="Node outages file (.csv/.parquet: node,down_s,up_s; empty up_s: never back)."
        ),
    ] = None,
    conditions: ConditionsOption = None,
    estimates: EstimatesOption = "auto",
    mtbf: Annotated[
        str | None,
        typer.Option(
            help="Mean time between failures, s: one value or TIER=S pairs (edge=3600,fog=86400)."
        ),
    ] = None,
    mttr: Annotated[
        str | None, typer.Option(help="Mean time to repair, s, for the same tiers as --mtbf.")
    ] = None,
    estimate_cv: Annotated[
        float | None,
        typer.Option(
            help="Schedulers see work_est_gi if present, else work x lognormal noise of this CV."
        ),
    ] = None,
    latency_jitter: Annotated[
        float, typer.Option(help="CV of a lognormal factor (mean 1) on each transfer's latency.")
    ] = 0.0,
    shared_links: Annotated[
        bool,
        typer.Option(help="Share each node's ingress bandwidth fairly among its transfers."),
    ] = False,
    max_retries: Annotated[
        int,
        typer.Option(
            help="With failures: a task interrupted more than this many times is rejected."
        ),
    ] = 100,  # hybridsched.sim.options.DEFAULT_MAX_RETRIES (the CLI imports sim lazily)
    timeline: Annotated[
        bool,
        typer.Option(
            "--timeline",
            help="Also write per-node utilization, queue and power over time "
            "(timeline.parquet) and plot them (timeline.png).",
        ),
    ] = False,
    timeline_step: Annotated[
        float,
        typer.Option(help="Timeline sampling step, s; 0: the makespan / 200."),
    ] = 0.0,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar on stderr (default: on a terminal, once a run takes over 1 s).",
            show_default=False,
        ),
    ] = None,
    plugin: PluginOption = None,
) -> None:
    """Simulate a workload on a cluster under one scheduler; write tasks and summary.

    Failures, estimate noise and network options are off by default (docs/OPTIONS.md);
    with all of them off the run is the exact base model (with --estimates auto
    the hybrid's observed estimates then equal the nominal ones).
    """
    from hybridsched.interrupts import (
        InterruptedAfterCommit,
        ignore_further,
        interrupts_outside_numba,
    )
    from hybridsched.io import check_writable, read_cluster, read_workload
    from hybridsched.model import MAX_TIME_S
    from hybridsched.policies import make_policy, parse_policy_args
    from hybridsched.policies.base import check_estimates, resolve_estimates
    from hybridsched.results import write_result
    from hybridsched.sim import SimConfig
    from hybridsched.sim import simulate as run_simulation
    from hybridsched.sim.options import SimOptions, parse_tier_values, read_failures

    # Ctrl-C: never inside numba's code; the results are written atomically (all or none)
    written = None
    try:
        with interrupts_outside_numba():
            check_seed(seed)
            check_number(timeline_step, "--timeline-step", low=0)
            check_number(max_retries, "--max-retries", low=0)
            config = SimConfig(decision_interval=decision_interval, queue=queue)
            check_number(decision_interval, "--decision-interval", low=0, high=MAX_TIME_S)
            try:
                options = SimOptions(
                    mtbf_s=None if mtbf is None else parse_tier_values(mtbf, "--mtbf"),
                    mttr_s=None if mttr is None else parse_tier_values(mttr, "--mttr"),
                    estimate_cv=estimate_cv,
                    latency_jitter=latency_jitter,
                    shared_links=shared_links,
                    max_retries=max_retries,
                )
            except HybridSchedError as exc:
                # the library names its fields (options.mttr_s); the user typed the options
                fail(_option_names(str(exc)))
            check_estimates(estimates, "--estimates")
            load_plugins(plugin)
            args: dict[str, str] = {}
            if policy_args_file is not None:
                from hybridsched.policies.args import read_policy_args

                args.update(read_policy_args(policy_args_file, policy)[1])
            args.update(parse_policy_args(policy_arg))
            pol = make_policy(policy, args)
            # auto: the policy's own preference, nominal with noisy estimates (MODEL.md 12.1)
            mode = resolve_estimates(estimates, policy, noisy=options.estimates_on)
            options = replace(options, estimates=mode)
            check_writable(out)
            c = read_cluster(cluster)
            w = read_workload(workload, cluster=c)
            if failures is not None:
                options = replace(options, failures=read_failures(failures, cluster=c))
            if conditions is not None:
                from hybridsched.sim.conditions import read_conditions

                options = replace(options, conditions=read_conditions(conditions, c))
            bar = ProgressBar(len(w), f"{policy} on {w.n_tasks:,} tasks", force=progress)
            t = time.perf_counter()
            try:
                result = run_simulation(
                    c, w, with_progress(pol, bar), config=config, options=options, seed=seed
                )
            finally:
                bar.close()
            wall = time.perf_counter() - t
            extra = {
                "cluster": str(cluster),
                "workload": str(workload),
                "seed": seed,
                "estimates": options.estimates,  # resolved: what the policy's view showed
            }
            if options.active:
                extra["options"] = options.to_dict()
            written = write_result(
                result,
                out,
                csv=csv,
                extra=extra,
                cluster=c,
                timeline_step=timeline_step if timeline else None,
            )
        show_summary(result.summary, title=f"{policy} on {workload.name} ({wall:.2f} s)")
        console.print("wrote " + ", ".join(str(p) for p in written), highlight=False)
    except HybridSchedError as exc:
        fail(str(exc))
    except MemoryError:
        fail("out of memory while simulating: use a smaller workload or cluster")
    except KeyboardInterrupt as exc:
        ignore_further()
        if written is not None or isinstance(exc, InterruptedAfterCommit):
            # the press came as the files went into place, or after: they are all there
            err_console.print(
                f"interrupted: the run had finished; its results are written to {out}",
                highlight=False,
            )
        else:
            err_console.print(f"interrupted: nothing written to {out}", highlight=False)
        raise typer.Exit(130) from None


class ProgressBar:
    """A rich progress bar on stderr, started lazily: at once when ``force`` is True,
    never when it is False, else once a run has taken :attr:`DELAY_S` on a terminal."""

    DELAY_S = 1.0

    def __init__(self, total: int, label: str, force: bool | None = None) -> None:
        self.total = total
        self.label = label
        self.force = force
        self.t0 = time.perf_counter()
        self._last = 0.0
        self._bar: Progress | None = None
        self._task: Any = None
        self.done = 0

    def __call__(self, done: int) -> None:
        """Record that ``done`` tasks of :attr:`total` are decided."""
        self.done = done
        if self.force is False:
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and done < self.total:
            return  # at most ten redraws a second: a callback per task must stay cheap
        self._last = now
        if self._bar is None:
            if not (self.force or (err_console.is_terminal and now - self.t0 >= self.DELAY_S)):
                return
            self._bar = Progress(
                TextColumn("[bold]{task.description}[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=err_console.is_terminal,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)
        self._bar.update(self._task, completed=done)

    def close(self) -> None:
        """Stop the bar (if it was shown)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            self._bar.stop()
            self._bar = None


class _Counting:
    """A policy that reports ``progress(tasks decided so far)`` after each decision.

    Everything else (``name``, ``reset``, a compiled run loop) is the wrapped
    policy's, so results do not change; a compiled loop decides everything in
    one call and reports once, at the end.
    """

    def __init__(self, policy: Any, progress: Any) -> None:
        self._policy = policy
        self._progress = progress
        self._done = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)

    def assign(self, tasks: Any, view: Any) -> Any:
        """The wrapped policy's decision, then the progress report."""
        nodes = self._policy.assign(tasks, view)
        self._done += len(tasks.index)
        self._progress(self._done)
        return nodes


def with_progress(policy: Any, progress: Any) -> Any:
    """``policy`` reporting ``progress(decided)`` after each of its decisions."""
    return _Counting(policy, progress)


def show_summary(summary: dict, title: str) -> None:
    """Render a summary as a two-column table."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if isinstance(value, list):
            continue  # per-node records: summary.json has them, the table would be too long
        if isinstance(value, dict):
            value = ", ".join(f"p{k}: {v:.4g}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.6g}"
        table.add_row(key, str(value))
    console.print(table)


POLICIES_EXAMPLES = """
[bold]Examples[/]

  hybridsched policies

  hybridsched policies --plugin my_scheds   [dim](with my_scheds' own; docs/PLUGINS.md)[/]
"""


@app.command(epilog=POLICIES_EXAMPLES)
def policies(plugin: PluginOption = None) -> None:
    """List the schedulers with one line each."""
    from hybridsched.policies import LISTING_NOTES, available_policies

    try:
        load_plugins(plugin)
        listing = available_policies()
    except HybridSchedError as exc:
        fail(str(exc))
    table = Table(show_header=True, header_style="bold")
    table.add_column("policy")
    table.add_column("what it does")
    for name, line in listing.items():
        note = LISTING_NOTES.get(name)
        table.add_row(name, line + (f" [yellow]Note: {note}.[/]" if note else ""))
    console.print(table)


def _check_suffix(path: Path, allowed: tuple[str, ...], option: str) -> None:
    if path.suffix.lower() not in allowed:
        fail(f"{option} {path}: unknown file type {path.suffix!r}; use one of {', '.join(allowed)}")


_OPTION_FIELDS = {
    "mtbf_s": "--mtbf",
    "mttr_s": "--mttr",
    "estimate_cv": "--estimate-cv",
    "latency_jitter": "--latency-jitter",
}


def _option_names(message: str) -> str:
    """``message`` led by the CLI option that sets the SimOptions field it names first."""
    found = [(message.find(f), o) for f, o in _OPTION_FIELDS.items() if f in message]
    if not found:
        return message
    return f"{min(found)[1]}: {message}"
