"""Hand-written clusters and workloads for tests, from partial specs.

Only :mod:`hybridsched.model` is used, so tests of the independent reference
simulator can share these builders without touching the simulator itself.
"""

from __future__ import annotations

from typing import Any

from hybridsched.model import Cluster, Workload

INF = float("inf")


def make_cluster(nodes: list[dict[str, Any]], regions: int = 1, **defaults: Any) -> Cluster:
    """A cluster from partial node specs.

    Defaults: 1 core, speed 1, 1000 MB, 1 MB/s, 10-30 W, no latency; ``defaults``
    overrides them for every node (for example ``tier="edge"``).
    """
    full = []
    for j, spec in enumerate(nodes):
        node: dict[str, Any] = {
            "name": f"n{j}",
            "cores": 1,
            "speed": 1.0,
            "memory_mb": 1000.0,
            "bandwidth_mb_s": 1.0,
            "power_idle_w": 10.0,
            "power_max_w": 30.0,
            "latency_s": [0.0] * regions,
            **defaults,
        }
        node.update(spec)
        full.append(node)
    return Cluster.build({"name": "hand", "regions": regions, "nodes": full})


def make_workload(
    rows: list[dict[str, Any]], cluster: Cluster | None = None, **extra: list[float]
) -> Workload:
    """A workload from partial rows (defaults: region 0, no data, 1 GI, no memory,
    no deadline, priority 0); ``extra`` adds whole columns (e.g. ``work_est_gi``)."""
    defaults: dict[str, Any] = {
        "region": 0,
        "data_mb": 0.0,
        "work_gi": 1.0,
        "memory_mb": 0.0,
        "deadline_s": INF,
        "priority": 0,
    }
    full = [{**defaults, **r} for r in rows]
    cols: dict[str, Any] = {c: [r[c] for r in full] for c in ("task_id", "arrival_s", *defaults)}
    cols.update(extra)
    return Workload.build(cols, cluster=cluster)


def make_stream(works: list[float], gaps: list[float]) -> Workload:
    """Tasks 0, 1, ... of the given works, arriving at the running sums of ``gaps``
    (the first at ``gaps[0]``); every other column at its default."""
    arrivals = [sum(gaps[: i + 1]) for i in range(len(works))]
    return make_workload(
        [
            {"task_id": i, "arrival_s": float(a), "work_gi": w}
            for i, (a, w) in enumerate(zip(arrivals, works, strict=True))
        ]
    )
