"""The simulator (:mod:`hybridsched.sim.engine`) against hand-computed schedules and the
independent reference simulator (tests/reference_sim.py).

Hand cases use binary-exact inputs (halves, quarters) so that every time is exact in
float64 and compared with ``==``; the derivations are in the comments.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridsched.errors import ConfigError, HybridSchedError, PolicyError, SimulationError
from hybridsched.model import Cluster, Workload
from hybridsched.policies import KernelPolicy, available_policies, make_policy, policy_class
from hybridsched.sim import SUMMARY_KEYS, ClusterView, Engine, SimConfig, TaskBatch, simulate
from hybridsched.sim.engine import EngineHooks
from hybridsched.workload import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from builders import make_cluster, make_workload
from reference_sim import SUMMARY_KEYS as REF_SUMMARY_KEYS
from reference_sim import reference_simulate

INF = float("inf")
TIME_COLUMNS = ("decision_s", "ready_s", "start_s", "finish_s")


# ----------------------------------------------------------------------------- helpers


class Fixed:
    """A test policy whose choice is forced: task_id -> node index."""

    name = "fixed"

    def __init__(self, node_of: dict[int, int]) -> None:
        self.node_of = node_of
        self.batches: list[list[int]] = []
        self.times: list[float] = []

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        self.batches = []
        self.times = []

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        self.batches.append([int(t) for t in tasks.task_id])
        self.times.append(view.time)
        return np.array([self.node_of[int(t)] for t in tasks.task_id], dtype=np.int64)


def fixed_by_row(workload: Workload, nodes: list[int]) -> Fixed:
    return Fixed({int(t): int(j) for t, j in zip(workload.task_id, nodes, strict=True)})


def kernel_policies() -> list[str]:
    return [n for n in available_policies() if issubclass(policy_class(n), KernelPolicy)]


def buildable_policies() -> list[str]:
    """Registered policies that can be built with their default arguments (a learned
    policy whose checkpoint is absent cannot)."""
    out = []
    for name in sorted(available_policies()):
        try:
            make_policy(name)
        except ConfigError:
            continue
        out.append(name)
    return out


# ------------------------------------------------------------------ multi-core, disciplines

# Node A: 2 cores, speed 2 GI/s, idle 5 W, max 25 W. Node B: 1 core, idle 2 W (unused).
#   row 0: id 20, arrival 0,   work 4 -> dur 2, no deadline
#   row 1: id  3, arrival 0,   work 2 -> dur 1, deadline 0.5 (absolute 0.5)
#   row 2: id 11, arrival 0,   work 6 -> dur 3, deadline 10  (absolute 10)
#   row 3: id  4, arrival 0.5, work 2 -> dur 1, deadline 2   (absolute 2.5)
MC_NODES = [
    {"name": "A", "cores": 2, "speed": 2.0, "power_idle_w": 5.0, "power_max_w": 25.0},
    {"name": "B", "cores": 1, "speed": 1.0, "power_idle_w": 2.0, "power_max_w": 4.0},
]
MC_ROWS = [
    {"task_id": 20, "arrival_s": 0.0, "work_gi": 4.0},
    {"task_id": 3, "arrival_s": 0.0, "work_gi": 2.0, "deadline_s": 0.5},
    {"task_id": 11, "arrival_s": 0.0, "work_gi": 6.0, "deadline_s": 10.0},
    {"task_id": 4, "arrival_s": 0.5, "work_gi": 2.0, "deadline_s": 2.0},
]


def test_multicore_fifo_schedule_summary_and_columns() -> None:
    cluster = make_cluster(MC_NODES)
    wl = make_workload(MC_ROWS)
    pol = fixed_by_row(wl, [0, 0, 0, 0])
    res = simulate(cluster, wl, pol, queue="fifo")
    t = res.tasks
    # fifo = (ready, task_id). t=0: ids 20, 3, 11 ready -> id 3 [0,1], id 11 [0,3]; id 20
    # waits. t=0.5: id 4 ready, waits. t=1: id 3 done; waiting 20 (ready 0), 4 (ready 0.5)
    # -> id 20 [1,3]. t=3: ids 11 and 20 done -> id 4 [3,4].
    assert t["task_id"].tolist() == [20, 3, 11, 4]  # workload row order
    assert t["node"].tolist() == ["A", "A", "A", "A"]
    assert t["node_index"].tolist() == [0, 0, 0, 0]
    assert t["decision_s"].tolist() == [0.0, 0.0, 0.0, 0.5]
    assert t["ready_s"].tolist() == [0.0, 0.0, 0.0, 0.5]
    assert t["start_s"].tolist() == [1.0, 0.0, 0.0, 3.0]
    assert t["finish_s"].tolist() == [3.0, 1.0, 3.0, 4.0]
    assert t["response_s"].tolist() == [3.0, 1.0, 3.0, 3.5]
    # id 3: 1 > 0.5 missed; id 11: 3 <= 10 met; id 4: 4 > 2.5 missed; id 20: no deadline.
    assert t["met_deadline"].tolist() == [True, False, True, False]
    s = res.summary
    assert set(SUMMARY_KEYS) <= set(s)
    assert s["tasks"] == 4
    assert s["policy"] == "fixed"
    # responses 3, 1, 3, 3.5: mean 10.5/4; sorted [1, 3, 3, 3.5]: p50 at 1.5 -> 3,
    # p95 at 2.85 -> 3 + 0.85 * 0.5, p99 at 2.97 -> 3 + 0.97 * 0.5 (numpy linear).
    assert s["mean_response_s"] == 2.625
    assert s["p50_response_s"] == 3.0
    assert s["p95_response_s"] == pytest.approx(3.425, rel=1e-12)
    assert s["p99_response_s"] == pytest.approx(3.485, rel=1e-12)
    assert s["deadline_miss_rate"] == 0.5
    # t0 = 0, T = 4. Busy core-seconds on A: 2 + 1 + 3 + 1 = 7; B unused.
    assert s["makespan_s"] == 4.0
    # A: 5 * 4 + 20 * 7 / 2 = 90; B: 2 * 4 = 8 -> 98 J.
    assert s["energy_j"] == 98.0
    # 7 / ((2 + 1) * 4) = 7/12.
    assert s["utilization"] == pytest.approx(7.0 / 12.0, rel=1e-15)
    assert s["scheduler_seconds"] >= 0.0


def test_multicore_priority_schedule_and_summary() -> None:
    cluster = make_cluster(MC_NODES)
    wl = make_workload(MC_ROWS)
    res = simulate(cluster, wl, fixed_by_row(wl, [0, 0, 0, 0]), queue="priority")
    t = res.tasks
    # All priority 0: absolute deadlines id 3 -> 0.5, id 4 -> 2.5, id 11 -> 10, id 20 -> inf.
    # t=0: id 3 [0,1], id 11 [0,3]. t=1: waiting 20 (inf), 4 (2.5) -> id 4 [1,2].
    # t=2: id 20 [2,4].
    assert t["start_s"].tolist() == [2.0, 0.0, 0.0, 1.0]
    assert t["finish_s"].tolist() == [4.0, 1.0, 3.0, 2.0]
    assert t["met_deadline"].tolist() == [True, False, True, True]
    s = res.summary
    # responses 4, 1, 3, 1.5 -> mean 9.5/4; only id 3 misses.
    assert s["mean_response_s"] == 2.375
    assert s["deadline_miss_rate"] == 0.25
    assert s["makespan_s"] == 4.0
    assert s["energy_j"] == 98.0


def test_priority_class_beats_deadline() -> None:
    # Same tasks, but id 20 (no deadline) has priority 0 and the others priority 1:
    # t=0 waiting ids 20 (p0), 3 (p1, 0.5), 11 (p1, 10) -> id 20 [0,2], id 3 [0,1].
    # t=1: waiting 11 (p1, 10), 4 (p1, 2.5) -> id 4 [1,2]. t=2: id 11 [2,5].
    cluster = make_cluster(MC_NODES)
    rows = [{**r, "priority": 0 if r["task_id"] == 20 else 1} for r in MC_ROWS]
    wl = make_workload(rows)
    res = simulate(cluster, wl, fixed_by_row(wl, [0, 0, 0, 0]), queue="priority")
    assert res.tasks["start_s"].tolist() == [0.0, 0.0, 2.0, 1.0]
    assert res.tasks["finish_s"].tolist() == [2.0, 1.0, 5.0, 2.0]
    # fifo ignores priority: same as the fifo schedule above.
    res = simulate(cluster, wl, fixed_by_row(wl, [0, 0, 0, 0]), queue="fifo")
    assert res.tasks["start_s"].tolist() == [1.0, 0.0, 0.0, 3.0]


# ------------------------------------------------------------ simultaneous events at an instant

# One node, 1 core, speed 1, latency 0.25 s, bandwidth 4 MB/s; 1 MB each: ready = d + 0.5.
#   X id 0, arrival 0, work 2, prio 1 -> ready 0.5, runs [0.5, 2.5]
#   Z id 1, arrival 1, work 1, prio 1 -> ready 1.5, waits
#   Y id 2, arrival 2, work 1, prio 0 -> ready 2.5 = X's completion instant
SIM_NODE = {"latency_s": [0.25], "bandwidth_mb_s": 4.0}
SIM_ROWS = [
    {"task_id": 0, "arrival_s": 0.0, "work_gi": 2.0, "data_mb": 1.0, "priority": 1},
    {"task_id": 1, "arrival_s": 1.0, "work_gi": 1.0, "data_mb": 1.0, "priority": 1},
    {"task_id": 2, "arrival_s": 2.0, "work_gi": 1.0, "data_mb": 1.0, "priority": 0},
]


@pytest.mark.parametrize(
    ("queue", "start", "finish"),
    [
        # t=2.5: X completes and Y becomes ready; fifo takes Z (ready 1.5) first.
        ("fifo", [0.5, 2.5, 3.5], [2.5, 3.5, 4.5]),
        # both events applied before the pick: Y (prio 0) first, then Z.
        ("priority", [0.5, 3.5, 2.5], [2.5, 4.5, 3.5]),
    ],
)
def test_completion_and_readiness_same_instant(
    queue: str, start: list[float], finish: list[float]
) -> None:
    cluster = make_cluster([SIM_NODE])
    wl = make_workload(SIM_ROWS)
    res = simulate(cluster, wl, fixed_by_row(wl, [0, 0, 0]), queue=queue)
    assert res.tasks["ready_s"].tolist() == [0.5, 1.5, 2.5]
    assert res.tasks["start_s"].tolist() == start
    assert res.tasks["finish_s"].tolist() == finish
    s = res.summary
    # t0 = 0, T = 4.5; busy 2 + 1 + 1 = 4 on 1 core: energy 10 * 4.5 + 20 * 4 = 125 J.
    assert s["makespan_s"] == 4.5
    assert s["energy_j"] == 125.0
    assert s["utilization"] == pytest.approx(4.0 / 4.5, rel=1e-15)


@pytest.mark.parametrize(
    ("queue", "start"),
    [("fifo", [0.0, 2.0, 3.0]), ("priority", [0.0, 3.0, 2.0])],
)
def test_completion_decision_and_readiness_same_instant(queue: str, start: list[float]) -> None:
    # No transfer: id 7 is decided and ready at 2, the instant id 5 completes; id 6 has
    # waited since 1. fifo: id 6 (ready 1) first; priority: id 7 (prio 0) first.
    cluster = make_cluster([{}])
    rows = [
        {"task_id": 5, "arrival_s": 0.0, "work_gi": 2.0, "priority": 1},
        {"task_id": 6, "arrival_s": 1.0, "priority": 1},
        {"task_id": 7, "arrival_s": 2.0, "priority": 0},
    ]
    wl = make_workload(rows)
    res = simulate(cluster, wl, fixed_by_row(wl, [0, 0, 0]), queue=queue)
    assert res.tasks["decision_s"].tolist() == [0.0, 1.0, 2.0]
    assert res.tasks["start_s"].tolist() == start
    durations = [2.0, 1.0, 1.0]
    assert res.tasks["finish_s"].tolist() == [s + d for s, d in zip(start, durations, strict=True)]


# ------------------------------------------------------------------------------- batching


def batching_case() -> tuple[Cluster, Workload]:
    # n0: 1 core, speed 1, no transfer. n1: 2 cores, speed 2, latency 0.5, bandwidth 2.
    cluster = make_cluster(
        [{}, {"cores": 2, "speed": 2.0, "latency_s": [0.5], "bandwidth_mb_s": 2.0}]
    )
    rows = [
        {"task_id": 10, "arrival_s": 0.0, "work_gi": 2.0},  # d = 0 (a multiple)
        {"task_id": 11, "arrival_s": 0.25, "data_mb": 1.0},  # d = ceil(0.25) = 1
        {"task_id": 12, "arrival_s": 1.0, "work_gi": 2.0},  # d = 1 (exact multiple)
        {"task_id": 9, "arrival_s": 0.75},  # d = 1
        {"task_id": 13, "arrival_s": 1.5, "work_gi": 4.0, "data_mb": 2.0},  # d = 2
    ]
    return cluster, make_workload(rows)


def test_batches_ceil_semantics_and_partial_commits() -> None:
    cluster, wl = batching_case()
    eng = Engine(cluster, wl, decision_interval=1.0)
    assert eng.n_batches == 3
    assert eng.now == -INF
    assert not eng.done

    tasks, view = eng.next_batch()
    assert eng.now == 0.0 and view.time == 0.0
    assert tasks.task_id.tolist() == [10]
    eng.commit([0])  # id 10 on n0: ready 0, [0, 2]

    tasks, view = eng.next_batch()
    # batch at 1.0, decision order (arrival, task_id): 11 (0.25), 9 (0.75), 12 (1.0)
    assert eng.now == 1.0 and view.time == 1.0
    assert tasks.task_id.tolist() == [11, 9, 12]
    assert tasks.arrival_s.tolist() == [0.25, 0.75, 1.0]
    assert len(tasks) == 3
    # the cluster at 1.0 before any placement: id 10 runs on n0, nothing queued.
    assert view.busy_cores.tolist() == [1, 0]
    assert view.queued_tasks.tolist() == [0, 0]
    assert view.available_s.tolist() == [2.0, 1.0]
    # transfer of id 11 (1 MB): to n0 0 + 1/1 = 1.0; to n1 0.5 + 1/2 = 1.0.
    assert view.transfer_s[0].tolist() == [1.0, 1.0]
    assert view.ready_s[0].tolist() == [2.0, 2.0]
    assert view.exec_s[:, 1].tolist() == [0.5, 0.5, 1.0]
    # MCT estimate: max(ready, available) + exec.
    assert view.est_finish_s[0].tolist() == [3.0, 2.5]

    eng.commit(np.array([1]))  # partial: id 11 on n1 -> ready 2.0, [2.0, 2.5]
    tasks, view = eng.next_batch()  # the rest of the same batch
    assert eng.now == 1.0
    assert tasks.task_id.tolist() == [9, 12]
    # the view sees id 11's placement: one queued task on n1, its projected core.
    assert view.queued_tasks.tolist() == [0, 1]
    assert sorted(view.core_free_s[1].tolist()) == [-INF, 2.5]
    assert view.est_finish_s.tolist() == [[3.0, 2.0], [4.0, 2.5]]
    eng.commit([0, 1])  # id 9 on n0 (waits for id 10): [2, 3]; id 12 on n1: ready 1.5, [1.5, 2.5]

    tasks, view = eng.next_batch()
    assert eng.now == 2.0
    assert tasks.task_id.tolist() == [13]
    eng.commit([1])  # id 13 on n1: ready 2 + 0.5 + 2/2 = 3.5, [3.5, 5.5]
    assert eng.next_batch() is None
    assert eng.done
    res = eng.finish()
    t = res.tasks
    assert t["task_id"].tolist() == [10, 11, 12, 9, 13]
    assert t["node"].tolist() == ["n0", "n1", "n1", "n0", "n1"]
    assert t["decision_s"].tolist() == [0.0, 1.0, 1.0, 1.0, 2.0]
    assert t["ready_s"].tolist() == [0.0, 2.0, 1.5, 1.0, 3.5]
    assert t["start_s"].tolist() == [0.0, 2.0, 1.5, 2.0, 3.5]
    assert t["finish_s"].tolist() == [2.0, 2.5, 2.5, 3.0, 5.5]
    assert t["response_s"].tolist() == [2.0, 2.25, 1.5, 2.25, 4.0]
    # finish is idempotent
    assert eng.finish() is res

    ref = reference_simulate(cluster, wl, t["node_index"], 1.0, "fifo")
    for c in TIME_COLUMNS:
        assert t[c].tolist() == ref[c].tolist(), c


def test_simulate_batches_match_manual_driving() -> None:
    cluster, wl = batching_case()
    pol = fixed_by_row(wl, [0, 1, 1, 0, 1])
    res = simulate(cluster, wl, pol, decision_interval=1.0)
    assert pol.batches == [[10], [11, 9, 12], [13]]
    assert pol.times == [0.0, 1.0, 2.0]
    assert res.tasks["finish_s"].tolist() == [2.0, 2.5, 2.5, 3.0, 5.5]
    assert res.summary["decision_interval_s"] == 1.0


def test_decision_times_float_ceil() -> None:
    # ceil(a / delta) * delta in float64: 0.3 / 0.1 = 2.9999999999999996 -> 3 * 0.1 =
    # 0.30000000000000004; 0.5 and 1.0 are exact multiples of 0.25 and stay put.
    cluster = make_cluster([{"cores": 4}])
    wl = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.3},
            {"task_id": 1, "arrival_s": 0.5},
            {"task_id": 2, "arrival_s": 0.61},
        ]
    )
    res = simulate(cluster, wl, fixed_by_row(wl, [0, 0, 0]), decision_interval=0.1)
    assert res.tasks["decision_s"].tolist() == [
        np.ceil(0.3 / 0.1) * 0.1,
        np.ceil(0.5 / 0.1) * 0.1,
        np.ceil(0.61 / 0.1) * 0.1,
    ]
    assert res.tasks["decision_s"][0] == 0.30000000000000004
    pol = fixed_by_row(wl, [0, 0, 0])
    res = simulate(cluster, wl, pol, decision_interval=0.25)
    assert res.tasks["decision_s"].tolist() == [0.5, 0.5, 0.75]
    assert pol.batches == [[0, 1], [2]]


def test_interval_zero_decides_each_task_alone_in_arrival_then_id_order() -> None:
    cluster = make_cluster([{"cores": 2}])
    wl = make_workload(
        [
            {"task_id": 5, "arrival_s": 1.0},
            {"task_id": 2, "arrival_s": 1.0},
            {"task_id": 9, "arrival_s": 0.5},
        ]
    )
    pol = fixed_by_row(wl, [0, 0, 0])
    res = simulate(cluster, wl, pol)
    assert pol.batches == [[9], [2], [5]]
    assert pol.times == [0.5, 1.0, 1.0]
    assert res.tasks["decision_s"].tolist() == [1.0, 1.0, 0.5]


def test_summary_percentiles_and_misses_by_hand() -> None:
    # 5 tasks on 5 separate idle nodes (speed 1): response = work. Works 1, 2, 4, 8, 16.
    # Deadlines: 1 (met, boundary), 1.5 (missed), none, 8 (met), 10 (missed) -> 2/5.
    cluster = make_cluster([{"power_idle_w": 1.0, "power_max_w": 3.0} for _ in range(5)])
    rows = [
        {"task_id": k, "arrival_s": 0.0, "work_gi": w, "deadline_s": d}
        for k, (w, d) in enumerate([(1.0, 1.0), (2.0, 1.5), (4.0, INF), (8.0, 8.0), (16.0, 10.0)])
    ]
    wl = make_workload(rows)
    s = simulate(cluster, wl, fixed_by_row(wl, [0, 1, 2, 3, 4])).summary
    assert s["mean_response_s"] == 31.0 / 5
    # sorted [1, 2, 4, 8, 16]: p50 -> 4; p95 at 3.8 -> 8 + 0.8 * 8; p99 at 3.96 -> 8 + 0.96 * 8
    assert s["p50_response_s"] == 4.0
    assert s["p95_response_s"] == pytest.approx(14.4, rel=1e-12)
    assert s["p99_response_s"] == pytest.approx(15.68, rel=1e-12)
    assert s["deadline_miss_rate"] == 0.4
    assert s["deadline_miss_rate_by_priority"] == {"0": 0.4}
    # T - t0 = 16; idle 5 * 1 W * 16 = 80; dynamic 2 W * 31 busy s = 62 -> 142 J.
    assert s["makespan_s"] == 16.0
    assert s["energy_j"] == 142.0
    assert s["utilization"] == pytest.approx(31.0 / 80.0, rel=1e-15)


def test_horizon_starts_at_first_arrival() -> None:
    # t0 = min arrival = 3, T = 5: makespan 2; energy counts [t0, T] only.
    cluster = make_cluster([{"power_idle_w": 4.0, "power_max_w": 8.0}])
    wl = make_workload([{"task_id": 0, "arrival_s": 3.0, "work_gi": 2.0}])
    s = simulate(cluster, wl, fixed_by_row(wl, [0])).summary
    assert s["makespan_s"] == 2.0
    assert s["energy_j"] == 4.0 * 2 + 4.0 * 2
    assert s["utilization"] == 1.0


# --------------------------------------------------------------------------- random instances


@st.composite
def tie_instances(draw: st.DrawFn, max_tasks: int = 25) -> tuple[Cluster, Workload]:
    """Small clusters and workloads on a coarse grid (many exact ties)."""
    n_nodes = draw(st.integers(1, 4))
    n_regions = draw(st.integers(1, 3))
    nodes = []
    for j in range(n_nodes):
        idle = draw(st.integers(0, 20))
        nodes.append(
            {
                "name": f"node-{j}",
                "cores": draw(st.integers(1, 3)),
                "speed": draw(st.sampled_from([0.5, 1.0, 2.0, 4.0])),
                "memory_mb": draw(st.sampled_from([100.0, 200.0, 400.0])),
                "bandwidth_mb_s": draw(st.sampled_from([1.0, 2.0, 4.0])),
                "power_idle_w": float(idle),
                "power_max_w": float(idle + draw(st.integers(0, 40))),
                "latency_s": [draw(st.sampled_from([0.0, 0.5, 1.0])) for _ in range(n_regions)],
            }
        )
    cluster = Cluster.build({"name": "rand", "regions": n_regions, "nodes": nodes})
    biggest = float(cluster.memory_mb.max())
    n = draw(st.integers(1, max_tasks))
    ids = draw(st.lists(st.integers(0, 500), min_size=n, max_size=n, unique=True))
    cols: dict[str, list[Any]] = {
        "task_id": ids,
        "arrival_s": [draw(st.integers(0, 16)) * 0.5 for _ in range(n)],
        "region": [draw(st.integers(0, n_regions - 1)) for _ in range(n)],
        "data_mb": [float(draw(st.integers(0, 2))) for _ in range(n)],
        "work_gi": [float(draw(st.integers(1, 4))) for _ in range(n)],
        "memory_mb": [
            min(biggest, draw(st.sampled_from([0.0, 100.0, 150.0, 300.0, 400.0]))) for _ in range(n)
        ],
        "deadline_s": [draw(st.sampled_from([INF, 1.0, 2.0, 4.0, 8.0])) for _ in range(n)],
        "priority": [draw(st.integers(0, 2)) for _ in range(n)],
    }
    return cluster, Workload.build(cols, cluster=cluster)


def assert_matches_reference(res: Any, cluster: Cluster, wl: Workload, delta: float, q: str):
    ref = reference_simulate(cluster, wl, res.tasks["node_index"], delta, q)
    for c in TIME_COLUMNS:
        np.testing.assert_allclose(res.tasks[c], ref[c], rtol=1e-12, atol=0, err_msg=c)
    for k in REF_SUMMARY_KEYS:
        assert res.summary[k] == pytest.approx(ref["summary"][k], rel=1e-9, abs=0), k
    np.testing.assert_array_equal(res.tasks["task_id"], wl.task_id)
    np.testing.assert_allclose(
        res.tasks["response_s"], ref["finish_s"] - wl.arrival_s, rtol=1e-12, atol=1e-15
    )
    np.testing.assert_array_equal(
        res.tasks["met_deadline"], ref["finish_s"] <= wl.arrival_s + wl.deadline_s
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    inst=tie_instances(),
    policy=st.sampled_from(buildable_policies()),
    delta=st.sampled_from([0.0, 0.5, 1.0]),
    queue=st.sampled_from(["fifo", "priority"]),
    seed=st.integers(0, 2**16),
)
def test_engine_matches_reference_with_policies(
    inst: tuple[Cluster, Workload], policy: str, delta: float, queue: str, seed: int
) -> None:
    cluster, wl = inst
    res = simulate(
        cluster, wl, make_policy(policy), decision_interval=delta, queue=queue, seed=seed
    )
    assert_matches_reference(res, cluster, wl, delta, queue)


@settings(max_examples=80, deadline=None)
@given(
    inst=tie_instances(),
    delta=st.sampled_from([0.0, 0.5, 1.0]),
    queue=st.sampled_from(["fifo", "priority"]),
    data=st.data(),
)
def test_engine_matches_reference_with_forced_nodes(
    inst: tuple[Cluster, Workload], delta: float, queue: str, data: st.DataObject
) -> None:
    # Any feasible assignment (not only a heuristic's), e.g. everything piled on one node.
    cluster, wl = inst
    nodes = []
    for m in wl.memory_mb:
        ok = np.flatnonzero(cluster.memory_mb >= m).tolist()
        nodes.append(data.draw(st.sampled_from(ok)))
    res = simulate(cluster, wl, fixed_by_row(wl, nodes), decision_interval=delta, queue=queue)
    assert res.tasks["node_index"].tolist() == nodes
    assert_matches_reference(res, cluster, wl, delta, queue)


@settings(max_examples=120, deadline=None)
@given(
    inst=tie_instances(),
    delta=st.sampled_from([0.0, 0.5, 1.0]),
    queue=st.sampled_from(["fifo", "priority"]),
    seed=st.integers(0, 2**16),
)
def test_predict_finish_equals_simulated_finish_for_last_batch(
    inst: tuple[Cluster, Workload], delta: float, queue: str, seed: int
) -> None:
    cluster, wl = inst
    rng = np.random.default_rng(seed)
    eng = Engine(cluster, wl, decision_interval=delta, queue=queue)
    predicted = None
    last_idx = None
    while (batch := eng.next_batch()) is not None:
        tasks, view = batch
        feas = view.feasible
        nodes = np.array([rng.choice(np.flatnonzero(f)) for f in feas], dtype=np.int64)
        if view.time == eng.batch_bounds()[0][-1]:  # the last batch: no later arrivals
            predicted = view.predict_finish(nodes)
            assert np.array_equal(predicted, view.predict_finish(nodes, true_work=True))
            last_idx = tasks.task_id.copy()
        eng.commit(nodes)
    res = eng.finish()
    assert predicted is not None and last_idx is not None
    row = {int(t): k for k, t in enumerate(res.tasks["task_id"])}
    actual = np.array([res.tasks["finish_s"][row[int(t)]] for t in last_idx])
    np.testing.assert_allclose(predicted, actual, rtol=1e-12, atol=0)


def test_predict_finish_with_running_and_queued_work() -> None:
    # n0: 1 core. At t=1 id 0 runs [0, 4]; id 1 (decided at 0.5) waits. Last batch at 1.0:
    # id 2 on n0 waits behind id 1 under fifo: id 1 [4, 6], id 2 [6, 7]; under priority
    # id 2 (prio 0) goes first: [4, 5].
    cluster = make_cluster([{}, {"speed": 2.0}])
    wl = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.0, "work_gi": 4.0, "priority": 1},
            {"task_id": 1, "arrival_s": 0.5, "work_gi": 2.0, "priority": 1},
            {"task_id": 2, "arrival_s": 1.0, "work_gi": 1.0, "priority": 0},
        ]
    )
    for queue, expected in (("fifo", 7.0), ("priority", 5.0)):
        eng = Engine(cluster, wl, queue=queue)
        eng.next_batch()
        eng.commit([0])
        eng.next_batch()
        eng.commit([0])
        _, view = eng.next_batch()
        assert view.predict_finish(np.array([0])).tolist() == [expected]
        assert view.predict_finish(np.array([1])).tolist() == [1.5]  # idle n1, dur 0.5
        eng.commit([0])
        assert eng.finish().tasks["finish_s"][2] == expected


# -------------------------------------------------------------- compiled path vs Python path


def _random_instance(rng: np.random.Generator) -> tuple[Cluster, Workload]:
    n_nodes = int(rng.integers(1, 6))
    n_regions = int(rng.integers(1, 4))
    nodes = []
    for j in range(n_nodes):
        idle = float(rng.uniform(0, 20))
        nodes.append(
            {
                "name": f"x{j}",
                "cores": int(rng.integers(1, 4)),
                "speed": float(rng.choice([0.5, 1.0, 1.5, 2.0, 3.0])),
                "memory_mb": float(rng.choice([100.0, 200.0, 400.0])),
                "bandwidth_mb_s": float(rng.choice([1.0, 3.0, 10.0])),
                "power_idle_w": idle,
                "power_max_w": idle + float(rng.uniform(0, 30)),
                "latency_s": rng.choice([0.0, 0.1, 0.5], n_regions).tolist(),
            }
        )
    cluster = Cluster.build({"name": "r", "regions": n_regions, "nodes": nodes})
    n = int(rng.integers(1, 60))
    integer = bool(rng.integers(0, 2))
    arrival = rng.integers(0, 20, n) * 0.5 if integer else rng.uniform(0, 10, n)
    cols = {
        "task_id": rng.permutation(10 * n)[:n],
        "arrival_s": arrival,
        "region": rng.integers(0, n_regions, n),
        "data_mb": rng.integers(0, 3, n).astype(float),
        "work_gi": rng.integers(1, 6, n).astype(float) if integer else rng.uniform(0.1, 5, n),
        "memory_mb": np.minimum(
            rng.choice([0.0, 100.0, 150.0, 400.0], n), float(cluster.memory_mb.max())
        ),
        "deadline_s": rng.choice([INF, 0.5, 1.0, 3.0, 10.0], n),
        "priority": rng.integers(0, 3, n),
    }
    return cluster, Workload.build(cols, cluster=cluster)


def _manual(
    cluster: Cluster, wl: Workload, name: str, seed: int, delta: float, queue: str
) -> dict[str, np.ndarray]:
    pol = make_policy(name)
    pol.reset(cluster, np.random.default_rng(seed))
    eng = Engine(cluster, wl, decision_interval=delta, queue=queue)
    while (batch := eng.next_batch()) is not None:
        tasks, view = batch
        eng.commit(pol.assign(tasks, view))
    return eng.finish().tasks


# The compiled loop must give the schedule of the Python path (assign, then Engine.commit
# in batch order) also for the rules that reorder a batch (min-min, max-min, sufferage,
# edf-mct): the projection is order-dependent, so commit order matters to later batches.


def _assert_same_paths(name: str, cases: list[tuple[Cluster, Workload, float, str, int]]) -> None:
    for k, (cluster, wl, delta, queue, seed) in enumerate(cases):
        fast = simulate(
            cluster, wl, make_policy(name), decision_interval=delta, queue=queue, seed=seed
        ).tasks
        slow = _manual(cluster, wl, name, seed, delta, queue)
        np.testing.assert_array_equal(
            fast["node_index"], slow["node_index"], err_msg=f"{name} case {k}"
        )
        for col in TIME_COLUMNS:
            np.testing.assert_array_equal(fast[col], slow[col], err_msg=f"{name} {col} {k}")


@pytest.mark.parametrize("name", kernel_policies())
def test_compiled_path_equals_python_path_interval_zero(name: str) -> None:
    # One task per decision: no reordering within a batch is possible.
    rng = np.random.default_rng(2024)
    cases = []
    for k in range(12):
        cluster, wl = _random_instance(rng)
        cases.append((cluster, wl, 0.0, ("fifo", "priority")[k % 2], 500 + k))
    _assert_same_paths(name, cases)


@pytest.mark.parametrize("name", kernel_policies())
def test_compiled_path_equals_python_path(name: str) -> None:
    from hybridsched.workload import generate

    rng = np.random.default_rng(12345)
    cases = []
    for k in range(20):
        cluster, wl = _random_instance(rng)
        delta = (0.0, 0.5, 1.0, 0.3)[k % 4]
        cases.append((cluster, wl, delta, ("fifo", "priority")[(k // 4) % 2], 1000 + k))
    cluster, wl = generate("iot-small", 300, 0.9, seed=3)
    cases.append((cluster, wl, 0.05, "priority", 7))
    _assert_same_paths(name, cases)


# Minimal hand-computed witness of the (fixed) commit-order divergence.
# n0: 1 core, speed 1, bandwidth 1;
# n1: 1 core, speed 0.25. Decision interval 1.
#   batch at 0:   "far" task: work 1, data 4 -> on n0 ready 4, est. finish 5 (n1: 8)
#                 "near" task: work 2, no data -> on n0 est. finish 2 (n1: 8)
#   batch at 1:   id 2 (arrival 0.5), work 1.5 -> on n1 finishes 1 + 6 = 7
# Both batch-0 tasks go to n0 either way. If the near task is placed (projected) first,
# n0's projection is 2 then max(4, 2) + 1 = 5, and id 2 goes to n0 (5 + 1.5 = 6.5 < 7);
# committed far-first it is 5 then max(0, 5) + 2 = 7, and id 2 goes to n1 (8.5 > 7).
# min-min (near first), sufferage (near: 8 - 2 = 6 > far: 8 - 5 = 3) and edf-mct (near has
# the earlier deadline) place near first although far (id 0) precedes it in decision
# order; max-min places far (best 5) first, so for it far gets id 1.
_NEAR = {"arrival_s": 0.0, "work_gi": 2.0, "deadline_s": 3.0}
_FAR = {"arrival_s": 0.0, "work_gi": 1.0, "data_mb": 4.0, "deadline_s": 10.0}
_LATE = {"task_id": 2, "arrival_s": 0.5, "work_gi": 1.5}


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("min-min", [{"task_id": 0, **_FAR}, {"task_id": 1, **_NEAR}, _LATE]),
        ("sufferage", [{"task_id": 0, **_FAR}, {"task_id": 1, **_NEAR}, _LATE]),
        ("edf-mct", [{"task_id": 0, **_FAR}, {"task_id": 1, **_NEAR}, _LATE]),
        ("max-min", [{"task_id": 0, **_NEAR}, {"task_id": 1, **_FAR}, _LATE]),
    ],
)
def test_compiled_path_equals_python_path_minimal(name: str, rows: list[dict[str, Any]]) -> None:
    cluster = make_cluster([{}, {"speed": 0.25}])
    wl = make_workload(rows)
    fast = simulate(cluster, wl, make_policy(name), decision_interval=1.0).tasks
    slow = _manual(cluster, wl, name, 0, 1.0, "fifo")
    assert fast["node_index"][:2].tolist() == [0, 0]
    assert slow["node_index"][:2].tolist() == [0, 0]
    assert fast["node_index"][2] == slow["node_index"][2]


# ---------------------------------------------------------------------------------- misuse


def _small() -> tuple[Cluster, Workload]:
    cluster = make_cluster([{"memory_mb": 100.0}, {"memory_mb": 1000.0}])
    wl = make_workload(
        [
            {"task_id": 1, "arrival_s": 0.0, "memory_mb": 500.0},
            {"task_id": 2, "arrival_s": 0.0},
            {"task_id": 3, "arrival_s": 1.0},
        ]
    )
    return cluster, wl


def test_commit_before_next_batch_is_refused() -> None:
    cluster, wl = _small()
    eng = Engine(cluster, wl, decision_interval=1.0)
    with pytest.raises(SimulationError, match="next_batch"):
        eng.commit([1, 1])
    assert issubclass(SimulationError, HybridSchedError)


def test_commit_out_of_range_and_infeasible_nodes() -> None:
    cluster, wl = _small()
    eng = Engine(cluster, wl, decision_interval=1.0)
    tasks, _ = eng.next_batch()
    assert tasks.task_id.tolist() == [1, 2]
    with pytest.raises(PolicyError, match="out of range"):
        eng.commit([1, 2])
    with pytest.raises(PolicyError, match="out of range"):
        eng.commit([-1, 0])
    # task 1 needs 500 MB; n0 has 100 MB
    with pytest.raises(PolicyError, match="500"):
        eng.commit([0, 0])
    with pytest.raises(PolicyError):
        eng.commit([1, 1, 1])  # more tasks than the batch holds
    with pytest.raises(PolicyError):
        eng.commit(np.array([1.0, 1.0]))  # not integers
    with pytest.raises(PolicyError):
        eng.commit(np.zeros(0, dtype=np.int64))
    # a refused commit changes nothing: the batch is still whole and can be committed
    tasks, _ = eng.next_batch()
    assert tasks.task_id.tolist() == [1, 2]
    eng.commit([1, 0])
    eng.next_batch()
    eng.commit([0])
    assert eng.next_batch() is None
    with pytest.raises(SimulationError):
        eng.commit([0])  # nothing left to decide
    res = eng.finish()
    assert res.tasks["node_index"].tolist() == [1, 0, 0]


def test_finish_with_undecided_tasks() -> None:
    cluster, wl = _small()
    eng = Engine(cluster, wl)
    with pytest.raises(SimulationError, match="undecided"):
        eng.finish()
    eng.next_batch()
    eng.commit([1])
    with pytest.raises(SimulationError, match="2 tasks are undecided"):
        eng.finish()


def test_run_twice_and_bad_config() -> None:
    cluster, wl = _small()
    eng = Engine(cluster, wl)
    eng.run(make_policy("mct"))
    with pytest.raises(SimulationError):
        eng.run(make_policy("mct"))
    with pytest.raises(ConfigError):
        Engine(cluster, wl, decision_interval=-1.0)
    with pytest.raises(ConfigError):
        Engine(cluster, wl, queue="lifo")
    with pytest.raises(ConfigError):
        Engine(cluster, wl, SimConfig(), queue="fifo")
    with pytest.raises(ConfigError):
        SimConfig(decision_interval=float("nan"))


def test_policy_returning_infeasible_node_fails_simulate() -> None:
    cluster, wl = _small()
    with pytest.raises(PolicyError):
        simulate(cluster, wl, Fixed({1: 0, 2: 0, 3: 0}))


class _Hold(EngineHooks):
    """Keeps task_id 3 out of its decision until 2.5 s (a hook on the base kernel)."""

    def __init__(self) -> None:
        self.held: list[int] = []
        self.calls: list[tuple[str, float]] = []

    def next_event_time(self) -> float:
        return 2.5 if self.held else float("inf")

    def holds_tasks(self) -> bool:
        return bool(self.held)

    def triage(self, idx: np.ndarray, t: float) -> np.ndarray:
        self.calls.append(("triage", t))
        keep = (self.engine.state.task_id[idx] != 3) | (t >= 2.5)  # held once only
        self.held += idx[~keep].tolist()
        return idx[keep]

    def before_instant(self, t: float) -> None:
        self.calls.append(("event", t))
        for i in self.held:
            self.engine.send_back(i, t)
        self.held = []

    def on_commit(self, idx: np.ndarray, nodes: np.ndarray, t: float) -> None:
        self.calls.append(("commit", t))


def test_hook_holds_a_task_and_sends_it_back() -> None:
    # tasks 1 and 2 run [0, 1) on n1 and n0; task 3 arrives at 1 but the hook
    # holds it until its event at 2.5: decided then, it runs [2.5, 3.5)
    cluster, wl = _small()
    eng = Engine(cluster, wl)
    hook = _Hold()
    eng.add_hooks(hook)
    assert not eng.fused
    res = eng.run(make_policy("mct"))
    t = {int(k): i for i, k in enumerate(res.tasks["task_id"])}
    assert res.tasks["decision_s"][t[3]] == 2.5
    assert (res.tasks["start_s"][t[3]], res.tasks["finish_s"][t[3]]) == (2.5, 3.5)
    assert res.tasks["finish_s"][t[1]] == res.tasks["finish_s"][t[2]] == 1.0
    # delta = 0: each arrival is a batch of its own
    assert hook.calls == [
        ("triage", 0.0),
        ("commit", 0.0),
        ("triage", 0.0),
        ("commit", 0.0),
        ("triage", 1.0),
        ("event", 2.5),
        ("triage", 2.5),
        ("commit", 2.5),
    ]
    with pytest.raises(SimulationError, match="add hooks before"):
        eng.add_hooks(EngineHooks())


@pytest.mark.parametrize("interval", [0.0, 0.5])
def test_noop_hook_steps_the_base_model_bit_for_bit(interval: float) -> None:
    # a hook turns the fused loop off: the stepped loop must give the same run
    c, w = generate("iot-small", 300, 1.1, seed=4)
    cfg = SimConfig(decision_interval=interval, queue="priority")
    base = simulate(c, w, make_policy("mct"), config=cfg)
    eng = Engine(c, w, cfg)
    eng.add_hooks(EngineHooks())
    res = eng.run(make_policy("mct"))
    for k, v in base.tasks.items():
        np.testing.assert_array_equal(res.tasks[k], v, err_msg=k)
    assert {k: v for k, v in res.summary.items() if k != "scheduler_seconds"} == {
        k: v for k, v in base.summary.items() if k != "scheduler_seconds"
    }


class _Keep(_Hold):
    """Holds task_id 3 and never releases it; ``period`` > 0 fires empty events forever."""

    def __init__(self, period: float) -> None:
        super().__init__()
        self.period = period
        self.t = 0.0

    def next_event_time(self) -> float:
        return self.t + self.period if self.held and self.period > 0 else float("inf")

    def triage(self, idx: np.ndarray, t: float) -> np.ndarray:
        keep = self.engine.state.task_id[idx] != 3
        self.held += idx[~keep].tolist()
        return idx[keep]

    def before_instant(self, t: float) -> None:
        self.t = t


@pytest.mark.parametrize(
    ("period", "message"),
    [(0.0, "has no event to come"), (1.0, "held tasks through 100,000 events in a row")],
)
def test_a_hook_that_never_releases_a_task_stops_the_run(period: float, message: str) -> None:
    # without the guard the first loops forever and the second never ends either
    cluster, wl = _small()
    eng = Engine(cluster, wl)
    eng.add_hooks(_Keep(period))
    with pytest.raises(SimulationError, match=message):
        eng.run(make_policy("mct"))
