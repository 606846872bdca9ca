"""A SimPy peer of the docs/MODEL.md base model with an MCT policy: a benchmark and a cross-check.

The model is written the idiomatic SimPy way, independently of ``hybridsched``'s
simulator (only :mod:`hybridsched.model` is imported, for the input containers):

* one :class:`simpy.Resource` per node with ``capacity = cores`` (a
  :class:`simpy.PriorityResource` for the ``priority`` discipline);
* one process per task: wait until the decision time (the arrival: decision
  interval 0), pick a node by MCT, a timeout for the transfer, request a core,
  a timeout for the execution.

MCT (minimum estimated completion time) keeps, for every node, a list-scheduling
projection of its core-free times (a heap of ``cores`` values). For a task decided
at ``d`` it evaluates, on every node ``j`` with enough memory,
``ready_j = d + latency_s[j, region] + data_mb / bandwidth_mb_s[j]`` and
``est_j = max(ready_j, min projected free_j) + work_gi / speed[j]``, and picks the
smallest ``est_j`` (ties: the lowest index). On assignment it pops the earliest
projected free core ``f`` of the chosen node and pushes ``max(ready, f) + duration``.
Tasks are decided one at a time in ``(arrival_s, task_id)`` order; the processes are
created in that order, so SimPy fires their same-instant decision timeouts in it.

Fidelity to docs/MODEL.md. A SimPy resource queue serves requests in request order
(``fifo``) or by ``(priority key, request time)`` (``priority``). For ``fifo``
the request order is the ready order, which is SPEC's order except for *exact
ties* in ready time: SPEC breaks those by ``task_id``, SimPy by the order in which
its events at that instant happen to be processed. Likewise, when a completion
and a readiness share an instant, SimPy may hand the freed core to a queued task
before the newly-ready one has requested it; under ``fifo`` that only matters for
the same exact ties, under ``priority`` it can change the order. Ready and finish
times are SimPy clock values (``now + delay``), equal to SPEC's expressions up to
float64 rounding. So with continuous random inputs (no ties) and ``fifo``, the
per-task times agree with docs/MODEL.md to ~1e-12 relative.

Run ``python benchmarks/simpy_peer.py --tasks 100000`` to time it on a synthetic
workload (100 nodes, Poisson arrivals at load 0.8).
"""

from __future__ import annotations

import argparse
import heapq
import time
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from hybridsched.model import Cluster, Workload


class _MCT:
    """The MCT policy with a list-scheduling projection of each node's core-free times."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.free: list[list[float]] = [[-np.inf] * int(c) for c in cluster.cores]
        self.min_free = np.full(cluster.n_nodes, -np.inf)
        self.inv_speed = 1.0 / cluster.speed

    def choose(
        self, decision: float, region: int, data_mb: float, work_gi: float, memory_mb: float
    ) -> tuple[int, float, float]:
        """Pick a node for a task decided at ``decision``; update the projection.

        Returns:
            ``(node, ready, duration)`` for the chosen node.
        """
        c = self.cluster
        ready = decision + c.latency_s[:, region] + data_mb / c.bandwidth_mb_s
        duration = work_gi / c.speed
        est = np.maximum(ready, self.min_free) + duration
        est[c.memory_mb < memory_mb] = np.inf
        j = int(np.argmin(est))  # first minimum: ties go to the lowest index
        r, dur = float(ready[j]), float(duration[j])
        heap = self.free[j]
        f = heapq.heappop(heap)
        heapq.heappush(heap, max(r, f) + dur)
        self.min_free[j] = heap[0]
        return j, r, dur


def simpy_simulate(cluster: Cluster, workload: Workload, queue: str = "fifo") -> dict[str, Any]:
    """Simulate the workload with MCT on SimPy (decision interval 0).

    Args:
        cluster: the validated cluster.
        workload: the validated workload.
        queue: ``"fifo"`` (the default, the benchmarked case) or ``"priority"``
            (approximate at simultaneous events, see the module docstring).

    Returns:
        A dict of per-row arrays (the workload's row order): ``node`` (int64 node
        index), ``ready_s``, ``start_s`` and ``finish_s`` (float64).
    """
    if queue not in ("fifo", "priority"):
        raise ValueError(f"queue must be 'fifo' or 'priority', got {queue!r}")
    n = len(workload)
    env = simpy.Environment()
    if queue == "fifo":
        nodes: list[simpy.Resource] = [simpy.Resource(env, capacity=int(c)) for c in cluster.cores]
    else:
        nodes = [simpy.PriorityResource(env, capacity=int(c)) for c in cluster.cores]
    policy = _MCT(cluster)

    node = np.full(n, -1, dtype=np.int64)
    ready_s = np.full(n, np.nan)
    start_s = np.full(n, np.nan)
    finish_s = np.full(n, np.nan)

    arrival = workload.arrival_s.tolist()
    region = workload.region.tolist()
    data_mb = workload.data_mb.tolist()
    work_gi = workload.work_gi.tolist()
    memory_mb = workload.memory_mb.tolist()
    task_id = workload.task_id.tolist()
    prio = workload.priority.tolist()
    abs_deadline = (workload.arrival_s + workload.deadline_s).tolist()

    def task(k: int) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(arrival[k] - env.now)  # decision time = arrival (interval 0)
        j, ready, duration = policy.choose(
            arrival[k], region[k], data_mb[k], work_gi[k], memory_mb[k]
        )
        node[k] = j
        yield env.timeout(ready - env.now)  # transfer
        ready_s[k] = env.now
        if queue == "fifo":
            request = nodes[j].request()
        else:
            key = (prio[k], abs_deadline[k], env.now, task_id[k])
            request = nodes[j].request(priority=key)  # type: ignore[call-arg]
        with request:
            yield request
            start_s[k] = env.now
            yield env.timeout(duration)  # execution
            finish_s[k] = env.now

    order = np.lexsort((workload.task_id, workload.arrival_s))  # (arrival_s, task_id)
    for k in order.tolist():
        env.process(task(k))
    env.run()
    return {"node": node, "ready_s": ready_s, "start_s": start_s, "finish_s": finish_s}


def synthetic(
    n_tasks: int, seed: int = 0, n_nodes: int = 100, load: float = 0.8
) -> tuple[Cluster, Workload]:
    """A random edge/fog/cloud cluster and a Poisson workload offering ``load`` of its capacity.

    Args:
        n_tasks: number of tasks.
        seed: the random seed.
        n_nodes: number of nodes.
        load: offered load, mean work x arrival rate / total capacity.
    """
    rng = np.random.default_rng(seed)
    n_regions = 4
    nodes = []
    for j in range(n_nodes):
        idle = float(rng.uniform(20.0, 100.0))
        nodes.append(
            {
                "name": f"node-{j}",
                "cores": int(rng.choice([1, 2, 4, 8, 16])),
                "speed": float(rng.uniform(0.5, 4.0)),
                "memory_mb": float(rng.choice([2048, 4096, 8192, 16384, 65536])),
                "bandwidth_mb_s": float(rng.uniform(10.0, 1000.0)),
                "power_idle_w": idle,
                "power_max_w": idle * float(rng.uniform(1.5, 3.0)),
                "latency_s": rng.uniform(0.001, 0.1, size=n_regions).tolist(),
            }
        )
    nodes[0]["memory_mb"] = 65536.0  # at least one node fits every task
    cluster = Cluster.build({"name": "synthetic", "regions": n_regions, "nodes": nodes})

    mean_work = 2.0
    rate = load * cluster.capacity_gi_s / mean_work
    arrival = np.cumsum(rng.exponential(1.0 / rate, size=n_tasks))
    work = rng.exponential(mean_work, size=n_tasks)
    work = np.maximum(work, 1e-6)
    workload = Workload.build(
        {
            "task_id": np.arange(n_tasks),
            "arrival_s": arrival,
            "region": rng.integers(0, n_regions, size=n_tasks),
            "data_mb": rng.exponential(1.0, size=n_tasks),
            "work_gi": work,
            "memory_mb": rng.uniform(64.0, 4096.0, size=n_tasks),
            "deadline_s": 20.0 * work,
            "priority": rng.integers(0, 3, size=n_tasks),
        },
        cluster=cluster,
        source="<synthetic>",
    )
    return cluster, workload


def main(argv: list[str] | None = None) -> None:
    """Time :func:`simpy_simulate` on a synthetic workload and print tasks per second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="number of tasks")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--nodes", type=int, default=100, help="number of nodes")
    parser.add_argument("--load", type=float, default=0.8, help="offered load")
    args = parser.parse_args(argv)

    cluster, workload = synthetic(args.tasks, seed=args.seed, n_nodes=args.nodes, load=args.load)
    t = time.perf_counter()
    out = simpy_simulate(cluster, workload)
    elapsed = time.perf_counter() - t
    response = out["finish_s"] - workload.arrival_s
    print(
        f"simpy_peer: {args.tasks} tasks on {cluster.n_nodes} nodes (load {args.load}) "
        f"in {elapsed:.2f} s: {args.tasks / elapsed:,.0f} tasks/s; "
        f"mean response {float(np.mean(response)):.4f} s"
    )


if __name__ == "__main__":
    main()
