"""Which tasks does foresight move on a drifting workload, and what do they gain?

Runs the hybrid at its default (observed estimates) on one ``iot-drift``
workload (8,000 tasks, interval 0.5 s, priority queues), climbs from its
assignment with the clairvoyant search of :mod:`hybridsched.sim.offline`
(conditions known in advance), replays the result, and splits the change in
total response by the tasks the climb moved:

* from a node slowed (speed multiplier < 1) at the task's decision;
* from a node slowed within the task's response (+5 s) after its decision;
* onto a node slowed during its new response;
* no slowdown on either node;

and the tasks it did not move. docs/HYBRID.md, "What foresight reaches under
drift", quotes three runs of it.

Usage::

    python benchmarks/offline_breakdown.py SEED LOAD     # e.g. 20000 0.85; 2 min
"""

from __future__ import annotations

import argparse

import numpy as np

from hybridsched.policies import make_policy
from hybridsched.sim import SimConfig, simulate
from hybridsched.sim.conditions import Conditions
from hybridsched.sim.offline import FixedAssignment, improve_offline
from hybridsched.sim.options import SimOptions
from hybridsched.workload import generate_instance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seed", type=int)
    ap.add_argument("load", type=float)
    ap.add_argument("--tasks", type=int, default=8000)
    a = ap.parse_args()
    inst = generate_instance("iot-drift", a.tasks, a.load, a.seed)
    c, w = inst.cluster, inst.workload
    cond = Conditions.from_frame(inst.conditions, c, source="iot-drift")
    cfg = SimConfig(decision_interval=0.5, queue="priority")
    opt = SimOptions(conditions=cond, estimates="observed")
    run = simulate(c, w, make_policy("hybrid"), config=cfg, options=opt, seed=a.seed)
    start = np.asarray(run.tasks["node_index"])  # workload row order
    res = improve_offline(
        c, w, start, decision_interval=0.5, queue="priority", conditions=cond, seed=a.seed
    )
    rep = simulate(
        c, w, FixedAssignment(w, res.nodes), config=cfg, options=SimOptions(conditions=cond)
    )
    r0 = np.asarray(run.tasks["response_s"])
    r1 = np.asarray(rep.tasks["response_s"])
    decided = np.ceil(w.arrival_s / 0.5) * 0.5

    def slowed(j: int, lo: float, hi: float) -> bool:
        """Node ``j`` has a slowing window open somewhere in ``[lo, hi]``."""
        m = (cond.node == j) & (cond.start_s <= hi) & (cond.end_s > lo) & (cond.speed < 1)
        return bool(m.any())

    moved = np.flatnonzero(res.nodes != start)
    groups: dict[str, list[int]] = {}
    for i in moved.tolist():
        a_, b_, d = int(start[i]), int(res.nodes[i]), float(decided[i])
        if slowed(a_, d, d):
            k = "from a node slowed at the decision"
        elif slowed(a_, d, d + r0[i] + 5.0):
            k = "from a node slowed soon after"
        elif slowed(b_, d, d + r1[i]):
            k = "onto a slowed node"
        else:
            k = "no slowdown on either node"
        groups.setdefault(k, []).append(i)
    change = r1 - r0
    print(
        f"iot-drift seed {a.seed} load {a.load}: mean response {r0.mean():.4f} -> "
        f"{r1.mean():.4f} s ({(r1.mean() / r0.mean() - 1) * 100:+.2f} %), "
        f"{moved.size} of {len(w)} tasks moved"
    )
    total = change.sum()
    moved_total = change[moved].sum()
    for k, idx in groups.items():
        ix = np.array(idx)
        print(
            f"  {k}: {ix.size} tasks, response {r0[ix].mean():.3f} -> {r1[ix].mean():.3f} s, "
            f"{change[ix].sum() / moved_total * 100:.0f} % of the moved tasks' change"
        )
    stay = np.setdiff1d(np.arange(len(w)), moved)
    print(
        f"  not moved: {stay.size} tasks, their response changed by {change[stay].sum():+.1f} s, "
        f"{change[stay].sum() / total * 100:.0f} % of the change of all tasks "
        f"({total:+.1f} s)"
    )


if __name__ == "__main__":
    main()
