"""Benchmark of the learned scheduler: throughput and held-out quality.

Prints two tables:

1. Decisions per second through environment + policy as training runs them
   (``VecSim`` copies, one network forward per step, sampling) and over whole
   PPO updates (a few updates of a real training run).
2. Mean response time (s) on held-out seeds (20_000 on; training never sees
   them, validation uses 10_000 on) of ``rl`` (the checkpoint, run through
   ``simulate`` like any policy) against random, least-loaded and MCT on
   ``iot-default`` at load 0.8, ``iot-hetero`` and ``iot-default`` with twice
   the nodes.

Usage::

    python benchmarks/bench_rl.py [--checkpoint PATH] [--tasks 5000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from hybridsched.learn.network import masked_logits
from hybridsched.policies import make_policy
from hybridsched.sim import simulate
from hybridsched.train.rollout import InstanceSpec, VecSim
from hybridsched.train.trainer import TrainConfig, Trainer
from hybridsched.workload import generate, get_scenario

BASELINES = ("random", "least-loaded", "mct")
HELD_OUT_BASE = 20_000


def doubled(name: str):
    """The scenario ``name`` with twice as many nodes of every tier."""
    sc = get_scenario(name)
    c = sc.cluster
    cluster = replace(c, n_edge=2 * c.n_edge, n_fog=2 * c.n_fog, n_cloud=2 * c.n_cloud)
    return replace(sc, name=f"{name}-x2", cluster=cluster)


def rollout_rate(model, n_envs: int = 256, steps: int = 200) -> float:
    """Decisions/s of the training rollout loop: simulate, featurise, score, sample, commit."""
    torch.set_num_threads(1)
    vs = VecSim(InstanceSpec("iot-default", 0.8, 2000), n_envs, itertools.count(1_000_000))
    rng = np.random.default_rng(0)
    for _ in range(5):  # warm up
        vs.step(vs.best)
    t = time.perf_counter()
    with torch.inference_mode():
        for _ in range(steps):
            x = torch.from_numpy(vs.obs)
            m = torch.from_numpy(vs.mask)
            h = model.embed(x)
            logits = masked_logits(model.score(x, h), m)
            g = torch.from_numpy(rng.gumbel(size=logits.shape).astype(np.float32))
            top = logits.topk(16, dim=1).indices
            model.value(h.gather(1, top[..., None].expand(-1, -1, h.shape[-1])), m.gather(1, top))
            vs.step((logits + g).argmax(dim=1).numpy())
    return n_envs * steps / (time.perf_counter() - t)


def training_rates(updates: int = 20) -> tuple[float, float]:
    """(rollout, rollout + update) decisions/s of a short real training run on iot-default 0.8."""
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(max_updates=updates, eval_seeds=1, eval_tasks=500, eval_every_s=1e9)
        trainer = Trainer(config, Path(tmp))
        trainer.run()
        return trainer.progress.rollout_rate, trainer.progress.training_rate


def compare(checkpoint: str, tasks: int, n_seeds: int, load: float) -> list[tuple]:
    """Mean response per setting and policy on the held-out seeds."""
    rl = make_policy("rl", {"checkpoint": checkpoint} if checkpoint else {})
    settings = [
        ("iot-default", "iot-default"),
        ("iot-hetero", "iot-hetero"),
        ("iot-default x2 nodes", doubled("iot-default")),
    ]
    rows = []
    for label, scenario in settings:
        res: dict[str, list[float]] = {p: [] for p in ("rl", *BASELINES)}
        for k in range(n_seeds):
            cluster, workload = generate(scenario, tasks, load, HELD_OUT_BASE + k)
            for name in BASELINES:
                r = simulate(cluster, workload, make_policy(name), seed=k)
                res[name].append(r.summary["mean_response_s"])
            r = simulate(cluster, workload, rl, seed=k)
            res["rl"].append(r.summary["mean_response_s"])
        means = {p: float(np.mean(v)) for p, v in res.items()}
        rows.append((label, cluster.n_nodes, means))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="", help="checkpoint (default: the shipped one)")
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--load", type=float, default=0.8)
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()

    rl = make_policy("rl", {"checkpoint": args.checkpoint} if args.checkpoint else {})
    print(f"checkpoint: {rl.path}")
    if not args.skip_throughput:
        roll = rollout_rate(rl.model)
        t_roll, t_all = training_rates()
        print("\nthroughput (decisions/s, iot-default 0.8, 100 nodes, 1 torch thread)")
        print(f"  {'rollout loop (env + policy + sampling), 256 copies':<58}{roll:>10,.0f}")
        print(f"  {'training: rollouts only':<58}{t_roll:>10,.0f}")
        print(f"  {'training: rollouts + PPO updates':<58}{t_all:>10,.0f}")

    print(
        f"\nheld-out mean response, s ({args.seeds} seeds from {HELD_OUT_BASE}, "
        f"{args.tasks} tasks, load {args.load})"
    )
    head = f"  {'setting':<22}{'nodes':>6}" + "".join(f"{p:>14}" for p in ("rl", *BASELINES))
    print(head + f"{'rl/random':>11}{'rl/mct':>9}{'rl/least-l':>12}")
    for label, n, m in compare(args.checkpoint, args.tasks, args.seeds, args.load):
        cells = "".join(f"{m[p]:>14.4f}" for p in ("rl", *BASELINES))
        print(
            f"  {label:<22}{n:>6}{cells}{m['rl'] / m['random']:>11.3f}"
            f"{m['rl'] / m['mct']:>9.4f}{m['rl'] / m['least-loaded']:>12.3f}"
        )


if __name__ == "__main__":
    main()
