"""Min-min, max-min and sufferage: the incremental batch loop gives the schedules
of the full rescan it replaced (every node for every unplaced task, after every
placement), bit for bit, on random clusters and workloads, ties included."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from hybridsched.model import Cluster, Workload
from hybridsched.policies import kernels, make_policy
from hybridsched.sim import Engine
from hybridsched.workload import ClusterParams, generate_cluster, generate_workload, get_scenario

sys.path.insert(0, str(Path(__file__).resolve().parent))
from builders import make_cluster, make_workload


@njit(cache=False)
def _rescan_decide(st, idx, d, rule, inv, proj, proj_min, nq):
    """The loop as it was: rescan every node for every unplaced task per placement."""
    b = idx.shape[0]
    out = np.empty(b, dtype=np.int64)
    left = np.ones(b, dtype=np.bool_)
    for _ in range(b):
        pick = -1
        pick_node = -1
        pick_score = 0.0
        for k in range(b):
            if not left[k]:
                continue
            best, second, arg = kernels.best_two(st, idx[k], d, proj_min, inv)
            score = kernels._score(rule, best, second)
            if pick < 0 or score > pick_score:
                pick = k
                pick_node = arg
                pick_score = score
        left[pick] = False
        out[pick] = pick_node
        kernels._place(st, idx[pick], pick_node, d, False, proj, proj_min, nq, inv)
    return out


class _Rescan:
    """The reference policy: the old loop through ``assign``."""

    def __init__(self, name: str) -> None:
        self.inner = make_policy(name)
        self.name = name

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        self.inner.reset(cluster, rng)

    def assign(self, tasks, view) -> np.ndarray:
        return _rescan_decide(
            view.compiled,
            tasks.index,
            view.time,
            self.inner.rule,
            self.inner._inv,
            view.core_free_s.copy(),
            view.core_free_min_s.copy(),
            view.queued_tasks.copy(),
        )


class _Unfused:
    """The policy through ``assign`` only (no fused loop)."""

    def __init__(self, name: str) -> None:
        self.inner = make_policy(name)
        self.name = name

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        self.inner.reset(cluster, rng)

    def assign(self, tasks, view) -> np.ndarray:
        return self.inner.assign(tasks, view)


def _instance(seed: int, ties: bool) -> tuple[Cluster, Workload, float]:
    rng = np.random.default_rng(seed)
    params = ClusterParams(
        n_edge=int(rng.integers(1, 40)),
        n_fog=int(rng.integers(0, 20)),
        n_cloud=int(rng.integers(0, 6)),
        n_regions=int(rng.integers(1, 4)),
    )
    cluster = generate_cluster(params, seed)
    if ties:
        # identical nodes and round work: many equal estimates
        n = int(rng.integers(2, 40))
        cluster = make_cluster([{"cores": int(rng.integers(1, 3))} for _ in range(n)], regions=1)
        rows = [
            {
                "task_id": t,
                "arrival_s": float(rng.integers(0, 8)) * 0.5,
                "work_gi": float(rng.integers(1, 4)),
                "memory_mb": float(rng.choice([0.0, 2000.0])) if t % 7 == 3 else 0.0,
            }
            for t in range(60)
        ]
        rows.sort(key=lambda r: r["arrival_s"])
        for t, r in enumerate(rows):
            r["task_id"] = t
        # memory 2000 MB fits no node: keep only feasible tasks
        rows = [r for r in rows if r["memory_mb"] == 0.0]
        for t, r in enumerate(rows):
            r["task_id"] = t
        return cluster, make_workload(rows, cluster), 1.0
    wl = generate_workload(
        cluster, get_scenario("iot-default").workload, 300, float(rng.uniform(0.6, 1.3)), seed
    )
    return cluster, wl, float(rng.choice([0.2, 0.5, 1.0, 2.0]))


@pytest.mark.parametrize("name", ["min-min", "max-min", "sufferage"])
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ties", [False, True])
def test_incremental_batch_rules_equal_the_full_rescan(name: str, seed: int, ties: bool) -> None:
    cluster, wl, delta = _instance(seed, ties)
    runs = {}
    for label, pol in (
        ("rescan", _Rescan(name)),
        ("assign", _Unfused(name)),
        ("fused", make_policy(name)),
    ):
        eng = Engine(cluster, wl, decision_interval=delta, queue="priority")
        runs[label] = eng.run(pol, 0)
    ref = runs["rescan"].tasks["node_index"]
    assert len(np.unique(runs["rescan"].tasks["decision_s"])) < len(ref)  # real batches
    for label in ("assign", "fused"):
        np.testing.assert_array_equal(runs[label].tasks["node_index"], ref)
        np.testing.assert_array_equal(
            runs[label].tasks["finish_s"], runs["rescan"].tasks["finish_s"]
        )
