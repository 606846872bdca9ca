"""The ant colony scheduler's three performance checks, and how it scales.

1. ``small``: on loaded small batches (2-8 tasks on 2-4 nodes), the colony's
   batch cost against the CP-SAT optimum (``optimal``) and against MCT's
   assignment. Goal: within 1 % of the optimum on >= 95 % of the batches, never
   worse than MCT.
2. ``compare``: ``iot-default`` at load 0.9, decision interval 0.5 s, priority
   queues, over several seeds: mean response, deadline miss rate and energy of
   ``aco`` (and ``aco`` without its cross-batch memory) against every classic
   heuristic, with 95 % confidence intervals and paired differences. Goal: lower
   mean response than each, with no more misses and no more energy.
3. ``throughput``: scheduling throughput (tasks / ``scheduler_seconds``) at
   100 nodes with batches of exactly 64 tasks, default parameters, one core,
   compiled code warm; then its scaling with the number of nodes and the batch
   size; and the construction step vectorised with NumPy against the compiled one.

Usage::

    python benchmarks/bench_aco.py                      # all three
    python benchmarks/bench_aco.py --only small --instances 200
    python benchmarks/bench_aco.py --only compare --seeds 10 --tasks 20000
    python benchmarks/bench_aco.py --only throughput
    python benchmarks/bench_aco.py --only ablation --seeds 4 --tasks 10000   # what parts buy
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from hybridsched.model import Cluster, Workload
from hybridsched.policies import colony, cost, make_policy
from hybridsched.policies.optimal import solve_batch
from hybridsched.sim import Engine, simulate
from hybridsched.workload import (
    ClusterParams,
    generate,
    generate_cluster,
    generate_workload,
    get_scenario,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_optimal import small_instances

console = Console(width=130)

HEURISTICS = (
    "mct",
    "met",
    "olb",
    "least-loaded",
    "round-robin",
    "random",
    "min-min",
    "max-min",
    "sufferage",
    "edf-mct",
    "energy-aware",
)
"""The classic heuristics the colony is compared with."""

# Student's t, 97.5 % quantile, by degrees of freedom (for 95 % intervals)
_T975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    11: 2.201,
    12: 2.179,
    14: 2.145,
    19: 2.093,
    29: 2.045,
}


def ci95(x: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of the 95 % confidence interval (Student's t)."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return float(x.mean()), float("nan")
    df = x.size - 1
    t = _T975.get(df, _T975[max(k for k in _T975 if k <= df)] if df < 30 else 1.96)
    return float(x.mean()), float(t * x.std(ddof=1) / np.sqrt(x.size))


# ----------------------------------------------------------------------------
# 1. small batches against the exact oracle
# ----------------------------------------------------------------------------


def bench_small(n: int, seed: int) -> None:
    """The colony against CP-SAT and MCT on ``n`` loaded small batches."""
    gaps, vs_mct, t_aco, t_opt, sizes, ants_only = [], [], [], [], [], []
    for i, (cluster, tasks, view, mct_nodes) in enumerate(small_instances(n, seed=seed)):
        pol = make_policy("aco")
        pol.reset(cluster, np.random.default_rng(i))
        t = time.perf_counter()
        found = pol.colony.solve(tasks, view)
        t_aco.append(time.perf_counter() - t)
        p = cost.build_problem(tasks, view, pol.colony.weights)
        t = time.perf_counter()
        best = solve_batch(p, np.asarray(view.feasible))
        t_opt.append(time.perf_counter() - t)
        mct_cost = cost.batch_cost(p, mct_nodes)
        gaps.append((found.cost - best.cost) / abs(best.cost))
        vs_mct.append((found.cost - mct_cost) / abs(mct_cost))
        sizes.append((len(tasks), cluster.n_nodes))
        plain = make_policy("aco", {"local_search": 0})  # the ants and seeds alone
        plain.reset(cluster, np.random.default_rng(i))
        ants_only.append((plain.colony.solve(tasks, view).cost - best.cost) / abs(best.cost))
    gaps, vs_mct, ants_only = np.array(gaps), np.array(vs_mct), np.array(ants_only)
    table = Table(title=f"ACO vs CP-SAT optimum on {n} loaded small batches (seed {seed})")
    for col in ("measure", "value"):
        table.add_column(col)
    sz = np.array(sizes)
    table.add_row(
        "batches (tasks 2-8, nodes 2-4)",
        f"{n} (mean {sz[:, 0].mean():.1f} tasks, {sz[:, 1].mean():.1f} nodes)",
    )
    table.add_row("within 1 % of the optimum", f"{np.mean(gaps <= 0.01):.1%}  (goal >= 95 %)")
    table.add_row("at the optimum (1e-9)", f"{np.mean(gaps <= 1e-9):.1%}")
    table.add_row("largest gap to the optimum", f"{gaps.max():.3%}")
    table.add_row(
        "without local search: within 1 % / at the optimum",
        f"{np.mean(ants_only <= 0.01):.1%} / {np.mean(ants_only <= 1e-9):.1%}",
    )
    table.add_row("worse than MCT", f"{int(np.sum(vs_mct > 1e-12))}  (goal 0)")
    table.add_row("mean improvement over MCT", f"{-vs_mct.mean():.2%}")
    table.add_row(
        "time per batch: ACO / CP-SAT",
        f"{np.median(t_aco) * 1e3:.2f} ms / {np.median(t_opt) * 1e3:.1f} ms (median)",
    )
    console.print(table)


# ----------------------------------------------------------------------------
# 2. iot-default against every heuristic
# ----------------------------------------------------------------------------


def bench_compare(seeds: int, n_tasks: int, load: float, interval: float) -> None:
    """Mean and 95 % CI over seeds of the run figures, ACO against the heuristics."""
    runs: dict[str, list[tuple[float, float, float, float]]] = {}
    policies = [(h, {}) for h in HEURISTICS]
    policies += [("aco", {}), ("aco", {"memory": 0.0})]
    for seed in range(seeds):
        cluster, workload = generate("iot-default", n_tasks, load, seed)
        for name, args in policies:
            label = name if not args else f"{name} (memory=0)"
            s = simulate(
                cluster,
                workload,
                make_policy(name, args),
                decision_interval=interval,
                queue="priority",
                seed=seed,
            ).summary
            runs.setdefault(label, []).append(
                (
                    s["mean_response_s"],
                    s["deadline_miss_rate"],
                    s["energy_j"],
                    s["scheduler_seconds"],
                )
            )
        console.log(f"seed {seed} done")
    title = (
        f"iot-default, {n_tasks} tasks, load {load}, interval {interval} s, priority queues: "
        f"mean ± 95 % CI over {seeds} seeds"
    )
    table = Table(title=title)
    for col in ("policy", "mean response s", "deadline miss rate", "energy MJ", "sched s"):
        table.add_column(col, justify="right")
    for label, vals in runs.items():
        v = np.array(vals)
        r, m, e = ci95(v[:, 0]), ci95(v[:, 1]), ci95(v[:, 2] / 1e6)
        table.add_row(
            label,
            f"{r[0]:.4f} ± {r[1]:.4f}",
            f"{m[0]:.5f} ± {m[1]:.5f}",
            f"{e[0]:.4f} ± {e[1]:.4f}",
            f"{v[:, 3].mean():.2f}",
        )
    console.print(table)
    for aco in ("aco", "aco (memory=0)"):
        a = np.array(runs[aco])
        table = Table(title=f"{aco} minus each heuristic, paired by seed (mean ± 95 % CI)")
        for col in ("heuristic", "Δ response s", "Δ miss rate", "Δ energy kJ", "goal met"):
            table.add_column(col, justify="right")
        for h in HEURISTICS:
            d = a - np.array(runs[h])
            r, m, e = ci95(d[:, 0]), ci95(d[:, 1]), ci95(d[:, 2] / 1e3)
            ok = r[0] < 0 and m[0] <= 0 and e[0] <= 0
            table.add_row(
                h,
                f"{r[0]:+.4f} ± {r[1]:.4f}",
                f"{m[0]:+.5f} ± {m[1]:.5f}",
                f"{e[0]:+.2f} ± {e[1]:.2f}",
                "yes" if ok else "NO",
            )
        console.print(table)
    d = np.array(runs["aco"]) - np.array(runs["aco (memory=0)"])
    r, m, e = ci95(d[:, 0]), ci95(d[:, 1]), ci95(d[:, 2] / 1e3)
    console.print(
        f"memory on minus off: Δ response {r[0]:+.4f} ± {r[1]:.4f} s, Δ miss rate "
        f"{m[0]:+.5f} ± {m[1]:.5f}, Δ energy {e[0]:+.2f} ± {e[1]:.2f} kJ"
    )


ABLATIONS: tuple[tuple[str, dict[str, object]], ...] = (
    ("defaults", {}),
    ("memory=0 (no cross-batch trail)", {"memory": 0.0}),
    ("iterations=0 (seeds + local search only)", {"iterations": 0}),
    ("ls_every=0 (local search on seed and final best)", {"ls_every": 0}),
    ("local_search=0 (ants and seeds only)", {"local_search": 0}),
    ("explore=0 (uniform initial trails)", {"explore": 0.0}),
    ("seeds=mct,edf-mct (no max-min seed)", {"seeds": "mct,edf-mct"}),
    ("w_wait=0 (no waiting penalty)", {"w_wait": 0.0}),
    ("w_energy=0.002", {"w_energy": 0.002}),
    ("w_displaced=0", {"w_displaced": 0.0}),
)
"""Variants of ``aco`` that the ablation compares with the defaults."""


def bench_ablation(seeds: int, n_tasks: int, load: float, interval: float) -> None:
    """What each part of the colony is worth on iot-default (paired by seed)."""
    runs: dict[str, list[tuple[float, float, float, float]]] = {}
    for seed in range(seeds):
        cluster, workload = generate("iot-default", n_tasks, load, seed)
        for label, args in ABLATIONS:
            s = simulate(
                cluster,
                workload,
                make_policy("aco", args),
                decision_interval=interval,
                queue="priority",
                seed=seed,
            ).summary
            runs.setdefault(label, []).append(
                (
                    s["mean_response_s"],
                    s["deadline_miss_rate"],
                    s["energy_j"],
                    s["scheduler_seconds"],
                )
            )
        console.log(f"seed {seed} done")
    base = np.array(runs["defaults"])
    table = Table(
        title=f"Ablation on iot-default ({n_tasks} tasks, load {load}, interval {interval} s, "
        f"priority queues, {seeds} seeds): variant minus defaults, mean ± 95 % CI"
    )
    for col in ("variant", "Δ response s", "Δ miss rate", "Δ energy kJ", "sched s"):
        table.add_column(col, justify="right")
    for label, vals in runs.items():
        v = np.array(vals)
        d = v - base
        r, m, e = ci95(d[:, 0]), ci95(d[:, 1]), ci95(d[:, 2] / 1e3)
        table.add_row(
            label,
            f"{r[0]:+.4f} ± {r[1]:.4f}",
            f"{m[0]:+.5f} ± {m[1]:.5f}",
            f"{e[0]:+.2f} ± {e[1]:.2f}",
            f"{v[:, 3].mean():.2f}",
        )
    console.print(table)


# ----------------------------------------------------------------------------
# 3. throughput and scaling
# ----------------------------------------------------------------------------


def fixed_batches(cluster: Cluster, n_tasks: int, batch: int, seed: int) -> tuple[Workload, float]:
    """An iot-default workload at load 0.9 regrouped into batches of exactly ``batch`` tasks.

    Tasks keep their sizes and regions; arrival ``k`` becomes ``(k // batch + 0.5) * delta``
    with ``delta`` the time ``batch`` tasks take to arrive at the load's rate.
    """
    w = generate_workload(cluster, get_scenario("iot-default").workload, n_tasks, 0.9, seed)
    delta = batch * float(np.ptp(w.arrival_s)) / n_tasks
    order = np.lexsort((w.task_id, w.arrival_s))
    cols = {k: np.asarray(v)[order] for k, v in w.columns().items() if k != "kind"}
    cols["task_id"] = np.arange(n_tasks)
    cols["arrival_s"] = (np.arange(n_tasks) // batch + 0.5) * delta
    return Workload.build(cols, cluster), delta


def throughput(n_nodes: int, batch: int, n_tasks: int, seed: int = 0) -> float:
    """Tasks per second of scheduler time on an iot-default-shaped cluster of ``n_nodes``."""
    f = n_nodes / 100
    params = ClusterParams(
        n_edge=round(60 * f), n_fog=round(30 * f), n_cloud=round(10 * f), n_regions=8
    )
    cluster = generate_cluster(params, seed)
    workload, delta = fixed_batches(cluster, n_tasks, batch, seed)
    engine = Engine(cluster, workload, decision_interval=delta, queue="priority")
    if engine.n_batches != -(-n_tasks // batch):
        raise RuntimeError(f"expected batches of {batch} tasks, got {engine.n_batches} batches")
    res = engine.run(make_policy("aco"), seed)
    return n_tasks / res.summary["scheduler_seconds"]


def bench_throughput(repeat: int) -> None:
    """Throughput at 100 nodes x 64 tasks, then its scaling, on one core."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    throughput(20, 16, 320)  # compile (numba caches) outside the measurement
    runs = [throughput(100, 64, 6400, seed=s) for s in range(repeat)]
    console.print(
        f"throughput at 100 nodes, batches of 64, defaults, one core: median "
        f"[bold]{np.median(runs):,.0f}[/] tasks/s (runs: "
        + ", ".join(f"{r:,.0f}" for r in runs)
        + ")  (goal >= 5,000)"
    )
    table = Table(title="Scaling: tasks/s (median of runs) and ms per batch")
    for col in ("nodes", "batch", "tasks/s", "ms/batch"):
        table.add_column(col, justify="right")
    for n_nodes, batch in [
        (25, 64),
        (50, 64),
        (100, 64),
        (200, 64),
        (400, 64),
        (100, 8),
        (100, 16),
        (100, 32),
        (100, 128),
        (100, 256),
    ]:
        n = max(3200, 30 * batch)
        tps = float(np.median([throughput(n_nodes, batch, n, seed=s) for s in range(repeat)]))
        table.add_row(str(n_nodes), str(batch), f"{tps:,.0f}", f"{batch / tps * 1e3:.2f}")
    console.print(table)
    bench_construction()


def bench_construction(ants: int = 8, reps: int = 50) -> None:
    """One iteration's construction: NumPy over all ants vs the compiled kernel."""
    cluster, workload = generate("iot-default", 4000, 0.9, 0)
    engine = Engine(cluster, workload, decision_interval=0.16, queue="priority")
    mct = make_policy("mct")
    mct.reset(cluster, np.random.default_rng(0))
    for _ in range(engine.n_batches // 2):
        tasks, view = engine.next_batch()
        engine.commit(mct.assign(tasks, view))
    tasks, view = engine.next_batch()
    col = colony.Colony()
    col.reset(cluster, np.random.default_rng(0))
    eta = colony.completion_heuristic(tasks, view)
    cand, ncand = col.candidates(eta, [])
    order = col.construction_order(tasks, view)
    tau = np.ones(cand.shape)
    etab = np.take_along_axis(eta, cand, axis=1) ** 2
    u = np.random.default_rng(0).random((ants, len(tasks)))
    pt = cost.build_problem(tasks, view, cost.CostWeights())
    con = colony.Construction.of_problem(pt, view, order, cand, ncand, etab)
    prm = colony.ColonyParams().kernel_params(0.01, len(tasks))
    scratch = colony.ant_scratch(con)
    out = np.empty((ants, len(tasks)), dtype=np.int64)

    def compiled() -> None:
        for a in range(ants):
            colony.construct_ant(u[a], tau, con, prm, scratch, out[a])

    def vectorised() -> np.ndarray:
        return colony.construct_numpy(u, tau, con, prm)

    compiled()
    assert np.array_equal(vectorised(), out)
    timings = {}
    for name, fn in (("numpy (vectorised over ants)", vectorised), ("numba (per ant)", compiled)):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        timings[name] = (time.perf_counter() - t) / reps
    table = Table(
        title=f"Construction of {ants} ants, {len(tasks)} tasks, {cluster.n_nodes} "
        f"nodes, {cand.shape[1]} candidates"
    )
    for c in ("implementation", "ms per iteration"):
        table.add_column(c, justify="right")
    for name, t in timings.items():
        table.add_row(name, f"{t * 1e3:.3f}")
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks selected on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=("small", "compare", "throughput", "ablation"), action="append"
    )
    parser.add_argument("--instances", type=int, default=240, help="small batches")
    parser.add_argument("--seeds", type=int, default=10, help="seeds of the comparison")
    parser.add_argument("--tasks", type=int, default=20000, help="tasks per seed")
    parser.add_argument("--load", type=float, default=0.9)
    parser.add_argument("--interval", type=float, default=0.5, help="decision interval, s")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per point")
    args = parser.parse_args(argv)
    only = set(args.only or ("small", "compare", "throughput"))
    if "small" in only:
        bench_small(args.instances, seed=0)
    if "throughput" in only:
        bench_throughput(args.repeat)
    if "compare" in only:
        bench_compare(args.seeds, args.tasks, args.load, args.interval)
    if "ablation" in only:  # not part of the default run
        bench_ablation(args.seeds, args.tasks, args.load, args.interval)


if __name__ == "__main__":
    main()
