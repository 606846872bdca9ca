"""A deliberately simple, independent reference simulator of docs/MODEL.md (the base model).

This module is an *oracle*: it re-implements the semantics of ``docs/MODEL.md`` for a
FIXED assignment of tasks to nodes, written for clarity, not speed. It imports
nothing from ``hybridsched`` except the validated input containers
(:class:`~hybridsched.model.Cluster`, :class:`~hybridsched.model.Workload`), so
it is an independent check of the main simulator.

Given the assignment, nodes never interact, so each node is simulated on its
own with an explicit time-stepping loop:

1. the next instant ``t`` is the smallest pending event time (a task becoming
   ready, or a running task finishing);
2. every event stamped exactly ``t`` is applied (completions free their core,
   tasks that become ready join the waiting list);
3. then, while a core is free and a task waits, the queue discipline picks the
   task to start at ``t``:

   * ``fifo``: smallest ``(ready_s, task_id)``;
   * ``priority``: smallest ``(priority, arrival_s + deadline_s, ready_s, task_id)``
     (no deadline is ``+inf``).

Every arithmetic expression is written the way docs/MODEL.md writes it, in float64:

* decision time ``d = arrival_s`` when ``delta == 0``, else
  ``np.ceil(arrival_s / delta) * delta``;
* ``ready = d + latency_s[j, region] + data_mb / bandwidth_mb_s[j]`` (evaluated
  left to right; :attr:`Cluster.latency_s` has shape ``(N, R)``);
* ``finish = start + work_gi / speed[j]``.

**Conditions** (docs/MODEL.md section 12), optional: windows
``(node, start_s, end_s, speed, latency, bandwidth)``; inside a window
``[start_s, end_s)`` the node's speed, latency and bandwidth are the nominal
ones times the window's factors, outside it the nominal ones. Then:

* ``ready = d + latency_s[j, region] * l + data_mb / (bandwidth_mb_s[j] * b)``
  with the factors ``l``, ``b`` in force at the decision ``d``;
* a task starting at ``t`` runs ``work_gi / (speed[j] * s)`` with the factor in
  force at ``t``;
* when the node's speed changes at ``t`` from ``v_old`` to ``v_new``, a task
  running there that finishes after ``t`` is re-timed to
  ``t + (finish - t) * v_old / v_new``; the change comes before the
  completions and readiness of ``t`` (a task finishing exactly at ``t``
  finishes; a task starting at ``t`` runs at the new speed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hybridsched.model import Cluster, Workload

QUEUES: tuple[str, ...] = ("fifo", "priority")
"""The queue disciplines of docs/MODEL.md."""

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
)
"""The summary figures of docs/MODEL.md that depend on the schedule only (the policy-related
keys ``scheduler_seconds`` and ``policy`` are not the oracle's business)."""


def decision_times(arrival_s: np.ndarray, delta: float) -> np.ndarray:
    """Decision time of each task (docs/MODEL.md rule 1).

    ``delta == 0``: the arrival itself. ``delta > 0``: ``ceil(a / delta) * delta``
    in float64, which is ``a`` itself whenever that expression rounds back to it.
    """
    arrival = np.asarray(arrival_s, dtype=np.float64)
    if delta == 0:
        return arrival.copy()
    return np.ceil(arrival / np.float64(delta)) * np.float64(delta)


def _queue_key(queue: str, workload: Workload, ready_s: np.ndarray, k: int) -> tuple[Any, ...]:
    """The sort key of row ``k`` under discipline ``queue`` (smaller starts first)."""
    task_id = int(workload.task_id[k])
    ready = float(ready_s[k])
    if queue == "fifo":
        return (ready, task_id)
    # priority: an absent deadline is stored as inf, so arrival + inf = inf.
    absolute_deadline = float(workload.arrival_s[k]) + float(workload.deadline_s[k])
    return (int(workload.priority[k]), absolute_deadline, ready, task_id)


Window = tuple[int, float, float, float, float, float]
"""A condition window: node index, start_s, end_s, speed, latency, bandwidth factors."""


def factors_at(windows: list[Window], node: int, t: float) -> tuple[float, float, float]:
    """The (speed, latency, bandwidth) factors of ``node`` in force at ``t``."""
    for j, start, end, speed, latency, bandwidth in windows:
        if j == node and start <= t < end:
            return speed, latency, bandwidth
    return 1.0, 1.0, 1.0


def _simulate_one_node(
    rows: list[int],
    cores: int,
    ready_s: np.ndarray,
    work_gi: np.ndarray,
    speed_at: Any,
    speed_changes: list[float],
    keys: dict[int, tuple[Any, ...]],
    start_s: np.ndarray,
    finish_s: np.ndarray,
) -> None:
    """Run the tasks ``rows`` on one node with ``cores`` cores; fill ``start_s``/``finish_s``.

    A plain time-stepping loop over the sorted event instants, with explicit lists.
    ``speed_at(t)`` is the node's speed in force at ``t``; ``speed_changes`` the
    times it may change (sorted).
    """
    not_ready: list[int] = sorted(rows, key=lambda k: float(ready_s[k]))  # by ready time
    next_ready = 0  # index into not_ready of the next task to become ready
    waiting: list[int] = []  # ready, not yet started
    running: list[tuple[float, int]] = []  # (finish time, row)
    free_cores = cores
    changes = list(speed_changes)
    speed = speed_at(-np.inf)

    while next_ready < len(not_ready) or waiting or running:
        # 1. The next instant: the earliest pending readiness or completion.
        candidates: list[float] = []
        if next_ready < len(not_ready):
            candidates.append(float(ready_s[not_ready[next_ready]]))
        candidates.extend(f for f, _ in running)
        if not candidates:  # pragma: no cover - waiting tasks always find a free core
            raise AssertionError("tasks wait but nothing runs and nothing arrives")
        t = min(candidates)
        if changes and changes[0] <= t:
            # a speed change comes first: re-time what runs past it, then go on from there
            t = changes.pop(0)
            new = speed_at(t)
            if new != speed:
                running = [(t + (f - t) * speed / new, k) if f > t else (f, k) for f, k in running]
                for f, k in running:
                    finish_s[k] = f
                speed = new

        # 2a. Apply every completion stamped t.
        still_running: list[tuple[float, int]] = []
        for f, k in running:
            if f == t:
                free_cores += 1
            else:
                still_running.append((f, k))
        running = still_running

        # 2b. Apply every readiness stamped t.
        while next_ready < len(not_ready) and float(ready_s[not_ready[next_ready]]) == t:
            waiting.append(not_ready[next_ready])
            next_ready += 1

        # 3. Start tasks while a core is free and a task waits.
        while free_cores > 0 and waiting:
            k = min(waiting, key=lambda r: keys[r])
            waiting.remove(k)
            start_s[k] = t
            finish_s[k] = t + float(work_gi[k]) / speed
            running.append((float(finish_s[k]), k))
            free_cores -= 1


def summarize(
    cluster: Cluster,
    workload: Workload,
    node_of_task: np.ndarray,
    start_s: np.ndarray,
    finish_s: np.ndarray,
) -> dict[str, float | int]:
    """The summary figures of docs/MODEL.md for a finished schedule."""
    n = len(workload)
    if n == 0:
        nan = float("nan")
        return {
            "tasks": 0,
            "mean_response_s": nan,
            "p50_response_s": nan,
            "p95_response_s": nan,
            "p99_response_s": nan,
            "deadline_miss_rate": 0.0,
            "makespan_s": 0.0,
            "energy_j": 0.0,
            "utilization": 0.0,
        }
    arrival = np.asarray(workload.arrival_s, dtype=np.float64)
    response = finish_s - arrival
    missed = finish_s > arrival + workload.deadline_s  # inf deadline: never missed
    t0 = float(np.min(arrival))
    horizon = float(np.max(finish_s))
    span = horizon - t0

    energy = 0.0
    busy_total = 0.0
    for j in range(cluster.n_nodes):
        on_j = node_of_task == j
        busy_core_seconds = float(np.sum(finish_s[on_j] - start_s[on_j]))
        idle_w = float(cluster.power_idle_w[j])
        max_w = float(cluster.power_max_w[j])
        energy += idle_w * span + (max_w - idle_w) * busy_core_seconds / int(cluster.cores[j])
        busy_total += busy_core_seconds
    utilization = busy_total / (int(np.sum(cluster.cores)) * span)

    p50, p95, p99 = np.percentile(response, [50, 95, 99])
    return {
        "tasks": n,
        "mean_response_s": float(np.mean(response)),
        "p50_response_s": float(p50),
        "p95_response_s": float(p95),
        "p99_response_s": float(p99),
        "deadline_miss_rate": float(np.count_nonzero(missed)) / n,
        "makespan_s": span,
        "energy_j": energy,
        "utilization": utilization,
    }


def reference_simulate(
    cluster: Cluster,
    workload: Workload,
    node_of_task: np.ndarray,
    delta: float,
    queue: str,
    conditions: list[Window] | None = None,
) -> dict[str, Any]:
    """Simulate docs/MODEL.md's base model for a fixed assignment.

    Args:
        cluster: the validated cluster.
        workload: the validated workload.
        node_of_task: ``node_of_task[k]`` is the node index of workload row ``k``.
        delta: the decision interval (``0``: decide at arrival).
        queue: ``"fifo"`` or ``"priority"``.
        conditions: windows ``(node, start_s, end_s, speed, latency, bandwidth)``
            (docs/MODEL.md section 12); ``None``: none.

    Returns:
        A dict with per-row float64 arrays ``decision_s``, ``ready_s``, ``start_s``,
        ``finish_s`` (the workload's row order) and ``summary``, a dict with the keys
        of :data:`SUMMARY_KEYS`.

    Raises:
        ValueError: a bad ``queue`` or ``delta``, or an assignment that is not one
            node index per row, is out of range, or puts a task on a node with too
            little memory.
    """
    if queue not in QUEUES:
        raise ValueError(f"queue must be one of {QUEUES}, got {queue!r}")
    if not (np.isfinite(delta) and delta >= 0):
        raise ValueError(f"delta must be a finite number >= 0, got {delta!r}")
    n = len(workload)
    nodes = np.asarray(node_of_task)
    if nodes.shape != (n,) or (n and nodes.dtype.kind not in "iu"):
        raise ValueError(f"node_of_task must be {n} integer node indices, got {nodes!r}")
    nodes = nodes.astype(np.int64)
    if n and (nodes.min() < 0 or nodes.max() >= cluster.n_nodes):
        raise ValueError(f"node_of_task must lie in [0, {cluster.n_nodes}), got {nodes!r}")
    too_big = workload.memory_mb > cluster.memory_mb[nodes]
    if np.any(too_big):
        k = int(np.argmax(too_big))
        raise ValueError(
            f"row {k} (task_id {int(workload.task_id[k])}) needs {workload.memory_mb[k]!r} MB "
            f"but node {int(nodes[k])} has {cluster.memory_mb[nodes[k]]!r} MB"
        )

    # Rules 1-2: decision and readiness.
    windows = list(conditions or [])
    decision = decision_times(workload.arrival_s, delta)
    ready = np.empty(n, dtype=np.float64)
    for k in range(n):
        j = int(nodes[k])
        _, lat_f, bw_f = factors_at(windows, j, float(decision[k]))
        latency = float(cluster.latency_s[j, int(workload.region[k])]) * lat_f
        transfer = float(workload.data_mb[k]) / (float(cluster.bandwidth_mb_s[j]) * bw_f)
        ready[k] = float(decision[k]) + latency + transfer

    # Rule 3: execution, node by node.
    start = np.full(n, np.nan, dtype=np.float64)
    finish = np.full(n, np.nan, dtype=np.float64)
    keys = {k: _queue_key(queue, workload, ready, k) for k in range(n)}
    for j in range(cluster.n_nodes):
        rows = [k for k in range(n) if nodes[k] == j]
        if rows:
            nominal = float(cluster.speed[j])

            def speed_at(t: float, j: int = j, nominal: float = nominal) -> float:
                return nominal * factors_at(windows, j, t)[0]

            changes = sorted(
                {w[1] for w in windows if w[0] == j} | {w[2] for w in windows if w[0] == j}
            )
            changes = [t for t in changes if t < np.inf]
            _simulate_one_node(
                rows,
                int(cluster.cores[j]),
                ready,
                workload.work_gi,
                speed_at,
                changes,
                keys,
                start,
                finish,
            )

    return {
        "decision_s": decision,
        "ready_s": ready,
        "start_s": start,
        "finish_s": finish,
        "summary": summarize(cluster, workload, nodes, start, finish),
    }
