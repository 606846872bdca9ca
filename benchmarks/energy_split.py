"""Where a scheduler's extra energy comes from: idle power over a longer horizon, or work.

The model's energy (docs/MODEL.md, section 8) is, per node, idle power over
the whole run ``[t0, T]`` plus the dynamic part of its busy time. Two
schedulers that do the same work on the same nodes can differ in energy only
through the horizon ``T`` (the last finish): ``sum(idle W) * (T_b - T_a)``.
This runs two schedulers on the same instances (interval 0.5 s, priority
queues, observed estimates, the scenario's own conditions when it drifts) and
prints, per seed, the difference in energy beside that idle share, and the
tasks that finished last.

Usage::

    python benchmarks/energy_split.py iot-large 0.9 --tasks 30000 --seeds 20200,20201,20202 \\
        --b rl --b-arg checkpoint=src/hybridsched/checkpoints/rl-drift.pt     # about 1 min
"""

from __future__ import annotations

import argparse

import numpy as np

from bench_drift import scenario_of
from hybridsched.policies import make_policy
from hybridsched.sim import SimConfig, simulate
from hybridsched.sim.conditions import Conditions
from hybridsched.sim.options import SimOptions
from hybridsched.workload import generate_instance


def _args(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"energy_split: a policy argument is KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", help="a preset, NAME+drift or NAME:stationary (bench_drift)")
    ap.add_argument("load", type=float)
    ap.add_argument("--tasks", type=int, default=30000)
    ap.add_argument("--seeds", default="20200,20201,20202", help="comma-separated")
    ap.add_argument("--a", default="mct", help="the reference scheduler")
    ap.add_argument("--b", default="rl", help="the scheduler compared with it")
    ap.add_argument("--a-arg", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--b-arg", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--last", type=int, default=3, help="last-finishing tasks to list")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    policies = ((a.a, _args(a.a_arg)), (a.b, _args(a.b_arg)))
    print(f"{a.scenario}, load {a.load}, {a.tasks} tasks: {a.b} against {a.a}")
    for seed in seeds:
        inst = generate_instance(scenario_of(a.scenario), a.tasks, a.load, seed)
        kw = {"estimates": "observed"}
        if inst.conditions is not None and not a.scenario.endswith(":stationary"):
            kw["conditions"] = Conditions.from_frame(
                inst.conditions, inst.cluster, source=a.scenario
            )
        idle_w = float(np.sum(inst.cluster.power_idle_w))
        runs = []
        for name, args in policies:
            res = simulate(
                inst.cluster,
                inst.workload,
                make_policy(name, args),
                config=SimConfig(decision_interval=0.5, queue="priority"),
                options=SimOptions(**kw),
                seed=seed,
            )
            runs.append(res)
        (ra, rb) = (r.summary for r in runs)
        de = rb["energy_j"] - ra["energy_j"]
        dt = rb["makespan_s"] - ra["makespan_s"]
        arrivals = float(np.max(runs[0].tasks["arrival_s"]))
        print(
            f"seed {seed}: energy {100 * de / ra['energy_j']:+.2f} % ({de:+,.0f} J); horizon "
            f"{ra['makespan_s']:.1f} -> {rb['makespan_s']:.1f} s (last arrival {arrivals:.1f} s), "
            f"idle W x its change {idle_w * dt:+,.0f} J; mean response "
            f"{100 * (rb['mean_response_s'] / ra['mean_response_s'] - 1):+.2f} %"
        )
        for (name, _), res in zip(policies, runs, strict=True):
            t = res.tasks
            for i in np.argsort(t["finish_s"])[::-1][: a.last]:
                print(
                    f"    {name:>6} last: task {t['task_id'][i]} on {t['node'][i]}, priority "
                    f"{t['priority'][i]}, arrived {t['arrival_s'][i]:.1f}, started "
                    f"{t['start_s'][i]:.1f}, finished {t['finish_s'][i]:.1f} s"
                )


if __name__ == "__main__":
    main()
