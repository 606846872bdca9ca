"""The ray backend against the local pool: overhead, scaling with workers, identical rows.

Runs the standard suite's sweep (every scenario x loads x seeds x policy; the
page and plots, which cost both backends the same, are left out) on the local
process pool and on a local Ray, with 1 and 2 workers, and reports wall times,
runs per hour per worker, Ray's start-up time, and whether every row equals
the local pool's (wall-clock columns aside). Then it projects the standard
suite at ``--project-tasks`` tasks per run onto a cluster of ``--project-nodes``
nodes from the measured per-task cost (docs/SCALE.md).

With ``--train-updates N`` it measures training instead: ``train rl`` with
``--shards 2`` for N updates in this process, then on 1 and 2 Ray actors
(the same work and, checked, the same weights), repeated ``--repeat`` times
in turn, and reports rollout decisions per second (environment + policy, the
part that runs in the workers) and each run's wall time.

Usage::

    PYTHONPATH=src python benchmarks/bench_ray.py [--tasks 300] [--seeds 1] \\
        [--workers 1,2] [--json out.json]
    PYTHONPATH=src python benchmarks/bench_ray.py --train-updates 8 [--repeat 3]
    PYTHONPATH=src python benchmarks/bench_ray.py --rollouts 8 [--repeat 3]

``--rollouts N`` measures the rollouts alone (no learner): N rollouts of the
two shards on 1 local worker, 1 Ray actor and 2, with each worker's CPU
seconds, which show how the work divides when the cores are busy.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

from hybridsched.experiments.backends import LocalBackend, RayBackend
from hybridsched.experiments.compare import (
    WALL_CLOCK_COLUMNS,
    CompareConfig,
    default_policies,
    run_compare,
)
from hybridsched.experiments.suite import LOADS, SCENARIOS


def sweep(base: CompareConfig, backend) -> tuple[float, list[dict]]:
    """Wall time and rows of the suite's runs on ``backend``."""
    t = time.perf_counter()
    rows: list[dict] = []
    for sc in SCENARIOS:
        rows += run_compare(replace(base, scenario=sc), backend=backend)
    return time.perf_counter() - t, rows


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in rows]


def train_bench(updates: int, repeat: int, envs: int, steps: int) -> dict:
    """Rollout throughput of ``train rl`` in this process and on 1 and 2 Ray actors."""
    import tempfile

    import torch

    from hybridsched.train.trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        n_envs=envs,
        rollout_steps=steps,
        shards=2,
        max_updates=updates,
        minutes=60.0,
        eval_seeds=1,
        eval_tasks=200,
        eval_every_s=1e9,
    )
    setups = (("local", 1), ("ray", 1), ("ray", 2))
    out: dict = {setup: [] for setup in setups}
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            for backend, workers in setups:
                t = Trainer(
                    replace(cfg, backend=backend, workers=workers), f"{tmp}/{r}{backend}{workers}"
                )
                t0 = time.perf_counter()
                t.run()
                wall = time.perf_counter() - t0
                p = t.progress
                weights = [v.clone() for v in t.model.state_dict().values()]
                reference = reference or weights
                same = all(torch.equal(a, b) for a, b in zip(weights, reference, strict=True))
                row = {
                    "rollout_decisions_per_s": p.rollout_rate,
                    "training_decisions_per_s": p.training_rate,
                    "rollout_s": p.rollout_s,
                    "update_s": p.update_s,
                    "wall_s": wall,
                    "same_weights_as_local": same,
                }
                out[(backend, workers)].append(row)
                print(json.dumps({"backend": backend, "workers": workers, **row}), flush=True)
    return {f"{b}{w}": rows for (b, w), rows in out.items()}


def rollout_bench(rollouts: int, repeat: int, envs: int, steps: int) -> dict:
    """The rollouts alone (no learner): wall rate and each worker's CPU seconds.

    Two shards of ``envs / 2`` copies, stepped by one local worker, one Ray
    actor, or two; ``rollouts`` rollouts with fixed weights after one warm-up.
    On a machine whose cores are taken by other jobs the wall rate cannot show
    scaling; the CPU seconds show how the work divides: with two actors each
    should use half of what one uses, and ``decisions / max(CPU s)`` is the
    rate the workers would reach with a free core each.
    """
    import numpy as np

    from hybridsched.learn.features import N_FEATURES
    from hybridsched.learn.network import PairScorer
    from hybridsched.train.rl_rollout import RolloutWorker
    from hybridsched.train.trainer import TrainConfig
    from hybridsched.train.workers import WorkerGroup, share

    out: dict = {}
    for _ in range(repeat):
        for backend, workers in (("local", 1), ("ray", 1), ("ray", 2)):
            cfg = TrainConfig(
                n_envs=envs, rollout_steps=steps, shards=2, backend=backend, workers=workers
            )
            streams = zip(*(np.random.SeedSequence(k).spawn(2) for k in (1, 2)), strict=True)
            shards = [(c, a, b, None) for c, (a, b) in zip(share(envs, 2), streams, strict=True)]
            group = WorkerGroup(backend, workers)
            try:
                group.start(
                    RolloutWorker, [(cfg, shards[w.start : w.stop]) for w in share(2, workers)]
                )
                weights = group.put(PairScorer(N_FEATURES, cfg.hidden, "mct").state_dict())
                group.call("rollout", weights)  # warm-up: first calls load compiled kernels
                cpu0 = group.call("cpu_seconds")
                t0 = time.perf_counter()
                for _ in range(rollouts):
                    group.call("rollout", weights)
                wall = time.perf_counter() - t0
                cpu = [b - a for a, b in zip(cpu0, group.call("cpu_seconds"), strict=True)]
            finally:
                group.close()
            decisions = rollouts * envs * steps
            row = {
                "wall_decisions_per_s": decisions / wall,
                "worker_cpu_s": cpu,
                "free_core_decisions_per_s": decisions / max(cpu),
            }
            out.setdefault(f"{backend}{workers}", []).append(row)
            print(json.dumps({"backend": backend, "workers": workers, **row}), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--project-tasks", type=int, default=1_000_000)
    ap.add_argument("--project-seeds", type=int, default=10)
    ap.add_argument("--project-nodes", type=int, default=100)
    ap.add_argument("--project-cores", type=int, default=16)
    ap.add_argument("--json", default=None)
    ap.add_argument("--train-updates", type=int, default=0)
    ap.add_argument("--rollouts", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--envs", type=int, default=256)
    ap.add_argument("--steps", type=int, default=16)
    a = ap.parse_args()
    if a.rollouts or a.train_updates:
        bench, n = (rollout_bench, a.rollouts) if a.rollouts else (train_bench, a.train_updates)
        res = bench(n, a.repeat, a.envs, a.steps)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=2)
        return
    base = CompareConfig(
        tasks=a.tasks, seeds=a.seeds, loads=LOADS, policies=default_policies(), workers=1
    )
    runs = len(SCENARIOS) * len(LOADS) * a.seeds * len(base.policies)
    # compile and cache the kernels first: neither backend pays for it below
    run_compare(replace(base, tasks=50, seeds=1, loads=(0.5,)), backend=LocalBackend(1))
    out: dict = {"tasks": a.tasks, "seeds": a.seeds, "runs": runs, "cpus": os.cpu_count()}
    reference = None
    for w in (int(x) for x in a.workers.split(",")):
        t_local, rows = sweep(replace(base, workers=w), LocalBackend(w))
        reference = reference or strip(rows)
        assert strip(rows) == reference
        ray_backend = RayBackend(workers=w)
        t0 = time.perf_counter()
        ray_backend.start()
        t_start = time.perf_counter() - t0
        t_ray, rows = sweep(replace(base, workers=w, backend="ray"), ray_backend)
        ray_backend.close()
        same = strip(rows) == reference
        out[f"workers{w}"] = {
            "local_s": t_local,
            "ray_s": t_ray,
            "ray_start_s": t_start,
            "overhead": t_ray / t_local - 1,
            "overhead_with_start": (t_ray + t_start) / t_local - 1,
            "local_runs_per_hour_per_worker": runs / t_local * 3600 / w,
            "ray_runs_per_hour_per_worker": runs / t_ray * 3600 / w,
            "identical_rows": same,
        }
        print(json.dumps({f"workers{w}": out[f"workers{w}"]}), flush=True)
    # projection: the per-task cost of one worker, scaled to the projected run size
    w1 = out.get("workers1") or next(v for k, v in out.items() if k.startswith("workers"))
    per_task_s = w1["local_s"] / (runs * a.tasks)
    p_runs = len(SCENARIOS) * len(LOADS) * a.project_seeds * len(base.policies)
    p_run_s = per_task_s * a.project_tasks
    slots = a.project_nodes * a.project_cores
    waves = -(-p_runs // slots)
    out["projection"] = {
        "runs": p_runs,
        "tasks_per_run": a.project_tasks,
        "mean_run_s": p_run_s,
        "one_worker_h": p_runs * p_run_s / 3600,
        "cluster": f"{a.project_nodes} nodes x {a.project_cores} cores",
        "cluster_h_ideal": p_runs * p_run_s / slots / 3600,
        "cluster_waves": waves,
    }
    print(json.dumps({"projection": out["projection"]}), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
