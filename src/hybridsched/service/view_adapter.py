"""The one place where live state becomes a :class:`~hybridsched.sim.ClusterView`.

The live service keeps plain arrays (:class:`NodeSnapshot`); a policy needs the
simulator's view. When the simulator offers ``ClusterView.from_snapshot`` (the
agreed interface, docs/SERVICE.md) this module calls it; otherwise it builds the
simulator's arrays for the snapshot itself, so that every policy (compiled ones
included) sees the same state it would see in a simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from hybridsched.model import Cluster
from hybridsched.sim import ClusterView, TaskBatch, core

try:  # the agreed interface of the simulator (sim/view.py)
    from hybridsched.sim.view import NodeSnapshot  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - only before the engine exposes it

    @dataclass(frozen=True, eq=False)
    class NodeSnapshot:  # type: ignore[no-redef]
        """Plain state of every node at one instant (see docs/SERVICE.md)."""

        time: float
        up: np.ndarray
        running_node: np.ndarray
        running_finish_s: np.ndarray
        queued_node: np.ndarray
        queued_task_id: np.ndarray
        queued_arrival_s: np.ndarray
        queued_ready_s: np.ndarray
        queued_work_gi: np.ndarray
        queued_priority: np.ndarray
        queued_deadline_abs_s: np.ndarray
        recent_assignments: np.ndarray | None = None

        @classmethod
        def empty(cls, n_nodes: int, time: float = 0.0) -> NodeSnapshot:
            """Every node up and idle."""
            f = np.zeros(0)
            i = np.zeros(0, dtype=np.int64)
            return cls(time, np.ones(n_nodes, bool), i, f, i, i, f, f, f, i, f)


NATIVE = hasattr(ClusterView, "from_snapshot")
"""True when the simulator builds the view from a snapshot itself."""

__all__ = ["NATIVE", "NodeSnapshot", "build_view"]


def build_view(
    cluster: Cluster,
    cols: dict[str, np.ndarray],
    snapshot: NodeSnapshot,
    *,
    queue: str = "fifo",
) -> tuple[TaskBatch, ClusterView]:
    """The batch and the view a policy sees for pending tasks ``cols`` in state ``snapshot``.

    Args:
        cluster: the cluster.
        cols: the batch in decision order (arrival, then task_id): ``task_id``,
            ``arrival_s``, ``region``, ``data_mb``, ``work_gi``, ``memory_mb``,
            ``deadline_abs_s``, ``priority``.
        snapshot: the live node state at the decision time.
        queue: the nodes' queue discipline (``fifo`` or ``priority``).
    """
    if NATIVE:
        tasks = TaskBatch.from_columns(**cols)  # type: ignore[attr-defined]
        return tasks, ClusterView.from_snapshot(  # type: ignore[attr-defined]
            cluster, tasks, snapshot, queue=queue
        )
    return _fallback(cluster, cols, snapshot, queue)


def _fallback(
    cluster: Cluster, cols: dict[str, np.ndarray], snap: NodeSnapshot, queue: str
) -> tuple[TaskBatch, ClusterView]:
    # Tasks of the simulator's arrays: the batch [0, B), the queued tasks
    # [B, B+Q) and one stand-in per running task [B+Q, B+Q+R).
    c = cluster
    now = float(snap.time)
    b = int(cols["task_id"].shape[0])
    q = int(snap.queued_node.shape[0])
    r = int(snap.running_node.shape[0])
    n = b + q + r
    n_nodes = c.n_nodes
    max_cores = int(c.cores.max())

    def f64(*parts: Any) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate([np.asarray(p, np.float64) for p in parts]))

    def i64(*parts: Any) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate([np.asarray(p, np.int64) for p in parts]))

    zr = np.zeros(r)
    run_node = np.asarray(snap.running_node, np.int64)
    q_node = np.asarray(snap.queued_node, np.int64)
    q_exec = snap.queued_work_gi / c.speed[q_node] if q else np.zeros(0)
    # a stand-in for a running task runs 1 s (estimated) and ends at its expected finish
    run_fin = np.maximum(np.asarray(snap.running_finish_s, np.float64), now)
    work = f64(cols["work_gi"], snap.queued_work_gi, c.speed[run_node] if r else zr)
    abs_dl = f64(cols["deadline_abs_s"], snap.queued_deadline_abs_s, np.full(r, np.inf))
    prio = i64(cols["priority"], snap.queued_priority, np.zeros(r))
    if queue == "priority":
        key0 = prio.astype(np.float64)
        key1 = abs_dl.copy()
    else:
        key0 = np.zeros(n)
        key1 = np.zeros(n)
    node = i64(np.full(b, -1), q_node, run_node)
    ready = f64(np.full(b, np.nan), snap.queued_ready_s, run_fin - 1.0)
    start = f64(np.full(b, np.nan), np.full(q, np.nan), run_fin - 1.0)
    finish = f64(np.full(b, np.nan), np.full(q, np.nan), run_fin)
    qnext = np.full(n, -1, dtype=np.int64)
    qprev = np.full(n, -1, dtype=np.int64)
    qhead = np.full(n_nodes, -1, dtype=np.int64)
    slot_of = np.full(n, -1, dtype=np.int64)
    cores = np.asarray(c.cores, dtype=np.int64)
    # running stand-ins take the first slots of their node (at most ``cores`` of them)
    run_order = np.argsort(run_node, kind="stable")
    rn_sorted = run_node[run_order]
    first = np.searchsorted(rn_sorted, np.arange(n_nodes))
    rank = np.arange(r) - first[rn_sorted] if r else np.zeros(0, dtype=np.int64)
    fits = rank < cores[rn_sorted]
    run_idx = (b + q + run_order)[fits]
    run_j, run_s = rn_sorted[fits], rank[fits]
    slot_task = np.full((n_nodes, max_cores), -1, dtype=np.int64)
    slot_task[run_j, run_s] = run_idx
    slot_of[run_idx] = run_s
    n_run = np.bincount(run_j, minlength=n_nodes).astype(np.int64)
    n_free = cores - n_run
    k = np.arange(max_cores)[None, :]
    # the stack of free slots, as the simulator keeps it (highest index at the bottom)
    free_slots = np.where(k < n_free[:, None], cores[:, None] - 1 - k, 0).astype(np.int64)
    proj = np.where(k < cores[:, None], -np.inf, np.inf)
    proj[run_j, run_s] = finish[run_idx]
    n_queued = np.bincount(q_node, minlength=n_nodes).astype(np.int64)
    queued_work = np.bincount(q_node, weights=q_exec, minlength=n_nodes).astype(np.float64)
    # queued tasks in assignment order (the snapshot's order) are list-scheduled on
    # the cores after the running work, as the simulator does when it commits them
    last = np.full(n_nodes, -1, dtype=np.int64)
    q_ready = np.asarray(snap.queued_ready_s, dtype=np.float64)
    for kq in range(q):
        i = b + kq
        j = int(q_node[kq])
        if last[j] < 0:
            qhead[j] = i
        else:
            qnext[last[j]] = i
            qprev[i] = last[j]
        last[j] = i
        core.project(proj[j], q_ready[kq], q_exec[kq])
    up = np.asarray(snap.up, bool)
    proj[~up] = np.inf
    proj_min = proj.min(axis=1)
    recent = (
        np.zeros(n_nodes)
        if snap.recent_assignments is None
        else np.array(snap.recent_assignments, dtype=np.float64)
    )

    def scratch() -> np.ndarray:
        return np.full(n, np.nan)

    st = core.CoreState(
        cores=np.ascontiguousarray(c.cores, dtype=np.int64),
        speed=np.ascontiguousarray(c.speed),
        memory=np.ascontiguousarray(c.memory_mb),
        bandwidth=np.ascontiguousarray(c.bandwidth_mb_s),
        latency=np.ascontiguousarray(c.latency_s),
        arrival=f64(cols["arrival_s"], snap.queued_arrival_s, run_fin - 1.0),
        region=i64(cols["region"], np.zeros(q + r)),
        data=f64(cols["data_mb"], np.zeros(q + r)),
        work=work,
        work_est=work,
        mem_req=f64(cols["memory_mb"], np.zeros(q + r)),
        abs_deadline=abs_dl,
        priority=prio,
        task_id=i64(cols["task_id"], snap.queued_task_id, np.full(r, -1)),
        key0=key0,
        key1=key1,
        node=node,
        decision=scratch(),
        ready=ready,
        dur=f64(np.full(b, np.nan), q_exec, np.ones(r)),
        start=start,
        finish=finish,
        wleft=np.full(n, -1, dtype=np.int64),
        wright=np.full(n, -1, dtype=np.int64),
        qnext=qnext,
        qprev=qprev,
        slot_of=slot_of,
        wroot=np.full(n_nodes, -1, dtype=np.int64),
        qhead=qhead,
        n_free=n_free,
        free_slots=free_slots,
        slot_task=slot_task,
        n_queued=n_queued,
        queued_work=queued_work,
        proj=proj,
        proj_min=proj_min,
        recent=recent,
        recent_t=np.full(n_nodes, now),
        busy_s=np.zeros(n_nodes),
        ev=np.zeros(2 * n + 2),
        dirty=np.zeros(n_nodes, dtype=np.int64),
        is_dirty=np.zeros(n_nodes, dtype=np.bool_),
        counters=np.zeros(4, dtype=np.int64),
    )
    idx = np.arange(b, dtype=np.int64)
    tasks = TaskBatch(
        index=idx,
        task_id=st.task_id[:b],
        arrival_s=st.arrival[:b],
        region=st.region[:b],
        data_mb=st.data[:b],
        work_gi=st.work_est[:b],
        memory_mb=st.mem_req[:b],
        deadline_abs_s=st.abs_deadline[:b],
        priority=st.priority[:b],
    )
    fake = SimpleNamespace(state=st, now=now, cluster=c, cstate=core.compile_state(st))
    view = ClusterView(fake, tasks)  # type: ignore[arg-type]
    if not up.all():
        view.unavailable = ~up
    return tasks, view
