"""Benchmark of the hybrid scheduler: scheduling throughput and a head-to-head.

Prints two tables:

1. Throughput at 100 nodes (``iot-default``) with decision batches of about 64
   tasks (the decision interval is set from the arrival rate): tasks per second
   of scheduler time (``scheduler_seconds`` of the run), for hybrid and aco.
2. Head-to-head via :func:`hybridsched.experiments.compare.run_compare` at
   loads 0.7 and 0.9, ``decision_interval=0.5``, priority queues: per scenario
   and load, the hybrid's mean response, the best other scheduler's, the
   paired relative difference with its 95% CI and p-value, and the hybrid's
   deadline-miss rate and energy against that best other; then the no-waiting
   lower bound on mean response (:mod:`hybridsched.sim.bounds`) and the most any
   scheduler could cut the best other's mean response (``1 - bound / best``).
3. The seed paper's comparison, on the same runs: the hybrid against the best
   classic heuristic (by mean response) and against the RL-only baseline
   ``rl``: paired relative differences (95% CI) of mean response,
   utilization and energy, and both deadline-miss rates.

Usage::

    python benchmarks/bench_hybrid.py [--tasks 5000] [--seeds 10] \
        [--scenarios iot-default,iot-hetero] [--workers 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from hybridsched.experiments.compare import CompareConfig, run_compare
from hybridsched.experiments.stats import paired_diff
from hybridsched.policies import make_policy
from hybridsched.sim import SimConfig, simulate
from hybridsched.workload import generate

HEURISTICS = ("mct", "min-min", "max-min", "sufferage", "edf-mct", "least-loaded")
POLICIES = ("hybrid", "aco", "rl", *HEURISTICS)


def throughput(tasks: int, batch: int, seed: int = 20_000) -> Table:
    """Scheduler tasks/s at 100 nodes with batches of about ``batch`` tasks."""
    cluster, workload = generate("iot-default", tasks, 0.9, seed)
    rate = len(workload) / float(np.ptp(workload.arrival_s))
    interval = batch / rate
    table = Table(title=f"throughput, {cluster.n_nodes} nodes, batches of ~{batch}")
    for col in ("policy", "decision interval s", "tasks", "scheduler s", "tasks/s"):
        table.add_column(col, justify="right")
    for name in ("hybrid", "aco", "mct"):
        pol = make_policy(name)
        cfg = SimConfig(decision_interval=interval, queue="priority")
        simulate(cluster, workload, pol, config=cfg, seed=seed)  # warm up compiled code
        t = time.perf_counter()
        res = simulate(cluster, workload, make_policy(name), config=cfg, seed=seed)
        wall = time.perf_counter() - t
        s = res.summary
        table.add_row(
            name,
            f"{interval:.3f}",
            f"{s['tasks']:,}",
            f"{s['scheduler_seconds']:.2f} (wall {wall:.1f})",
            f"{s['tasks'] / s['scheduler_seconds']:,.0f}",
        )
    return table


def paper_comparison(scenario: str, tasks: int, seeds: int, rows: list[dict]) -> Table:
    """The hybrid against the best heuristic and the RL-only baseline, as the paper compares."""
    table = Table(
        title=f"{scenario}: hybrid vs the best heuristic and vs rl ({seeds} seeds x {tasks} tasks)"
    )
    for col in (
        "load",
        "baseline",
        "its resp s",
        "resp rel. diff (95% CI)",
        "utilization rel. diff",
        "energy rel. diff",
        "miss hyb/baseline",
    ):
        table.add_column(col, justify="right")
    for load in sorted({r["load"] for r in rows}):
        by = {p: [r for r in rows if r["load"] == load and r["policy"] == p] for p in POLICIES}

        def col(p: str, k: str, by: dict = by) -> np.ndarray:
            return np.array([r[k] for r in sorted(by[p], key=lambda r: r["seed"])])

        best_h = min(HEURISTICS, key=lambda p: col(p, "mean_response_s").mean())
        for base in (best_h, "rl"):
            diffs = [
                paired_diff(col("hybrid", k), col(base, k), k, base)
                for k in ("mean_response_s", "utilization", "energy_j")
            ]
            table.add_row(
                f"{load:g}",
                base,
                f"{col(base, 'mean_response_s').mean():.4f}",
                *(d.percent() for d in diffs),
                f"{col('hybrid', 'deadline_miss_rate').mean():.4f}/"
                f"{col(base, 'deadline_miss_rate').mean():.4f}",
            )
    return table


def head_to_head(
    scenario: str, tasks: int, seeds: int, workers: int, backend: str = "local"
) -> tuple[Table, list]:
    """The hybrid against the best other scheduler per load, paired by seed."""
    cfg = CompareConfig(
        scenario=scenario,
        tasks=tasks,
        loads=(0.7, 0.9),
        seeds=seeds,
        policies=POLICIES,
        decision_interval=0.5,
        queue="priority",
        focus="hybrid",
        workers=workers,
        backend=backend,
    )
    rows = run_compare(cfg)
    table = Table(title=f"{scenario}: hybrid vs the best other ({seeds} seeds x {tasks} tasks)")
    for col in (
        "load",
        "hybrid resp s",
        "best other",
        "its resp s",
        "rel. diff (95% CI)",
        "p",
        "miss hyb/other",
        "energy MJ hyb/other",
        "sched us/task",
        "no-wait bound s",
        "max possible cut",
    ):
        table.add_column(col, justify="right")
    out = []
    for load in cfg.loads:
        by = {p: [r for r in rows if r["load"] == load and r["policy"] == p] for p in POLICIES}
        mean = {p: np.mean([r["mean_response_s"] for r in v]) for p, v in by.items()}
        best = min((p for p in POLICIES if p != "hybrid"), key=mean.get)

        def col(p: str, k: str, by: dict = by) -> np.ndarray:
            return np.array([r[k] for r in sorted(by[p], key=lambda r: r["seed"])])

        d = paired_diff(col("hybrid", "mean_response_s"), col(best, "mean_response_s"), "r", best)
        table.add_row(
            f"{load:g}",
            f"{mean['hybrid']:.4f}",
            best,
            f"{mean[best]:.4f}",
            d.percent(),
            f"{d.p_value:.2g}",
            f"{col('hybrid', 'deadline_miss_rate').mean():.4f}/"
            f"{col(best, 'deadline_miss_rate').mean():.4f}",
            f"{col('hybrid', 'energy_j').mean() / 1e6:.3f}/"
            f"{col(best, 'energy_j').mean() / 1e6:.3f}",
            f"{col('hybrid', 'sched_us_per_task').mean():.0f}",
            f"{col(best, 'bound_mean_response_s').mean():.4f}",
            f"{100 * (1 - col(best, 'bound_mean_response_s').mean() / mean[best]):.1f}%",
        )
        out.append((scenario, load, best, d))
    return table, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--scenarios", default="iot-default,iot-hetero")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--throughput-tasks", type=int, default=5000)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--backend", choices=("local", "ray"), default="local")
    args = ap.parse_args()
    console = Console(width=170)
    if not args.skip_throughput:
        console.print(throughput(args.throughput_tasks, 64))
    for sc in args.scenarios.split(","):
        table, rows = head_to_head(sc.strip(), args.tasks, args.seeds, args.workers, args.backend)
        console.print(table)
        console.print(paper_comparison(sc.strip(), args.tasks, args.seeds, rows))


if __name__ == "__main__":
    main()
