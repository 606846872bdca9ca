"""Decision cost at scale: 100, 1,000 and 10,000 nodes, short and long queues.

For each (policy, nodes, queue) case: an ``iot-default``-shaped cluster scaled
to the node count (edge/fog/cloud 60/30/10 %, 8 regions), an ``iot-default``
workload at load 0.7 (short queues) or 0.97 (long queues), decision interval
0.5 s, priority queues. Every policy runs through ``assign`` (the path the live
service calls on each decision interval; the fused loop of the classic
heuristics is bypassed) and each call is timed:

* ``tasks/s``: tasks / total time in ``assign``;
* ``p50 ms`` / ``p99 ms``: the decision time per batch; ``p99/64``: the p99 of
  the time per task scaled to a 64-task batch (batches here are whatever
  arrives in 0.5 s, so their sizes vary with the node count);
* ``cpu tasks/s``, ``cpu p50 ms``, ``cpu p99 ms`` and ``cpu p99/64``: the
  same from the thread's CPU time,
  which other jobs on a shared machine inflate far less than the wall clock;
* quality: mean response, deadline miss rate, energy (``summary.json`` keys);
  with ``--baseline rows.json`` (an earlier ``--json``, for example of the
  previous version), their change against it on the same case.

Compilation happens before the timed runs (a small warm-up run per policy).

Usage::

    python benchmarks/bench_scale.py                              # defaults (minutes)
    python benchmarks/bench_scale.py --nodes 1000 --policies min-min,max-min,sufferage,mct
    python benchmarks/bench_scale.py --nodes 10000 --tasks 20000 --policies aco
    python benchmarks/bench_scale.py --json out.json              # machine-readable rows
    python benchmarks/bench_scale.py --baseline old.json          # quality against old rows
    python benchmarks/bench_scale.py --nodes 1000 --batch 64      # batches of 64 tasks on average
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from hybridsched.policies import make_policy
from hybridsched.sim import Engine
from hybridsched.workload import ClusterParams, generate_cluster, generate_workload, get_scenario

console = Console(width=190)

QUEUES = {"short": 0.7, "long": 0.97}


class Timed:
    """Wraps a policy: times each ``assign`` call, hides any fused loop."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.name = policy.name
        self.seconds: list[float] = []
        self.cpu: list[float] = []
        self.sizes: list[int] = []

    def reset(self, cluster: Any, rng: np.random.Generator) -> None:
        self.policy.reset(cluster, rng)

    def assign(self, tasks: Any, view: Any) -> np.ndarray:
        t = time.perf_counter()
        c = time.thread_time()
        out = self.policy.assign(tasks, view)
        self.cpu.append(time.thread_time() - c)
        self.seconds.append(time.perf_counter() - t)
        self.sizes.append(len(tasks))
        return out


def cluster_of(n_nodes: int, seed: int = 0) -> Any:
    f = n_nodes / 100
    params = ClusterParams(
        n_edge=round(60 * f), n_fog=round(30 * f), n_cloud=round(10 * f), n_regions=8
    )
    return generate_cluster(params, seed)


def run_case(
    policy: str, n_nodes: int, queue: str, n_tasks: int, seed: int = 0, batch: int = 0
) -> dict[str, Any]:
    """One timed run; returns the row of figures.

    The decision interval is 0.5 s or, with ``batch`` > 0, set so that a batch
    holds ``batch`` tasks on average (``batch`` mean inter-arrival times).
    """
    delta = 0.5
    cluster = cluster_of(n_nodes, seed)
    wl = generate_workload(
        cluster, get_scenario("iot-default").workload, n_tasks, QUEUES[queue], seed
    )
    if batch > 0:
        span = float(wl.arrival_s.max() - wl.arrival_s.min())
        delta = batch * span / max(n_tasks - 1, 1)
    timed = Timed(make_policy(policy))
    res = Engine(cluster, wl, decision_interval=delta, queue="priority").run(timed, seed)
    head = {"policy": policy, "nodes": n_nodes, "queue": queue, "tasks": n_tasks}
    return {**head, "interval_s": delta, **figures(timed, res.summary)}


def figures(timed: Timed, summary: dict[str, Any]) -> dict[str, float]:
    """A run's decision-time and quality figures (the table's columns)."""
    sec = np.asarray(timed.seconds)
    size = np.asarray(timed.sizes)
    cpu = np.asarray(timed.cpu)
    return {
        "batches": len(sec),
        "mean_batch": float(size.mean()),
        "tasks_per_s": float(size.sum() / sec.sum()),
        "p50_ms": float(np.percentile(sec, 50) * 1e3),
        "p99_ms": float(np.percentile(sec, 99) * 1e3),
        "p99_ms_per64": float(np.percentile(sec / size * 64, 99) * 1e3),
        "cpu_tasks_per_s": float(size.sum() / cpu.sum()),
        "cpu_p50_ms": float(np.percentile(cpu, 50) * 1e3),
        "cpu_p99_ms": float(np.percentile(cpu, 99) * 1e3),
        "cpu_p99_ms_per64": float(np.percentile(cpu / size * 64, 99) * 1e3),
        "mean_response_s": float(summary["mean_response_s"]),
        "deadline_miss_rate": float(summary["deadline_miss_rate"]),
        "energy_j": float(summary["energy_j"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default="mct,min-min,max-min,sufferage,aco,hybrid")
    ap.add_argument("--nodes", default="100,1000", help="comma-separated node counts")
    ap.add_argument("--queues", default="short,long")
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--batch", type=int, default=0, help="interval for this mean batch size (0: 0.5 s)"
    )
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    ap.add_argument("--baseline", default=None, help="rows (--json) to compare quality with")
    a = ap.parse_args()
    policies = [p for p in a.policies.split(",") if p]
    base = {}
    if a.baseline:
        with open(a.baseline) as fh:
            base = {
                (r["policy"], r["nodes"], r["queue"], r["tasks"], r.get("interval_s")): r
                for r in json.load(fh)
            }
    for p in policies:  # compile outside the measurement
        run_case(p, 20, "short", 200)
    rows = []
    title = f"batches of {a.batch} tasks on average" if a.batch else "decision interval 0.5 s"
    table = Table(title=f"Decision cost per batch through assign ({title})")
    for col in (
        "policy",
        "nodes",
        "queue",
        "batch",
        "tasks/s",
        "p50 ms",
        "p99 ms",
        "p99/64 ms",
        "cpu tasks/s",
        "cpu p50 ms",
        "cpu p99 ms",
        "cpu p99/64",
        "mean resp s",
        "miss",
        "energy MJ",
        "vs baseline",
    ):
        table.add_column(col, justify="right")
    for n in (int(x) for x in a.nodes.split(",")):
        for q in a.queues.split(","):
            for p in policies:
                r = run_case(p, n, q, a.tasks, a.seed, batch=a.batch)
                rows.append(r)
                old = base.get((p, n, q, a.tasks, r["interval_s"]))
                vs = ""
                if old is not None:
                    resp = r["mean_response_s"] / old["mean_response_s"] - 1
                    miss = r["deadline_miss_rate"] - old["deadline_miss_rate"]
                    energy = r["energy_j"] / old["energy_j"] - 1
                    vs = f"resp {resp:+.2%} miss {miss:+.4f} energy {energy:+.2%}"
                table.add_row(
                    p,
                    f"{n:,}",
                    q,
                    f"{r['mean_batch']:.0f}",
                    f"{r['tasks_per_s']:,.0f}",
                    f"{r['p50_ms']:.2f}",
                    f"{r['p99_ms']:.2f}",
                    f"{r['p99_ms_per64']:.2f}",
                    f"{r['cpu_tasks_per_s']:,.0f}",
                    f"{r['cpu_p50_ms']:.2f}",
                    f"{r['cpu_p99_ms']:.2f}",
                    f"{r['cpu_p99_ms_per64']:.2f}",
                    f"{r['mean_response_s']:.4f}",
                    f"{r['deadline_miss_rate']:.4f}",
                    f"{r['energy_j'] / 1e6:.4f}",
                    vs,
                )
                console.print(json.dumps(r))
    console.print(table)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
