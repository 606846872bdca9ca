"""Simulator throughput: the whole `hybridsched simulate` process, the SimPy peer, scaling.

Usage::

    python benchmarks/bench_sim.py                 # 1M tasks, SimPy peer at 100k, scaling table
    python benchmarks/bench_sim.py --tasks 200000  # smaller

What it measures:

1. ``hybridsched simulate --policy mct`` on ``--tasks`` tasks of ``iot-default``
   (100 nodes) at load 0.8, interval 0, as a separate process: wall time, tasks/s
   and peak resident memory (ru_maxrss of the child). The first run may include
   numba's one-off compilation into its cache; then ``--runs`` steady-state runs,
   summarised by their median (this machine is a shared VM: runs vary by +-15%).
2. The SimPy implementation of the same model (benchmarks/simpy_peer.py) on the
   same workload (a prefix of ``--simpy-tasks`` tasks), tasks/s, and the ratio.
3. How time grows with tasks and nodes (in-process, compiled MCT path).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def _run_cli(args: list[str]) -> tuple[float, float]:
    """Run the CLI in a child process; return (wall seconds, peak RSS in MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "hybridsched.cli.__main__", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(after, before) / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--simpy-tasks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5, help="steady-state runs after the first")
    parser.add_argument("--skip-scaling", action="store_true")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from hybridsched.io import write_cluster, write_workload
    from hybridsched.policies import get_policy
    from hybridsched.sim import simulate
    from hybridsched.workload import generate

    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cluster, workload = generate("iot-default", args.tasks, 0.8, 1)
        write_cluster(cluster, d / "c.yaml")
        write_workload(workload, d / "w.parquet")
        cli = [
            "simulate",
            "--cluster",
            str(d / "c.yaml"),
            "--workload",
            str(d / "w.parquet"),
            "--policy",
            "mct",
            "--out",
            str(d / "out"),
        ]
        table = Table(title=f"whole `simulate` process, {args.tasks:,} tasks, 100 nodes, mct")
        for col in ("run", "wall s", "tasks/s", "peak RSS MB"):
            table.add_column(col, justify="right")
        rates = []
        for run in ["first (may compile)", *(f"steady {k}" for k in range(1, args.runs + 1))]:
            wall, rss = _run_cli(cli)
            rates.append(args.tasks / wall)
            table.add_row(run, f"{wall:.2f}", f"{args.tasks / wall:,.0f}", f"{rss:,.0f}")
        steady = sorted(rates[1:])
        median = steady[len(steady) // 2]
        table.add_row("steady median", f"{args.tasks / median:.2f}", f"{median:,.0f}", "")
        console.print(table)

        from simpy_peer import simpy_simulate

        sub = workload.subset(np.arange(min(args.simpy_tasks, len(workload))))
        t = time.perf_counter()
        simpy_simulate(cluster, sub)
        simpy_rate = len(sub) / (time.perf_counter() - t)
        t = time.perf_counter()
        simulate(cluster, sub, get_policy("mct"))
        ours_sub = len(sub) / (time.perf_counter() - t)
        peer = Table(title="SimPy peer (same model, same workload prefix)")
        for col in ("implementation", "tasks", "tasks/s", "ratio"):
            peer.add_column(col, justify="right")
        peer.add_row("SimPy", f"{len(sub):,}", f"{simpy_rate:,.0f}", "1.0")
        peer.add_row(
            "hybridsched (whole process, steady median)",
            f"{args.tasks:,}",
            f"{median:,.0f}",
            f"{median / simpy_rate:.1f}",
        )
        peer.add_row(
            "hybridsched (in-process simulate)",
            f"{len(sub):,}",
            f"{ours_sub:,.0f}",
            f"{ours_sub / simpy_rate:.1f}",
        )
        console.print(peer)

    if args.skip_scaling:
        return
    scale = Table(title="scaling (in-process simulate, mct, interval 0, load 0.8): seconds")
    scale.add_column("tasks \\ nodes")
    sizes = (25, 100, 400)
    for n in sizes:
        scale.add_column(str(n), justify="right")
    for n_tasks in (100_000, 200_000, 400_000, 800_000):
        row = [f"{n_tasks:,}"]
        for n_nodes in sizes:
            c, w = _synthetic(n_tasks, n_nodes)
            t = time.perf_counter()
            simulate(c, w, get_policy("mct"))
            row.append(f"{time.perf_counter() - t:.3f}")
        scale.add_row(*row)
    console.print(scale)


def _synthetic(n_tasks: int, n_nodes: int):
    """iot-default's tiers scaled to ``n_nodes`` nodes."""
    from dataclasses import replace

    from hybridsched.workload import generate_cluster, generate_workload, get_scenario

    sc = get_scenario("iot-default")
    p = sc.cluster
    k = n_nodes / (p.n_edge + p.n_fog + p.n_cloud)
    params = replace(
        p,
        n_edge=max(1, round(p.n_edge * k)),
        n_fog=max(1, round(p.n_fog * k)),
        n_cloud=max(1, round(p.n_cloud * k)),
    )
    cluster = generate_cluster(params, 1)
    return cluster, generate_workload(cluster, sc.workload, n_tasks, 0.8, 2)


if __name__ == "__main__":
    main()
