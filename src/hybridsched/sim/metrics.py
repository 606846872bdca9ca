"""The summary figures of a run, exactly as SPEC.md defines them."""

from __future__ import annotations

from typing import Any

import numpy as np

from hybridsched.model import Cluster

SUMMARY_KEYS: tuple[str, ...] = (
    "tasks",
    "mean_response_s",
    "p50_response_s",
    "p95_response_s",
    "p99_response_s",
    "deadline_miss_rate",
    "makespan_s",
    "energy_j",
    "utilization",
    "scheduler_seconds",
    "policy",
)
"""The keys summary.json must have (SPEC.md, "Result files")."""


def summarize(
    cluster: Cluster,
    *,
    arrival: np.ndarray,
    finish: np.ndarray,
    abs_deadline: np.ndarray,
    node: np.ndarray,
    dur: np.ndarray,
    priority: np.ndarray,
) -> dict[str, Any]:
    """Summary figures of a finished run.

    Args:
        cluster: the cluster the run used.
        arrival, finish: per task, s.
        abs_deadline: per task, arrival + deadline (inf when none), s.
        node: per task, the node index that ran it.
        dur: per task, the execution time on that node, s.
        priority: per task, the priority class.

    Returns:
        SPEC's keys (less ``scheduler_seconds`` and ``policy``, which the engine
        adds) plus per-priority miss rates and busy time per tier.
    """
    response = finish - arrival
    t0 = float(arrival.min())
    horizon_end = float(finish.max())
    span = horizon_end - t0
    busy = np.bincount(node, weights=dur, minlength=cluster.n_nodes)
    dynamic = (cluster.power_max_w - cluster.power_idle_w) * busy / cluster.cores
    energy = float(np.sum(cluster.power_idle_w * span + dynamic))
    capacity_s = float(np.sum(cluster.cores)) * span
    missed = ~(finish <= abs_deadline)
    p50, p95, p99 = np.percentile(response, [50.0, 95.0, 99.0])
    out: dict[str, Any] = {
        "tasks": int(arrival.shape[0]),
        "mean_response_s": float(np.mean(response)),
        "p50_response_s": float(p50),
        "p95_response_s": float(p95),
        "p99_response_s": float(p99),
        "deadline_miss_rate": float(np.mean(missed)),
        "makespan_s": span,
        "energy_j": energy,
        "utilization": float(np.sum(busy) / capacity_s) if capacity_s > 0 else 0.0,
    }
    # per class, without a sort: priorities are small non-negative integers
    n_by = np.bincount(priority)
    missed_by = np.bincount(priority, weights=missed)
    out["deadline_miss_rate_by_priority"] = {
        str(p): float(missed_by[p] / n_by[p]) for p in np.flatnonzero(n_by)
    }
    return out
