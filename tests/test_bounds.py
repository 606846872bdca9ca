"""The no-waiting lower bound on response times (hybridsched.sim.bounds)."""

from __future__ import annotations

import numpy as np
import pytest

from builders import make_cluster, make_workload
from hybridsched.policies import make_policy
from hybridsched.sim import simulate
from hybridsched.sim.bounds import response_lower_bound


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
