"""Cost of each simulator option (failures, estimate noise, network) against the base model.

Generates one ``iot-default`` workload (1,000,000 tasks by default), then runs
MCT on it once per configuration and prints a table of wall time, tasks per
second and the cost relative to the base run:

* ``base``: no option; the fused compiled loop (``run_compiled``).
* ``base, assign``: no option, but the base engine driven batch by batch
  through ``assign`` -- the floor of any run that cannot use the fused loop.
* ``options engine, idle``: :class:`~hybridsched.sim.options_engine.OptionsEngine` with
  failures on and an empty trace (its own event loop, nothing happening).
* one row per option: ``--estimate-cv``, ``--mtbf/--mttr``, ``--latency-jitter``,
  ``--shared-links``; then all of them together.

Estimate noise alone keeps the fused loop; every other option runs the options
engine, which calls the policy through ``assign`` once per decision (one task
at a time when ``--delta`` is 0). ``--tasks`` smaller than the default measures
a prefix of the workload; ``--extrapolate`` then scales the engine rows'
times linearly to 1,000,000 tasks (marked ``~`` in the table). The per-task cost of
these loops does not grow with the run's length: the event heap is O(log n) per
event and the policy's work per decision is O(nodes).

Usage::

    python benchmarks/bench_options.py [--tasks 1000000] [--delta 0] [--policy mct]
        [--only base,failures] [--extrapolate] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.table import Table

from hybridsched.policies import make_policy
from hybridsched.sim import Engine, SimConfig, SimResult, simulate
from hybridsched.sim.options import FailureTrace, SimOptions
from hybridsched.sim.options_engine import OptionsEngine
from hybridsched.workload import generate

FULL = 1_000_000
MTBF = {"edge": 600.0, "fog": 1800.0, "cloud": 7200.0}
"""Mean time between failures per tier, s (frequent, to exercise the re-decisions)."""
MTTR = {"edge": 60.0, "fog": 60.0, "cloud": 120.0}
"""Mean time to repair per tier, s."""


@dataclass
class Row:
    name: str
    run: Callable[[], SimResult]
    engine_path: bool
    """Runs batch by batch through ``assign`` (scaled with ``--extrapolate``)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=FULL)
    ap.add_argument("--delta", type=float, default=0.0, help="decision interval, s")
    ap.add_argument("--policy", default="mct")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated row names (prefixes)")
    ap.add_argument("--extrapolate", action="store_true", help="scale to 1,000,000 tasks")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs (fused rows)")
    args = ap.parse_args()

    console = Console(width=120)
    t = time.perf_counter()
    cluster, workload = generate("iot-default", args.tasks, 0.8, args.seed)
    console.print(
        f"{len(workload):,} tasks on {cluster.n_nodes} nodes, generated in "
        f"{time.perf_counter() - t:.1f} s; policy {args.policy}, delta {args.delta:g} s"
    )
    cfg = SimConfig(decision_interval=args.delta)

    def pol() -> object:
        return make_policy(args.policy)

    def with_options(options: SimOptions) -> Callable[[], SimResult]:
        return lambda: simulate(
            cluster, workload, pol(), config=cfg, options=options, seed=args.seed
        )

    def base_assign() -> SimResult:
        eng = Engine(cluster, workload, cfg)
        p = pol()
        p.reset(cluster, np.random.default_rng(args.seed))
        while (batch := eng.next_batch()) is not None:
            eng.commit(p.assign(*batch))
        return eng.finish(policy_name=p.name)

    def idle_engine() -> SimResult:
        options = SimOptions(failures=FailureTrace.build({"node": [], "down_s": [], "up_s": []}))
        return OptionsEngine(cluster, workload, cfg, options, seed=args.seed).run(pol(), args.seed)

    rows = [
        Row("base", lambda: simulate(cluster, workload, pol(), config=cfg, seed=args.seed), False),
        Row("base, assign", base_assign, True),
        Row("options engine, idle", idle_engine, True),
        Row("estimate-cv 0.3", with_options(SimOptions(estimate_cv=0.3)), False),
        Row("failures (mtbf/mttr)", with_options(SimOptions(mtbf_s=MTBF, mttr_s=MTTR)), True),
        Row("latency-jitter 0.3", with_options(SimOptions(latency_jitter=0.3)), True),
        Row("shared-links", with_options(SimOptions(shared_links=True)), True),
        Row(
            "all options",
            with_options(
                SimOptions(
                    mtbf_s=MTBF, mttr_s=MTTR, estimate_cv=0.3, latency_jitter=0.3, shared_links=True
                )
            ),
            True,
        ),
    ]
    if args.only:
        keep = [s.strip() for s in args.only.split(",")]
        rows = [r for r in rows if any(r.name.startswith(k) for k in keep)]

    # compile every kernel once, on a small prefix, so that no row pays for it
    small = workload.subset(np.arange(min(2000, len(workload))))
    simulate(cluster, small, pol(), config=cfg)
    opts = SimOptions(mtbf_s=MTBF, mttr_s=MTTR, latency_jitter=0.3, shared_links=True)
    simulate(cluster, small, pol(), config=cfg, options=opts)

    scale = FULL / len(workload) if args.extrapolate else 1.0
    table = Table(title=f"cost of the simulator options ({args.policy}, delta {args.delta:g} s)")
    for col in ("configuration", "tasks", "wall s", "tasks/s", "x base", "mean resp s"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for col in ("miss rate", "retries", "outages"):
        table.add_column(col, justify="right")
    base_rate = None
    for row in rows:
        wall = np.inf
        # the fused rows take seconds: best of a few; the engine rows once
        for _ in range(1 if row.engine_path else max(1, args.repeat)):
            t = time.perf_counter()
            res = row.run()
            wall = min(wall, time.perf_counter() - t)
        s = res.summary
        n = int(s["tasks"])
        mark = ""
        if row.engine_path and scale != 1.0:
            wall, n, mark = wall * scale, FULL, "~"
        rate = n / wall
        if row.name == "base":
            base_rate = rate
        rel = f"{base_rate / rate:.1f}" if base_rate else "-"
        table.add_row(
            row.name,
            f"{mark}{n:,}",
            f"{mark}{wall:.2f}",
            f"{mark}{rate:,.0f}",
            rel,
            f"{s['mean_response_s']:.3f}",
            f"{s['deadline_miss_rate']:.4f}",
            str(s.get("retries", 0)),
            str(s.get("outages", 0)),
        )
        console.print(f"  {row.name}: {wall:.2f} s", style="dim")
    console.print(table)
    if scale != 1.0:
        console.print(
            f"~: measured on {len(workload):,} tasks and scaled linearly to {FULL:,}; the "
            "response and miss columns are those of the measured run."
        )


if __name__ == "__main__":
    main()
