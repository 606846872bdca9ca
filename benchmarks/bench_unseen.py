"""Benchmark: the hybrid against aco and mct on settings nothing was tuned on.

The shipped checkpoint was trained, and the colony's defaults chosen, on
iot-default at load 0.9 with a 0.5 s decision interval and priority queues.
This runs the hybrid, aco and mct on identical workloads in settings that
differ from that one in a single respect each: the decision interval
(per task, 0.1 s, 2 s), FIFO queues, a lighter and an overloaded cluster, a
smaller and an edge-heavy cluster, tighter deadlines, smooth (all periodic)
arrivals. It prints, per setting, the hybrid's paired relative difference
(95% CI) to the better of aco and mct on mean response and p99 response,
and the miss rate and energy of each, so any setting where the learned
desirability hurts shows up.

Usage::

    python benchmarks/bench_unseen.py [--tasks 10000] [--seeds 5] [--workers 2] \
        [--cases NAME,...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from rich.console import Console
from rich.table import Table

from hybridsched.experiments.stats import paired_diff
from hybridsched.workload import Scenario, get_scenario

POLICIES = ("hybrid", "aco", "mct")


@dataclass(frozen=True)
class Case:
    """One setting: a scenario, a load and the engine's batching and queues."""

    scenario: Callable[[], Scenario]
    load: float = 0.9
    interval: float = 0.5
    queue: str = "priority"


def _default() -> Scenario:
    return get_scenario("iot-default")


def _cluster(n_edge: int, n_fog: int, n_cloud: int, n_regions: int) -> Callable[[], Scenario]:
    def make() -> Scenario:
        base = get_scenario("iot-default")
        cluster = replace(
            base.cluster, n_edge=n_edge, n_fog=n_fog, n_cloud=n_cloud, n_regions=n_regions
        )
        return replace(base, name=f"iot-{n_edge}-{n_fog}-{n_cloud}", cluster=cluster)

    return make


def _workload(name: str, **changes: object) -> Callable[[], Scenario]:
    def make() -> Scenario:
        base = get_scenario("iot-default")
        return replace(base, name=name, workload=replace(base.workload, **changes))

    return make


CASES: dict[str, Case] = {
    "per-task decisions (interval 0)": Case(_default, interval=0.0),
    "interval 0.1 s": Case(_default, interval=0.1),
    "interval 2 s": Case(_default, interval=2.0),
    "fifo queues": Case(_default, queue="fifo"),
    "load 0.5": Case(_default, load=0.5),
    "load 1.1 (overload)": Case(_default, load=1.1),
    "small cluster 12/6/2, 4 regions": Case(_cluster(12, 6, 2, 4)),
    "edge-heavy cluster 90/8/2": Case(_cluster(90, 8, 2, 8)),
    "tight deadlines 1.5/3/6": Case(_workload("iot-tight", deadline_factors=(1.5, 3.0, 6.0))),
    "smooth arrivals (all periodic)": Case(_workload("iot-periodic", periodic_fraction=1.0)),
    "bursty, fifo, load 0.7": Case(lambda: get_scenario("iot-bursty"), load=0.7, queue="fifo"),
}


def run_one(job: tuple) -> tuple:
    """One simulation: ``(case, policy, seed, summary)``."""
    from hybridsched.policies import make_policy
    from hybridsched.sim import SimConfig, simulate
    from hybridsched.workload import generate

    name, tasks, seed, policy = job
    case = CASES[name]
    cluster, workload = generate(case.scenario(), tasks, case.load, seed)
    cfg = SimConfig(decision_interval=case.interval, queue=case.queue)
    res = simulate(cluster, workload, make_policy(policy), config=cfg, seed=seed)
    return name, policy, seed, res.summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    a = ap.parse_args()
    names = [c.strip() for c in a.cases.split(",") if c.strip()] or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        ap.error(f"--cases: unknown {unknown}; known: {list(CASES)}")
    jobs = [(n, a.tasks, seed, p) for n in names for seed in range(a.seeds) for p in POLICIES]
    t = time.perf_counter()
    with ProcessPoolExecutor(a.workers) as ex:
        out = list(ex.map(run_one, jobs))
    console = Console(width=170)
    console.print(f"{len(jobs)} runs in {time.perf_counter() - t:.0f} s")
    table = Table(title=f"hybrid on unseen settings, {a.seeds} seeds x {a.tasks} tasks")
    for col in (
        "setting",
        "hybrid resp s",
        "aco / mct resp s",
        "vs best other (95% CI)",
        "p99 vs best other",
        "miss rate hyb / aco / mct",
        "energy MJ hyb / aco / mct",
        "µs/task hyb / aco",
    ):
        table.add_column(col, justify="right")
    for name in names:
        res = {
            p: [s for (n, p_, _, s) in sorted(out, key=lambda r: r[2]) if (n, p_) == (name, p)]
            for p in POLICIES
        }

        def col(p: str, key: str) -> list[float]:
            return [s[key] for s in res[p]]  # noqa: B023

        best = min(("aco", "mct"), key=lambda p: np.mean(col(p, "mean_response_s")))
        d = paired_diff(col("hybrid", "mean_response_s"), col(best, "mean_response_s"), "", best)
        d99 = paired_diff(col("hybrid", "p99_response_s"), col(best, "p99_response_s"), "", best)
        table.add_row(
            name,
            f"{np.mean(col('hybrid', 'mean_response_s')):.4f}",
            " / ".join(f"{np.mean(col(p, 'mean_response_s')):.4f}" for p in ("aco", "mct")),
            f"{d.percent()} vs {best}",
            d99.percent(),
            " / ".join(f"{np.mean(col(p, 'deadline_miss_rate')):.4f}" for p in POLICIES),
            " / ".join(f"{np.mean(col(p, 'energy_j')) / 1e6:.3f}" for p in POLICIES),
            " / ".join(
                f"{np.mean([s['scheduler_seconds'] / s['tasks'] for s in res[p]]) * 1e6:,.0f}"
                for p in ("hybrid", "aco")
            ),
        )
    console.print(table)


if __name__ == "__main__":
    main()
