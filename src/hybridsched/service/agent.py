"""Node agents: lease tasks from the service, run them, report back.

Emulated (default): each node has its cores; a leased task's data is at the
node at its ``ready_s`` (the transfer), then it takes a free core for
``work_gi / speed`` model seconds, in the node's queue discipline (fifo, or
priority then deadline) — the simulator's semantics, run on the model clock.
Many nodes run in one process. With ``exec_cmd`` each task runs a real command
(task fields in ``HYBRIDSCHED_*`` environment variables) and its exit status and
real duration are reported.

The agent rides out a server outage: reports and leases are retried (reports
are idempotent on the server) until the server answers again.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from hybridsched.service.client import ServerClock, ServiceClient

log = logging.getLogger("hybridsched.agent")


@dataclass
class _Node:
    name: str
    cores: int
    speed: float
    core_free: list[float]
    waiting: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    running: int = 0


class Agent(ServiceClient):
    """Agents for several nodes of one service, in one asyncio task.

    Args:
        server: base URL of the service.
        token: a node token for the nodes.
        nodes: node names; None for every node of the cluster.
        time_scale: model seconds per wall second; None: the service's.
        exec_cmd: a shell command run per task, or None to emulate.
        poll_s: wall seconds between lease polls when idle (long-poll).
        report_s: wall seconds between report flushes (reports carry the model times
            the agent measured, so a later flush changes no time; fewer requests leave
            the server's CPU to submissions and decisions).
        outage_s: how long (wall s) to keep retrying an unreachable service.
    """

    def __init__(
        self,
        server: str,
        token: str,
        nodes: list[str] | None = None,
        *,
        time_scale: float | None = None,
        exec_cmd: str | None = None,
        poll_s: float = 0.2,
        outage_s: float = 120.0,
        tick_s: float = 0.005,
        report_s: float = 0.02,
    ) -> None:
        super().__init__(server, token, outage_s, log)
        self.node_names = nodes
        self.time_scale = time_scale
        self.exec_cmd = exec_cmd
        self.poll_s = poll_s
        self.tick_s = tick_s
        self.report_s = report_s
        self.nodes: dict[str, _Node] = {}
        self.queue = "fifo"
        self.clock = ServerClock(time_scale or 1.0)
        self._reports: list[dict[str, Any]] = []
        self._finishing: list[tuple[float, int, int, str, float, float]] = []
        self._known: set[tuple[int, int]] = set()
        self._stop = asyncio.Event()
        self.finished = 0
        self.refused = 0
        self.finish_outcomes: dict[int, list[str]] = {}
        """Per task id, the server's answer to each finish report sent (tests count them)."""

    # --------------------------------------------------------------- http

    async def _call(
        self,
        client: httpx.AsyncClient,
        path: str,
        body: Any,
        retry_body: Any = None,
        method: str = "POST",
    ) -> Any:
        return await self._request(
            client, method, path, body, retry_body=retry_body, stop=self._stop
        )

    async def _cluster(self, client: httpx.AsyncClient) -> dict[str, Any]:
        t0 = time.monotonic()
        while True:
            try:
                r = await client.get(self.server + "/v1/cluster", headers=self._headers)
                r.raise_for_status()
                return r.json()
            except httpx.HTTPStatusError:
                raise
            except httpx.HTTPError:
                if time.monotonic() - t0 > self.outage_s:
                    raise ConnectionError(f"{self.server}: unreachable") from None
                await asyncio.sleep(0.2)

    # ---------------------------------------------------------------- run

    def stop(self) -> None:
        """Ask :meth:`run` to return (from the agent's own event loop)."""
        self._stop.set()

    def run_in_thread(self) -> threading.Thread:
        """Run in a background thread (tests, benchmarks); :meth:`stop_thread` ends it."""

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._stop = asyncio.Event()
            try:
                self._loop.run_until_complete(self.run())
            except Exception as exc:  # kept for the caller to inspect
                self.error = exc
            finally:
                self._loop.close()

        self.error: BaseException | None = None
        th = threading.Thread(target=main, name="hybridsched-agent", daemon=True)
        th.start()
        self._thread = th
        return th

    def stop_thread(self, timeout: float = 10.0) -> None:
        """Stop an agent started with :meth:`run_in_thread` and wait for it."""
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        self._thread.join(timeout)

    async def run(self) -> None:
        """Attach, then lease, run and report until stopped."""
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
            info = await self._cluster(client)
            spec = info["cluster"]["nodes"]
            if self.time_scale is None:
                self.time_scale = info["time_scale"]
            # the model clock, from short round trips (heartbeats refine it)
            self.clock = ServerClock(self.time_scale)
            await self.clock.sync(lambda: self._call(client, "/v1/clock", None, method="GET"))
            self.queue = info["queue"]
            names = self.node_names or [n["name"] for n in spec]
            by_name = {n["name"]: n for n in spec}
            for name in names:
                n = by_name[name]
                self.nodes[name] = _Node(
                    name, int(n["cores"]), float(n["speed"]), [-math.inf] * int(n["cores"])
                )
            log.info("event=agent_attached nodes=%d exec=%s", len(names), bool(self.exec_cmd))
            await asyncio.gather(
                self._lease_loop(client), self._work_loop(client), self._heartbeat_loop(client)
            )

    async def _heartbeat_loop(self, client: httpx.AsyncClient) -> None:
        names = list(self.nodes)
        while not self._stop.is_set():
            try:
                sent = time.monotonic()
                out = await self._call(client, "/v1/agent/heartbeat", {"nodes": names})
                self.clock.sample(sent, time.monotonic(), out["time_s"])
            except ConnectionError:
                pass
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass

    async def _lease_loop(self, client: httpx.AsyncClient) -> None:
        names = list(self.nodes)
        resync = True
        while not self._stop.is_set():
            try:
                ask = {"nodes": names, "max_tasks": 10000, "wait_s": self.poll_s}
                # the server marks what it sends as delivered: when an answer is lost
                # (timeout, reset), the retry asks for everything not started again,
                # or those tasks would stay assigned to a live node forever
                out = await self._call(
                    client,
                    "/v1/agent/lease",
                    {**ask, "resync": resync},
                    retry_body={**ask, "resync": True},
                )
            except ConnectionError:
                resync = True
                continue
            resync = False
            now = self.clock.now()
            for t in out["tasks"]:
                key = (t["task_id"], t["attempt"])
                if key in self._known:
                    continue
                self._known.add(key)
                t["received_s"] = now
                if log.isEnabledFor(logging.DEBUG):  # the pipeline's timing (benchmark)
                    log.debug("event=leased task_id=%d attempt=%d received_s=%.6f", *key, now)
                if t.get("start_s") is not None:
                    # running before the agent restarted: it finishes as planned
                    node = self.nodes[t["node"]]
                    fin = t["start_s"] + t["work_gi"] / node.speed
                    s = int(min(range(node.cores), key=lambda k: node.core_free[k]))
                    node.core_free[s] = max(node.core_free[s], fin)
                    heapq.heappush(
                        self._finishing,
                        (
                            fin,
                            t["task_id"],
                            t["attempt"],
                            t["node"],
                            t["start_s"],
                            fin - t["start_s"],
                        ),
                    )
                else:
                    self.nodes[t["node"]].waiting[key] = t

    def _key(self, t: dict[str, Any]) -> tuple:
        if self.queue == "priority":
            dl = t["deadline_abs_s"]
            return (t["priority"], math.inf if dl is None else dl, t["ready_s"], t["task_id"])
        return (t["ready_s"], t["task_id"])

    def _dispatch(self, now: float) -> None:
        # the simulator's node: whenever a core is free and a task's data is there,
        # the discipline picks the next one; replayed exactly up to ``now``
        for node in self.nodes.values():
            while node.waiting:
                s = min(range(node.cores), key=lambda k: node.core_free[k])
                t_core = node.core_free[s]
                t_ready = min(t["ready_s"] for t in node.waiting.values())
                t = max(t_core, t_ready)
                if t > now:
                    break
                cands = [x for x in node.waiting.values() if x["ready_s"] <= t]
                task = min(cands, key=self._key)
                del node.waiting[(task["task_id"], task["attempt"])]
                start = max(t, min(task["received_s"], now))
                dur = task["work_gi"] / node.speed
                node.core_free[s] = start + dur
                self._reports.append(
                    {
                        "task_id": task["task_id"],
                        "node": node.name,
                        "attempt": task["attempt"],
                        "kind": "start",
                        "time_s": start,
                    }
                )
                heapq.heappush(
                    self._finishing,
                    (start + dur, task["task_id"], task["attempt"], node.name, start, dur),
                )

    async def _work_loop(self, client: httpx.AsyncClient) -> None:
        flushed = -math.inf
        while not self._stop.is_set():
            now = self.clock.now()
            if self.exec_cmd is None:
                self._dispatch(now)
                while self._finishing and self._finishing[0][0] <= now:
                    fin, tid, att, node, start, dur = heapq.heappop(self._finishing)
                    self._reports.append(
                        {
                            "task_id": tid,
                            "node": node,
                            "attempt": att,
                            "kind": "finish",
                            "time_s": fin,
                            "start_s": start,
                            "observed_s": dur,
                        }
                    )
            else:
                await self._exec_dispatch(now)
            if self._reports and time.monotonic() - flushed >= self.report_s:
                flushed = time.monotonic()
                self._reports = _fold_starts(self._reports)
                batch, self._reports = self._reports[:10000], self._reports[10000:]
                try:
                    out = await self._call(client, "/v1/agent/reports", {"reports": batch})
                except ConnectionError:
                    self._reports = batch + self._reports
                    continue
                for r in out["results"]:
                    if r["outcome"] == "refused":
                        self.refused += 1
                        log.warning(
                            "event=report_refused task_id=%d detail=%s", r["task_id"], r["detail"]
                        )
                for b, r in zip(batch, out["results"], strict=True):
                    if b["kind"] == "finish":
                        self.finished += 1
                        self.finish_outcomes.setdefault(b["task_id"], []).append(r["outcome"])
            await asyncio.sleep(self.tick_s)

    # --------------------------------------------------------------- exec

    async def _exec_dispatch(self, now: float) -> None:
        for node in self.nodes.values():
            while node.waiting and node.running < node.cores:
                ready = [x for x in node.waiting.values() if x["ready_s"] <= now]
                if not ready:
                    break
                task = min(ready, key=self._key)
                del node.waiting[(task["task_id"], task["attempt"])]
                node.running += 1
                self._reports.append(
                    {
                        "task_id": task["task_id"],
                        "node": node.name,
                        "attempt": task["attempt"],
                        "kind": "start",
                        "time_s": now,
                    }
                )
                asyncio.get_running_loop().create_task(self._exec_one(node, task, now))

    async def _exec_one(self, node: _Node, task: dict[str, Any], start: float) -> None:
        env = dict(os.environ)
        for k in (
            "task_id",
            "attempt",
            "node",
            "region",
            "data_mb",
            "work_gi",
            "memory_mb",
            "priority",
            "arrival_s",
            "ready_s",
        ):
            env[f"HYBRIDSCHED_{k.upper()}"] = str(task[k])
        env["HYBRIDSCHED_PAYLOAD"] = task.get("payload") or ""
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_shell(
            self.exec_cmd or "true",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        code = await proc.wait()
        real = time.monotonic() - t0
        node.running -= 1
        self._reports.append(
            {
                "task_id": task["task_id"],
                "node": node.name,
                "attempt": task["attempt"],
                "kind": "finish" if code == 0 else "failure",
                "time_s": start + real * self.clock.time_scale,
                "start_s": start,
                "observed_s": real * self.clock.time_scale,
                "exit_code": code,
            }
        )


def _fold_starts(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop a start report whose finish (carrying ``start_s``) goes in the same flush.

    The service accepts a finish of an assigned task with its start time, so a task
    that starts and ends between two flushes costs one report, not two.
    """
    done = {(r["task_id"], r["attempt"]) for r in reports if r["kind"] == "finish"}
    if not done:
        return reports
    return [r for r in reports if r["kind"] != "start" or (r["task_id"], r["attempt"]) not in done]
