"""Each classic heuristic on a case whose choice is known by hand (rules: the module
docstrings of hybridsched/policies/*.py), and the memory mask for every policy.

Hand cases use binary-exact inputs so every estimate is exact in float64.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster, Workload
from hybridsched.policies import available_policies, make_policy
from hybridsched.sim import Engine, simulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from builders import make_cluster, make_workload

INF = float("inf")


def build_or_skip(name: str) -> Any:
    """The policy ``name`` with default arguments, or skip (a learned policy whose
    checkpoint is absent cannot be built)."""
    try:
        return make_policy(name)
    except ConfigError as exc:
        pytest.skip(f"{name} cannot be built with default arguments: {exc}")


def nodes_of(
    name: str, cluster: Cluster, wl: Workload, delta: float = 0.0, seed: int = 0
) -> list[int]:
    res = simulate(cluster, wl, make_policy(name), decision_interval=delta, seed=seed)
    return res.tasks["node_index"].tolist()


def manual_nodes(name: str, cluster: Cluster, wl: Workload, delta: float = 0.0) -> list[int]:
    """The same policy through the Python path (assign batch by batch)."""
    pol = make_policy(name)
    pol.reset(cluster, np.random.default_rng(0))
    eng = Engine(cluster, wl, decision_interval=delta)
    while (batch := eng.next_batch()) is not None:
        eng.commit(pol.assign(*batch))
    return eng.finish().tasks["node_index"].tolist()


# ---------------------------------------------------------------------------------- random


def test_random_is_uniform_over_feasible_nodes_only() -> None:
    # 4 nodes; n2 has 100 MB. 2000 "big" tasks (500 MB) may use n0, n1, n3; 2000 "small"
    # tasks (0 MB) any node. Tiny work keeps the cluster idle.
    cluster = make_cluster([{}, {}, {"memory_mb": 100.0}, {}])
    n = 4000
    big = np.arange(n) % 2 == 0
    wl = Workload.build(
        {
            "task_id": np.arange(n),
            "arrival_s": np.arange(n) * 0.01,
            "region": np.zeros(n, dtype=np.int64),
            "data_mb": np.zeros(n),
            "work_gi": np.full(n, 1e-3),
            "memory_mb": np.where(big, 500.0, 0.0),
            "deadline_s": np.full(n, INF),
            "priority": np.zeros(n, dtype=np.int64),
        }
    )
    nodes = np.asarray(nodes_of("random", cluster, wl, seed=11))
    counts_big = np.bincount(nodes[big], minlength=4)
    counts_small = np.bincount(nodes[~big], minlength=4)
    assert counts_big[2] == 0  # infeasible: never chosen
    # 2000 / 3 = 667 each, sd ~ 21; 2000 / 4 = 500 each, sd ~ 19.
    assert np.all(np.abs(counts_big[[0, 1, 3]] - 2000 / 3) < 100), counts_big
    assert np.all(np.abs(counts_small - 500) < 100), counts_small
    # seeded: same seed, same draws; another seed, other draws
    assert nodes.tolist() == nodes_of("random", cluster, wl, seed=11)
    assert nodes.tolist() != nodes_of("random", cluster, wl, seed=12)


# ----------------------------------------------------------------------------- round robin


def test_round_robin_cycles_skipping_infeasible() -> None:
    # 3 nodes; n1 has 100 MB, too little for "big" (500 MB) tasks.
    cluster = make_cluster([{}, {"memory_mb": 100.0}, {}])
    kinds = ["s", "s", "b", "s", "b", "b", "b", "s"]
    wl = make_workload(
        [
            {"task_id": k, "arrival_s": float(k), "memory_mb": 500.0 if c == "b" else 0.0}
            for k, c in enumerate(kinds)
        ]
    )
    # pointer 0: s -> 0 (next 1); s -> 1 (2); b -> 2 (0); s -> 0 (1); b: skip 1 -> 2 (0);
    # b -> 0 (1); b: skip 1 -> 2 (0); s -> 0.
    expected = [0, 1, 2, 0, 2, 0, 2, 0]
    assert nodes_of("round-robin", cluster, wl) == expected
    assert manual_nodes("round-robin", cluster, wl) == expected
    # within a batch, in decision order, the pointer carries across batches
    assert nodes_of("round-robin", cluster, wl, delta=4.0) == expected


def test_round_robin_ignores_load_and_speed() -> None:
    cluster = make_cluster([{"speed": 100.0}, {"speed": 0.01}])
    wl = make_workload([{"task_id": k, "arrival_s": 0.0, "work_gi": 10.0} for k in range(5)])
    assert nodes_of("round-robin", cluster, wl) == [0, 1, 0, 1, 0]


# ---------------------------------------------------------------------------- least loaded


def test_least_loaded_fewest_queued_plus_running_per_core() -> None:
    # n0: 1 core (the fastest), n1: 2 cores, n2: 4 cores. Long tasks (never finish in the
    # window) arriving 1 s apart: at each decision the earlier ones are running or queued.
    cluster = make_cluster(
        [{"cores": 1, "speed": 8.0}, {"cores": 2, "speed": 1.0}, {"cores": 4, "speed": 1.0}]
    )
    wl = make_workload([{"task_id": k, "arrival_s": float(k), "work_gi": 1000.0} for k in range(8)])
    # loads per core (n0, n1, n2) before each task and the pick (ties: lowest index):
    # (0, 0, 0) -> n0; (1, 0, 0) -> n1; (1, .5, 0) -> n2; (1, .5, .25) -> n2;
    # (1, .5, .5) -> n1; (1, 1, .5) -> n2; (1, 1, .75) -> n2; (1, 1, 1) -> n0.
    expected = [0, 1, 2, 2, 1, 2, 2, 0]
    assert nodes_of("least-loaded", cluster, wl) == expected
    assert manual_nodes("least-loaded", cluster, wl) == expected


def test_least_loaded_counts_queued_not_ready_tasks() -> None:
    # n0 is far (latency 100 s): its tasks stay queued, not running, yet still count.
    cluster = make_cluster([{"latency_s": [100.0]}, {"cores": 2}])
    wl = make_workload([{"task_id": k, "arrival_s": float(k), "work_gi": 1000.0} for k in range(4)])
    # (0, 0) -> n0; (1 queued, 0) -> n1; (1, .5) -> n1; (1, 1) -> n0
    assert nodes_of("least-loaded", cluster, wl) == [0, 1, 1, 0]


# ------------------------------------------------------------------------------------- olb


def test_olb_earliest_available_node() -> None:
    # n0 speed 10, n1 speed 1, 1 core each.
    cluster = make_cluster([{"speed": 10.0}, {"speed": 1.0}])
    wl = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.0, "work_gi": 100.0},
            {"task_id": 1, "arrival_s": 1.0, "work_gi": 100.0},
            {"task_id": 2, "arrival_s": 2.0, "work_gi": 1.0},
        ]
    )
    # id 0: both free at 0 -> n0 (lowest index); n0 projected free at 10.
    # id 1: available n0 10, n1 1 -> n1, although it finishes there at 101 (n0: 20).
    # id 2: available n0 10, n1 101 -> n0.
    assert nodes_of("olb", cluster, wl) == [0, 1, 0]
    # for contrast, MCT: id 1 on n0 (20 < 101), id 2 on n1 (2 + 1 = 3 < 20.1)
    assert nodes_of("mct", cluster, wl) == [0, 0, 1]


# ------------------------------------------------------------------------------------- met


def test_met_fastest_feasible_node_whatever_the_load() -> None:
    # speeds 1, 3, 2; n1 (the fastest) has 100 MB only.
    cluster = make_cluster([{"speed": 1.0}, {"speed": 3.0, "memory_mb": 100.0}, {"speed": 2.0}])
    wl = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.0, "work_gi": 30.0},
            {"task_id": 1, "arrival_s": 0.0, "work_gi": 30.0},
            {"task_id": 2, "arrival_s": 0.0, "work_gi": 30.0},
            {"task_id": 3, "arrival_s": 0.0, "work_gi": 30.0, "memory_mb": 500.0},
            {"task_id": 4, "arrival_s": 1.0, "work_gi": 30.0},
        ]
    )
    # every small task on n1 although it queues there; the big one on n2 (next fastest)
    assert nodes_of("met", cluster, wl) == [1, 1, 1, 2, 1]


# ------------------------------------------------------------------------------------- mct


def test_mct_minimum_completion_including_transfer() -> None:
    # n0: speed 4, latency [0, 5], bandwidth 1.  n1: speed 1, latency [0, 0], bandwidth 10.
    cluster = make_cluster(
        [
            {"speed": 4.0, "latency_s": [0.0, 5.0], "bandwidth_mb_s": 1.0},
            {"speed": 1.0, "latency_s": [0.0, 0.0], "bandwidth_mb_s": 10.0},
        ],
        regions=2,
    )
    wl = make_workload(
        [
            # n0: 0 + 1 = 1; n1: 4 -> n0 (projected free at 1)
            {"task_id": 0, "arrival_s": 0.0, "work_gi": 4.0, "region": 0},
            # n0: ready 0.5 + 5 = 5.5 -> 6.5; n1: 0.5 + 4 = 4.5 -> n1 (free at 4.5)
            {"task_id": 1, "arrival_s": 0.5, "work_gi": 4.0, "region": 1},
            # n0: ready 1 + 2/1 = 3 -> 4; n1: max(1.2, 4.5) + 4 = 8.5 -> n0 (free at 4)
            {"task_id": 2, "arrival_s": 1.0, "work_gi": 4.0, "region": 0, "data_mb": 2.0},
            # n0: ready 2 + 8/1 = 10 -> 11; n1: max(2.8, 4.5) + 4 = 8.5 -> n1
            # (without the transfer n0 would win: max(2, 4) + 1 = 5)
            {"task_id": 3, "arrival_s": 2.0, "work_gi": 4.0, "region": 0, "data_mb": 8.0},
        ]
    )
    res = simulate(cluster, wl, make_policy("mct"))
    assert res.tasks["node_index"].tolist() == [0, 1, 0, 1]
    # the estimates were exact: simulated finishes 1, 4.5, 4, 8.5
    assert res.tasks["finish_s"].tolist() == [1.0, 4.5, 4.0, 8.5]
    # with decision interval 0, min-min and max-min and sufferage reduce to MCT
    for name in ("min-min", "max-min", "sufferage"):
        assert nodes_of(name, cluster, wl) == [0, 1, 0, 1], name


# ---------------------------------------------------------------- min-min / max-min / sufferage

# n0: speed 1, n1: speed 2, 1 core each, no transfer. One batch at 0 (delta 1, all arrive
# at 0) with T0 work 4, T1 work 7, T2 work 2. Estimated completions on idle nodes
# (n0, n1): T0 (4, 2), T1 (7, 3.5), T2 (2, 1).
BATCH_NODES = [{"speed": 1.0}, {"speed": 2.0}]
BATCH_ROWS = [
    {"task_id": 0, "arrival_s": 0.0, "work_gi": 4.0},
    {"task_id": 1, "arrival_s": 0.0, "work_gi": 7.0},
    {"task_id": 2, "arrival_s": 0.0, "work_gi": 2.0},
]


@pytest.mark.parametrize(
    ("name", "expected", "finish"),
    [
        # min-min: bests 2, 3.5, 1 -> T2 on n1 (n1 at 1); T0 (4, 3) and T1 (7, 4.5): T0 on
        # n1 (n1 at 3); T1 (7, 6.5) on n1.
        ("min-min", [1, 1, 1], [2.0, 5.5, 6.5]),
        # max-min: largest best is T1 (3.5) on n1 (n1 at 3.5); T0 (4, 5.5) best 4, T2
        # (2, 4.5) best 2: T0 on n0 (n0 at 4); T2 (6, 4.5) on n1.
        ("max-min", [0, 1, 1], [4.0, 3.5, 4.5]),
        # sufferage: 4-2 = 2, 7-3.5 = 3.5, 2-1 = 1 -> T1 on n1 (n1 at 3.5); T0 (4, 5.5)
        # suffers 1.5, T2 (2, 4.5) 2.5 -> T2 on n0 (n0 at 2); T0 (6, 5.5) on n1.
        ("sufferage", [1, 1, 0], [2.0, 5.5, 2.0]),
        # mct in decision order: T0 n1 (2); T1 (7, 5.5) n1; T2 (2, 6.5) n0.
        ("mct", [1, 1, 0], [2.0, 5.5, 2.0]),
    ],
)
def test_batch_heuristics_order_within_a_batch(
    name: str, expected: list[int], finish: list[float]
) -> None:
    cluster = make_cluster(BATCH_NODES)
    wl = make_workload(BATCH_ROWS)
    res = simulate(cluster, wl, make_policy(name), decision_interval=1.0)
    assert res.tasks["node_index"].tolist() == expected
    # on n1 the tasks run fifo by (ready, task_id), whatever order they were placed in
    assert res.tasks["finish_s"].tolist() == finish
    assert manual_nodes(name, cluster, wl, delta=1.0) == expected


# --------------------------------------------------------------------------------- edf-mct


def _edf_cluster() -> Cluster:
    return make_cluster([{"speed": 2.0}, {"speed": 1.0}])


def test_edf_mct_orders_batch_by_deadline() -> None:
    # One batch at 0. T0 work 4, deadline 10; T1 work 2, deadline 2.
    # EDF: T1 first -> n0 (1 vs 2), n0 at 1; T0: n0 1 + 2 = 3, n1 4 -> n0.
    # MCT in decision order: T0 -> n0 (2 vs 4); T1: n0 3, n1 2 -> n1.
    wl = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.0, "work_gi": 4.0, "deadline_s": 10.0},
            {"task_id": 1, "arrival_s": 0.0, "work_gi": 2.0, "deadline_s": 2.0},
        ]
    )
    assert nodes_of("edf-mct", _edf_cluster(), wl, delta=1.0) == [0, 0]
    assert manual_nodes("edf-mct", _edf_cluster(), wl, delta=1.0) == [0, 0]
    assert nodes_of("mct", _edf_cluster(), wl, delta=1.0) == [0, 1]


def test_edf_mct_uses_absolute_deadlines() -> None:
    # Batch at 1. T0 arrives 0.25, deadline 1.5 (absolute 1.75); T1 arrives 0.75,
    # deadline 1.25 (absolute 2). By absolute deadline T0 goes first: T0 -> n0 (1 + 2 = 3
    # vs 5); T1: n0 3 + 1 = 4, n1 1 + 2 = 3 -> n1. (Relative deadlines would put T1
    # first: T1 -> n0 (2 vs 3), then T0 -> n0 (4 vs 5).)
    wl = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.25, "work_gi": 4.0, "deadline_s": 1.5},
            {"task_id": 1, "arrival_s": 0.75, "work_gi": 2.0, "deadline_s": 1.25},
        ]
    )
    assert nodes_of("edf-mct", _edf_cluster(), wl, delta=1.0) == [0, 1]


def test_edf_mct_breaks_deadline_ties_by_priority() -> None:
    # Same absolute deadline 2; T1 has priority 0, T0 priority 1 -> T1 first: [0, 0].
    wl = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.0, "work_gi": 4.0, "deadline_s": 2.0, "priority": 1},
            {"task_id": 1, "arrival_s": 0.0, "work_gi": 2.0, "deadline_s": 2.0, "priority": 0},
        ]
    )
    assert nodes_of("edf-mct", _edf_cluster(), wl, delta=1.0) == [0, 0]
    # equal priority too: decision order, as MCT
    wl = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.0, "work_gi": 4.0, "deadline_s": 2.0},
            {"task_id": 1, "arrival_s": 0.0, "work_gi": 2.0, "deadline_s": 2.0},
        ]
    )
    assert nodes_of("edf-mct", _edf_cluster(), wl, delta=1.0) == [0, 1]


# ---------------------------------------------------------------------------- energy-aware


def test_energy_aware_low_power_when_deadline_met_else_mct() -> None:
    # 1 core each, no transfer. Dynamic energy of work w = (max - idle) / cores * w / speed:
    #   n0: speed 4, 10 -> 110 W: 100 * w / 4 = 25 w   (fast, power-hungry)
    #   n1: speed 1,  1 ->   3 W:   2 * w     =  2 w   (slow, frugal)
    #   n2: speed 2,  1 ->   7 W:   6 * w / 2 =  3 w
    cluster = make_cluster(
        [
            {"speed": 4.0, "power_idle_w": 10.0, "power_max_w": 110.0},
            {"speed": 1.0, "power_idle_w": 1.0, "power_max_w": 3.0},
            {"speed": 2.0, "power_idle_w": 1.0, "power_max_w": 7.0},
        ]
    )
    wl = make_workload(
        [
            # finishes 1, 4, 2, all <= 10: least energy n1 (8 J vs 100, 12); MCT says n0.
            {"task_id": 0, "arrival_s": 0.0, "work_gi": 4.0, "deadline_s": 10.0},
            # absolute deadline 3.5: n0 1.5 meets, n1 max(0.5, 4) + 4 = 8 misses,
            # n2 0.5 + 2 = 2.5 meets -> n2 (12 J < 100 J).
            {"task_id": 1, "arrival_s": 0.5, "work_gi": 4.0, "deadline_s": 3.0},
            # absolute deadline 4: n0 3 + 2 = 5, n1 max(3, 4) + 8 = 12, n2 3 + 4 = 7: none
            # meets -> MCT: n0 (least energy would be n1).
            {"task_id": 2, "arrival_s": 3.0, "work_gi": 8.0, "deadline_s": 1.0},
        ]
    )
    res = simulate(cluster, wl, make_policy("energy-aware"))
    assert res.tasks["node_index"].tolist() == [1, 2, 0]
    assert res.tasks["finish_s"].tolist() == [4.0, 2.5, 5.0]
    assert res.tasks["met_deadline"].tolist() == [True, True, False]
    assert nodes_of("mct", cluster, wl) == [0, 0, 0]


def test_energy_aware_ties_go_to_earlier_finish() -> None:
    # n0: speed 1, 2 W dynamic; n1: speed 2, 4 W dynamic: the same 2 J per GI on both.
    # The tie goes to the earlier finish: n1 (1 s) over n0 (2 s), despite its index.
    cluster = make_cluster(
        [
            {"speed": 1.0, "power_idle_w": 0.0, "power_max_w": 2.0},
            {"speed": 2.0, "power_idle_w": 0.0, "power_max_w": 4.0},
        ]
    )
    wl = make_workload([{"task_id": 0, "arrival_s": 0.0, "work_gi": 2.0}])
    assert nodes_of("energy-aware", cluster, wl) == [1]


# ---------------------------------------------------------------------------- memory mask


def _mask_instance(seed: int) -> tuple[Cluster, Workload]:
    # The most attractive nodes (index 0: lowest index, fastest, frugal, close) are small;
    # half the tasks fit only on the slow, far, power-hungry big nodes.
    rng = np.random.default_rng(seed)
    cluster = make_cluster(
        [
            {"memory_mb": 64.0, "speed": 8.0, "cores": 4, "power_max_w": 11.0},
            {"memory_mb": 128.0, "speed": 4.0, "cores": 2, "power_max_w": 12.0},
            {"memory_mb": 4096.0, "speed": 1.0, "latency_s": [0.5], "power_max_w": 90.0},
            {"memory_mb": 2048.0, "speed": 0.5, "latency_s": [0.25], "power_max_w": 60.0},
        ]
    )
    n = 150
    wl = Workload.build(
        {
            "task_id": rng.permutation(n),
            "arrival_s": np.sort(rng.uniform(0, 20, n)),
            "region": np.zeros(n, dtype=np.int64),
            "data_mb": rng.uniform(0, 2, n),
            "work_gi": rng.uniform(0.1, 4, n),
            "memory_mb": rng.choice([0.0, 64.0, 100.0, 1000.0, 3000.0, 4096.0], n),
            "deadline_s": rng.choice([INF, 0.5, 2.0, 10.0], n),
            "priority": rng.integers(0, 3, n),
        },
        cluster=cluster,
    )
    return cluster, wl


# `optimal` is an exact oracle that refuses batches above its size limit by design;
# its own tests (test_optimal.py) cover determinism and feasibility on small batches.
@pytest.mark.parametrize("name", sorted(set(available_policies()) - {"optimal"}))
@pytest.mark.parametrize("delta", [0.0, 1.0])
def test_every_policy_honours_the_memory_mask(name: str, delta: float) -> None:
    for seed in range(3):
        cluster, wl = _mask_instance(seed)
        # the Python path: check the raw answer of assign before the engine does
        pol = build_or_skip(name)
        pol.reset(cluster, np.random.default_rng(seed))
        eng = Engine(cluster, wl, decision_interval=delta)
        while (batch := eng.next_batch()) is not None:
            tasks, view = batch
            nodes = np.asarray(pol.assign(tasks, view))
            assert nodes.shape == (len(tasks),)
            assert np.all((nodes >= 0) & (nodes < cluster.n_nodes))
            assert np.all(view.feasible[np.arange(len(tasks)), nodes]), name
            eng.commit(nodes)
        # the compiled path
        res = simulate(cluster, wl, make_policy(name), decision_interval=delta, seed=seed)
        node = res.tasks["node_index"]
        assert np.all(wl.memory_mb <= cluster.memory_mb[node]), name
