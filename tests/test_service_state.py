"""The live service's parts without HTTP: the view built from a plain snapshot agrees
with the simulator's own view, and the task state machine on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybridsched.policies import make_policy
from hybridsched.service import ops
from hybridsched.service.state import LiveState, Writer
from hybridsched.service.store import Store
from hybridsched.service.view_adapter import NodeSnapshot, build_view
from hybridsched.sim import Engine
from hybridsched.workload import generate


def engine_snapshot(engine: Engine) -> NodeSnapshot:
    """What a live service would know in the engine's current state."""
    st = engine.state
    c = engine.cluster
    rn, rf = [], []
    for j in range(c.n_nodes):
        for s in range(int(c.cores[j])):
            i = int(st.slot_task[j, s])
            if i >= 0:
                rn.append(j)
                rf.append(st.start[i] + st.work_est[i] / c.speed[j])
    q = []
    for j in range(c.n_nodes):
        i = int(st.qhead[j])
        on_j = []
        while i >= 0:
            on_j.append((j, i))
            i = int(st.qnext[i])
        q.extend(on_j[::-1])  # the list is newest first; a snapshot is in assignment order
    qi = np.array([i for _, i in q], dtype=np.int64)
    now = engine.now
    return NodeSnapshot(
        time=now,
        up=np.ones(c.n_nodes, dtype=bool),
        running_node=np.array(rn, dtype=np.int64),
        running_finish_s=np.array(rf, dtype=np.float64),
        queued_node=np.array([j for j, _ in q], dtype=np.int64),
        queued_task_id=st.task_id[qi],
        queued_arrival_s=st.arrival[qi],
        queued_ready_s=st.ready[qi],
        queued_work_gi=st.work_est[qi],
        queued_priority=st.priority[qi],
        queued_deadline_abs_s=st.abs_deadline[qi],
        recent_assignments=st.recent * np.exp(-(now - st.recent_t) / 10.0),
    )


def snap_nodes_without_queue(snap: NodeSnapshot, n: int) -> np.ndarray:
    """Nodes with no assigned-but-unstarted task."""
    return np.bincount(snap.queued_node, minlength=n) == 0


@pytest.mark.parametrize("queue", ["fifo", "priority"])
def test_view_from_snapshot_matches_the_simulators_view(queue: str) -> None:
    cluster, w = generate("iot-small", n_tasks=400, load=1.3, seed=7)
    engine = Engine(cluster, w, decision_interval=0.5, queue=queue)
    policy = make_policy("mct")
    policy.reset(cluster, np.random.default_rng(0))
    checked = 0
    queued_seen = running_seen = 0
    b = -1
    while (batch := engine.next_batch()) is not None:
        b += 1
        tasks, view = batch
        if b % 2 == 1:
            snap = engine_snapshot(engine)
            running_seen += snap.running_node.size
            queued_seen += snap.queued_node.size
            cols = {
                "task_id": tasks.task_id,
                "arrival_s": tasks.arrival_s,
                "region": tasks.region,
                "data_mb": tasks.data_mb,
                "work_gi": tasks.work_gi,
                "memory_mb": tasks.memory_mb,
                "deadline_abs_s": tasks.deadline_abs_s,
                "priority": tasks.priority,
            }
            _t2, v2 = build_view(cluster, cols, snap, queue=queue)
            assert v2.time == view.time
            np.testing.assert_array_equal(v2.busy_cores, view.busy_cores)
            np.testing.assert_array_equal(v2.queued_tasks, view.queued_tasks)
            np.testing.assert_allclose(v2.queued_work_s, view.queued_work_s, rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(v2.recent_assignments, view.recent_assignments, rtol=1e-9)
            # fifo, a node with nothing queued: its cores are free or busy until the
            # running tasks' expected finish, exactly. (The simulator's projection keeps
            # the history of assignment order, which no live snapshot has: under the
            # priority discipline, where tasks overtake, it can differ; predict_finish,
            # below, walks the real running and queued tasks and agrees everywhere.)
            simple = snap_nodes_without_queue(snap, cluster.n_nodes)
            if queue == "fifo":
                assert simple.sum() >= 4
                np.testing.assert_allclose(
                    v2.available_s[simple], view.available_s[simple], rtol=1e-12, atol=1e-9
                )
                np.testing.assert_allclose(
                    v2.est_finish_s[:, simple],
                    view.est_finish_s[:, simple],
                    rtol=1e-12,
                    atol=1e-9,
                )
            np.testing.assert_allclose(v2.ready_s, view.ready_s, rtol=1e-12)
            np.testing.assert_array_equal(v2.feasible, view.feasible)
            nodes = policy.assign(tasks, view)
            # the exact prediction walks the same running and queued tasks
            np.testing.assert_allclose(
                v2.predict_finish(nodes), view.predict_finish(nodes), rtol=1e-12, atol=1e-9
            )
            checked += 1
            engine.commit(nodes)
        else:
            engine.commit(policy.assign(tasks, view))
    assert checked >= 5
    assert queued_seen > 0 and running_seen > 0


def test_view_masks_down_nodes() -> None:
    cluster, _w = generate("iot-small", n_tasks=5, load=0.5, seed=1)
    up = np.ones(cluster.n_nodes, dtype=bool)
    up[[0, 3]] = False
    e = NodeSnapshot.empty(cluster.n_nodes, 2.0)
    snap = NodeSnapshot(**{**e.__dict__, "up": up})
    cols = {
        "task_id": np.arange(3),
        "arrival_s": np.full(3, 2.0),
        "region": np.zeros(3, dtype=np.int64),
        "data_mb": np.ones(3),
        "work_gi": np.ones(3),
        "memory_mb": np.zeros(3),
        "deadline_abs_s": np.full(3, np.inf),
        "priority": np.zeros(3, dtype=np.int64),
    }
    tasks, view = build_view(cluster, cols, snap)
    assert not view.feasible[:, [0, 3]].any()
    assert view.feasible[:, [1, 2, 4]].all()
    pol = make_policy("mct")
    pol.reset(cluster, np.random.default_rng(0))
    assert not np.isin(pol.assign(tasks, view), [0, 3]).any()


def _state(tmp: Path, max_retries: int = 1) -> tuple[LiveState, Writer, Store]:
    cluster, _ = generate("iot-small", n_tasks=5, load=0.5, seed=1)
    store = Store(f"sqlite:///{tmp / 's.db'}")
    store.open()
    st = LiveState(cluster, store, max_retries=max_retries, heartbeat_timeout_s=5)
    st.load()
    w = Writer(st)
    w.start()
    return st, w, store


def _t(i: int) -> dict:
    return {"task_id": i, "region": 0, "data_mb": 1.0, "work_gi": 2.0, "memory_mb": 0.0,
            "deadline_s": 4.0, "priority": 1, "arrival_s": 1.0}  # fmt: skip


def test_state_machine_leases_retries_and_reload(tmp_path: Path) -> None:
    st, w, store = _state(tmp_path)
    res = w.call(ops.submit([_t(1), _t(2), _t(1)], now=1.0))
    assert res == [(1, "pending", False), (2, "pending", False), (1, "pending", True)]
    assert w.call(ops.submit([_t(2)], now=1.5)) == [(2, "pending", True)]
    assert w.call(ops.assign([(1, 0, 1.0, 1.2), (2, 0, 1.0, 1.2)], now=1.0)) == 2
    n0 = st.cluster.node_names[0]
    r = w.call(ops.report(None, [
        {"task_id": 1, "node": n0, "attempt": 1, "kind": "start", "time_s": 1.2},
        {"task_id": 1, "node": n0, "attempt": 1, "kind": "start", "time_s": 1.2},
        {"task_id": 1, "node": n0, "attempt": 1, "kind": "finish", "time_s": 3.2},
        {"task_id": 1, "node": n0, "attempt": 1, "kind": "finish", "time_s": 9.0},
        {"task_id": 2, "node": n0, "attempt": 1, "kind": "start", "time_s": 1.3},
    ]))  # fmt: skip
    assert [o for _, o, _ in r] == ["ok", "duplicate", "ok", "duplicate", "ok"]
    # an ended task leaves memory; its row has the times
    assert 1 not in st.tasks and st.done[1] == "finished"
    (row,) = store.read_tasks([1])
    assert row["finish_s"] == 3.2 and row["observed_s"] == pytest.approx(2.0)
    # node 0 lost: task 2 (running) back to pending with a retry
    assert w.call(ops.node_lost(0)) == 1
    assert (st.tasks[2].status, st.tasks[2].retries, st.tasks[2].node) == ("pending", 1, None)
    # a late report of the old lease is refused
    r = w.call(
        ops.report(
            None, [{"task_id": 2, "node": n0, "attempt": 1, "kind": "finish", "time_s": 5.0}]
        )
    )
    assert r[0][1] == "refused" and "lease expired" in r[0][2]
    # lost again: over the retry limit (1), rejected with the reason
    n1 = st.cluster.node_names[1]
    w.call(ops.assign([(2, 1, 6.0, 6.1)], now=6.0))
    assert st.tasks[2].attempt == 2
    w.call(ops.node_lost(1))
    assert st.done[2] == "rejected"
    (row,) = store.read_tasks([2])
    assert f"node {n1} lost" in row["reason"] and "gave up" in row["reason"]
    assert (row["retries"], row["attempt"]) == (2, 2)
    # cancel: pending yes, finished no
    w.call(ops.submit([_t(3)], now=7.0))
    assert w.call(ops.cancel(3)) == 3 and st.done[3] == "cancelled"
    assert w.call(ops.submit([_t(3)], now=7.5)) == [(3, "cancelled", True)]
    with pytest.raises(ops.OpError) as e:
        w.call(ops.cancel(1))
    assert e.value.status == 409
    counts = dict(st.counts)
    rows = {r["task_id"]: r for r in store.read_tasks([1, 2, 3])}
    w.stop()
    store.close()
    # what memory says is what the database says
    st2, w2, store2 = _state(tmp_path)
    assert dict(st2.counts) == counts == {"pending": 0, "assigned": 0, "running": 0,
                                          "finished": 1, "failed": 0, "rejected": 1,
                                          "cancelled": 1}  # fmt: skip
    assert st2.done == {1: "finished", 2: "rejected", 3: "cancelled"} and not st2.tasks
    assert {r["task_id"]: r for r in store2.read_tasks([1, 2, 3])} == rows
    w2.stop()
    store2.close()
