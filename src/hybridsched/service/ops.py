"""The task state machine: every change of state as one writer operation.

Each function returns an operation for :class:`~hybridsched.service.state.Writer`:
``op(conn, state) -> (result, transitions)``. An operation checks its request
against memory first and raises :class:`OpError` before writing anything.

Transitions: pending -> assigned -> running -> finished; assigned/running ->
pending again (node lost, failure reported) with one more retry, or rejected /
failed after ``max_retries``; pending/assigned -> cancelled.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from hybridsched.service.state import (
    ASSIGNED,
    CANCELLED,
    FAILED,
    FINISHED,
    PENDING,
    REJECTED,
    RUNNING,
    TERMINAL,
    LiveState,
    TaskRec,
    Transition,
)

Op = Callable[[Connection, LiveState], tuple[Any, list[Transition]]]


class OpError(Exception):
    """A request the state refuses (unknown task, wrong state); ``status`` is the HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _mut(rec: TaskRec) -> tuple[Any, ...]:
    return rec.mutable_row()


def submit(tasks: Sequence[dict[str, Any]], now: float) -> Op:
    """Accept new tasks (pending); a known ``task_id`` is a duplicate, not an error.

    Result: a list of ``(task_id, status, duplicate)`` in request order.
    """

    def op(conn: Connection, st: LiveState) -> tuple[Any, list[Transition]]:
        out: list[tuple[int, str, bool]] = []
        new: list[TaskRec] = []
        seen: dict[int, TaskRec] = {}
        for t in tasks:
            tid = int(t["task_id"])
            old = st.status_of(tid) or (seen[tid].status if tid in seen else None)
            if old is not None:
                out.append((tid, old, True))
                continue
            payload = t.get("payload")
            dl = t.get("deadline_s")
            arrival = t.get("arrival_s")
            rec = TaskRec(
                task_id=tid,
                arrival_s=float(now if arrival is None else arrival),
                region=int(t["region"]),
                data_mb=float(t["data_mb"]),
                work_gi=float(t["work_gi"]),
                memory_mb=float(t["memory_mb"]),
                deadline_s=None if dl is None or math.isinf(dl) else float(dl),
                priority=int(t.get("priority", 0)),
                payload=None if payload is None else json.dumps(payload),
                status=PENDING,
                node=None,
                attempt=0,
                retries=0,
            )
            seen[tid] = rec
            new.append(rec)
            out.append((tid, PENDING, False))
        st.store.insert_tasks(conn, [r.row() for r in new])
        for rec in new:
            st._add(rec)
        if new:
            st.pending_changed.notify_all()
        return out, [st.transition(r) for r in new]

    return op


def assign(decisions: Sequence[tuple[int, int, float, float]], now: float) -> Op:
    """Assign pending tasks: ``(task_id, node index, decision_s, ready_s)`` each.

    A task that stopped being pending meanwhile (cancelled) is skipped.
    Result: the number assigned.
    """

    def op(conn: Connection, st: LiveState) -> tuple[Any, list[Transition]]:
        names = st.cluster.node_names
        changed = []
        decay = 0.0
        for tid, j, dec, ready in decisions:
            rec = st.tasks.get(tid)
            if rec is None or rec.status != PENDING:
                continue
            rec.node = names[j]
            rec.attempt += 1
            rec.decision_s = dec
            rec.ready_s = ready
            rec.start_s = rec.finish_s = rec.observed_s = None
            rec.delivered = False
            st._move(rec, ASSIGNED)
            # the decayed count of recent assignments (the simulator's definition)
            decay = math.exp(-(now - st.recent_t[j]) / 10.0)
            st.recent[j] = st.recent[j] * decay + 1.0
            st.recent_t[j] = now
            changed.append(rec)
        st.store.update_tasks(conn, [_mut(r) for r in changed])
        return len(changed), [st.transition(r) for r in changed]

    return op


def reject(task_ids: Sequence[int], reason: str) -> Op:
    """Reject pending tasks that no node can run (with ``reason``)."""

    def op(conn: Connection, st: LiveState) -> tuple[Any, list[Transition]]:
        changed = []
        for tid in task_ids:
            rec = st.tasks.get(tid)
            if rec is None or rec.status != PENDING:
                continue
            rec.reason = reason
            st._move(rec, REJECTED)
            changed.append(rec)
        st.store.update_tasks(conn, [_mut(r) for r in changed])
        return len(changed), [st.transition(r) for r in changed]

    return op


def _requeue(st: LiveState, rec: TaskRec, why: str, give_up: str) -> None:
    # the simulator's failure semantics: back to pending with one more retry, or out
    rec.retries += 1
    rec.start_s = rec.finish_s = rec.observed_s = None
    if rec.retries > st.max_retries:
        rec.reason = f"{why}; gave up after {st.max_retries} retries"
        st._move(rec, give_up)
        rec.node = rec.node  # keep the last node for the record
    else:
        rec.reason = why
        st._move(rec, PENDING)


def report(allowed: set[str] | None, reports: Sequence[dict[str, Any]]) -> Op:
    """Apply agents' reports (``start``, ``finish``, ``failure``).

    A report must name the task's current node and attempt (its lease); a report
    from an older attempt (the lease expired and the task moved on) is refused.
    A repeated report of what is already recorded is acknowledged and changes nothing.
    Result: one ``(task_id, outcome, detail)`` per report; outcome ``ok``,
    ``duplicate`` or ``refused``.
    """

    def op(conn: Connection, st: LiveState) -> tuple[Any, list[Transition]]:
        out = []
        changed: dict[int, TaskRec] = {}
        observed: dict[str, tuple[str, float, float, float, int]] = {}
        trs = []
        for r in reports:
            tid = int(r["task_id"])
            kind = r["kind"]
            node = r["node"]
            rec = st.tasks.get(tid)
            if allowed is not None and node not in allowed:
                out.append((tid, "refused", f"this token does not act for node {node!r}"))
                continue
            if rec is None:
                ended = st.done.get(tid)
                if ended == FINISHED and kind == "finish":
                    out.append((tid, "duplicate", "already finished"))
                elif ended is not None:
                    out.append((tid, "refused", f"the task is {ended}"))
                else:
                    out.append((tid, "refused", "unknown task"))
                continue
            if rec.node != node or rec.attempt != int(r["attempt"]):
                if rec.status == FINISHED and kind == "finish" and rec.node == node:
                    out.append((tid, "duplicate", "already finished"))
                else:
                    out.append(
                        (
                            tid,
                            "refused",
                            f"lease expired: the task is {rec.status} "
                            f"(attempt {rec.attempt}) on {rec.node!r}",
                        )
                    )
                continue
            t = r.get("time_s")
            if kind == "start":
                if rec.status == ASSIGNED:
                    rec.start_s = float(t)
                    st._move(rec, RUNNING)
                    changed[tid] = rec
                    trs.append(st.transition(rec))
                    out.append((tid, "ok", RUNNING))
                elif rec.status in (RUNNING, FINISHED):
                    out.append((tid, "duplicate", rec.status))
                else:
                    out.append((tid, "refused", f"the task is {rec.status}"))
            elif kind == "finish":
                if rec.status in (ASSIGNED, RUNNING):
                    if r.get("start_s") is not None:
                        rec.start_s = float(r["start_s"])
                    elif rec.start_s is None:
                        rec.start_s = float(t)
                    rec.finish_s = float(t)
                    obs = r.get("observed_s")
                    rec.observed_s = float(obs) if obs is not None else rec.finish_s - rec.start_s
                    rec.exit_code = r.get("exit_code")
                    st._move(rec, FINISHED)
                    changed[tid] = rec
                    trs.append(st.transition(rec))
                    j = st.node_index[node]
                    st.observed.setdefault(st.cluster.node_names[j], deque(maxlen=1000)).append(
                        rec.observed_s
                    )
                    # realized / nominal execution time, as the simulator observes it
                    # (a duration of 0 or less reveals nothing: a ratio must be > 0)
                    ratio = rec.observed_s / (rec.work_gi / float(st.cluster.speed[j]))
                    if ratio > 0 and math.isfinite(ratio):
                        observed[node] = st.observe_exec(j, ratio, rec.finish_s)
                    out.append((tid, "ok", FINISHED))
                elif rec.status == FINISHED:
                    out.append((tid, "duplicate", FINISHED))
                else:
                    out.append((tid, "refused", f"the task is {rec.status}"))
            elif kind == "failure":
                if rec.status in (ASSIGNED, RUNNING):
                    rec.exit_code = r.get("exit_code")
                    _requeue(st, rec, f"failed on {node} (exit {rec.exit_code})", FAILED)
                    changed[tid] = rec
                    trs.append(st.transition(rec))
                    out.append((tid, "ok", rec.status))
                else:
                    out.append(
                        (tid, "duplicate" if rec.status in TERMINAL else "refused", rec.status)
                    )
        st.store.update_tasks(conn, [_mut(r) for r in changed.values()])
        st.store.save_observations(conn, observed.values())
        if any(tr.status == PENDING for tr in trs):
            st.pending_changed.notify_all()
        return out, trs

    return op


def node_lost(j: int) -> Op:
    """Node ``j`` is down: its queued and running tasks go back to pending (or out)."""

    def op(conn: Connection, st: LiveState) -> tuple[Any, list[Transition]]:
        name = st.cluster.node_names[j]
        recs = [st.tasks[t] for t in (*st.queued[j], *st.running[j])]
        for rec in recs:
            _requeue(st, rec, f"node {name} lost", REJECTED)
        st.store.update_tasks(conn, [_mut(r) for r in recs])
        if recs:
            st.pending_changed.notify_all()
        return len(recs), [st.transition(r) for r in recs]

    return op


def cancel(task_id: int) -> Op:
    """Cancel a pending or assigned (not started) task.

    Raises (in the future): OpError 404 unknown task, 409 already running or ended.
    """

    def op(conn: Connection, st: LiveState) -> tuple[Any, list[Transition]]:
        rec = st.tasks.get(task_id)
        if rec is None:
            ended = st.done.get(task_id)
            if ended is None:
                raise OpError(404, f"task_id {task_id}: no such task")
            if ended == CANCELLED:
                return task_id, []
            raise OpError(
                409,
                f"task_id {task_id}: is {ended}; only pending or assigned tasks can be cancelled",
            )
        if rec.status not in (PENDING, ASSIGNED):
            raise OpError(
                409,
                f"task_id {task_id}: is {rec.status}; only pending or assigned "
                "tasks can be cancelled",
            )
        rec.reason = "cancelled"
        st._move(rec, CANCELLED)
        st.store.update_tasks(conn, [_mut(rec)])
        return task_id, [st.transition(rec)]

    return op


def drain(j: int, drained: bool) -> Op:
    """Mark node ``j`` drained (takes no new tasks; its queue runs out) or not."""

    def op(conn: Connection, st: LiveState) -> tuple[Any, list[Transition]]:
        st.store.set_drained(conn, st.cluster.node_names[j], drained)
        st.drained[j] = drained
        if not drained:
            st.pending_changed.notify_all()
        return drained, []

    return op


def put_meta(key: str, value: Any) -> Op:
    """Record a value in table ``meta``."""

    def op(conn: Connection, st: LiveState) -> tuple[Any, list[Transition]]:
        st.store.put_meta(conn, key, value)
        return value, []

    return op


__all__ = [
    "OpError",
    "assign",
    "cancel",
    "drain",
    "node_lost",
    "put_meta",
    "reject",
    "report",
    "submit",
]
