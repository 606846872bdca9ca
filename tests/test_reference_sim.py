"""Hand-computed schedules checked against the reference simulator (tests/reference_sim.py).

Every expected number below was worked out by hand from docs/MODEL.md; the derivation is in
the comments. Inputs use binary-exact values (halves, quarters) so that the schedule
times are exact in float64 and can be compared with ``==``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridsched.model import Cluster, Workload

sys.path.insert(0, str(Path(__file__).resolve().parent))
from builders import make_cluster, make_workload
from reference_sim import SUMMARY_KEYS, decision_times, reference_simulate

INF = float("inf")


def run(
    cluster: Cluster, workload: Workload, nodes: list[int], delta: float = 0.0, queue: str = "fifo"
) -> dict[str, Any]:
    return reference_simulate(cluster, workload, np.asarray(nodes, dtype=np.int64), delta, queue)


# --------------------------------------------------------------------------------------------
# A multi-core node, fifo and priority.
# --------------------------------------------------------------------------------------------

# One node, 2 cores, speed 1 GI/s, idle 10 W, max 30 W; no latency, no data.
#   row 0: id 10, arrival 0, work 4, no deadline
#   row 1: id  5, arrival 0, work 2, deadline 1.5
#   row 2: id  7, arrival 0, work 3, deadline 100
#   row 3: id  1, arrival 1, work 1, deadline 3
MULTICORE_ROWS = [
    {"task_id": 10, "arrival_s": 0.0, "work_gi": 4.0},
    {"task_id": 5, "arrival_s": 0.0, "work_gi": 2.0, "deadline_s": 1.5},
    {"task_id": 7, "arrival_s": 0.0, "work_gi": 3.0, "deadline_s": 100.0},
    {"task_id": 1, "arrival_s": 1.0, "work_gi": 1.0, "deadline_s": 3.0},
]


def test_multicore_fifo_schedule_and_summary() -> None:
    cluster = make_cluster([{"cores": 2}])
    out = run(cluster, make_workload(MULTICORE_ROWS), [0, 0, 0, 0])
    # fifo = (ready, task_id). t=0: ids 10, 5, 7 ready at 0 -> id 5 [0,2], id 7 [0,3];
    # id 10 waits. t=1: id 1 ready, waits. t=2: id 5 done; waiting id 10 (ready 0) and
    # id 1 (ready 1) -> id 10 [2,6]. t=3: id 7 done -> id 1 [3,4].
    assert out["decision_s"].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert out["ready_s"].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert out["start_s"].tolist() == [2.0, 0.0, 0.0, 3.0]
    assert out["finish_s"].tolist() == [6.0, 2.0, 3.0, 4.0]
    s = out["summary"]
    assert tuple(s) == SUMMARY_KEYS
    assert s["tasks"] == 4
    # Responses 6, 2, 3, 3 -> mean 14/4; sorted [2, 3, 3, 6]: p50 at position 1.5 -> 3,
    # p95 at 2.85 -> 3 + 0.85*3 = 5.55, p99 at 2.97 -> 3 + 0.97*3 = 5.91.
    assert s["mean_response_s"] == 3.5
    assert s["p50_response_s"] == 3.0
    assert s["p95_response_s"] == pytest.approx(5.55, rel=1e-12)
    assert s["p99_response_s"] == pytest.approx(5.91, rel=1e-12)
    # id 5 finishes 2 > 0 + 1.5: missed; id 1 finishes 4 <= 1 + 3: met (boundary);
    # id 7: 3 <= 100 met; id 10: no deadline. 1 miss out of 4.
    assert s["deadline_miss_rate"] == 0.25
    # t0 = 0, T = 6. Busy core-seconds 4+2+3+1 = 10.
    assert s["makespan_s"] == 6.0
    # energy = 10 W * 6 s + (30 - 10) W * 10 / 2 cores = 60 + 100 = 160 J.
    assert s["energy_j"] == 160.0
    # utilization = 10 / (2 cores * 6 s) = 5/6.
    assert s["utilization"] == pytest.approx(5.0 / 6.0, rel=1e-15)


def test_multicore_priority_uses_absolute_deadline() -> None:
    cluster = make_cluster([{"cores": 2}])
    out = run(cluster, make_workload(MULTICORE_ROWS), [0, 0, 0, 0], queue="priority")
    # All priority 0: order by absolute deadline: id 5 -> 1.5, id 1 -> 4, id 7 -> 100,
    # id 10 -> inf. t=0: id 5 [0,2], id 7 [0,3]. t=2: waiting id 10 (inf), id 1 (4)
    # -> id 1 [2,3]. t=3: id 7 and id 1 done -> id 10 [3,7].
    assert out["start_s"].tolist() == [3.0, 0.0, 0.0, 2.0]
    assert out["finish_s"].tolist() == [7.0, 2.0, 3.0, 3.0]
    # Responses 7, 2, 3, 2; only id 5 misses.
    assert out["summary"]["mean_response_s"] == 3.5
    assert out["summary"]["deadline_miss_rate"] == 0.25
    assert out["summary"]["makespan_s"] == 7.0


# --------------------------------------------------------------------------------------------
# A completion and a readiness at the same instant; fifo and priority disagree.
# --------------------------------------------------------------------------------------------

# One node, 1 core, speed 1, latency 0.25 s, bandwidth 4 MB/s; every task has 1 MB,
# so ready = arrival + 0.25 + 1/4 = arrival + 0.5.
#   row 0: X id 0, arrival 0, work 2, prio 1 -> ready 0.5, runs [0.5, 2.5]
#   row 1: Z id 1, arrival 1, work 1, prio 1 -> ready 1.5, waits
#   row 2: Y id 2, arrival 2, work 1, prio 0 -> ready 2.5 = X's completion instant
SIMULTANEOUS_ROWS = [
    {"task_id": 0, "arrival_s": 0.0, "work_gi": 2.0, "data_mb": 1.0, "priority": 1},
    {"task_id": 1, "arrival_s": 1.0, "work_gi": 1.0, "data_mb": 1.0, "priority": 1},
    {"task_id": 2, "arrival_s": 2.0, "work_gi": 1.0, "data_mb": 1.0, "priority": 0},
]
SIMULTANEOUS_NODE = {"latency_s": [0.25], "bandwidth_mb_s": 4.0}


def test_simultaneous_completion_and_readiness_fifo() -> None:
    cluster = make_cluster([SIMULTANEOUS_NODE])
    out = run(cluster, make_workload(SIMULTANEOUS_ROWS), [0, 0, 0], queue="fifo")
    assert out["ready_s"].tolist() == [0.5, 1.5, 2.5]
    # t=2.5: X completes and Y becomes ready; fifo picks Z (ready 1.5) -> [2.5, 3.5],
    # then Y [3.5, 4.5].
    assert out["start_s"].tolist() == [0.5, 2.5, 3.5]
    assert out["finish_s"].tolist() == [2.5, 3.5, 4.5]


def test_simultaneous_completion_and_readiness_priority() -> None:
    cluster = make_cluster([SIMULTANEOUS_NODE])
    out = run(cluster, make_workload(SIMULTANEOUS_ROWS), [0, 0, 0], queue="priority")
    # t=2.5: both events applied first, then the pick sees Y (prio 0) and Z (prio 1):
    # Y [2.5, 3.5], Z [3.5, 4.5]. (Dispatching on the completion before applying Y's
    # readiness would wrongly start Z at 2.5.)
    assert out["start_s"].tolist() == [0.5, 3.5, 2.5]
    assert out["finish_s"].tolist() == [2.5, 4.5, 3.5]
    # Responses 2.5, 3.5, 1.5; t0 = 0, T = 4.5; busy = 2 + 1 + 1 = 4 on 1 core.
    s = out["summary"]
    assert s["mean_response_s"] == 2.5
    assert s["makespan_s"] == 4.5
    # energy = 10 * 4.5 + 20 * 4 / 1 = 45 + 80 = 125 J; utilization 4 / 4.5.
    assert s["energy_j"] == 125.0
    assert s["utilization"] == pytest.approx(4.0 / 4.5, rel=1e-15)


# --------------------------------------------------------------------------------------------
# The full priority key, and fifo on the same tasks.
# --------------------------------------------------------------------------------------------

# One node, 1 core, speed 1, no latency or data: ready = arrival. Work 1 each.
# A blocker B (id 0) runs [0, 1]; at t=1 the others all wait:
#   P id 9, arrival 0.5,  prio 1, no deadline
#   Q id 8, arrival 0.25, prio 0, deadline 0.75 -> absolute 1.0
#   R id 7, arrival 0.5,  prio 0, deadline 0.5  -> absolute 1.0
#   S id 3, arrival 0.5,  prio 0, deadline 0.5  -> absolute 1.0
#   U id 4, arrival 0.75, prio 0, deadline 10   -> absolute 10.75
#   V id 5, arrival 0.75, prio 0, no deadline   -> absolute inf
KEY_ROWS = [
    {"task_id": 0, "arrival_s": 0.0},
    {"task_id": 9, "arrival_s": 0.5, "priority": 1},
    {"task_id": 8, "arrival_s": 0.25, "deadline_s": 0.75},
    {"task_id": 7, "arrival_s": 0.5, "deadline_s": 0.5},
    {"task_id": 3, "arrival_s": 0.5, "deadline_s": 0.5},
    {"task_id": 4, "arrival_s": 0.75, "deadline_s": 10.0},
    {"task_id": 5, "arrival_s": 0.75},
]


def test_priority_key_order() -> None:
    cluster = make_cluster([{}])
    out = run(cluster, make_workload(KEY_ROWS), [0] * 7, queue="priority")
    # prio 0 first; among Q, R, S (absolute deadline 1.0) the earliest ready Q (0.25),
    # then R/S tie on ready 0.5 -> smaller id S (3) then R (7); then U (10.75), V (inf);
    # P (prio 1) last. Q [1,2], S [2,3], R [3,4], U [4,5], V [5,6], P [6,7].
    #                           B    P    Q    R    S    U    V
    assert out["start_s"].tolist() == [0.0, 6.0, 1.0, 3.0, 2.0, 4.0, 5.0]
    assert out["finish_s"].tolist() == [1.0, 7.0, 2.0, 4.0, 3.0, 5.0, 6.0]


def test_fifo_key_order() -> None:
    cluster = make_cluster([{}])
    out = run(cluster, make_workload(KEY_ROWS), [0] * 7, queue="fifo")
    # (ready, id): Q 0.25; then S(3), R(7), P(9) at 0.5; then U(4), V(5) at 0.75.
    # Q [1,2], S [2,3], R [3,4], P [4,5], U [5,6], V [6,7].
    #                           B    P    Q    R    S    U    V
    assert out["start_s"].tolist() == [0.0, 4.0, 1.0, 3.0, 2.0, 5.0, 6.0]
    # Deadlines: Q 2 > 1, R 4 > 1, S 3 > 1, U 6 <= 10.75 -> 3 misses of 7.
    assert out["summary"]["deadline_miss_rate"] == 3 / 7


# --------------------------------------------------------------------------------------------
# Transfer: latency is indexed [node, region].
# --------------------------------------------------------------------------------------------


def test_transfer_uses_node_region_latency() -> None:
    # 2 nodes, 3 regions. latency_s (N, R): n0 [0.5, 0.25, 4.0], n1 [1.0, 2.0, 8.0];
    # bandwidth n0 4 MB/s, n1 2 MB/s. All tasks carry 2 MB and arrive at 1.
    cluster = make_cluster(
        [
            {"latency_s": [0.5, 0.25, 4.0], "bandwidth_mb_s": 4.0, "cores": 4},
            {"latency_s": [1.0, 2.0, 8.0], "bandwidth_mb_s": 2.0, "cores": 4},
        ],
        regions=3,
    )
    rows = [
        {"task_id": 0, "arrival_s": 1.0, "region": 1, "data_mb": 2.0},  # n0: 1 + 0.25 + 0.5
        {"task_id": 1, "arrival_s": 1.0, "region": 1, "data_mb": 2.0},  # n1: 1 + 2.0 + 1.0
        {"task_id": 2, "arrival_s": 1.0, "region": 0, "data_mb": 2.0},  # n1: 1 + 1.0 + 1.0
        {"task_id": 3, "arrival_s": 1.0, "region": 2, "data_mb": 2.0},  # n0: 1 + 4.0 + 0.5
    ]
    out = run(cluster, make_workload(rows), [0, 1, 1, 0])
    assert out["ready_s"].tolist() == [1.75, 4.0, 3.0, 5.5]
    # Free cores everywhere: start = ready, finish = ready + 1.
    assert out["start_s"].tolist() == [1.75, 4.0, 3.0, 5.5]
    assert out["finish_s"].tolist() == [2.75, 5.0, 4.0, 6.5]


# --------------------------------------------------------------------------------------------
# Batching with delta > 0.
# --------------------------------------------------------------------------------------------


def test_decision_times_ceil_to_multiples() -> None:
    arrival = np.array([0.0, 0.5, 0.3, 0.6, 1.0, 1.2])
    # ceil(a / 0.5) * 0.5: exact multiples stay where they are.
    assert decision_times(arrival, 0.5).tolist() == [0.0, 0.5, 0.5, 1.0, 1.0, 1.5]
    assert decision_times(arrival, 0.0).tolist() == arrival.tolist()
    # float64 to the letter: 0.3 / 0.1 = 2.9999999999999996, ceil 3, 3 * 0.1 =
    # 0.30000000000000004 (not 0.3).
    assert decision_times(np.array([0.3]), 0.1).tolist() == [0.30000000000000004]


def test_batched_schedule() -> None:
    # One node, 1 core, speed 2 GI/s, no latency or data; delta = 0.5.
    #   row 0: id 0, a 0.0, work 1 -> d 0.0, dur 0.5
    #   row 1: id 4, a 1.0, work 1 -> d 1.0 (exact multiple), dur 0.5
    #   row 2: id 2, a 0.5, work 1 -> d 0.5 (exact multiple), dur 0.5
    #   row 3: id 1, a 0.3, work 1 -> d 0.5, dur 0.5
    #   row 4: id 3, a 0.6, work 2 -> d 1.0, dur 1.0
    cluster = make_cluster([{"speed": 2.0}])
    rows = [
        {"task_id": 0, "arrival_s": 0.0},
        {"task_id": 4, "arrival_s": 1.0},
        {"task_id": 2, "arrival_s": 0.5},
        {"task_id": 1, "arrival_s": 0.3},
        {"task_id": 3, "arrival_s": 0.6, "work_gi": 2.0},
    ]
    out = run(cluster, make_workload(rows), [0] * 5, delta=0.5)
    assert out["decision_s"].tolist() == [0.0, 1.0, 0.5, 0.5, 1.0]
    assert out["ready_s"].tolist() == [0.0, 1.0, 0.5, 0.5, 1.0]
    # t=0: id 0 [0, 0.5]. t=0.5: id 0 completes and ids 1, 2 become ready (ready tie)
    # -> id 1 [0.5, 1.0]. t=1.0: id 1 completes, ids 3, 4 ready; waiting 2 (0.5),
    # 3 (1.0), 4 (1.0) -> id 2 [1.0, 1.5]; t=1.5 -> id 3 [1.5, 2.5]; t=2.5 -> id 4 [2.5, 3.0].
    assert out["start_s"].tolist() == [0.0, 2.5, 1.0, 0.5, 1.5]
    assert out["finish_s"].tolist() == [0.5, 3.0, 1.5, 1.0, 2.5]
    s = out["summary"]
    # Responses 0.5, 2.0, 1.0, 0.7, 1.9; t0 = 0, T = 3; busy = 0.5*4 + 1 = 3 on 1 core.
    assert s["mean_response_s"] == pytest.approx((0.5 + 2.0 + 1.0 + 0.7 + 1.9) / 5, rel=1e-12)
    assert s["p50_response_s"] == 1.0
    assert s["makespan_s"] == 3.0
    assert s["utilization"] == 1.0
    assert s["energy_j"] == 10.0 * 3.0 + 20.0 * 3.0  # 90 J


def test_batched_ready_adds_transfer_to_decision() -> None:
    # delta = 0.25, latency 0.125, 1 MB over 8 MB/s = 0.125: ready = ceil(a/0.25)*0.25 + 0.25.
    cluster = make_cluster([{"latency_s": [0.125], "bandwidth_mb_s": 8.0, "cores": 2}])
    rows = [
        {"task_id": 0, "arrival_s": 0.1, "data_mb": 1.0},  # d 0.25, ready 0.5
        {"task_id": 1, "arrival_s": 0.25, "data_mb": 1.0},  # d 0.25, ready 0.5
        {"task_id": 2, "arrival_s": 0.26, "data_mb": 1.0},  # d 0.5, ready 0.75
    ]
    out = run(cluster, make_workload(rows), [0, 0, 0], delta=0.25)
    assert out["decision_s"].tolist() == [0.25, 0.25, 0.5]
    assert out["ready_s"].tolist() == [0.5, 0.5, 0.75]
    # 2 cores: ids 0, 1 [0.5, 1.5]; id 2 waits until 1.5 -> [1.5, 2.5].
    assert out["start_s"].tolist() == [0.5, 0.5, 1.5]
    assert out["finish_s"].tolist() == [1.5, 1.5, 2.5]
    # t0 = 0.1, T = 2.5: makespan 2.4 (float: 2.5 - 0.1).
    assert out["summary"]["makespan_s"] == 2.5 - 0.1


# --------------------------------------------------------------------------------------------
# Energy and utilization over several nodes, one unused.
# --------------------------------------------------------------------------------------------


def test_energy_and_utilization_by_hand() -> None:
    # n0: 2 cores, speed 1, idle 10 W, max 30 W
    # n1: 1 core,  speed 2, idle  5 W, max 25 W
    # n2: 4 cores, speed 1, idle  7 W, max  9 W (unused: idle power only)
    cluster = make_cluster(
        [
            {"cores": 2, "speed": 1.0, "power_idle_w": 10.0, "power_max_w": 30.0},
            {"cores": 1, "speed": 2.0, "power_idle_w": 5.0, "power_max_w": 25.0},
            {"cores": 4, "speed": 1.0, "power_idle_w": 7.0, "power_max_w": 9.0},
        ]
    )
    rows = [
        {"task_id": 0, "arrival_s": 1.0, "work_gi": 4.0},  # n0 [1, 5]
        {"task_id": 1, "arrival_s": 2.0, "work_gi": 2.0},  # n0 [2, 4] (second core)
        {"task_id": 2, "arrival_s": 1.0, "work_gi": 6.0},  # n1 dur 3: [1, 4]
        {"task_id": 3, "arrival_s": 3.0, "work_gi": 2.0},  # n1 dur 1, waits: [4, 5]
    ]
    out = run(cluster, make_workload(rows), [0, 0, 1, 1])
    assert out["start_s"].tolist() == [1.0, 2.0, 1.0, 4.0]
    assert out["finish_s"].tolist() == [5.0, 4.0, 4.0, 5.0]
    s = out["summary"]
    # t0 = 1, T = 5: span 4. Busy core-seconds: n0 4 + 2 = 6, n1 3 + 1 = 4, n2 0.
    assert s["makespan_s"] == 4.0
    # n0: 10*4 + 20*6/2 = 100; n1: 5*4 + 20*4/1 = 100; n2: 7*4 = 28 -> 228 J.
    assert s["energy_j"] == 228.0
    # (6 + 4) / ((2 + 1 + 4) * 4) = 10 / 28.
    assert s["utilization"] == pytest.approx(10.0 / 28.0, rel=1e-15)
    # Responses 4, 2, 3, 2.
    assert s["mean_response_s"] == 2.75
    assert s["deadline_miss_rate"] == 0.0


# --------------------------------------------------------------------------------------------
# Refusals.
# --------------------------------------------------------------------------------------------


def test_refuses_bad_arguments() -> None:
    cluster = make_cluster([{"memory_mb": 100.0}, {"memory_mb": 1000.0}])
    wl = make_workload([{"task_id": 0, "arrival_s": 0.0, "memory_mb": 500.0}])
    with pytest.raises(ValueError, match="queue"):
        run(cluster, wl, [1], queue="lifo")
    with pytest.raises(ValueError, match="delta"):
        run(cluster, wl, [1], delta=-1.0)
    with pytest.raises(ValueError, match="node_of_task"):
        run(cluster, wl, [2])
    with pytest.raises(ValueError, match="MB"):
        run(cluster, wl, [0])


# --------------------------------------------------------------------------------------------
# Invariants on random schedules (the reference checking itself).
# --------------------------------------------------------------------------------------------

_quarter = st.integers(min_value=0, max_value=16).map(lambda q: q / 4.0)


@settings(max_examples=150, deadline=None)
@given(
    cores=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    tasks=st.lists(
        st.tuples(
            _quarter,  # arrival
            st.integers(1, 8).map(lambda q: q / 4.0),  # work
            st.integers(0, 2),  # priority
            st.sampled_from([INF, 0.5, 1.0, 3.0]),  # deadline
            st.integers(0, 10),  # node draw
        ),
        min_size=1,
        max_size=25,
    ),
    queue=st.sampled_from(["fifo", "priority"]),
    delta=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_invariants(
    cores: list[int], tasks: list[tuple[float, float, int, float, int]], queue: str, delta: float
) -> None:
    cluster = make_cluster([{"cores": c} for c in cores])
    rows = [
        {"task_id": 100 - i, "arrival_s": a, "work_gi": w, "priority": p, "deadline_s": dl}
        for i, (a, w, p, dl, _) in enumerate(tasks)
    ]
    wl = make_workload(rows)
    nodes = np.array([t[4] % len(cores) for t in tasks], dtype=np.int64)
    out = reference_simulate(cluster, wl, nodes, delta, queue)
    start, finish, ready = out["start_s"], out["finish_s"], out["ready_s"]
    assert np.all(out["decision_s"] >= wl.arrival_s)
    assert np.all(start >= ready)
    assert np.array_equal(finish, start + wl.work_gi)  # speed 1
    for j, c in enumerate(cores):
        on = np.flatnonzero(nodes == j)
        for k in on:
            # Capacity: at each start instant at most `cores` tasks run.
            running = np.sum((start[on] <= start[k]) & (start[k] < finish[on]))
            assert running <= c
            # Work conservation: while k waits, every core is busy (checked at k's ready
            # instant and at every completion before k starts).
            instants = [ready[k], *[f for f in finish[on] if ready[k] < f < start[k]]]
            for t in instants if start[k] > ready[k] else []:
                assert np.sum((start[on] <= t) & (t < finish[on])) == c
        # Discipline: a task that was waiting when another started has a larger key,
        # unless it started already (or at the same instant, picked first).
        keys = {}
        for k in on:
            ab = wl.arrival_s[k] + wl.deadline_s[k]
            tid = int(wl.task_id[k])
            keys[k] = (ready[k], tid) if queue == "fifo" else (wl.priority[k], ab, ready[k], tid)
        for a in on:
            for b in on:
                if keys[a] < keys[b] and ready[a] <= start[b]:
                    assert start[a] <= start[b]
    s = out["summary"]
    assert 0.0 < s["utilization"] <= 1.0


# --------------------------------------------------------------------------------------------
# Cross-check with the independent SimPy peer (fifo, continuous random inputs: no ties).
# --------------------------------------------------------------------------------------------


def test_agrees_with_simpy_peer() -> None:
    pytest.importorskip("simpy")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from simpy_peer import simpy_simulate, synthetic

    cluster, wl = synthetic(3000, seed=7, n_nodes=12, load=0.9)
    peer = simpy_simulate(cluster, wl)
    out = reference_simulate(cluster, wl, peer["node"], 0.0, "fifo")
    np.testing.assert_allclose(out["ready_s"], peer["ready_s"], rtol=1e-12)
    np.testing.assert_allclose(out["start_s"], peer["start_s"], rtol=1e-12)
    np.testing.assert_allclose(out["finish_s"], peer["finish_s"], rtol=1e-12)
