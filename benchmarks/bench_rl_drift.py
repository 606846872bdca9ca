"""``rl`` under drift: train on drifting episodes, compare with ``mct`` on observed estimates.

Two commands::

    # train one objective variant (a few minutes; see VARIANTS)
    python benchmarks/bench_rl_drift.py train --variant g99 --minutes 4 --out runs/drift-g99

    # continue a run for more minutes
    python benchmarks/bench_rl_drift.py resume runs/drift-g99 --minutes 20

    # paired comparison on held-out seeds (20,000 and up), every checkpoint given
    python benchmarks/bench_rl_drift.py compare runs/drift-g99 runs/drift-avg --seeds 10

``compare`` plays each policy greedily on the same instances through the batched
rollouts (:func:`hybridsched.train.rollout.run_greedy`, the schedules of
``simulate``): drifting ``iot-drift`` (its own conditions, observed estimates) at
loads 0.8 and 0.9, and stationary ``iot-default`` at load 0.9 (nominal estimates,
the default ``compare`` scenario). ``mct`` is MCT on the same estimates; ``rl`` is
the shipped checkpoint. It prints mean response (s) per policy and the paired
difference against ``mct`` with a 95% CI (:mod:`hybridsched.experiments.stats`).
Quality figures are deterministic; only the training runs depend on the time
budget (the machine is shared, so a run of N minutes makes fewer updates there).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from hybridsched.experiments.stats import paired_diff
from hybridsched.learn.network import load_checkpoint
from hybridsched.policies.rl import DEFAULT_CHECKPOINT
from hybridsched.train.config import TrainConfig
from hybridsched.train.rollout import InstanceSpec, run_greedy
from hybridsched.train.trainer import Trainer, greedy_actor

BASE = TrainConfig(
    scenario="iot-drift",
    load=0.85,
    n_tasks=2000,
    init="mct",
    drift="random",
    estimates="observed",
    eval_seeds=4,
    eval_tasks=4000,
    eval_every_s=45.0,
)
"""What every variant shares: MCT-prior start, drift drawn per episode, observed estimates."""

VARIANTS = {
    "g90": {"gamma": 0.9, "gae_lambda": 0.9},
    "g99": {"gamma": 0.99, "gae_lambda": 0.95},
    "avg": {"gamma": 1.0, "gae_lambda": 0.95, "average_reward": True},
    "g99-slow": {"gamma": 0.99, "gae_lambda": 0.95, "lr": 3e-4},
}
"""The objectives compared: myopic (today's), long discount, average reward."""

SETTINGS = {
    "drift-0.8": InstanceSpec("iot-drift", 0.8, 8000, drift="scenario", estimates="observed"),
    "drift-0.9": InstanceSpec("iot-drift", 0.9, 8000, drift="scenario", estimates="observed"),
    "stationary-0.9": InstanceSpec("iot-default", 0.9, 10_000),
}
"""Held-out evaluation settings (test seeds 20,000 and up)."""


def train(variant: str, minutes: float, out: Path, seed: int) -> None:
    config = replace(BASE, minutes=minutes, seed=seed, **VARIANTS[variant])
    trainer = Trainer(config, out)
    trainer.run()
    p = trainer.progress
    print(json.dumps({"variant": variant, "updates": p.updates, "decisions": p.decisions,
                      "best_val": p.best, "mct_val": p.mct}))  # fmt: skip


def resume(out: Path, minutes: float) -> None:
    trainer = Trainer.resume(out)
    trainer.run(minutes)
    p = trainer.progress
    print(json.dumps({"updates": p.updates, "decisions": p.decisions,
                      "best_val": p.best, "mct_val": p.mct}))  # fmt: skip


def _mean_response(act, spec: InstanceSpec, seeds: list[int]) -> list[float]:
    return [r["mean_response_s"] for r in run_greedy(act, spec, seeds)]


def compare(paths: list[Path], n_seeds: int, settings: list[str]) -> dict:
    seeds = list(range(20_000, 20_000 + n_seeds))
    policies = {"rl": DEFAULT_CHECKPOINT, **{p.name: p for p in paths}}
    table: dict = {}
    for name in settings:
        spec = SETTINGS[name]
        mct = _mean_response(lambda obs, mask, best: best, spec, seeds)
        row = {"mct": {"mean": float(np.mean(mct))}}
        for pname, path in policies.items():
            model, _ = load_checkpoint(path)
            got = _mean_response(greedy_actor(model), spec, seeds)
            d = paired_diff(got, mct, "mean_response_s", pname)
            row[pname] = {
                "mean": float(np.mean(got)),
                "vs_mct_pct": 100 * d.relative,
                "ci_pct": 100 * d.relative_half_ci,
                "p": d.p_value,
            }
        table[name] = row
        print(name, json.dumps(row, indent=1))
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    t.add_argument("--minutes", type=float, default=4.0)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("resume")
    r.add_argument("out", type=Path)
    r.add_argument("--minutes", type=float, default=10.0)
    c = sub.add_parser("compare")
    c.add_argument("runs", type=Path, nargs="*")
    c.add_argument("--seeds", type=int, default=10)
    c.add_argument("--json", type=Path, default=None)
    c.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated")
    a = ap.parse_args()
    if a.cmd == "train":
        train(a.variant, a.minutes, a.out, a.seed)
    elif a.cmd == "resume":
        resume(a.out, a.minutes)
    else:
        table = compare(a.runs, a.seeds, a.settings.split(","))
        if a.json:
            a.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
