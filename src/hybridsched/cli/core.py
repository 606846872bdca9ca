"""Core commands: generate, simulate, policies."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hybridsched.cli.app import app, console, fail
from hybridsched.errors import HybridSchedError


@app.command()
def generate(
    scenario: Annotated[
        str, typer.Option(help="Scenario preset (see the README).")
    ] = "iot-default",
    tasks: Annotated[int, typer.Option(help="Number of tasks.")] = 10_000,
    load: Annotated[float, typer.Option(help="Offered work / cluster capacity.")] = 0.8,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Workload file to write (.parquet or .csv).")] = Path(
        "workload.parquet"
    ),
    cluster_out: Annotated[
        Path, typer.Option(help="Cluster file to write (.yaml or .json).")
    ] = Path("cluster.yaml"),
) -> None:
    """Generate a synthetic IoT workload and its cluster from a scenario preset."""
    from hybridsched.io import write_cluster, write_workload
    from hybridsched.workload import generate as gen

    try:
        _check_suffix(out, (".parquet", ".pq", ".csv"), "--out")
        _check_suffix(cluster_out, (".yaml", ".yml", ".json"), "--cluster-out")
        cluster, workload = gen(scenario, tasks, load, seed)
        write_cluster(cluster, cluster_out)
        write_workload(workload, out)
    except HybridSchedError as exc:
        fail(str(exc))
    console.print(
        f"wrote [bold]{len(workload):,}[/] tasks to {out} and {cluster.n_nodes} nodes "
        f"({cluster.n_regions} regions) to {cluster_out}"
    )


@app.command()
def simulate(
    cluster: Annotated[Path, typer.Option(help="Cluster file (.yaml/.json).")],
    workload: Annotated[Path, typer.Option(help="Workload file (.parquet/.csv).")],
    policy: Annotated[str, typer.Option(help="Scheduler name (hybridsched policies).")] = "mct",
    decision_interval: Annotated[
        float, typer.Option(help="Batching interval in seconds; 0 decides each task on arrival.")
    ] = 0.0,
    queue: Annotated[str, typer.Option(help="Queue discipline: fifo or priority.")] = "fifo",
    seed: Annotated[int, typer.Option(help="Seed of the policy's randomness.")] = 0,
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
        Path, typer.Option(help="Output folder for tasks.parquet and summary.json.")
    ] = Path("out"),
    csv: Annotated[bool, typer.Option(help="Write tasks.csv instead of tasks.parquet.")] = False,
    failures: Annotated[
        Path | None,
        typer.Option(
            help="Node outages file (.csv/.parquet: node,down_s,up_s; empty up_s: never back)."
        ),
    ] = None,
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
        bool, typer.Option(help="Share each node's ingress bandwidth fairly among its transfers.")
    ] = False,
) -> None:
    """Simulate a workload on a cluster under one scheduler; write tasks and summary.

    Failures, estimate noise and network options are off by default (docs/OPTIONS.md);
    with all of them off the run is the exact base model.
    """
    from hybridsched.io import read_cluster, read_workload
    from hybridsched.policies import make_policy, parse_policy_args
    from hybridsched.results import write_result
    from hybridsched.sim import SimConfig
    from hybridsched.sim.faults import simulate_with_options
    from hybridsched.sim.options import SimOptions, parse_tier_values, read_failures

    try:
        config = SimConfig(decision_interval=decision_interval, queue=queue)
        options = SimOptions(
            mtbf_s=None if mtbf is None else parse_tier_values(mtbf, "--mtbf"),
            mttr_s=None if mttr is None else parse_tier_values(mttr, "--mttr"),
            estimate_cv=estimate_cv,
            latency_jitter=latency_jitter,
            shared_links=shared_links,
        )
        args: dict[str, str] = {}
        if policy_args_file is not None:
            from hybridsched.policies.args import read_policy_args

            args.update(read_policy_args(policy_args_file, policy)[1])
        args.update(parse_policy_args(policy_arg))
        pol = make_policy(policy, args)
        if out.exists() and not out.is_dir():
            fail(f"--out {out}: exists and is not a folder")
        c = read_cluster(cluster)
        w = read_workload(workload, cluster=c)
        if failures is not None:
            options = replace(options, failures=read_failures(failures, cluster=c))
        t = time.perf_counter()
        result = simulate_with_options(c, w, pol, config, options, seed)
        wall = time.perf_counter() - t
        extra = {"cluster": str(cluster), "workload": str(workload), "seed": seed}
        if options.active:
            extra["options"] = options.to_dict()
        write_result(result, out, csv=csv, extra=extra)
    except HybridSchedError as exc:
        fail(str(exc))
    show_summary(result.summary, title=f"{policy} on {workload.name} ({wall:.2f} s)")
    console.print(
        f"wrote {out / ('tasks.csv' if csv else 'tasks.parquet')} and {out / 'summary.json'}"
    )


def show_summary(summary: dict, title: str) -> None:
    """Render a summary as a two-column table."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"p{k}: {v:.4g}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.6g}"
        table.add_row(key, str(value))
    console.print(table)


@app.command()
def policies() -> None:
    """List the schedulers with one line each."""
    from hybridsched.policies import available_policies

    table = Table(show_header=True, header_style="bold")
    table.add_column("policy")
    table.add_column("what it does")
    for name, line in available_policies().items():
        table.add_row(name, line)
    console.print(table)


def _check_suffix(path: Path, allowed: tuple[str, ...], option: str) -> None:
    if path.suffix.lower() not in allowed:
        fail(f"{option} {path}: unknown file type {path.suffix!r}; use one of {', '.join(allowed)}")
