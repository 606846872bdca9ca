"""The running service: store, live state, the writer, the decision loop and the node monitor.

The decision loop runs in its own thread: every decision interval (or as soon
as tasks are pending at interval 0) the pending tasks form a batch, the policy
assigns it on a view of the live state, and one transaction records the
assignments. The policy itself runs in a child process (:mod:`.decider`):
compiled policy code holds the interpreter lock, and in a thread of the server
it would stop the event loop for as long as it decides.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from typing import Any

import numpy as np

from hybridsched.service import ops
from hybridsched.service.config import ServiceConfig
from hybridsched.service.decider import Decider
from hybridsched.service.metrics import Metrics
from hybridsched.service.state import ASSIGNED, PENDING, LiveState, ModelClock, Transition, Writer
from hybridsched.service.store import Store, redact

log = logging.getLogger("hybridsched.service")


class Service:
    """Everything behind the API; :meth:`start` and :meth:`stop` bracket its life."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.cluster = config.cluster
        self.metrics = Metrics()
        self.store = Store(config.db_url)
        self.state = LiveState(
            config.cluster,
            self.store,
            max_retries=config.max_retries,
            heartbeat_timeout_s=config.heartbeat_timeout_s,
        )
        self.writer = Writer(self.state)
        self.writer.on_commit = self.metrics.db_seconds.observe
        self.writer.listeners.append(self._count)
        self.writer.listeners.append(self._wake_leases)
        self.decider = Decider(
            config.cluster,
            config.policy,
            config.policy_args,
            config.seed,
            config.queue,
            config.policy_modules,
            config.estimates,
        )
        self.clock = ModelClock(config.time_scale)
        self.ready = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.assigned_event: Any = None  # set by the API: wakes lease long-polls
        self._max_mem = float(np.max(self.cluster.memory_mb))
        self._next_due = math.inf  # model time of the next pending task's decision instant

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        """Open the store, load the state, start the threads."""
        t0 = time.perf_counter()
        self.store.open()
        n = self.state.load()
        clock = self.store.get_meta("clock")
        if clock is not None:
            # model time continues where it was, whatever the new time scale
            old = ModelClock(clock["time_scale"], clock["model_ref"], clock["wall_ref"])
            self.clock = ModelClock(self.config.time_scale, old.now())
        self.writer.start()
        self.writer.call(
            ops.put_meta(
                "clock",
                {
                    "time_scale": self.clock.time_scale,
                    "model_ref": self.clock.model_ref,
                    "wall_ref": self.clock.wall_ref,
                },
            )
        )
        self.metrics.queue_depth.set(len(self.state.pending))
        for target, name in ((self._decide_loop, "decide"), (self._monitor_loop, "monitor")):
            th = threading.Thread(target=target, name=f"hybridsched-{name}", daemon=True)
            th.start()
            self._threads.append(th)
        self.ready = True
        log.info(
            "event=ready tasks=%d db=%s policy=%s start_s=%.3f",
            n,
            redact(self.store.url),
            self.config.policy,
            time.perf_counter() - t0,
        )

    def stop(self) -> None:
        """Stop the threads, flush the writer, close the store."""
        self.ready = False
        self._stop.set()
        with self.state.lock:
            self.state.pending_changed.notify_all()
        self.decider.close()  # a batch being decided is abandoned: it stays pending
        for th in self._threads:
            th.join(timeout=30)
        self.writer.stop()
        self.store.close()
        log.info("event=stopped")

    # --------------------------------------------------------------- metrics

    def _count(self, trs: list[Transition]) -> None:
        m = self.metrics
        by_status: dict[str, int] = {}
        misses = retries = 0
        for tr in trs:
            by_status[tr.status] = by_status.get(tr.status, 0) + 1
            if tr.status == "finished" and not (tr.finish_s <= tr.deadline_abs_s):
                misses += 1
            if tr.status == PENDING and tr.retries > 0:
                retries += 1
        for status, k in by_status.items():
            m.transitions.labels(status).inc(k)
        if misses:
            m.misses.inc(misses)
        if retries:
            m.retries.inc(retries)
        m.queue_depth.set(len(self.state.pending))
        if log.isEnabledFor(logging.DEBUG):
            for tr in trs:
                log.debug("event=task task_id=%d status=%s node=%s", tr.task_id, tr.status, tr.node)

    def _wake_leases(self, trs: list[Transition]) -> None:
        # right after the commit, from the writer: the long-polls answer at once
        if self.assigned_event is not None and any(tr.status == ASSIGNED for tr in trs):
            self.assigned_event()

    # ----------------------------------------------------------- decide loop

    def _due(self, now: float) -> list[int]:
        # pending tasks whose decision instant has come, in decision order; the first
        # instant still to come goes to ``_next_due`` (the loop sleeps until then)
        st = self.state
        d = self.config.decision_interval
        tasks = st.tasks
        due = []
        nxt = math.inf
        for tid in st.pending:
            a = tasks[tid].arrival_s
            at = math.ceil(a / d) * d if d > 0 else a
            if at <= now:
                due.append((a, tid))
            elif at < nxt:
                nxt = at
        self._next_due = nxt
        # the first max_batch in decision order: a partial sort (thousands may be pending
        # while the loop holds the state's lock)
        return [t for _, t in heapq.nsmallest(self.config.max_batch, due)]

    def _decide_loop(self) -> None:
        st = self.state
        # spawn the decision process, which compiles (or loads from numba's cache)
        # before the first real decision; the service is ready meanwhile:
        # submissions and reports are accepted and stored
        t0 = time.perf_counter()
        try:
            self.decider.start()
        except Exception as exc:
            if not self._stop.is_set():  # a stop during the start kills the child: no news
                log.error("event=decider_start_failed error=%s", exc)  # retried per batch
        log.info("event=policy_warm seconds=%.3f", time.perf_counter() - t0)
        d = self.config.decision_interval
        scale = self.clock.time_scale
        last_tick = -math.inf
        while not self._stop.is_set():
            with st.lock:
                if not st.pending:
                    st.pending_changed.wait(timeout=0.2)
                    continue
            now = self.clock.now()
            if d > 0:
                # decide at the instants k * d of the model clock
                tick = math.floor(now / d) * d
                if tick <= last_tick:
                    self._stop.wait(min(max((last_tick + d - now) / scale, 1e-3), 0.2))
                    continue
                last_tick = tick
                now = tick
            try:
                if self.decide_once(now) == 0 and d == 0:
                    # nothing was due (tasks submitted ahead of their arrival), or no node
                    # could take it: sleep until the next arrival or a new submission
                    wait = (self._next_due - self.clock.now()) / scale
                    with st.lock:
                        st.pending_changed.wait(timeout=min(max(wait, 0.002), 0.2))
            except Exception as exc:  # a policy bug must not kill the loop; the batch stays pending
                if self._stop.is_set():
                    break
                log.error("event=decision_failed error=%s", exc)
                self._stop.wait(0.5)

    def decide_once(self, now: float) -> int:
        """Decide the due pending tasks at model time ``now``; returns the number assigned."""
        st = self.state
        c = self.cluster
        with st.lock:
            if not st.node_up().any():
                ids = []  # no node attached: nothing to decide, no need to look
            else:
                ids = self._due(now)
                if not ids:
                    return 0
                snap = st.snapshot(now)
                recs = [st.tasks[t] for t in ids]
        if not ids:
            time.sleep(0.05)  # keep them pending
            return 0
        up = snap.up
        if not up.any():
            time.sleep(0.05)  # no node attached: keep them pending
            return 0
        mem = np.array([r.memory_mb for r in recs])
        fits_up = mem[:, None] <= np.where(up, c.memory_mb, -1.0)[None, :]
        can = fits_up.any(axis=1)
        if not can.all():
            # waiting for a node with enough memory to come up
            recs = [r for r, ok in zip(recs, can, strict=True) if ok]
            if not recs:
                time.sleep(0.05)
                return 0
        cols = {
            "task_id": np.array([r.task_id for r in recs], dtype=np.int64),
            "arrival_s": np.array([r.arrival_s for r in recs], dtype=np.float64),
            "region": np.array([r.region for r in recs], dtype=np.int64),
            "data_mb": np.array([r.data_mb for r in recs], dtype=np.float64),
            "work_gi": np.array([r.work_gi for r in recs], dtype=np.float64),
            "memory_mb": np.array([r.memory_mb for r in recs], dtype=np.float64),
            "deadline_abs_s": np.array([r.deadline_abs_s for r in recs], dtype=np.float64),
            "priority": np.array([r.priority for r in recs], dtype=np.int64),
        }
        t0 = time.perf_counter()
        # in the child process: this thread waits in a read that frees the interpreter
        nodes, ready = self.decider.decide(cols, snap)
        dt = time.perf_counter() - t0
        self.metrics.decision_seconds.observe(dt)
        self.metrics.decisions.inc()
        ok = (nodes >= 0) & (nodes < c.n_nodes)
        safe = np.where(ok, nodes, 0)
        ok &= up[safe] & (cols["memory_mb"] <= c.memory_mb[safe])
        decisions = [
            (int(cols["task_id"][i]), int(nodes[i]), float(now), float(ready[i]))
            for i in np.flatnonzero(ok)
        ]
        if not ok.all():
            log.warning("event=policy_infeasible tasks=%d kept_pending=1", int((~ok).sum()))
        n = self.writer.call(ops.assign(decisions, now))
        self.metrics.assignments.inc(n)
        return n

    # --------------------------------------------------------------- monitor

    def _monitor_loop(self) -> None:
        st = self.state
        period = min(1.0, self.config.heartbeat_timeout_s / 4)
        while not self._stop.wait(period):
            now_wall = time.time()
            with st.lock:
                stale = st.attached & ((now_wall - st.last_seen) > self.config.heartbeat_timeout_s)
                # a node never heard from since start that still holds work is lost too
                holds = np.array(
                    [bool(q) or bool(r) for q, r in zip(st.queued, st.running, strict=True)]
                )
                never = (
                    ~st.attached
                    & holds
                    & ((now_wall - st.last_seen) > self.config.heartbeat_timeout_s)
                )
                lost = np.flatnonzero(stale | never)
                for j in lost:
                    st.attached[j] = False
                    st.last_seen[j] = now_wall
                up = st.node_up(now_wall)
            self.metrics.nodes_up.set(int(up.sum()))
            self.metrics.nodes_down.set(int(self.cluster.n_nodes - up.sum()))
            for j in lost:
                log.warning("event=node_down node=%s", self.cluster.node_names[j])
                self.metrics.node_losses.inc()
                n = self.writer.call(ops.node_lost(int(j)))
                if n:
                    log.info("event=requeued node=%s tasks=%d", self.cluster.node_names[j], n)

    # ---------------------------------------------------------------- agents

    def heartbeat(self, names: list[str]) -> None:
        """Agents for ``names`` are alive (attaches them)."""
        st = self.state
        t = time.time()
        with st.lock:
            for name in names:
                j = st.node_index[name]
                if not st.attached[j]:
                    log.info("event=node_up node=%s", name)
                    st.attached[j] = True
                    st.pending_changed.notify_all()
                st.last_seen[j] = t

    def lease(self, names: list[str], max_tasks: int, resync: bool) -> list[dict[str, Any]]:
        """Tasks assigned to ``names`` not yet delivered (all not started with ``resync``)."""
        st = self.state
        out: list[dict[str, Any]] = []
        with st.lock:
            for name in names:
                j = st.node_index[name]
                for tid in st.queued[j]:
                    rec = st.tasks[tid]
                    if rec.delivered and not resync:
                        continue
                    rec.delivered = True
                    out.append(_lease_item(tid, name, rec))
                    if len(out) >= max_tasks:
                        return out
                if resync:
                    for tid in st.running[j]:
                        out.append(_lease_item(tid, name, st.tasks[tid], running=True))
        return out

    def check_submission(self, t: dict[str, Any]) -> str | None:
        """Why a task cannot be accepted by this cluster (region, memory), or None."""
        nr = self.cluster.n_regions
        if t["region"] >= nr:
            return f"region: {t['region']} must be < {nr} (the cluster's number of regions)"
        if t["memory_mb"] > self._max_mem:
            return (
                f"memory_mb: {t['memory_mb']:g} fits no node "
                f"(the largest node has {self._max_mem:g} MB)"
            )
        return None


# the task record's fields a lease carries, in order (a running task's start_s between)
_LEASE_TIMES = ("attempt", "arrival_s", "ready_s")
_LEASE_TASK = ("work_gi", "data_mb", "memory_mb", "region", "priority", "deadline_abs_s", "payload")


def _lease_item(tid: int, name: str, rec: Any, running: bool = False) -> dict[str, Any]:
    """One leased task as an agent receives it (a running one also has its start)."""
    fields = (*_LEASE_TIMES, "start_s", *_LEASE_TASK) if running else _LEASE_TIMES + _LEASE_TASK
    return {"task_id": tid, "node": name, **{f: getattr(rec, f) for f in fields}}
