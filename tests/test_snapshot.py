"""A view built from a plain snapshot is the engine's own view (docs/VIEW.md)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from builders import make_cluster
from hybridsched.errors import ConfigError
from hybridsched.learn.features import N_FEATURES, node_table, pair_features_one
from hybridsched.policies import available_policies, make_policy
from hybridsched.sim import ClusterView, Engine, NodeSnapshot, TaskBatch
from hybridsched.sim.options import FailureTrace, SimOptions
from hybridsched.sim.options_engine import OptionsEngine
from hybridsched.workload import generate

EXACT = (
    "core_free_s",
    "core_free_min_s",
    "available_s",
    "busy_cores",
    "queued_tasks",
    "recent_assignments",
    "up",
    "transfer_s",
    "ready_s",
    "exec_s",
    "est_finish_s",
    "feasible",
)


def _columns(tasks: TaskBatch) -> TaskBatch:
    return TaskBatch.from_columns(
        task_id=tasks.task_id,
        arrival_s=tasks.arrival_s,
        region=tasks.region,
        data_mb=tasks.data_mb,
        work_gi=tasks.work_gi,
        memory_mb=tasks.memory_mb,
        deadline_abs_s=tasks.deadline_abs_s,
        priority=tasks.priority,
    )


def _agree(engine: Engine, tasks: TaskBatch, view: ClusterView, rng: np.random.Generator) -> None:
    other = ClusterView.from_snapshot(
        engine.cluster, _columns(tasks), engine.snapshot(), queue=engine.config.queue
    )
    assert other.time == view.time
    for name in EXACT:
        np.testing.assert_array_equal(getattr(other, name), getattr(view, name), err_msg=name)
    # the engine keeps a running sum (added at assignment, removed at start)
    np.testing.assert_allclose(other.queued_work_s, view.queued_work_s, rtol=1e-9, atol=1e-9)
    for a, b in zip(other.queue_keys, view.queue_keys, strict=True):
        np.testing.assert_array_equal(a, b)
    # None: every node up (an engine with failures on always gives the mask)
    down = view.unavailable
    if down is None or not down.any():
        assert other.unavailable is None
    else:
        np.testing.assert_array_equal(other.unavailable, down)
    ok = view.feasible
    for _ in range(3):
        nodes = np.array([rng.choice(np.flatnonzero(r)) for r in ok], dtype=np.int64)
        np.testing.assert_array_equal(other.predict_finish(nodes), view.predict_finish(nodes))


@pytest.mark.parametrize(("queue", "delta"), [("fifo", 0.0), ("priority", 0.5), ("fifo", 0.5)])
def test_view_from_engine_snapshot_agrees(queue: str, delta: float) -> None:
    cluster, workload = generate("iot-small", 400, 1.2, seed=4)
    engine = Engine(cluster, workload, decision_interval=delta, queue=queue)
    mct = make_policy("mct")
    mct.reset(cluster, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    checked = 0
    k = 0
    step = max(1, engine.n_batches // 15)
    while (batch := engine.next_batch()) is not None:
        tasks, view = batch
        if k % step == step // 2:
            _agree(engine, tasks, view, rng)
            checked += 1
        engine.commit(mct.assign(tasks, view))
        k += 1
    assert checked >= 10
    assert engine.finish().summary["tasks"] == 400


def test_view_from_snapshot_agrees_with_a_down_node() -> None:
    cluster, workload = generate("iot-small", 300, 1.1, seed=2)
    names = cluster.node_names
    t0, t1 = float(workload.arrival_s[60]), float(workload.arrival_s[200])
    trace = FailureTrace.build({"node": [names[0], names[3]], "down_s": [t0, t0], "up_s": [t1, t1]})
    engine = OptionsEngine(cluster, workload, None, SimOptions(failures=trace), seed=0)
    mct = make_policy("mct")
    mct.reset(cluster, np.random.default_rng(0))
    rng = np.random.default_rng(3)
    down_checked = 0
    k = 0
    while (batch := engine.next_batch()) is not None:
        tasks, view = batch
        if view.unavailable.any() and k % 5 == 0:
            assert not view.up[0] and not view.up[3]
            assert np.all(np.isinf(view.core_free_s[[0, 3]]))
            _agree(engine, tasks, view, rng)
            down_checked += 1
        engine.commit(mct.assign(tasks, view))
        k += 1
    assert down_checked >= 5


def _hand_snapshot() -> tuple[object, TaskBatch, NodeSnapshot]:
    # n0: 2 cores, one running until 5; n1: 1 core, busy until 4 with one task queued
    # (ready at 3, 2 GI at speed 1); n2: down
    cluster = make_cluster([{"cores": 2}, {}, {"memory_mb": 4000.0}], regions=1)
    tasks = TaskBatch.from_columns(
        task_id=[10, 11, 12],
        arrival_s=[1.0, 1.5, 2.0],
        region=[0, 0, 0],
        data_mb=[0.0, 1.0, 0.0],
        work_gi=[1.0, 2.0, 3.0],
        memory_mb=[10.0, 10.0, 10.0],
        deadline_abs_s=[np.inf, 9.0, np.inf],
        priority=[0, 1, 2],
    )
    snap = NodeSnapshot(
        time=2.0,
        up=[True, True, False],
        running_node=[0, 1],
        running_finish_s=[5.0, 4.0],
        queued_node=[1],
        queued_task_id=[7],
        queued_arrival_s=[0.5],
        queued_ready_s=[3.0],
        queued_work_gi=[2.0],
        queued_priority=[0],
        queued_deadline_abs_s=[np.inf],
        recent_assignments=[0.5, 2.0, 0.0],
    )
    return cluster, tasks, snap


def test_view_from_hand_snapshot() -> None:
    cluster, tasks, snap = _hand_snapshot()
    view = ClusterView.from_snapshot(cluster, tasks, snap)
    inf = np.inf
    # derived projection: n0 cores free at 5 and never used; n1 at 4, then the queued task to 6
    np.testing.assert_array_equal(view.core_free_s, [[5.0, -inf], [6.0, inf], [inf, inf]])
    np.testing.assert_array_equal(view.available_s, [2.0, 6.0, inf])
    np.testing.assert_array_equal(view.busy_cores, [1, 1, 0])
    np.testing.assert_array_equal(view.queued_tasks, [0, 1, 0])
    np.testing.assert_array_equal(view.queued_work_s, [0.0, 2.0, 0.0])
    np.testing.assert_array_equal(view.recent_assignments, [0.5, 2.0, 0.0])
    np.testing.assert_array_equal(view.unavailable, [False, False, True])
    assert not view.feasible[:, 2].any() and view.feasible[:, :2].all()
    # all three on n1, whose core frees at 4; FIFO by ready time, then id: task 10
    # (ready 2) 4..5, task 12 (ready 2) 5..8, the queued task 7 (ready 3) 8..10, task 11
    # (ready 2 + 1 MB at 1 MB/s = 3, id 11 > 7) 10..12
    np.testing.assert_array_equal(view.predict_finish(np.array([1, 1, 1])), [5.0, 12.0, 8.0])
    # on n0: one core free now, the other at 5: task 10 2..3, task 12 3..6, task 11 5..7
    np.testing.assert_array_equal(view.predict_finish(np.array([0, 0, 0])), [3.0, 7.0, 6.0])
    for name in ("core_free_s", "feasible", "ready_s"):
        with pytest.raises(ValueError):
            getattr(view, name)[0, 0] = 1.0


@pytest.mark.parametrize("name", sorted(available_policies()))
def test_every_policy_assigns_on_a_snapshot_view(name: str) -> None:
    cluster, tasks, snap = _hand_snapshot()
    for queue in ("fifo", "priority"):
        view = ClusterView.from_snapshot(cluster, tasks, snap, queue=queue)
        policy = make_policy(name)
        policy.reset(cluster, np.random.default_rng(0))
        nodes = np.asarray(policy.assign(tasks, view))
        assert nodes.shape == (3,)
        assert set(nodes.tolist()) <= {0, 1}, f"{name} placed a task on the down node"


def _unmasked_down_view(queue: str) -> tuple[object, TaskBatch, ClusterView]:
    # n0 is down but would win every rule when up: the fastest, most cores, memory and
    # bandwidth, idle, first on ties. Its memory fits every task: only the `up` mask
    # says it is down (docs/VIEW.md).
    cluster = make_cluster(
        [{"cores": 4, "speed": 8.0, "memory_mb": 64000.0, "bandwidth_mb_s": 100.0}, {}, {}],
        regions=1,
    )
    b = 6
    tasks = TaskBatch.from_columns(
        task_id=np.arange(b) + 100,
        arrival_s=np.full(b, 1.0),
        region=np.zeros(b, np.int64),
        data_mb=np.full(b, 0.5),
        work_gi=np.arange(1.0, b + 1.0),
        memory_mb=np.full(b, 10.0),
        deadline_abs_s=np.full(b, 50.0),
        priority=np.zeros(b, np.int64),
    )
    snap = replace(NodeSnapshot.empty(3, time=1.0), up=[False, True, True])
    view = ClusterView.from_snapshot(cluster, tasks, snap, queue=queue)
    np.testing.assert_array_equal(view._arr.memory, cluster.memory_mb)  # no mask in memory
    return cluster, tasks, view


@pytest.mark.parametrize("name", sorted(available_policies()))
def test_every_policy_reads_up_not_memory(name: str) -> None:
    for queue in ("fifo", "priority"):
        cluster, tasks, view = _unmasked_down_view(queue)
        policy = make_policy(name)
        policy.reset(cluster, np.random.default_rng(0))
        nodes = np.asarray(policy.assign(tasks, view))
        assert nodes.shape == (len(tasks),)
        assert set(nodes.tolist()) <= {1, 2}, f"{name} placed a task on the down node"


def test_learned_features_mask_reads_up_not_memory() -> None:
    cluster, _, view = _unmasked_down_view("fifo")
    out = np.ones((3, N_FEATURES), dtype=np.float32)
    mask = np.ones(3, dtype=np.bool_)
    best = pair_features_one(
        view.compiled, 0, view.time, view.core_free_min_s.copy(), view.queued_work_s.copy(),
        view.recent_count.copy(), view.recent_time_s.copy(), node_table(cluster), out, mask,
    )  # fmt: skip
    assert mask.tolist() == [False, True, True]
    assert best == 1  # n1 and n2 are alike: the first
    assert not out[0].any()


def test_snapshot_input_errors() -> None:
    cluster, tasks, snap = _hand_snapshot()
    with pytest.raises(TypeError, match="from_snapshot"):
        ClusterView(cluster, tasks)  # type: ignore[call-arg]
    bad = NodeSnapshot.empty(3, 1.0)
    bad = NodeSnapshot(**{**bad.__dict__, "running_node": [2], "running_finish_s": [4.0]})
    bad = NodeSnapshot(**{**bad.__dict__, "up": [True, True, False]})
    with pytest.raises(ConfigError, match=r"running_node: row 1: node 2 is down"):
        ClusterView.from_snapshot(cluster, tasks, bad)
    with pytest.raises(ConfigError, match=r"running_finish_s has 2"):
        NodeSnapshot(**{**snap.__dict__, "running_finish_s": [1.0, 2.0], "running_node": [0]})
    with pytest.raises(ConfigError, match=r"up: has 2 nodes"):
        ClusterView.from_snapshot(cluster, tasks, NodeSnapshot.empty(2))
    with pytest.raises(ConfigError, match=r"node 0 runs 3 tasks, it has 2 cores"):
        over = {**snap.__dict__, "running_node": [0, 0, 0], "running_finish_s": [3.0, 4.0, 5.0]}
        ClusterView.from_snapshot(cluster, tasks, NodeSnapshot(**over))
    with pytest.raises(ConfigError, match=r"column priority has 2 rows"):
        TaskBatch.from_columns(
            task_id=[1, 2, 3], arrival_s=[0, 0, 0], region=[0, 0, 0], data_mb=[0, 0, 0],
            work_gi=[1, 1, 1], memory_mb=[0, 0, 0], deadline_abs_s=[1, 1, 1], priority=[0, 0],
        )  # fmt: skip
    empty = ClusterView.from_snapshot(cluster, tasks, NodeSnapshot.empty(3, 2.0))
    np.testing.assert_array_equal(empty.available_s, [2.0, 2.0, 2.0])
    assert empty.unavailable is None


def test_fused_loop_gets_a_compiled_run_not_the_engine() -> None:
    from hybridsched.sim import CompiledRun, simulate

    cluster, workload = generate("iot-small", 200, 0.8, seed=1)
    seen: list[object] = []

    class Spy:
        name = "spy"

        def __init__(self) -> None:
            self.inner = make_policy("mct")

        def reset(self, c: object, rng: np.random.Generator) -> None:
            self.inner.reset(c, rng)

        def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
            return self.inner.assign(tasks, view)

        def run_compiled(self, run: CompiledRun) -> bool:
            seen.append(run)
            return self.inner.run_compiled(run)

    fused = simulate(cluster, workload, Spy())
    assert len(seen) == 1 and isinstance(seen[0], CompiledRun)
    assert seen[0].n_tasks == 200 and not hasattr(seen[0], "cluster")
    # the fused loop and the batch-by-batch path give the same schedule
    plain = simulate(cluster, workload, Spy().inner.__class__())
    step = Engine(cluster, workload)
    pol = make_policy("mct")
    pol.reset(cluster, np.random.default_rng(0))
    while (batch := step.next_batch()) is not None:
        step.commit(pol.assign(*batch))
    stepped = step.finish()
    for res in (plain, stepped):
        np.testing.assert_array_equal(fused.tasks["finish_s"], res.tasks["finish_s"])


def test_compiled_state_is_declared_once() -> None:
    from hybridsched.policies import cost
    from hybridsched.sim import fault_kernels, state

    for table, tup, struct in (
        (state.CORE_FIELDS, state.CoreState, state.STATE_TYPE),
        (fault_kernels.FAULT_FIELDS, fault_kernels.FaultArrays, fault_kernels.FAULT_TYPE),
        (cost.PROBLEM_FIELDS, cost.Problem, cost.PROBLEM_TYPE),
    ):
        names = tuple(name for name, _, _ in table)
        assert tup._fields == names
        assert tuple(struct.field_dict) == names
        assert all(meaning for _, _, meaning in table)
    cluster, workload = generate("iot-small", 50, 0.8, seed=1)
    engine = Engine(cluster, workload)
    assert engine.state.cores.dtype == np.int64 and engine.state.is_dirty.dtype == np.bool_
    assert "memory" in state.CoreState.memory.__doc__
