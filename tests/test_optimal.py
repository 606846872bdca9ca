"""The exact oracle: CP-SAT over the batch problem equals exhaustive search.

Also home of :func:`small_instances`, the loaded small batches (at most 8 tasks
on at most 4 nodes) that the colony is checked on in ``test_aco.py`` and
``benchmarks/bench_aco.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster
from hybridsched.policies import cost, make_policy
from hybridsched.policies.optimal import solve_batch
from hybridsched.sim import ClusterView, Engine, TaskBatch, simulate
from hybridsched.workload import ClusterParams, WorkloadParams, generate_cluster, generate_workload


def small_instances(
    count: int, seed: int = 0, max_tasks: int = 8, max_nodes: int = 4
) -> Iterator[tuple[Cluster, TaskBatch, ClusterView, np.ndarray]]:
    """Loaded small batches: ``(cluster, tasks, view, mct_nodes)``.

    Each instance is a random edge/fog/cloud cluster of 2 to ``max_nodes``
    nodes and a bursty workload at load 0.8 to 1.5, run under MCT (priority
    queues 70 % of the time, else FIFO) until a batch of at least a random
    size in 2..``max_tasks`` (and at most ``max_tasks``) tasks finds some node
    busy or with queued work; ``mct_nodes`` is MCT's assignment of that batch.
    The engine stays open at that decision.
    """
    root = np.random.SeedSequence(seed)
    made = 0
    while made < count:
        rng = np.random.default_rng(root.spawn(1)[0])
        n_nodes = int(rng.integers(2, max_nodes + 1))
        tiers = rng.multinomial(n_nodes - 1, [0.5, 0.3, 0.2]) + np.array([0, 1, 0])
        params = ClusterParams(
            n_edge=int(tiers[0]), n_fog=int(tiers[1]), n_cloud=int(tiers[2]), n_regions=2
        )
        cluster = generate_cluster(params, rng, name="small")
        load = float(rng.uniform(0.8, 1.5))
        workload = generate_workload(cluster, WorkloadParams(n_sensors=20), 80, load, rng)
        gap = float(np.ptp(workload.arrival_s)) / len(workload)
        queue = "priority" if rng.random() < 0.7 else "fifo"
        engine = Engine(
            cluster, workload, decision_interval=gap * float(rng.uniform(2, 8)), queue=queue
        )
        mct = make_policy("mct")
        mct.reset(cluster, rng)
        target = int(rng.integers(3, 10))
        size = int(rng.integers(2, max_tasks + 1))  # spread the batch sizes over 2..max_tasks
        seen = 0
        while (batch := engine.next_batch()) is not None:
            tasks, view = batch
            nodes = mct.assign(tasks, view)
            seen += 1
            loaded = int(np.sum(view.busy_cores) + np.sum(view.queued_tasks)) > 0
            if seen >= target and size <= len(tasks) <= max_tasks and loaded:
                yield cluster, tasks, view, nodes
                made += 1
                break
            engine.commit(nodes)


def brute_force(p: cost.Problem, feasible: np.ndarray) -> float:
    """The least cost over every feasible assignment."""
    options = [np.flatnonzero(row) for row in feasible]
    every = np.array(list(itertools.product(*options)), dtype=np.int64)
    return float(cost.batch_cost(p, every).min())


def test_oracle_equals_exhaustive_search() -> None:
    checked = 0
    for _, tasks, view, mct_nodes in small_instances(25, seed=11, max_tasks=5, max_nodes=3):
        p = cost.build_problem(tasks, view, cost.CostWeights())
        res = solve_batch(p, np.asarray(view.feasible))
        assert res.optimal
        assert np.all(np.asarray(view.feasible)[np.arange(len(tasks)), res.nodes])
        best = brute_force(p, np.asarray(view.feasible))
        assert res.cost == pytest.approx(best, rel=1e-9, abs=1e-12)
        assert res.cost <= cost.batch_cost(p, mct_nodes) + 1e-12
        checked += 1
    assert checked == 25


def test_oracle_with_other_weights() -> None:
    weights = cost.CostWeights(response=0.5, miss=10.0, energy=0.1, displaced=0.0, wait=0.0)
    for _, tasks, view, _ in small_instances(8, seed=12, max_tasks=4, max_nodes=3):
        p = cost.build_problem(tasks, view, weights)
        res = solve_batch(p, np.asarray(view.feasible))
        assert res.cost == pytest.approx(brute_force(p, np.asarray(view.feasible)), rel=1e-9)


def test_oracle_refuses_large_batches_with_a_clear_message() -> None:
    _, tasks, view, _ = next(small_instances(1, seed=13, max_tasks=8))
    p = cost.build_problem(tasks, view, cost.CostWeights())
    with pytest.raises(ConfigError, match=r"batch of \d+ tasks is above the limit of 1"):
        solve_batch(p, np.asarray(view.feasible), max_tasks=1)
    pol = make_policy("optimal", {"max_tasks": "1"})
    with pytest.raises(ConfigError, match=r"above the limit max_tasks=1.*decision interval"):
        pol.assign(tasks, view)
    with pytest.raises(ConfigError, match="max_tasks"):
        make_policy("optimal", {"max_tasks": "40"})
    with pytest.raises(ConfigError, match="valid arguments"):
        make_policy("optimal", {"nope": "1"})


def test_optimal_policy_runs_a_simulation_deterministically() -> None:
    params = ClusterParams(n_edge=2, n_fog=1, n_cloud=0, n_regions=2)
    cluster = generate_cluster(params, 3)
    workload = generate_workload(cluster, WorkloadParams(n_sensors=10), 40, 1.0, 3)
    gap = float(np.ptp(workload.arrival_s)) / len(workload)
    runs = [
        simulate(
            cluster, workload, make_policy("optimal"), decision_interval=2 * gap, queue="priority"
        )
        for _ in range(2)
    ]
    assert np.array_equal(runs[0].tasks["node_index"], runs[1].tasks["node_index"])
    assert runs[0].summary["policy"] == "optimal"
