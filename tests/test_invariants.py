"""Invariants of every simulated schedule (docs/MODEL.md, "Semantics"), on random small
clusters and workloads, random registered policies, both disciplines, random intervals."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster, Workload
from hybridsched.policies import available_policies, make_policy
from hybridsched.sim import SUMMARY_KEYS, simulate
from hybridsched.sim.bounds import response_lower_bound

INF = float("inf")


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


# times: a coarse grid (exact ties between events) or arbitrary floats
_time = st.one_of(
    st.integers(0, 20).map(lambda k: k * 0.5),
    # no subnormals: ceil(5e-324 / 2) * 2 underflows to 0 < arrival (float64 to the letter)
    st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False, allow_subnormal=False),
)


@st.composite
def instances(draw: st.DrawFn) -> tuple[Cluster, Workload]:
    n_nodes = draw(st.integers(1, 5))
    n_regions = draw(st.integers(1, 3))
    nodes = []
    for j in range(n_nodes):
        idle = draw(st.floats(0.0, 50.0))
        nodes.append(
            {
                "name": f"node-{j}",
                "cores": draw(st.integers(1, 4)),
                "speed": draw(st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 3.0])),
                "memory_mb": draw(st.sampled_from([64.0, 256.0, 1024.0])),
                "bandwidth_mb_s": draw(st.sampled_from([0.5, 1.0, 4.0, 100.0])),
                "power_idle_w": idle,
                "power_max_w": idle + draw(st.floats(0.0, 100.0)),
                "latency_s": [
                    draw(st.sampled_from([0.0, 0.001, 0.25, 1.0])) for _ in range(n_regions)
                ],
            }
        )
    cluster = Cluster.build({"name": "inv", "regions": n_regions, "nodes": nodes})
    biggest = float(cluster.memory_mb.max())
    n = draw(st.integers(1, 30))
    cols: dict[str, Any] = {
        "task_id": draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True)),
        "arrival_s": [draw(_time) for _ in range(n)],
        "region": [draw(st.integers(0, n_regions - 1)) for _ in range(n)],
        "data_mb": [draw(st.sampled_from([0.0, 0.5, 1.0, 3.0])) for _ in range(n)],
        "work_gi": [
            draw(st.one_of(st.sampled_from([0.5, 1.0, 2.0]), st.floats(0.01, 5.0)))
            for _ in range(n)
        ],
        "memory_mb": [
            min(biggest, draw(st.sampled_from([0.0, 64.0, 100.0, 500.0, 1024.0]))) for _ in range(n)
        ],
        "deadline_s": [draw(st.sampled_from([INF, 0.5, 1.0, 2.0, 5.0])) for _ in range(n)],
        "priority": [draw(st.integers(0, 3)) for _ in range(n)],
    }
    return cluster, Workload.build(cols, cluster=cluster)


def running_count(start: np.ndarray, finish: np.ndarray, t: float) -> int:
    """Tasks running at instant t (a task finishing at t has freed its core)."""
    return int(np.sum((start <= t) & (t < finish)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    inst=instances(),
    policy=st.sampled_from(buildable_policies()),
    queue=st.sampled_from(["fifo", "priority"]),
    delta=st.one_of(st.just(0.0), st.sampled_from([0.5, 1.0]), st.floats(0.01, 3.0)),
    seed=st.integers(0, 2**32 - 1),
)
def test_schedule_invariants(
    inst: tuple[Cluster, Workload], policy: str, queue: str, delta: float, seed: int
) -> None:
    cluster, wl = inst
    if policy == "optimal":
        # the exact policy refuses batches above its max_tasks (tested in test_optimal.py)
        decision = np.ceil(wl.arrival_s / delta) * delta if delta > 0 else wl.arrival_s
        assume(np.unique(decision, return_counts=True)[1].max() <= make_policy(policy).max_tasks)
    res = simulate(
        cluster, wl, make_policy(policy), decision_interval=delta, queue=queue, seed=seed
    )
    t = res.tasks
    n = len(wl)

    # each task exactly once, on one valid, feasible node, in workload row order
    np.testing.assert_array_equal(t["task_id"], wl.task_id)
    node = t["node_index"]
    assert node.shape == (n,)
    assert np.all((node >= 0) & (node < cluster.n_nodes))
    assert [cluster.node_names[j] for j in node] == list(t["node"])
    assert np.all(wl.memory_mb <= cluster.memory_mb[node])
    for c in ("decision_s", "ready_s", "start_s", "finish_s"):
        assert np.all(np.isfinite(t[c])), c

    arrival, decision, ready = wl.arrival_s, t["decision_s"], t["ready_s"]
    start, finish = t["start_s"], t["finish_s"]
    # arrival <= decision <= ready <= start
    assert np.all(arrival <= decision)
    assert np.all(decision <= ready)
    assert np.all(ready <= start)
    if delta > 0:
        np.testing.assert_array_equal(decision, np.ceil(arrival / delta) * delta)
        assert np.all(decision - arrival < delta * (1 + 1e-12))
    else:
        np.testing.assert_array_equal(decision, arrival)
    # ready = decision + latency + data / bandwidth
    expect_ready = (decision + cluster.latency_s[node, wl.region]) + (
        wl.data_mb / cluster.bandwidth_mb_s[node]
    )
    np.testing.assert_allclose(ready, expect_ready, rtol=1e-12, atol=1e-15)
    # finish = start + work / speed
    np.testing.assert_allclose(finish, start + wl.work_gi / cluster.speed[node], rtol=1e-12)
    np.testing.assert_allclose(t["response_s"], finish - arrival, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(t["met_deadline"], finish <= arrival + wl.deadline_s)
    # no task beats its no-waiting bound (exactly, in floating point)
    assert np.all(t["response_s"] >= response_lower_bound(cluster, wl, delta))

    for j in range(cluster.n_nodes):
        on = np.flatnonzero(node == j)
        if on.size == 0:
            continue
        s_j, f_j = start[on], finish[on]
        cores = int(cluster.cores[j])
        # no core runs two tasks at once: at every start instant, running <= cores
        for t_ in np.unique(s_j):
            assert running_count(s_j, f_j, t_) <= cores, (j, t_)
        # work conservation: while a task waits (ready .. start), every core is busy;
        # the running count only changes at start/finish instants, so check at the
        # task's ready instant and at every such instant inside its wait.
        for k in on:
            if start[k] > ready[k]:
                inside = [ready[k], *[x for x in f_j if ready[k] < x < start[k]]]
                inside += [x for x in s_j if ready[k] < x < start[k]]
                for t_ in inside:
                    assert running_count(s_j, f_j, t_) == cores, (j, int(wl.task_id[k]), t_)

    s = res.summary
    assert set(SUMMARY_KEYS) <= set(s)
    assert s["tasks"] == n
    assert s["policy"] == policy
    t0, T = float(arrival.min()), float(finish.max())
    assert s["makespan_s"] == T - t0
    span = T - t0
    floor = float(np.sum(cluster.power_idle_w)) * span
    assert s["energy_j"] >= floor * (1 - 1e-12)
    cap = float(np.sum(cluster.power_max_w)) * span
    assert s["energy_j"] <= cap * (1 + 1e-12) + 1e-9
    assert 0.0 <= s["utilization"] <= 1.0 + 1e-12
    assert 0.0 <= s["deadline_miss_rate"] <= 1.0
    assert s["deadline_miss_rate"] == float(np.mean(~t["met_deadline"]))
    assert s["scheduler_seconds"] >= 0.0
    # response percentiles are ordered
    assert s["p50_response_s"] <= s["p95_response_s"] <= s["p99_response_s"]
