"""The ray backend on a two-node cluster on this machine: runs land on both nodes,
and a node removed mid-sweep costs only its runs, which are retried elsewhere."""

from __future__ import annotations

import os

import pytest

from hybridsched.experiments.backends import RayBackend
from hybridsched.experiments.compare import WALL_CLOCK_COLUMNS, CompareConfig, run_compare
from ray_helpers import RAY_INIT, import_ray

ray = import_ray()

pytestmark = pytest.mark.slow

CFG = CompareConfig(
    scenario="iot-small",
    tasks=400,
    seeds=3,
    loads=(0.9,),
    policies=("mct", "random", "least-loaded", "aco"),
    workers=2,
)


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in rows]


@pytest.fixture(scope="module")
def local_rows() -> list[dict]:
    return strip(run_compare(CFG))


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    path = os.environ.get("PYTHONPATH")
    # a head without CPUs: every run goes to one of the two worker nodes
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(
        address=c.address,
        runtime_env={"env_vars": {"PYTHONPATH": path}} if path else None,
        **{k: v for k, v in RAY_INIT.items() if k not in ("object_store_memory",)},
    )
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def test_runs_land_on_both_nodes_and_survive_a_lost_node(cluster, local_rows) -> None:
    c, nodes = cluster
    backend = RayBackend()
    assert backend.start() == 3  # the head and two workers
    done: list[int] = []

    def progress(k: int, n: int) -> None:
        done.append(k)
        # both nodes have returned runs: remove one while the others are in flight
        if len(backend.placements) == 2 and len(nodes) == 2:
            c.remove_node(nodes.pop(), allow_graceful=False)

    rows = run_compare(CFG, progress=progress, backend=backend)
    assert len(nodes) == 1, "the sweep ended before a node was removed"
    assert len(backend.placements) == 2
    assert sum(backend.placements.values()) == 12
    assert done[-1] == 12
    assert strip(rows) == local_rows


def test_a_local_ray_backend_starts_its_own_ray_beside_a_running_cluster(cluster) -> None:
    """Without an address the backend starts a Ray of its own: it does not join the
    cluster that runs on this machine (Ray would, and refuse ``num_cpus``)."""
    ray.shutdown()  # the fixture's driver: only the cluster stays, as another user's would
    backend = RayBackend(workers=1)
    try:
        assert backend.start() == 1  # one node: its own, not the cluster's three
    finally:
        backend.close()
