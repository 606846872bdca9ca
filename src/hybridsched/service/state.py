"""Live state of the service: tasks and nodes in memory, mirrored by the store.

The writer thread is the only one that changes state: each operation checks
its request against memory, writes its rows, and changes memory; a group of
operations is one transaction, and nobody is told of an operation's result
before its transaction commits (persist, then acknowledge). Readers take the
lock. :meth:`LiveState.snapshot` gives the plain node state a policy's view is
built from.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from hybridsched.model import Cluster
from hybridsched.service.store import TASK_COLUMNS, Store
from hybridsched.service.view_adapter import NodeSnapshot
from hybridsched.sim.core import RECENT_TAU_S
from hybridsched.sim.observations import NodeObservations, decayed_mean

log = logging.getLogger("hybridsched.service")

PENDING = "pending"
ASSIGNED = "assigned"
RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
REJECTED = "rejected"
CANCELLED = "cancelled"
STATUSES = (PENDING, ASSIGNED, RUNNING, FINISHED, FAILED, REJECTED, CANCELLED)
TERMINAL = frozenset({FINISHED, FAILED, REJECTED, CANCELLED})


class TaskRec:
    """One task in memory (a row of table ``tasks``; ``node`` is an index, -1 none)."""

    __slots__ = (*TASK_COLUMNS, "delivered")

    def __init__(self, **kw: Any) -> None:
        for k in TASK_COLUMNS:
            setattr(self, k, kw.get(k))
        self.delivered = False

    def row(self) -> tuple[Any, ...]:
        """All columns in ``TASK_COLUMNS`` order (for an insert)."""
        return tuple(getattr(self, k) for k in TASK_COLUMNS)

    def mutable_row(self) -> tuple[Any, ...]:
        """The mutable columns then the task id (for an update)."""
        return (
            self.status, self.node, self.attempt, self.retries, self.decision_s, self.ready_s,
            self.start_s, self.finish_s, self.observed_s, self.exit_code, self.reason,
            self.task_id,
        )  # fmt: skip

    @property
    def deadline_abs_s(self) -> float:
        """Arrival + deadline, inf when none."""
        return math.inf if self.deadline_s is None else self.arrival_s + self.deadline_s


@dataclass
class Transition:
    """A committed change of a task's status (what MQTT and the logs publish)."""

    task_id: int
    status: str
    node: str | None
    arrival_s: float
    start_s: float | None
    finish_s: float | None
    deadline_abs_s: float
    reason: str | None = None
    retries: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON body of the status message."""
        return {
            "task_id": self.task_id,
            "status": self.status,
            "node": self.node,
            "arrival_s": self.arrival_s,
            "start_s": self.start_s,
            "finish_s": self.finish_s,
            "reason": self.reason,
            "retries": self.retries,
        }


_TRANSITION_FIELDS = tuple(f.name for f in fields(Transition))


class ModelClock:
    """Model time: ``time_scale`` model seconds per wall second, continuous across restarts."""

    def __init__(self, time_scale: float, model_ref: float = 0.0, wall_ref: float | None = None):
        self.time_scale = float(time_scale)
        self.model_ref = float(model_ref)
        self.wall_ref = time.time() if wall_ref is None else float(wall_ref)

    def now(self) -> float:
        """The model time now, s."""
        return self.model_ref + (time.time() - self.wall_ref) * self.time_scale


class LiveState:
    """Tasks and nodes in memory; the writer thread changes them, others read under ``lock``.

    Args:
        cluster: the cluster served.
        store: the open store.
        max_retries: retries (node loss, failure reports) before a task is given up.
        heartbeat_timeout_s: wall seconds without a heartbeat before a node is down.
    """

    def __init__(
        self, cluster: Cluster, store: Store, *, max_retries: int, heartbeat_timeout_s: float
    ) -> None:
        self.cluster = cluster
        self.store = store
        self.max_retries = max_retries
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.lock = threading.RLock()
        self.node_index = {n: j for j, n in enumerate(cluster.node_names)}
        n = cluster.n_nodes
        self.tasks: dict[int, TaskRec] = {}
        """Tasks in flight (pending, assigned, running)."""
        self.done: dict[int, str] = {}
        """Status of every ended task (its row is in the database)."""
        self.pending: dict[int, None] = {}
        self.queued: list[dict[int, None]] = [{} for _ in range(n)]
        self.running: list[dict[int, None]] = [{} for _ in range(n)]
        self.counts = dict.fromkeys(STATUSES, 0)
        self.drained = np.zeros(n, dtype=bool)
        self.attached = np.zeros(n, dtype=bool)
        self.last_seen = np.full(n, time.time())
        self.recent = np.zeros(n)
        self.recent_t = np.zeros(n)
        self.observed: dict[str, deque[float]] = {}
        # what finished tasks revealed per node: the simulator's decayed mean of
        # realized / nominal execution time (docs/MODEL.md 12.1), kept in table
        # ``observations``; transfers are not observed (agents report no arrival time)
        self.exec_ratio = np.full(n, np.nan)
        self.exec_weight = np.zeros(n)
        self.exec_time_s = np.full(n, -np.inf)
        self.exec_count = np.zeros(n, dtype=np.int64)
        self.pending_changed = threading.Condition(self.lock)
        self.on_assigned: list[Callable[[], None]] = []

    # ----------------------------------------------------------------- loading

    def load(self) -> int:
        """Fill memory from the store; returns the number of tasks."""
        names = self.cluster.node_names
        drained = self.store.load_nodes()
        for j, name in enumerate(names):
            self.drained[j] = drained.get(name, False)
        self._load_observations()
        # ended tasks stay in the database (ids and status in memory, for idempotency
        # and counts): a restart loads only the work in flight
        for tid, status in self.store.load_ended():
            self.done[tid] = status
            self.counts[status] += 1
        recs = [TaskRec(**dict(zip(TASK_COLUMNS, row, strict=True))) for row in
                self.store.load_tasks(active_only=True)]  # fmt: skip
        # queues in assignment order (what a snapshot promises): by decision, then
        # the decision order within a batch (arrival, task_id)
        recs.sort(key=lambda r: (r.decision_s or -math.inf, r.arrival_s, r.task_id))
        for rec in recs:
            self._add(rec)
        return len(self.tasks) + len(self.done)

    def _load_observations(self) -> None:
        self.exec_ratio[:] = np.nan
        self.exec_weight[:] = 0.0
        self.exec_time_s[:] = -np.inf
        self.exec_count[:] = 0
        for name, (ratio, weight, time_s, count) in self.store.load_observations().items():
            j = self.node_index.get(name)
            if j is not None:  # a node no longer in the cluster file is forgotten
                self.exec_ratio[j], self.exec_weight[j] = ratio, weight
                self.exec_time_s[j], self.exec_count[j] = time_s, count

    def _add(self, rec: TaskRec) -> None:
        self.counts[rec.status] += 1
        if rec.status in TERMINAL:
            self.done[rec.task_id] = rec.status
            return
        self.tasks[rec.task_id] = rec
        j = self.node_index.get(rec.node, -1) if rec.node is not None else -1
        if rec.status == PENDING:
            self.pending[rec.task_id] = None
        elif rec.status == ASSIGNED and j >= 0:
            self.queued[j][rec.task_id] = None
        elif rec.status == RUNNING and j >= 0:
            self.running[j][rec.task_id] = None

    # ---------------------------------------------------------------- changing
    # (writer thread only, holding ``lock``)

    def _move(self, rec: TaskRec, status: str) -> None:
        old = rec.status
        j = self.node_index.get(rec.node, -1) if rec.node is not None else -1
        if old == PENDING:
            self.pending.pop(rec.task_id, None)
        elif old == ASSIGNED and j >= 0:
            self.queued[j].pop(rec.task_id, None)
        elif old == RUNNING and j >= 0:
            self.running[j].pop(rec.task_id, None)
        self.counts[old] -= 1
        rec.status = status
        self.counts[status] += 1
        if status == PENDING:
            self.pending[rec.task_id] = None
            rec.node = None
        elif status == ASSIGNED:
            self.queued[self.node_index[rec.node]][rec.task_id] = None
        elif status == RUNNING:
            self.running[self.node_index[rec.node]][rec.task_id] = None
        else:
            # ended: out of memory (the database has it); memory stays bounded by the
            # work in flight
            self.tasks.pop(rec.task_id, None)
            self.done[rec.task_id] = status

    def observe_exec(self, j: int, x: float, t: float) -> tuple[str, float, float, float, int]:
        """Record execution ratio ``x`` (realized / nominal) on node ``j`` at model time
        ``t``, with the simulator's update rule; returns the node's row for the store.

        A report that comes after a later one on the same node counts as observed at
        that later time (the decayed mean never runs backwards).
        """
        t = max(t, float(self.exec_time_s[j]))
        m, w = decayed_mean(
            float(self.exec_ratio[j]), float(self.exec_weight[j]), float(self.exec_time_s[j]),
            int(self.exec_count[j]), x, t,
        )  # fmt: skip
        self.exec_ratio[j], self.exec_weight[j], self.exec_time_s[j] = m, w, t
        self.exec_count[j] += 1
        return (self.cluster.node_names[j], float(m), float(w), t, int(self.exec_count[j]))

    def observations(self, now: float) -> NodeObservations:
        """What finished and running tasks revealed per node at model time ``now``
        (call holding ``lock``); the running ratio is the largest elapsed / nominal
        execution time of a node's running tasks."""
        n = self.cluster.n_nodes
        speed = self.cluster.speed.tolist()
        tasks = self.tasks
        ratio = [0.0] * n
        for j, run in enumerate(self.running):
            if run:
                sp = speed[j]
                r = max((now - tasks[t].start_s) / (tasks[t].work_gi / sp) for t in run)
                ratio[j] = max(r, 0.0)
        running = np.array(ratio)
        nan, zero = np.full(n, np.nan), np.zeros(n)
        return NodeObservations(
            exec_ratio=self.exec_ratio.copy(),
            exec_weight=self.exec_weight.copy(),
            exec_time_s=self.exec_time_s.copy(),
            exec_count=self.exec_count.copy(),
            transfer_ratio=nan,
            transfer_weight=zero,
            transfer_time_s=np.full(n, -np.inf),
            transfer_count=np.zeros(n, dtype=np.int64),
            running_ratio=running,
        )

    def status_of(self, task_id: int) -> str | None:
        """The status of a task, None when unknown."""
        rec = self.tasks.get(task_id)
        return rec.status if rec is not None else self.done.get(task_id)

    # ----------------------------------------------------------------- reading

    def node_up(self, now_wall: float | None = None) -> np.ndarray:
        """Nodes that can take tasks: an agent attached and heard from, not drained."""
        t = time.time() if now_wall is None else now_wall
        return self.attached & ((t - self.last_seen) <= self.heartbeat_timeout_s) & ~self.drained

    def snapshot(self, now: float) -> NodeSnapshot:
        """The node state at model time ``now`` (call holding ``lock``)."""
        c = self.cluster
        rn, rf = [], []
        tasks = self.tasks
        speed = c.speed.tolist()
        cores = c.cores.tolist()
        for j, run in enumerate(self.running):
            if not run:
                continue
            fin = [tasks[tid].start_s + tasks[tid].work_gi / speed[j] for tid in run]
            if len(fin) > cores[j]:
                # an agent reported more starts than the node has cores: the cores are
                # busy until the latest of them (a view never holds more than ``cores``)
                fin = sorted(fin)[-cores[j] :]
            rn.extend([j] * len(fin))
            rf.extend(fin)
        qn, qi, qa, qr, qw, qp, qd = [], [], [], [], [], [], []
        for j, qd_j in enumerate(self.queued):
            if not qd_j:
                continue
            for tid in qd_j:
                rec = tasks[tid]
                qn.append(j)
                qi.append(tid)
                qa.append(rec.arrival_s)
                qr.append(rec.ready_s)
                qw.append(rec.work_gi)
                qp.append(rec.priority)
                qd.append(rec.deadline_abs_s)
        i64 = np.int64
        return NodeSnapshot(
            time=now,
            up=self.node_up(),
            running_node=np.array(rn, dtype=i64),
            running_finish_s=np.array(rf, dtype=np.float64),
            queued_node=np.array(qn, dtype=i64),
            queued_task_id=np.array(qi, dtype=i64),
            queued_arrival_s=np.array(qa, dtype=np.float64),
            queued_ready_s=np.array(qr, dtype=np.float64),
            queued_work_gi=np.array(qw, dtype=np.float64),
            queued_priority=np.array(qp, dtype=i64),
            queued_deadline_abs_s=np.array(qd, dtype=np.float64),
            recent_assignments=self.recent * np.exp(-(now - self.recent_t) / RECENT_TAU_S),
            observations=self.observations(now),
        )

    def transition(self, rec: TaskRec) -> Transition:
        """The status message of ``rec`` as it is now."""
        return Transition(**{k: getattr(rec, k) for k in _TRANSITION_FIELDS})


class Writer:
    """The one writer: runs operations in order, a group per transaction (group commit).

    An operation is ``fn(conn, state) -> (result, transitions)``; it checks and
    writes, then changes memory. Its future resolves after the commit; the
    transitions then go to every listener (metrics, MQTT, logs).
    """

    def __init__(self, state: LiveState, *, max_group: int = 1024) -> None:
        self.state = state
        self.max_group = max_group
        self._q: queue.SimpleQueue[tuple[Callable[..., Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self.listeners: list[Callable[[list[Transition]], None]] = []
        self.commit_seconds: list[float] = []
        self.on_commit: Callable[[float], None] | None = None
        self._thread = threading.Thread(target=self._run, name="hybridsched-writer", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued and stop."""
        self._q.put(None)
        self._thread.join(timeout=30)

    def submit(self, fn: Callable[..., tuple[Any, list[Transition]]]) -> Future[Any]:
        """Queue an operation; its future gives the result once committed."""
        fut: Future[Any] = Future()
        self._q.put((fn, fut))
        return fut

    def call(self, fn: Callable[..., tuple[Any, list[Transition]]]) -> Any:
        """Run an operation and wait for its commit (from a non-event-loop thread)."""
        return self.submit(fn).result()

    def _run(self) -> None:
        st = self.state
        while True:
            item = self._q.get()
            if item is None:
                return
            group = [item]
            stop = False
            while len(group) < self.max_group:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            self._run_group(st, group)
            if stop:
                return

    def _run_group(
        self, st: LiveState, group: list[tuple[Callable[..., Any], Future[Any]]]
    ) -> None:
        t0 = time.perf_counter()
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        transitions: list[Transition] = []
        try:
            conn = st.store.transaction()
            with st.lock:
                for fn, fut in group:
                    try:
                        res, tr = fn(conn, st)
                        results.append((fut, res, None))
                        transitions.extend(tr)
                    except Exception as exc:  # an operation's own refusal: no rows written
                        results.append((fut, None, exc))
            conn.commit()
        except Exception as exc:
            log.exception("event=commit_failed ops=%d", len(group))
            try:
                st.store._conn.rollback()  # type: ignore[union-attr]
            except Exception:
                pass
            # memory may be ahead of the database: rebuild it from what is committed
            with st.lock:
                self._reload(st)
            for _fn, fut in group:
                if not fut.done():
                    fut.set_exception(exc)
            return
        dt = time.perf_counter() - t0
        if self.on_commit is not None:
            self.on_commit(dt)
        for fut, res, exc in results:
            if exc is None:
                fut.set_result(res)
            else:
                fut.set_exception(exc)
        if transitions:
            for listener in self.listeners:
                try:
                    listener(transitions)
                except Exception:  # a listener must never stop the writer
                    log.exception("event=listener_failed")

    @staticmethod
    def _reload(st: LiveState) -> None:
        n = st.cluster.n_nodes
        st.tasks.clear()
        st.done.clear()
        st.pending.clear()
        st.queued = [{} for _ in range(n)]
        st.running = [{} for _ in range(n)]
        st.counts = dict.fromkeys(STATUSES, 0)
        st.load()
