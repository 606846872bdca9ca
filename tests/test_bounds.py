"""Lower bounds on response times (hybridsched.sim.bounds): no-wait and capacity."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import make_cluster, make_stream, make_workload
from hybridsched.policies import make_policy
from hybridsched.sim import SimConfig, simulate
from hybridsched.sim.bounds import capacity_lower_bound, response_lower_bound
from hybridsched.sim.offline import assignment_cost
from hybridsched.workload import generate


def test_bound_by_hand() -> None:
    # node 0: slow, near; node 1: fast, far, small memory
    cluster = make_cluster(
        [
            {"speed": 1.0, "bandwidth_mb_s": 2.0, "latency_s": [0.1], "memory_mb": 1000.0},
            {"speed": 4.0, "bandwidth_mb_s": 1.0, "latency_s": [0.5], "memory_mb": 100.0},
        ]
    )
    wl = make_workload(
        [
            # node 0: 0.1 + 1 + 4 = 5.1; node 1: 0.5 + 2 + 1 = 3.5
            {"task_id": 0, "arrival_s": 0.0, "data_mb": 2.0, "work_gi": 4.0},
            # too big for node 1: node 0 only, 0.1 + 0 + 1 = 1.1
            {"task_id": 1, "arrival_s": 0.3, "work_gi": 1.0, "memory_mb": 500.0},
        ],
        cluster=cluster,
    )
    np.testing.assert_allclose(response_lower_bound(cluster, wl), [3.5, 1.1])
    # interval 1: task 1 is decided at 1.0, 0.7 s after its arrival
    np.testing.assert_allclose(response_lower_bound(cluster, wl, 1.0), [3.5, 1.8])
    # chunking changes nothing
    np.testing.assert_array_equal(
        response_lower_bound(cluster, wl, 1.0, chunk=1), response_lower_bound(cluster, wl, 1.0)
    )
    # alone, a task gets its bound exactly
    res = simulate(cluster, wl, make_policy("mct"))
    np.testing.assert_allclose(res.tasks["response_s"], [3.5, 1.1])


def test_bound_refuses_negative_interval() -> None:
    cluster = make_cluster([{}])
    wl = make_workload([{"task_id": 0, "arrival_s": 0.0}])
    with pytest.raises(ValueError, match="decision_interval"):
        response_lower_bound(cluster, wl, -1.0)


def test_capacity_bound_by_hand() -> None:
    # three 1 s tasks at time 0 on one single-core node: the optimum is 1, 2, 3 s (mean 2)
    cluster = make_cluster([{}])
    wl = make_workload([{"task_id": i, "arrival_s": 0.0} for i in range(3)])
    assert response_lower_bound(cluster, wl).mean() == pytest.approx(1.0)
    # tend = 2: only 2 core-seconds before it, so one task finishes after 2 s; the dual
    # sum_i min(1 + lam, 2) - 2 lam peaks at lam = 1: (3 + 1) / 3
    assert capacity_lower_bound(cluster, wl, horizons=(2.0,)) == pytest.approx(4 / 3, abs=0.01)
    # tend = 0 (the default horizon): every task ends after tend, nothing is learnt
    assert capacity_lower_bound(cluster, wl) == pytest.approx(1.0)
    assert capacity_lower_bound(cluster, wl, horizons=(0.0, 2.0, 5.0)) == pytest.approx(
        4 / 3, abs=0.01
    )


@settings(max_examples=25, deadline=None)
@given(
    works=st.lists(st.floats(0.2, 4.0), min_size=2, max_size=5),
    gaps=st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5),
    speeds=st.lists(st.floats(0.5, 3.0), min_size=2, max_size=2),
    interval=st.sampled_from([0.0, 0.5]),
)
def test_capacity_bound_never_above_the_optimum(works, gaps, speeds, interval) -> None:
    cluster = make_cluster([{"speed": s, "latency_s": [0.2 * k]} for k, s in enumerate(speeds)])
    wl = make_stream(works, gaps)
    n = len(works)
    best = min(
        assignment_cost(cluster, wl, np.array(a), decision_interval=interval)
        for a in itertools.product(range(2), repeat=n)
    )
    bound = capacity_lower_bound(cluster, wl, interval, windows=3, horizons=(0.0, 1.0, 3.0, 8.0))
    assert response_lower_bound(cluster, wl, interval).mean() - 1e-12 <= bound
    assert bound <= best / n + 1e-9


def test_capacity_bound_below_every_scheduler_and_above_no_wait() -> None:
    cluster, wl = generate("iot-default", 600, 0.9, 3)
    cfg = SimConfig(decision_interval=0.5, queue="priority")
    nowait = response_lower_bound(cluster, wl, 0.5).mean()
    bound = capacity_lower_bound(cluster, wl, 0.5, horizons=(0.0, 2.0))
    for name in ("mct", "min-min", "aco", "random"):
        res = simulate(cluster, wl, make_policy(name), config=cfg, seed=0)
        assert bound <= res.summary["mean_response_s"], name
    # the short run is lightly contended, but capacity still adds something
    assert bound > nowait + 1e-3


def test_capacity_bound_refuses_bad_arguments() -> None:
    cluster = make_cluster([{}])
    wl = make_workload([{"task_id": 0, "arrival_s": 0.0}])
    with pytest.raises(ValueError, match="windows: must be >= 1"):
        capacity_lower_bound(cluster, wl, windows=0)
    with pytest.raises(ValueError, match="horizons"):
        capacity_lower_bound(cluster, wl, horizons=())
