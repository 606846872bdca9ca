"""How many of its batches ``rl`` (at its defaults) places with its drift network.

For each scenario (a preset, or ``NAME+drift`` as in ``bench_drift.py``) and seed: one
run at the given load, with the scenario's conditions, observed estimates, decision
interval 0.5 s, priority queues; prints the share (and the number) of ``assign`` calls
that went to the drift network.

    python benchmarks/rl_switch_share.py --scenarios iot-drift,iot-large+drift
    python benchmarks/rl_switch_share.py --scenarios iot-default --shared-links --load 0.9
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from bench_drift import scenario_of
from hybridsched.policies import make_policy
from hybridsched.sim import SimConfig, simulate
from hybridsched.sim.conditions import Conditions
from hybridsched.sim.options import SimOptions
from hybridsched.workload import generate_instance


class Counted:
    """``rl`` at its defaults, counting the batches it is asked to place."""

    name = "rl-counted"

    def __init__(self) -> None:
        self.rl = make_policy("rl")
        self.calls = 0

    def reset(self, cluster: Any, rng: np.random.Generator) -> None:
        self.rl.reset(cluster, rng)
        self.calls = 0

    def assign(self, tasks: Any, view: Any) -> np.ndarray:
        self.calls += 1
        return self.rl.assign(tasks, view)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="iot-drift,iot-default+drift,iot-hetero+drift,"
                    "iot-large+drift,iot-bursty+drift,iot-small+drift")  # fmt: skip
    ap.add_argument("--seeds", default="20300,20301,20302")
    ap.add_argument("--tasks", type=int, default=8000)
    ap.add_argument("--load", type=float, default=0.85)
    ap.add_argument("--latency-jitter", type=float, default=0.0)
    ap.add_argument("--shared-links", action="store_true")
    a = ap.parse_args()
    opts = {"latency_jitter": a.latency_jitter, "shared_links": a.shared_links}
    for name in a.scenarios.split(","):
        shares = []
        for seed in (int(s) for s in a.seeds.split(",")):
            inst = generate_instance(scenario_of(name), a.tasks, a.load, seed)
            cond = None
            if inst.conditions is not None:
                cond = Conditions.from_frame(inst.conditions, inst.cluster, source=name)
            p = Counted()
            config = SimConfig(decision_interval=0.5, queue="priority")
            options = SimOptions(conditions=cond, estimates="observed", **opts)
            simulate(inst.cluster, inst.workload, p, config=config, options=options, seed=seed)
            shares.append(f"{p.rl.drift_batches / p.calls:6.1%} ({p.rl.drift_batches})")
        print(f"{name:20s} " + "  ".join(shares), flush=True)


if __name__ == "__main__":
    main()
