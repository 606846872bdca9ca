"""Benchmark: how much of the hybrid's margin over aco is search breadth.

Both colony schedulers search each task's ``candidates`` most desirable nodes
(8 by default). This runs aco and the hybrid at their defaults and at a wider
candidate list, on identical workloads (``compare``'s: scenario preset, seeds
0..N-1, decision interval 0.5 s, priority queues), and prints, per scenario,
each variant's mean response, deadline-miss rate, energy and scheduler time
per task, and the paired relative differences (95% CI) of

* each variant against default aco (the best other scheduler of the suite);
* the wide hybrid against the equally wide aco (the margin at equal breadth).

Usage::

    python benchmarks/bench_breadth.py [--tasks 30000] [--seeds 10] [--load 0.9] \
        [--scenarios iot-default,iot-hetero,iot-bursty] [--wide 24] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from rich.console import Console
from rich.table import Table

from hybridsched.experiments.stats import paired_diff


def variants(wide: int) -> dict[str, tuple[str, dict]]:
    """Label -> (policy, arguments)."""
    return {
        "aco": ("aco", {}),
        f"aco c{wide}": ("aco", {"candidates": wide}),
        "hybrid": ("hybrid", {}),
        f"hybrid c{wide} it4": ("hybrid", {"candidates": wide, "iterations": 4}),
    }


def run_one(job: tuple) -> tuple:
    """One simulation: ``(scenario, label, seed, summary)``."""
    from hybridsched.policies import make_policy
    from hybridsched.sim import SimConfig, simulate
    from hybridsched.workload import generate

    scenario, tasks, load, seed, label, policy, args = job
    cluster, workload = generate(scenario, tasks, load, seed)
    cfg = SimConfig(decision_interval=0.5, queue="priority")
    res = simulate(cluster, workload, make_policy(policy, args), config=cfg, seed=seed)
    return scenario, label, seed, res.summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=30_000)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--load", type=float, default=0.9)
    ap.add_argument("--scenarios", default="iot-default,iot-hetero,iot-bursty")
    ap.add_argument("--wide", type=int, default=24, help="the wider candidate list")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    var = variants(a.wide)
    scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    jobs = [
        (sc, a.tasks, a.load, seed, label, pol, args)
        for sc in scenarios
        for seed in range(a.seeds)
        for label, (pol, args) in var.items()
    ]
    t = time.perf_counter()
    with ProcessPoolExecutor(a.workers) as ex:
        out = list(ex.map(run_one, jobs))
    console = Console(width=140)
    console.print(
        f"{len(jobs)} runs in {time.perf_counter() - t:.0f} s; variants: "
        + json.dumps({k: v[1] for k, v in var.items()})
    )
    for sc in scenarios:
        by_seed = sorted(out, key=lambda r: r[2])
        res = {lab: [s for (s_, l_, _, s) in by_seed if (s_, l_) == (sc, lab)] for lab in var}
        table = Table(title=f"{sc}, load {a.load}, {a.seeds} seeds x {a.tasks} tasks")
        cols = ("variant", "mean resp s", "vs aco (95% CI)", "miss rate", "energy MJ", "µs/task")
        for col in cols:
            table.add_column(col, justify="right")
        base = [s["mean_response_s"] for s in res["aco"]]
        for label, rows in res.items():
            resp = [s["mean_response_s"] for s in rows]
            d = paired_diff(resp, base, "mean_response_s", "aco")
            table.add_row(
                label,
                f"{np.mean(resp):.4f}",
                "" if label == "aco" else d.percent(),
                f"{np.mean([s['deadline_miss_rate'] for s in rows]):.4f}",
                f"{np.mean([s['energy_j'] for s in rows]) / 1e6:.3f}",
                f"{np.mean([s['scheduler_seconds'] / s['tasks'] for s in rows]) * 1e6:,.0f}",
            )
        console.print(table)
        wide_h = [s["mean_response_s"] for s in res[f"hybrid c{a.wide} it4"]]
        wide_a = [s["mean_response_s"] for s in res[f"aco c{a.wide}"]]
        d = paired_diff(wide_h, wide_a, "mean_response_s", f"aco c{a.wide}")
        console.print(
            f"  at equal breadth: hybrid c{a.wide} it4 vs aco c{a.wide}: "
            f"{d.percent()}, p={d.p_value:.2g}"
        )


if __name__ == "__main__":
    main()
