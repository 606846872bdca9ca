"""The summary figures of a run, exactly as docs/MODEL.md defines them (one summarize)."""

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
"""The keys summary.json must have (docs/MODEL.md, "Result files")."""


def summarize(
    cluster: Cluster,
    *,
    arrival: np.ndarray,
    finish: np.ndarray,
    abs_deadline: np.ndarray,
    node: np.ndarray,
    dur: np.ndarray,
    priority: np.ndarray,
    done: np.ndarray | None = None,
    retries: np.ndarray | None = None,
    wasted: np.ndarray | None = None,
    outage_node: np.ndarray | None = None,
    outage_down: np.ndarray | None = None,
    outage_up: np.ndarray | None = None,
) -> dict[str, Any]:
    """Summary figures of a finished run (docs/MODEL.md; docs/OPTIONS.md with options).

    Response percentiles are over finished tasks; ``deadline_miss_rate`` is over
    all tasks (a rejected task misses). ``T`` is the last finish. Busy core-seconds
    include killed runs (``wasted``). A down node draws no power, so
    ``energy_j = sum_j(idle_j * up_j + (max_j - idle_j) * busy_j / cores_j)`` with
    ``up_j`` its time up in ``[t0, T]``; ``utilization`` is over the capacity
    ``sum(cores) * (T - t0)``. With no outage and every task finished, every
    figure is the base model's, bit for bit.

    Args:
        cluster: the cluster the run used.
        arrival, finish: per task, s.
        abs_deadline: per task, arrival + deadline (inf when none), s.
        node: per task, the node index that ran it (-1: never ran).
        dur: per task, the execution time on that node, s.
        priority: per task, the priority class.
        done: per task, it finished; ``None``: the base model (all did, and the
            keys of a run with options are left out).
        retries, wasted, outage_node, outage_down, outage_up: with ``done``: the
            retries per task, killed core-seconds per node, and the outages.

    Returns:
        The summary keys (less ``scheduler_seconds`` and ``policy``, which the
        engine adds) plus per-priority miss rates; with ``done`` also
        ``finished``, ``rejected``, ``retries``, ``availability``, ``outages``
        and ``wasted_core_s``.
    """
    n = arrival.shape[0]
    n_nodes = cluster.n_nodes
    options = done is not None
    if done is None:
        response = finish - arrival
    else:
        response = (finish - arrival)[done]
        node, dur = node[done], dur[done]
    t0 = float(arrival.min())
    horizon_end = float(finish.max()) if done is None else (
        float(finish[done].max()) if done.any() else t0
    )  # fmt: skip
    span = horizon_end - t0
    down_s = np.zeros(n_nodes)
    if outage_node is not None and outage_node.size:
        lo = np.maximum(outage_down, t0)
        hi = np.minimum(outage_up, horizon_end)
        np.add.at(down_s, outage_node, np.maximum(hi - lo, 0.0))
    busy = np.bincount(node, weights=dur, minlength=n_nodes)
    if wasted is not None:
        busy = busy + wasted
    dynamic = (cluster.power_max_w - cluster.power_idle_w) * busy / cluster.cores
    energy = float(np.sum(cluster.power_idle_w * (span - down_s) + dynamic))
    capacity_s = float(np.sum(cluster.cores)) * span
    missed = ~(finish <= abs_deadline)
    if response.size:
        p50, p95, p99 = np.percentile(response, [50.0, 95.0, 99.0])
        mean = float(np.mean(response))
    else:
        p50 = p95 = p99 = mean = float("nan")
    out: dict[str, Any] = {
        "tasks": int(n),
        "mean_response_s": mean,
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
    if options:
        n_done = int(np.count_nonzero(done))
        up_core_s = float(np.sum(cluster.cores * (span - down_s)))
        out["finished"] = n_done
        out["rejected"] = int(n - n_done)
        out["retries"] = int(np.sum(retries)) if retries is not None else 0
        if capacity_s > 0:
            # at most 1: the two sums of core-seconds may differ in the last bit
            out["availability"] = min(up_core_s / capacity_s, 1.0)  # (a NaN stays NaN)
        else:  # no span (nothing finished): the share of cores up at t0, not a blanket 1.0
            down_at_t0 = np.zeros(n_nodes, dtype=bool)
            if outage_node is not None and outage_node.size:
                now_down = (outage_down <= t0) & (t0 < outage_up)
                down_at_t0[outage_node[now_down]] = True
            out["availability"] = float(np.sum(cluster.cores[~down_at_t0]) / np.sum(cluster.cores))
        out["outages"] = int(outage_node.size) if outage_node is not None else 0
        out["wasted_core_s"] = float(np.sum(wasted)) if wasted is not None else 0.0
    return out
