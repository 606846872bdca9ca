"""Replay a workload against a live service and measure it as the simulator would.

Each task is submitted at its arrival time (on the service's model clock, from
an origin ``t0``); outages are ridden out by resubmitting (idempotent on
``task_id``). When every task has ended, the per-task times (shifted back by
``t0``) make ``tasks.parquet`` and ``summary.json`` in the simulator's format.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import httpx
import numpy as np

from hybridsched.model import Cluster, Workload
from hybridsched.service.client import ServerClock, ServiceClient
from hybridsched.sim import SimResult
from hybridsched.sim.metrics import summarize

log = logging.getLogger("hybridsched.replay")

TERMINAL = ("finished", "failed", "rejected", "cancelled")


class Replay(ServiceClient):
    """Submit ``workload`` in real (scaled) time and collect the outcome.

    Args:
        server: base URL.
        token: a ``submit`` (or admin) token.
        workload: the tasks (arrival times relative to the start of the replay).
        lead_s: model seconds between the service's clock at start and the origin.
        outage_s: how long (wall s) to keep retrying an unreachable service.
        ahead_s: wall seconds before its arrival that a task is submitted (the service
            holds it, unseen by the policy, until its arrival on the model clock); 0
            submits each task at its arrival.
    """

    def __init__(
        self,
        server: str,
        token: str,
        workload: Workload,
        *,
        lead_s: float = 1.0,
        outage_s: float = 120.0,
        ahead_s: float = 0.0,
    ) -> None:
        super().__init__(server, token, outage_s, log)
        self.workload = workload
        self.lead_s = lead_s
        self.ahead_s = ahead_s
        self.t0 = 0.0
        self.info: dict[str, Any] = {}
        self.acked_s = np.full(len(workload), np.nan)
        """Per task (workload order), when its submission was acknowledged, model s from t0."""

    async def run(self, timeout_s: float = 3600.0) -> dict[str, np.ndarray]:
        """Submit everything, wait for the end; the final state of every task (model s)."""
        w = self.workload
        async with httpx.AsyncClient(timeout=30.0) as client:
            self.info = await self._request(client, "GET", "/v1/cluster")
            scale = float(self.info["time_scale"])
            # the service's clock from short round trips: a late estimate would submit
            # every task late by it
            clock = ServerClock(scale)
            await clock.sync(lambda: self._request(client, "GET", "/v1/clock"))
            self.t0 = clock.now() + self.lead_s
            ahead = self.ahead_s * scale
            order = np.lexsort((w.task_id, w.arrival_s))
            i = 0
            n = len(w)
            deadline = time.monotonic() + timeout_s
            while i < n:
                model_now = clock.now() - self.t0 + ahead  # what may be submitted now
                j = i
                while j < n and w.arrival_s[order[j]] <= model_now and j - i < 5000:
                    j += 1
                if j == i:
                    wait = (w.arrival_s[order[i]] - model_now) / scale
                    await asyncio.sleep(min(max(wait, 0.0), 0.05))
                    continue
                await self._request(
                    client, "POST", "/v1/tasks", [self._task(k) for k in order[i:j]]
                )
                self.acked_s[order[i:j]] = clock.now() - self.t0
                i = j
            ids = [int(x) for x in w.task_id]
            while True:
                rows = {}
                for k in range(0, n, 5000):
                    out = await self._request(
                        client, "POST", "/v1/tasks/query", {"task_ids": ids[k : k + 5000]}
                    )
                    for t in out["tasks"]:
                        rows[t["task_id"]] = t
                done = sum(1 for t in rows.values() if t["status"] in TERMINAL)
                if done == n:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"replay: {n - done} of {n} tasks unfinished after {timeout_s:g} s"
                    )
                await asyncio.sleep(0.2)
        return self._columns(rows)

    def _task(self, k: int) -> dict[str, Any]:
        w = self.workload
        dl = float(w.deadline_s[k])
        return {
            "task_id": int(w.task_id[k]),
            "arrival_s": float(w.arrival_s[k]) + self.t0,
            "region": int(w.region[k]),
            "data_mb": float(w.data_mb[k]),
            "work_gi": float(w.work_gi[k]),
            "memory_mb": float(w.memory_mb[k]),
            "deadline_s": None if math.isinf(dl) else dl,
            "priority": int(w.priority[k]),
        }

    def _columns(self, rows: dict[int, dict[str, Any]]) -> dict[str, np.ndarray]:
        w = self.workload
        get = lambda key: np.array(  # noqa: E731
            [np.nan if rows[int(t)][key] is None else rows[int(t)][key] for t in w.task_id],
            dtype=np.float64,
        )
        return {
            "status": np.array([rows[int(t)]["status"] for t in w.task_id], dtype=object),
            "node": np.array([rows[int(t)]["node"] or "" for t in w.task_id], dtype=object),
            "arrival_s": get("arrival_s") - self.t0,
            "decision_s": get("decision_s") - self.t0,
            "ready_s": get("ready_s") - self.t0,
            "start_s": get("start_s") - self.t0,
            "finish_s": get("finish_s") - self.t0,
            "observed_s": get("observed_s"),
            "retries": np.array([rows[int(t)]["retries"] for t in w.task_id], dtype=np.int64),
        }


def live_result(
    cluster: Cluster, workload: Workload, cols: dict[str, np.ndarray], info: dict[str, Any]
) -> SimResult:
    """The live run as a :class:`SimResult` (the simulator's columns and summary, plus status).

    Summary figures are over the finished tasks; ``status`` counts every task.
    """
    names = np.asarray(cluster.node_names)
    index = {n: j for j, n in enumerate(cluster.node_names)}
    node_index = np.array([index.get(n, -1) for n in cols["node"]], dtype=np.int64)
    fin = cols["status"] == "finished"
    arrival = np.asarray(workload.arrival_s, dtype=np.float64)
    finish = cols["finish_s"]
    abs_dl = arrival + workload.deadline_s
    speed = cluster.speed[np.maximum(node_index, 0)]
    dur = np.where(np.isnan(cols["observed_s"]), workload.work_gi / speed, cols["observed_s"])
    node_index = np.where(fin, node_index, -1)
    tasks = {
        "task_id": np.asarray(workload.task_id),
        "node": np.where(node_index >= 0, names[np.maximum(node_index, 0)], ""),
        "node_index": node_index,
        "arrival_s": arrival,
        "decision_s": cols["decision_s"],
        "ready_s": cols["ready_s"],
        "start_s": cols["start_s"],
        "finish_s": finish,
        "response_s": finish - arrival,
        "met_deadline": finish <= abs_dl,
        "priority": np.asarray(workload.priority),
        "status": cols["status"],
        "retries": cols["retries"],
    }
    if fin.any():
        summary = summarize(
            cluster,
            arrival=arrival[fin],
            finish=finish[fin],
            abs_deadline=abs_dl[fin],
            node=node_index[fin],
            dur=dur[fin],
            priority=np.asarray(workload.priority)[fin],
        )
    else:
        summary = {"tasks": 0}
    summary["scheduler_seconds"] = float("nan")
    summary["policy"] = info.get("policy", "")
    summary["decision_interval_s"] = float(info.get("decision_interval_s", 0.0))
    summary["queue"] = info.get("queue", "fifo")
    statuses, counts = np.unique(cols["status"].astype(str), return_counts=True)
    summary["status"] = {str(s): int(c) for s, c in zip(statuses, counts, strict=True)}
    summary["live"] = True
    return SimResult(tasks=tasks, summary=summary)
