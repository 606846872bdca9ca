"""Benchmark: what the colony's local search of iteration-best ants buys, against its time.

The colony (``aco``, and the ``hybrid``'s) improves the best seed by local
search, then every ``ls_every``-th iteration-best ant, then the final best.
On long queues and large batches the ants' local search is most of the
decision time (issue 17's ``trace30`` and ``bursty`` cases). ``ls_limit``
keeps it on batches up to that many tasks only; a larger batch gets local
search on the best seed and the final best, as with ``ls_every=0``.
``ant_limit`` gives a larger batch no ants at all (the polished seed).
A variant is a set of colony parameters (``--variants``, ``;``-separated,
each ``key=value,...``; ``default`` is the policy's own parameters).

Every variant runs on the same instances (decision interval 0.5 s, priority
queues), seeds ``--first`` on, and is paired by instance with the default
(``default``). Per (scenario, policy, variant): mean response,
missed deadlines (count), energy, and tasks per second of the scheduler's
wall time (``scheduler_seconds`` of the runs, compilation excluded; with
several workers on a small machine, a ratio only), with paired 95% CIs of
the differences.

Instances: the ``iot-*`` scenarios at ``--load`` (``iot-drift`` with its
conditions and observed estimates), and, where the GenAI request trace is
next to the checkout, the ``trace30`` case of ``bench_cases.py`` at loads
0.8, 0.85 and 0.9 (one instance each; its seeds are the loads).

    python benchmarks/bench_ls_budget.py [--scenarios iot-default,iot-bursty,iot-drift]
        [--seeds 10] [--first 100] [--tasks 8000]
        [--variants "default;ls_limit=64;ls_limit=1"]
        [--policies aco,hybrid] [--workers 1] [--out benchmarks/results/ls-budget.json]
    python benchmarks/bench_ls_budget.py --tables benchmarks/results/ls-budget.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from bench_cases import TRACE, import_trace30
from hybridsched.errors import ConfigError
from hybridsched.experiments.stats import mean_ci, paired_diff
from hybridsched.policies.colony import ColonyParams

TRACE_LOADS = (0.8, 0.85, 0.9)
"""Target loads of the ``trace30`` instances."""

DEFAULT = "default"
"""The variant with the policy's own colony parameters."""


def overrides(variant: str) -> dict[str, Any]:
    """The colony parameters a variant sets: ``key=value,...`` (numbers, true/false), or none."""
    if variant == DEFAULT:
        return {}
    out = {}
    for item in variant.split(","):
        key, _, value = item.partition("=")
        if value.strip().lower() in ("true", "false"):
            out[key.strip()] = value.strip().lower() == "true"
            continue
        try:
            out[key.strip()] = int(value)
        except ValueError:  # a fraction (ls_gap=0.02, 1e-3)
            out[key.strip()] = float(value)
    return out


def trace_instances(work: Path, trace: Path = TRACE) -> dict[float, Path]:
    """The ``trace30`` workloads (one per load of :data:`TRACE_LOADS`) imported into
    ``work`` (:func:`bench_cases.import_trace30`); empty without the trace."""
    if not trace.exists():
        return {}
    return {load: import_trace30(work, trace, load) for load in TRACE_LOADS}


def run_one(job: tuple) -> dict[str, Any]:
    """One simulation; ``job`` is (scenario, load, seed, tasks, policy, variant, trace workload)."""
    import dataclasses

    from hybridsched.io import read_cluster, read_workload
    from hybridsched.policies import make_policy
    from hybridsched.sim import SimConfig, simulate
    from hybridsched.sim.conditions import Conditions
    from hybridsched.sim.options import SimOptions
    from hybridsched.workload import generate_instance

    scenario, load, seed, tasks, policy, variant, path = job
    options = None
    if path:
        cluster = read_cluster(Path(path).parent / "c30.yaml")
        workload = read_workload(path)
    else:
        inst = generate_instance(scenario, tasks, load, seed)
        cluster, workload = inst.cluster, inst.workload
        if inst.conditions is not None:
            cond = Conditions.from_frame(inst.conditions, inst.cluster, source=scenario)
            options = SimOptions(conditions=cond, estimates="observed")
    pol = make_policy(policy)
    # colony parameters (the hybrid does not take every one as an argument)
    pol.params = dataclasses.replace(pol.params, **overrides(variant))
    pol.colony.params = pol.params
    res = simulate(
        cluster,
        workload,
        pol,
        config=SimConfig(decision_interval=0.5, queue="priority"),
        options=options,
        seed=seed,
    )
    s = res.summary
    n = int(s["tasks"])
    return {
        "scenario": scenario,
        "load": load,
        "seed": seed,
        "policy": policy,
        "variant": variant,
        "mean_response_s": float(s["mean_response_s"]),
        "p95_response_s": float(s["p95_response_s"]),
        "misses": round(float(s["deadline_miss_rate"]) * n),
        "energy_j": float(s["energy_j"]),
        "tasks": n,
        "scheduler_s": float(s["scheduler_seconds"]),
    }


def _series(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [r[key] for r in sorted(rows, key=lambda r: (r["load"], r["seed"]))]


def tables(rows: list[dict[str, Any]]) -> str:
    """One Markdown table: per (scenario, policy, variant), the means and paired differences."""
    out = [
        "| scenario | policy | variant | runs | tasks/s | mean response s | vs default "
        "| misses (sum) | vs default | energy MJ | vs default |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for sc, pol in sorted({(r["scenario"], r["policy"]) for r in rows}):
        sub = [r for r in rows if (r["scenario"], r["policy"]) == (sc, pol)]
        base = [r for r in sub if r["variant"] == DEFAULT]
        for var in sorted({r["variant"] for r in sub}, key=lambda v: (v != DEFAULT, v)):
            cur = [r for r in sub if r["variant"] == var]
            if {(r["load"], r["seed"]) for r in cur} != {(r["load"], r["seed"]) for r in base}:
                continue  # not every instance ran: no pairs
            rate = sum(r["tasks"] for r in cur) / sum(r["scheduler_s"] for r in cur)
            cells = [sc, pol, var, str(len(cur)), f"{rate:,.0f}"]
            for key, scale, fmt in (
                ("mean_response_s", 1.0, "{:.4f}"),
                ("misses", 1.0, "{:.0f}"),
                ("energy_j", 1e-6, "{:.4f}"),
            ):
                a, b = _series(cur, key), _series(base, key)
                total = np.sum(a) if key == "misses" else np.mean(a)
                cells.append(fmt.format(total * scale))
                if var == DEFAULT:
                    cells.append("")
                    continue
                d = paired_diff(a, b, key, "default")
                if key == "misses":
                    m, h = mean_ci(np.subtract(a, b))
                    cells.append(f"{m:+.1f} ± {h:.1f} per run")
                else:
                    mark = "" if d.significant else " (n.s.)"
                    cells.append(f"{d.percent()}{mark}")
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="iot-default,iot-bursty,iot-drift")
    ap.add_argument("--load", type=float, default=0.9)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first", type=int, default=100, help="first seed")
    ap.add_argument("--tasks", type=int, default=8000)
    ap.add_argument(
        "--variants",
        default=f"{DEFAULT};ls_limit=64;ls_limit=1",
        help="';'-separated colony parameter sets (key=value,...)",
    )
    ap.add_argument("--policies", default="aco,hybrid")
    ap.add_argument("--trace", type=Path, default=TRACE, help="the GenAI request trace (csv)")
    ap.add_argument("--no-trace", action="store_true", help="leave out the trace30 instances")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ls-budget.json"))
    ap.add_argument("--tables", type=Path, nargs="+", help="only print the tables of saved files")
    a = ap.parse_args()
    if a.tables is not None:
        print(tables([r for f in a.tables for r in json.loads(f.read_text())["runs"]]))
        return
    variants = [v.strip() for v in a.variants.split(";") if v.strip()]
    if DEFAULT not in variants:
        ap.error(f"--variants: must include {DEFAULT!r}, the runs the others are paired with")
    for v in variants:
        try:  # a bad one fails here, not in a worker
            ColonyParams(**overrides(v))
        except (TypeError, ValueError, ConfigError) as e:
            ap.error(f"--variants {v!r}: {e}")
    policies = [p.strip() for p in a.policies.split(",") if p.strip()]
    scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    meta = {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}
    del meta["out"], meta["tables"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        traces = {} if a.no_trace else trace_instances(Path(tmp), a.trace)
        if not traces and not a.no_trace:
            print(f"trace30: left out, {a.trace} not found", flush=True)
        jobs = [
            (sc, a.load, seed, a.tasks, pol, var, "")
            for sc in scenarios
            for seed in range(a.first, a.first + a.seeds)
            for pol in policies
            for var in variants
        ]
        jobs += [
            ("trace30", load, 0, 0, pol, var, str(path))
            for load, path in traces.items()
            for pol in policies
            for var in variants
        ]
        a.out.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        with ProcessPoolExecutor(a.workers) as ex:
            for fut in as_completed([ex.submit(run_one, j) for j in jobs]):
                rows.append(fut.result())
                # one run per line, saved as each ends: a sweep stopped early keeps what ran
                runs = ",\n".join(json.dumps(r) for r in rows)
                a.out.write_text(f'{{"config": {json.dumps(meta)}, "runs": [\n{runs}\n]}}\n')
    print(f"{len(jobs)} runs in {time.perf_counter() - t:.0f} s; raw results: {a.out}\n")
    print(tables(rows))


if __name__ == "__main__":
    main()
