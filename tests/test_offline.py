"""The clairvoyant reference (hybridsched.sim.offline): exact costs, monotone search, optima."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_cluster, make_stream, make_workload
from hybridsched.errors import ConfigError
from hybridsched.policies import make_policy
from hybridsched.sim import SimConfig, simulate
from hybridsched.sim.conditions import CONDITION_COLUMNS, Conditions
from hybridsched.sim.offline import FixedAssignment, assignment_cost, improve_offline
from hybridsched.sim.options import SimOptions
from hybridsched.workload import generate, generate_instance


def _simulated_cost(cluster, wl, nodes, interval, queue, w_energy, conditions=None):
    res = simulate(
        cluster,
        wl,
        FixedAssignment(wl, nodes),
        config=SimConfig(decision_interval=interval, queue=queue),
        options=SimOptions(conditions=conditions),
    )
    np.testing.assert_array_equal(res.tasks["node_index"], nodes)
    return float(np.sum(res.tasks["response_s"])) + w_energy * res.summary["energy_j"]


def test_hand_case_reaches_the_optimum() -> None:
    # three 2 GI tasks at t=0; node 0 runs 1 GI/s, node 1 2 GI/s, one core each
    cluster = make_cluster([{"speed": 1.0}, {"speed": 2.0}])
    wl = make_workload([{"task_id": i, "arrival_s": 0.0, "work_gi": 2.0} for i in range(3)])
    start = np.zeros(3, dtype=np.int64)
    # all on node 0: finishes 2, 4, 6
    assert assignment_cost(cluster, wl, start) == pytest.approx(12.0)
    # brute force: two on node 1 (1, 2) and one on node 0 (2) is best, total 5
    costs = {
        a: assignment_cost(cluster, wl, np.array(a)) for a in itertools.product((0, 1), repeat=3)
    }
    assert min(costs.values()) == pytest.approx(5.0)
    res = improve_offline(cluster, wl, start, energy_weight=0.0, sweeps=5)
    # first move: one task alone on node 1 (12 -> 7); second: another joins it (-> 5)
    assert res.cost == pytest.approx((12.0, 5.0, 5.0))
    assert res.moved == (2, 0)
    assert np.bincount(res.nodes, minlength=2).tolist() == [1, 2]


def test_energy_weight_keeps_work_on_the_frugal_node() -> None:
    # node 1 is twice as fast but burns far more per second busy: with a high
    # energy weight the lone task stays on node 0; with none it moves
    cluster = make_cluster(
        [{"speed": 1.0, "power_max_w": 20.0}, {"speed": 2.0, "power_max_w": 1010.0}]
    )
    wl = make_workload([{"task_id": 0, "arrival_s": 0.0, "work_gi": 2.0}])
    start = np.array([0])
    assert improve_offline(cluster, wl, start, energy_weight=0.0).nodes.tolist() == [1]
    # node 0: response 2; energy 2 s x 20 W idle (both nodes) + 2 s x 10 W dynamic = 60 J.
    # node 1: response 1; energy 1 s x 20 W + 1 s x 1000 W = 1020 J
    kept = improve_offline(cluster, wl, start, energy_weight=1.0)
    assert kept.nodes.tolist() == [0]
    assert kept.cost == pytest.approx((62.0, 62.0))
    assert kept.moved == (0,)


@pytest.mark.parametrize("interval, queue", [(0.0, "fifo"), (0.5, "priority"), (0.25, "fifo")])
def test_cost_equals_the_simulator_before_and_after(interval: float, queue: str) -> None:
    cluster, wl = generate("iot-small", 400, 0.95, seed=3)
    cfg = SimConfig(decision_interval=interval, queue=queue)
    start = simulate(cluster, wl, make_policy("least-loaded"), config=cfg).tasks["node_index"]
    w = 0.02
    c0 = assignment_cost(
        cluster, wl, start, decision_interval=interval, queue=queue, energy_weight=w
    )
    assert c0 == pytest.approx(_simulated_cost(cluster, wl, start, interval, queue, w), rel=1e-12)
    res = improve_offline(
        cluster, wl, start, decision_interval=interval, queue=queue, energy_weight=w, seed=1
    )
    assert res.cost[0] == pytest.approx(c0, rel=1e-12)
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(res.cost))
    assert res.cost[-1] < 0.95 * c0  # least-loaded ignores speed: much to gain
    assert res.cost[-1] == pytest.approx(
        _simulated_cost(cluster, wl, res.nodes, interval, queue, w), rel=1e-9
    )
    again = improve_offline(
        cluster, wl, start, decision_interval=interval, queue=queue, energy_weight=w, seed=1
    )
    np.testing.assert_array_equal(again.nodes, res.nodes)


def _windows(cluster, *rows) -> Conditions:
    frame = pd.DataFrame([dict(zip(CONDITION_COLUMNS, r, strict=False)) for r in rows])
    return Conditions.from_frame(frame, cluster)


def test_hand_case_with_a_slowdown_known_in_advance() -> None:
    # two identical one-core nodes, speed 1; two 2 GI tasks at t=0, both on node 0.
    # Node 0 runs at x0.25 on [0, 4): the first task starts at 0 at 0.25 GI/s
    # (finish 8 booked); at 4 it has 1 GI left at speed 1: finish 4 + 4 x 0.25 = 5.
    # The second runs 5..7. Total response 5 + 7 = 12 (6 without the window).
    cluster = make_cluster([{}, {}])
    wl = make_workload([{"task_id": i, "arrival_s": 0.0, "work_gi": 2.0} for i in range(2)])
    cond = _windows(cluster, (cluster.node_names[0], 0.0, 4.0, 0.25))
    start = np.zeros(2, dtype=np.int64)
    assert assignment_cost(cluster, wl, start, conditions=cond) == pytest.approx(12.0)
    assert assignment_cost(cluster, wl, start) == pytest.approx(6.0)
    assert _simulated_cost(cluster, wl, start, 0.0, "fifo", 0.0, cond) == pytest.approx(12.0)
    # knowing the window, the climb moves one task (5 + 2 = 7), then the other (2 + 4 = 6)
    res = improve_offline(cluster, wl, start, energy_weight=0.0, sweeps=5, conditions=cond)
    assert res.cost == pytest.approx((12.0, 6.0, 6.0))
    assert res.moved == (2, 0)
    assert res.nodes.tolist() == [1, 1]
    # without the window the climb splits them (2 + 2 = 4) and stops
    plain = improve_offline(cluster, wl, start, energy_weight=0.0, sweeps=5)
    assert plain.cost == pytest.approx((6.0, 4.0, 4.0))
    assert sorted(plain.nodes.tolist()) == [0, 1]


def test_latency_and_bandwidth_in_force_at_the_decision() -> None:
    # one node, latency 0.1 s, 100 MB/s; a 50 MB task decided at 1 while the
    # window (x3 latency, x0.5 bandwidth) is open: ready 1 + 0.3 + 50 / 50 = 2.3,
    # then 1 GI at speed 1: finish 3.3, response 2.3. One decided at 3 (window
    # closed at 2.5): ready 3 + 0.1 + 0.5 = 3.6, finish 4.6, response 1.6.
    cluster = make_cluster([{"latency_s": [0.1], "bandwidth_mb_s": 100.0}])
    wl = make_workload(
        [
            {"task_id": 0, "arrival_s": 1.0, "work_gi": 1.0, "data_mb": 50.0},
            {"task_id": 1, "arrival_s": 3.0, "work_gi": 1.0, "data_mb": 50.0},
        ]
    )
    cond = _windows(cluster, (cluster.node_names[0], 0.5, 2.5, 1.0, 3.0, 0.5))
    nodes = np.zeros(2, dtype=np.int64)
    assert assignment_cost(cluster, wl, nodes, conditions=cond) == pytest.approx(2.3 + 1.6)
    assert _simulated_cost(cluster, wl, nodes, 0.0, "fifo", 0.0, cond) == pytest.approx(3.9)


@pytest.mark.parametrize("interval, queue", [(0.0, "fifo"), (0.5, "priority")])
def test_cost_with_drift_equals_the_simulator(interval: float, queue: str) -> None:
    inst = generate_instance("iot-drift", 600, 0.9, seed=4)
    cluster, wl = inst.cluster, inst.workload
    cond = Conditions.from_frame(inst.conditions, cluster)
    cfg = SimConfig(decision_interval=interval, queue=queue)
    run = simulate(cluster, wl, make_policy("mct"), config=cfg, options=SimOptions(conditions=cond))
    assert run.summary["retimed_tasks"] > 0  # the windows do touch running tasks
    start = run.tasks["node_index"]
    w = 0.03
    kw = {"decision_interval": interval, "queue": queue, "energy_weight": w}
    c0 = assignment_cost(cluster, wl, start, conditions=cond, **kw)
    assert c0 == pytest.approx(
        _simulated_cost(cluster, wl, start, interval, queue, w, cond), rel=1e-12
    )
    # the nominal cost of the same assignment is another number
    assert assignment_cost(cluster, wl, start, **kw) < 0.995 * c0
    res = improve_offline(cluster, wl, start, conditions=cond, seed=2, **kw)
    assert res.cost[0] == pytest.approx(c0, rel=1e-12)
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(res.cost))
    assert res.cost[-1] < 0.99 * c0  # mct on 600 tasks leaves over 1 % to find
    assert res.cost[-1] == pytest.approx(
        _simulated_cost(cluster, wl, res.nodes, interval, queue, w, cond), rel=1e-9
    )


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_nodes=st.integers(1, 3),
    n_tasks=st.integers(2, 10),
    interval=st.sampled_from([0.0, 0.5, 1.0]),
    queue=st.sampled_from(["fifo", "priority"]),
    w_energy=st.sampled_from([0.0, 0.1]),
)
def test_cost_under_random_windows_equals_the_simulator(
    data, n_nodes, n_tasks, interval, queue, w_energy
) -> None:
    # integer times and power-of-two factors: change points often coincide with
    # decisions, ready times and finishes, where the order of events matters
    pick = data.draw
    nodes = [
        {
            "cores": pick(st.integers(1, 3)),
            "speed": pick(st.sampled_from([0.5, 1.0, 2.0])),
            "latency_s": [pick(st.sampled_from([0.0, 0.5, 1.0]))],
            "bandwidth_mb_s": pick(st.sampled_from([1.0, 2.0])),
        }
        for _ in range(n_nodes)
    ]
    cluster = make_cluster(nodes)
    rows = [
        {
            "task_id": i,
            "arrival_s": float(pick(st.integers(1, 7))),
            "work_gi": float(pick(st.integers(1, 4))),
            "data_mb": float(pick(st.sampled_from([0, 0, 1, 2]))),
            "priority": pick(st.integers(0, 2)),
        }
        for i in range(n_tasks)
    ]
    wl = make_workload(rows)
    factor = st.sampled_from([0.25, 0.5, 2.0, 4.0])
    windows = []
    for name in cluster.node_names:
        t = float(pick(st.integers(0, 3)))  # a window may open before the first arrival
        for _ in range(pick(st.integers(0, 3))):
            end = t + pick(st.integers(1, 3))
            windows.append((name, t, end, pick(factor), pick(factor), pick(factor)))
            t = end + pick(st.integers(0, 1))  # sometimes the next opens as this one closes
    if not windows:
        windows.append((cluster.node_names[0], 2.0, 4.0, 0.5, 1.0, 1.0))
    cond = _windows(cluster, *windows)
    nodes_of = np.array(
        pick(st.lists(st.integers(0, n_nodes - 1), min_size=n_tasks, max_size=n_tasks))
    )
    kw = {"decision_interval": interval, "queue": queue, "energy_weight": w_energy}
    cost = assignment_cost(cluster, wl, nodes_of, conditions=cond, **kw)
    assert cost == pytest.approx(
        _simulated_cost(cluster, wl, nodes_of, interval, queue, w_energy, cond), rel=1e-9
    )


@settings(max_examples=25, deadline=None)
@given(
    works=st.lists(st.floats(0.2, 4.0), min_size=2, max_size=5),
    gaps=st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5),
    speeds=st.lists(st.floats(0.5, 3.0), min_size=3, max_size=3),
    seed=st.integers(0, 3),
)
def test_never_below_the_brute_force_optimum(works, gaps, speeds, seed) -> None:
    cluster = make_cluster([{"speed": s, "latency_s": [0.1 * k]} for k, s in enumerate(speeds)])
    wl = make_stream(works, gaps)
    n = len(works)

    def cost(a):
        return assignment_cost(cluster, wl, np.array(a), energy_weight=0.01)

    best = min(cost(a) for a in itertools.product(range(3), repeat=n))
    start = np.zeros(n, dtype=np.int64)
    res = improve_offline(cluster, wl, start, energy_weight=0.01, sweeps=4, seed=seed)
    assert best - 1e-9 <= res.cost[-1] <= res.cost[0] + 1e-12
    assert res.cost[-1] == pytest.approx(cost(res.nodes))


def test_bad_assignments_are_refused_by_row() -> None:
    cluster = make_cluster([{"memory_mb": 100.0}, {"memory_mb": 1000.0}])
    wl = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.0},
            {"task_id": 1, "arrival_s": 0.0, "memory_mb": 500.0},
        ],
        cluster=cluster,
    )
    with pytest.raises(ConfigError, match=r"row 2: node 0 has less memory"):
        improve_offline(cluster, wl, np.array([0, 0]))
    with pytest.raises(ConfigError, match=r"row 1: node index 5 is not in 0..1"):
        assignment_cost(cluster, wl, np.array([5, 1]))
    with pytest.raises(ConfigError, match=r"one node index per task \(2\)"):
        improve_offline(cluster, wl, np.array([1]))
    with pytest.raises(ConfigError, match="candidates: must be >= 1"):
        improve_offline(cluster, wl, np.array([1, 1]), candidates=0)
    with pytest.raises(ConfigError, match="conditions: must be a Conditions, got str"):
        assignment_cost(cluster, wl, np.array([1, 1]), conditions="c.csv")
    with pytest.raises(ConfigError, match="queue: must be"):
        assignment_cost(cluster, wl, np.array([1, 1]), queue="lifo")
