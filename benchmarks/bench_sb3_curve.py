"""Learning curve of a stock Stable-Baselines3 agent on ``hybridsched/IoTCloud-v0``.

Trains ``PPO("MultiInputPolicy", env, seed=0)`` (or sb3-contrib's ``MaskablePPO``)
with SB3's default settings and, after each step budget, plays three fixed
instances (``reset(seed=1000..1002)``) greedily; prints the mean episode return
(in the environment's reward units) and the mean objective, then the same for a
uniformly random policy and for MCT. docs/RL.md reports its output.

Usage::

    python benchmarks/bench_sb3_curve.py                               # PPO, default options
    python benchmarks/bench_sb3_curve.py --algo maskable --steps 5000,20000
    python benchmarks/bench_sb3_curve.py --env node_order=index --env reward=accrued \\
        --env reward_scale=1 --steps 20000                             # the former defaults
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import hybridsched  # noqa: F401 (registers the environment)
from hybridsched.train import ENV_ID

SEEDS = (1000, 1001, 1002)


def _value(text: str) -> object:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def play(env: gym.Env, act, seeds=SEEDS) -> tuple[float, float]:
    """Mean return and mean objective of ``act(obs, rng, env)`` on ``seeds``."""
    rets, objs = [], []
    for s in seeds:
        obs, info = env.reset(seed=s)
        rng = np.random.default_rng(s)
        total = 0.0
        while True:
            obs, reward, terminated, truncated, info = env.step(act(obs, rng, env, info))
            total += reward
            if terminated or truncated:
                break
        rets.append(total)
        objs.append(info["objective"])
    return float(np.mean(rets)), float(np.mean(objs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algo", choices=["ppo", "maskable"], default="ppo")
    ap.add_argument("--steps", default="5000,10000,20000,50000,100000")
    ap.add_argument("--env", action="append", default=[], help="env option KEY=VALUE")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    kwargs = {k: _value(v) for k, v in (e.split("=", 1) for e in args.env)}
    env = gym.make(ENV_ID, **kwargs)
    ev = gym.make(ENV_ID, **kwargs)
    if args.algo == "maskable":
        from sb3_contrib import MaskablePPO

        model = MaskablePPO("MultiInputPolicy", env, seed=0)

        def greedy(obs, rng, e, info):
            mask = e.unwrapped.action_masks()
            return int(model.predict(obs, deterministic=True, action_masks=mask)[0])
    else:
        from stable_baselines3 import PPO

        model = PPO("MultiInputPolicy", env, seed=0)

        def greedy(obs, rng, e, info):
            return int(model.predict(obs, deterministic=True)[0])

    print(f"{args.algo} on {ENV_ID} {kwargs or '(default options)'}")
    print(f"{'steps':>8} {'return':>12} {'objective':>12} {'train s':>8}")
    t0, done = time.perf_counter(), 0
    ret, obj = play(ev, greedy)
    print(f"{0:>8} {ret:>12.1f} {obj:>12.1f} {0.0:>8.1f}", flush=True)
    for s in (int(x) for x in args.steps.split(",")):
        model.learn(total_timesteps=s - done, reset_num_timesteps=False)
        done = s
        ret, obj = play(ev, greedy)
        print(f"{s:>8} {ret:>12.1f} {obj:>12.1f} {time.perf_counter() - t0:>8.1f}", flush=True)
    n = ev.action_space.n
    ret, obj = play(ev, lambda obs, rng, e, info: int(rng.integers(n)))
    print(f"{'random':>8} {ret:>12.1f} {obj:>12.1f}")
    ret, obj = play(ev, lambda obs, rng, e, info: int(info["mct_action"]))
    print(f"{'mct':>8} {ret:>12.1f} {obj:>12.1f}")


if __name__ == "__main__":
    main()
