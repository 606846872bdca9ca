"""Lower bounds on what any scheduler can achieve on a workload (SPEC.md's model).

A task decided at ``d`` on node ``j`` finishes no earlier than
``d + latency[j, region] + data / bandwidth[j] + work / speed[j]``: that is its
response with no waiting for a core, and the decision time ``d`` is fixed by the
decision interval whatever the scheduler does. So

    response_i >= (d_i - arrival_i) + min over feasible j of (transfer_ij + exec_ij)

for every task of every schedule, and the mean of the right-hand side bounds every
scheduler's mean response. The bound ignores contention entirely (every task gets
its best node to itself), so it is loose when nodes are busy; what it tells is
the headroom: a scheduler cannot be more than ``1 - bound / response`` below
another scheduler's mean ``response`` on the same workload.
"""

from __future__ import annotations

import numpy as np

from hybridsched.model import Cluster, Workload


def response_lower_bound(
    cluster: Cluster, workload: Workload, decision_interval: float = 0.0, chunk: int = 65536
) -> np.ndarray:
    """Per task, the no-waiting lower bound on its response time, s (workload row order).

    Args:
        cluster: the cluster.
        workload: the workload (every task fits some node's memory, as validated).
        decision_interval: the batching interval; 0 decides each task on arrival.
        chunk: tasks per vectorised block (bounds memory at ``chunk x nodes``).
    """
    if decision_interval < 0:
        raise ValueError(f"decision_interval: must be >= 0, got {decision_interval}")
    a = workload.arrival_s
    d = np.ceil(a / decision_interval) * decision_interval if decision_interval > 0 else a
    out = np.empty(len(workload))
    bw = cluster.bandwidth_mb_s[None, :]
    speed = cluster.speed[None, :]
    for lo in range(0, len(workload), chunk):
        s = slice(lo, lo + chunk)
        # the same operation order as the engine's ready and finish times
        ready = (d[s, None] + cluster.latency_s[:, workload.region[s]].T) + (
            workload.data_mb[s, None] / bw
        )
        finish = ready + workload.work_gi[s, None] / speed
        finish[workload.memory_mb[s, None] > cluster.memory_mb[None, :]] = np.inf
        out[s] = finish.min(axis=1) - a[s]
    return out
