"""The simulator's state, declared once (:data:`CORE_FIELDS`), and how it is built.

:class:`CoreState` is a named tuple of NumPy arrays; :func:`compile_state` gives
the compiled handle over the same arrays that kernels take. Both are generated
from :data:`CORE_FIELDS` (see :mod:`hybridsched.sim.layout`). Tasks are indexed
in decision order (arrival, then task_id); nodes in the cluster file's order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hybridsched.model import Cluster
from hybridsched.sim.layout import declare, parse_fields

CORE_FIELDS = parse_fields(
    """
# nodes (static)
cores         int64[::1]       cores per node
speed         float64[::1]     GI/s per core
memory        float64[::1]     memory, MB (a down node keeps it: availability is up)
up            boolean[::1]     the node is up: takes and runs tasks (what sim kernels read)
bandwidth     float64[::1]     ingress bandwidth, MB/s
latency       float64[:,::1]   latency from each region, s, (N, R)
# tasks (static, decision order)
arrival       float64[::1]     arrival time, s
region        int64[::1]       source region
data          float64[::1]     input data, MB
work          float64[::1]     true work, GI (what the simulator runs)
work_est      float64[::1]     estimated work, GI (what schedulers see)
mem_req       float64[::1]     memory needed, MB
abs_deadline  float64[::1]     arrival + deadline, s; inf when none
priority      int64[::1]       priority class, 0 most urgent
task_id       int64[::1]       task id from the workload
key0          float64[::1]     queue key 0 (priority, or 0 for fifo)
key1          float64[::1]     queue key 1 (absolute deadline, or 0 for fifo)
# tasks (dynamic)
node          int64[::1]       assigned node, -1 before the decision
decision      float64[::1]     decision time, s
ready         float64[::1]     time the data is at the node, s
dur           float64[::1]     true execution time on the assigned node, s
start         float64[::1]     start time, s
finish        float64[::1]     finish time, s
wleft         int64[::1]       skew-heap left child (waiting queue)
wright        int64[::1]       skew-heap right child
qnext         int64[::1]       next in the node's unstarted list
qprev         int64[::1]       previous in the node's unstarted list
slot_of       int64[::1]       core slot of a running task
# nodes (dynamic)
wroot         int64[::1]       root of the waiting skew heap, -1 when empty
qhead         int64[::1]       head of the unstarted list (last assigned), -1 when empty
n_free        int64[::1]       free cores
free_slots    int64[:,::1]     stack of free slot indices, (N, C)
slot_task     int64[:,::1]     running task per slot, -1 when idle, (N, C)
n_queued      int64[::1]       tasks assigned, not started
queued_work   float64[::1]     estimated core-seconds assigned, not started
proj          float64[:,::1]   projected core-free times, inf pads missing cores, (N, C)
proj_min      float64[::1]     earliest projected core-free time
recent        float64[::1]     decayed count of recent assignments
recent_t      float64[::1]     time of the last update of recent, s
busy_s        float64[::1]     core-seconds of started work
# global
ev            float64[::1]     event heap, pairs (time, code) side by side, 2n
dirty         int64[::1]       nodes touched in the current instant
is_dirty      boolean[::1]     node touched in the current instant
counters      int64[::1]       events in the heap, tasks started, tasks assigned, spare
"""
)
"""The one declaration of the simulator's state: ``(name, numba type, meaning)``."""

CoreState, STATE_TYPE, _make_state = declare(CORE_FIELDS, "CoreState", "State", globals())


def compile_state(arrays: Any) -> Any:
    """The compiled handle over the same arrays (no copy): cheap to pass to kernels.

    A handle is one pointer, whereas a tuple of arrays costs a reference-count
    update per array on every call between compiled functions.
    """
    return _make_state(arrays)


def build_state(
    cluster: Cluster,
    *,
    queue: str,
    arrival: np.ndarray,
    region: np.ndarray,
    data: np.ndarray,
    work: np.ndarray,
    mem_req: np.ndarray,
    abs_deadline: np.ndarray,
    priority: np.ndarray,
    task_id: np.ndarray,
) -> Any:
    """A fresh :class:`CoreState` for these tasks on ``cluster`` (nothing assigned yet).

    Task columns must be contiguous, writable and of the table's dtypes (kernels
    write to the state). ``work_est`` is ``work`` itself (the base model); replace
    it by a copy when the estimates differ.
    """
    c = cluster
    n = arrival.shape[0]
    n_nodes = c.n_nodes
    max_cores = int(c.cores.max())
    if queue == "priority":
        key0 = priority.astype(np.float64)
        key1 = abs_deadline
    else:
        # never written: lazily zero-filled pages cost nothing until read
        key0 = np.zeros(n)
        key1 = key0
    proj = np.full((n_nodes, max_cores), np.inf)
    slot_task = np.full((n_nodes, max_cores), -1, dtype=np.int64)
    free_slots = np.zeros((n_nodes, max_cores), dtype=np.int64)
    for j in range(n_nodes):
        proj[j, : c.cores[j]] = -np.inf
        free_slots[j, : c.cores[j]] = np.arange(c.cores[j])[::-1]

    def scratch(dtype: type = np.float64) -> np.ndarray:
        # per-task state written before it is read: no initialisation, so the
        # pages are only touched (and faulted in) when the run reaches them
        return np.empty(n, dtype=dtype)

    return CoreState(
        cores=np.ascontiguousarray(c.cores, dtype=np.int64),
        speed=np.ascontiguousarray(c.speed),
        memory=np.ascontiguousarray(c.memory_mb),
        up=np.ones(n_nodes, dtype=np.bool_),
        bandwidth=np.ascontiguousarray(c.bandwidth_mb_s),
        latency=np.ascontiguousarray(c.latency_s),
        arrival=arrival,
        region=region,
        data=data,
        work=work,
        work_est=work,
        mem_req=mem_req,
        abs_deadline=abs_deadline,
        priority=priority,
        task_id=task_id,
        key0=key0,
        key1=key1,
        node=np.full(n, -1, dtype=np.int64),
        decision=scratch(),
        ready=scratch(),
        dur=scratch(),
        start=scratch(),
        finish=scratch(),
        wleft=scratch(np.int64),
        wright=scratch(np.int64),
        qnext=scratch(np.int64),
        qprev=scratch(np.int64),
        slot_of=scratch(np.int64),
        wroot=np.full(n_nodes, -1, dtype=np.int64),
        qhead=np.full(n_nodes, -1, dtype=np.int64),
        n_free=np.array(c.cores, dtype=np.int64),
        free_slots=free_slots,
        slot_task=slot_task,
        n_queued=np.zeros(n_nodes, dtype=np.int64),
        queued_work=np.zeros(n_nodes),
        proj=proj,
        proj_min=np.full(n_nodes, -np.inf),
        recent=np.zeros(n_nodes),
        recent_t=np.zeros(n_nodes),
        busy_s=np.zeros(n_nodes),
        ev=np.empty(2 * n),
        dirty=np.zeros(n_nodes, dtype=np.int64),
        is_dirty=np.zeros(n_nodes, dtype=np.bool_),
        counters=np.zeros(4, dtype=np.int64),
    )
