"""Core commands: generate, simulate, policies."""

from __future__ import annotations

import time
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
    out: Annotated[
        Path, typer.Option(help="Output folder for tasks.parquet and summary.json.")
    ] = Path("out"),
    csv: Annotated[bool, typer.Option(help="Write tasks.csv instead of tasks.parquet.")] = False,
) -> None:
    """Simulate a workload on a cluster under one scheduler; write tasks and summary."""
    from hybridsched.io import read_cluster, read_workload
    from hybridsched.policies import make_policy, parse_policy_args
    from hybridsched.results import write_result
    from hybridsched.sim import SimConfig
    from hybridsched.sim import simulate as run

    try:
        config = SimConfig(decision_interval=decision_interval, queue=queue)
        pol = make_policy(policy, parse_policy_args(policy_arg))
        if out.exists() and not out.is_dir():
            fail(f"--out {out}: exists and is not a folder")
        c = read_cluster(cluster)
        w = read_workload(workload, cluster=c)
        t = time.perf_counter()
        result = run(c, w, pol, config=config, seed=seed)
        wall = time.perf_counter() - t
        write_result(
            result,
            out,
            csv=csv,
            extra={"cluster": str(cluster), "workload": str(workload), "seed": seed},
        )
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
