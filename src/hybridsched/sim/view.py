"""What a scheduler may see, and the protocol the simulator calls.

A scheduler (policy) receives a :class:`TaskBatch` (the tasks decided together,
one task when the decision interval is 0) and a read-only :class:`ClusterView`
of the cluster at the decision time. It returns one node index per task.

All per-(task, node) quantities are ``(B, N)`` NumPy arrays so that a colony or
a neural network can score every pair at once; they are computed on first use.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster, TaskColumns
from hybridsched.sim import core
from hybridsched.sim.observations import ESTIMATES, NodeObservations, believe, read_only_column
from hybridsched.sim.snapshot import NodeSnapshot
from hybridsched.sim.state import build_state, compile_state


def _ro(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.setflags(write=False)
    return v


@dataclass(frozen=True, eq=False)
class TaskBatch(TaskColumns):
    """The tasks of one decision, in decision order (arrival, then task_id).

    The columns are :class:`~hybridsched.model.TaskColumns`' (``[B]``: one entry per
    task of the batch); work is the schedulers' estimate (equal to the true work in
    the base model).
    """

    index: np.ndarray = field(kw_only=True)
    """Engine-internal task indices (decision order), int64[B]."""
    deadline_abs_s: np.ndarray
    """Absolute deadline (arrival + deadline), s; inf when none."""
    priority: np.ndarray
    """Priority class, 0 most urgent, int64[B]."""

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @classmethod
    def from_columns(
        cls,
        *,
        task_id: Any,
        arrival_s: Any,
        region: Any,
        data_mb: Any,
        work_gi: Any,
        memory_mb: Any,
        deadline_abs_s: Any,
        priority: Any,
    ) -> TaskBatch:
        """A batch from plain columns (no engine), in the given order; ``index`` is ``0..B-1``.

        Raises:
            ConfigError: a column that is not one-dimensional or not of the batch's length.
        """
        cols = {
            "task_id": (task_id, np.int64),
            "arrival_s": (arrival_s, np.float64),
            "region": (region, np.int64),
            "data_mb": (data_mb, np.float64),
            "work_gi": (work_gi, np.float64),
            "memory_mb": (memory_mb, np.float64),
            "deadline_abs_s": (deadline_abs_s, np.float64),
            "priority": (priority, np.int64),
        }
        out = {k: read_only_column(k, v, dt) for k, (v, dt) in cols.items()}
        b = out["task_id"].shape[0]
        for k, v in out.items():
            if v.shape[0] != b:
                raise ConfigError(f"task batch: column {k} has {v.shape[0]} rows, task_id has {b}")
        return cls(index=np.arange(b, dtype=np.int64), **out)


def _field(name: str, doc: str) -> cached_property:
    """An accessor: a read-only view of the compiled state's array ``name``."""

    def get(self: ClusterView) -> np.ndarray:
        return _ro(getattr(self._arr, name))

    get.__doc__ = doc
    return cached_property(get)


class ClusterView:
    """A read-only view of the cluster at a decision time: all a policy sees.

    ``docs/VIEW.md`` documents it. The engine builds one per decision; a test or
    a live service builds the same view from a plain :class:`NodeSnapshot` with
    :meth:`from_snapshot`. Every array is read-only.

    Static node spec comes from :attr:`cluster`. Dynamic state per node:

    * :attr:`core_free_s` ``(N, C)``: projected time each core becomes free,
      list-scheduling the work already assigned in assignment order (estimates);
      padded with ``inf`` beyond a node's core count; ``inf`` on a down node.
    * :attr:`core_free_min_s` ``(N,)``: its row minimum (``-inf`` for a node
      never used); :attr:`available_s` ``(N,)``: ``max(time, core_free_min_s)``.
    * :attr:`up` ``(N,)``: the availability mask (a down node takes no task);
      :attr:`unavailable` its complement, ``None`` when every node is up.
    * :attr:`busy_cores`, :attr:`queued_tasks`, :attr:`queued_work_s`
      (estimated core-seconds assigned but not started), :attr:`recent_assignments`
      (a count of assignments decayed with a 10 s time constant; the raw count
      and its time are :attr:`recent_count` and :attr:`recent_time_s`).

    Per (task, node): :attr:`transfer_s`, :attr:`ready_s`, :attr:`exec_s`,
    :attr:`est_finish_s` (MCT's estimate ``max(ready, available) + exec``) and
    :attr:`feasible` (memory, node up). :meth:`predict_finish` gives the exact
    finish times of a tentative assignment under the base model.

    Compiled policies pass :attr:`compiled` (an opaque handle) to their kernels;
    see ``docs/VIEW.md`` for that protocol.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "ClusterView is built by the engine, or by ClusterView.from_snapshot(cluster, "
            "tasks, snapshot)"
        )

    @classmethod
    def _over(
        cls,
        arrays: Any,
        handle: Any,
        time: float,
        cluster: Cluster,
        tasks: TaskBatch,
        *,
        queue: str,
        unavailable: np.ndarray | None = None,
        observations: Any = None,
        estimates: str = "nominal",
        table: np.ndarray | None = None,
    ) -> ClusterView:
        """The view over compiled state ``arrays`` (a CoreState) and its ``handle``.

        ``observations``: a :class:`NodeObservations`, or a callable giving them at
        the view's time (``None``: nothing observed); ``table``: the belief's
        :attr:`node_table` when the caller keeps one.
        """
        self = object.__new__(cls)
        self._arr = arrays
        self._handle = handle
        self._obs = observations
        self.estimates = estimates
        if table is not None:
            self.__dict__["node_table"] = table
        self._unavailable = None if unavailable is None else _ro(unavailable)
        self.tasks = tasks
        self.time = float(time)
        self.cluster = cluster
        self.queue = queue
        return self

    # ------------------------------------------------------------ snapshots

    @classmethod
    def from_snapshot(
        cls,
        cluster: Cluster,
        tasks: TaskBatch,
        snapshot: NodeSnapshot,
        *,
        queue: str = "fifo",
        estimates: str = "nominal",
    ) -> ClusterView:
        """The view the simulator would give in the state ``snapshot`` describes.

        Builds a private compiled state holding the running tasks (in the
        cores), the queued tasks (in assignment order) and the batch, so that
        every accessor, :meth:`predict_finish` and compiled policies read
        exactly what they read in the engine. ``tasks.index`` must be
        ``0..B-1`` (as :meth:`TaskBatch.from_columns` gives). With ``estimates =
        "observed"`` the execution and transfer estimates are corrected by
        ``snapshot.observations`` (as the simulator does, :func:`believe`).

        Raises:
            ConfigError: a snapshot that does not fit ``cluster`` or ``tasks``.
        """
        from hybridsched.sim.engine import QUEUES

        if queue not in QUEUES:
            raise ConfigError(f"queue: must be one of {', '.join(QUEUES)}, got {queue!r}")
        snapshot.check(cluster)
        b = len(tasks)
        if not np.array_equal(tasks.index, np.arange(b)):
            raise ConfigError(
                "tasks.index: must be 0..B-1 for a view from a snapshot; build the batch with "
                "TaskBatch.from_columns"
            )
        if b and (int(tasks.region.max()) >= cluster.n_regions or int(tasks.region.min()) < 0):
            raise ConfigError(f"tasks.region: out of range 0..{cluster.n_regions - 1}")
        if estimates not in ESTIMATES:
            raise ConfigError(
                f"estimates: must be one of {', '.join(ESTIMATES)}, got {estimates!r}"
            )
        observed = snapshot.observations if estimates == "observed" else None
        arrays, handle = _snapshot_state(cluster, tasks, snapshot, queue, observed)
        down = ~snapshot.up
        return cls._over(
            arrays,
            handle,
            snapshot.time,
            cluster,
            tasks,
            queue=queue,
            unavailable=down if down.any() else None,
            observations=snapshot.observations,
            estimates=estimates,
        )

    def snapshot(self) -> NodeSnapshot:
        """The :class:`NodeSnapshot` of the state this view shows."""
        st = self._arr
        up = np.ones(self.n_nodes, dtype=bool) if self._unavailable is None else ~self._unavailable
        return _state_snapshot(st, self.time, up, self.recent_assignments, self._observed())

    def _observed(self) -> NodeObservations | None:
        obs = self._obs
        return obs(self.time) if callable(obs) else obs

    # ------------------------------------------------------------- accessors

    @property
    def compiled(self) -> Any:
        """Opaque handle of the compiled state, for compiled kernels only (see docs/VIEW.md).

        Kernels read it and never write it; a tentative placement works on
        copies of :attr:`core_free_s` and the other node arrays.
        """
        return self._handle

    @property
    def n_nodes(self) -> int:
        """Number of nodes ``N``."""
        return self.cluster.n_nodes

    core_free_s = _field(
        "proj",
        "Projected time each core becomes free, ``(N, C)``, s (``inf``: beyond a node's "
        "cores, and on a down node).",
    )
    core_free_min_s = _field(
        "proj_min", "Earliest projected core-free time per node (``-inf``: never used), s."
    )

    @cached_property
    def busy_cores(self) -> np.ndarray:
        """Cores running a task, per node."""
        st = self._arr
        return _ro(st.cores - st.n_free)

    queued_tasks = _field("n_queued", "Tasks assigned but not started, per node.")
    queued_work_s = _field(
        "queued_work", "Estimated core-seconds assigned but not started, per node."
    )
    recent_count = _field(
        "recent", "Decayed assignment count per node as of :attr:`recent_time_s`."
    )
    recent_time_s = _field("recent_t", "When :attr:`recent_count` was last updated, per node, s.")

    @property
    def unavailable(self) -> np.ndarray | None:
        """Nodes that cannot take a task now (down), bool ``(N,)``.

        ``None`` in the base model and for a snapshot with every node up; an
        engine with failures on always gives the mask.
        """
        return self._unavailable

    @cached_property
    def up(self) -> np.ndarray:
        """The availability mask: the node can take a task now, bool ``(N,)``."""
        if self._unavailable is None:
            return _ro(np.ones(self.n_nodes, dtype=bool))
        return _ro(~self._unavailable)

    @cached_property
    def queue_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """The queue discipline's keys of the batch's tasks, two ``(B,)`` arrays.

        ``priority``: (priority, absolute deadline); ``fifo``: zeros. Ties go to
        the earlier ready time, then the smaller task id.
        """
        idx = self.tasks.index
        return _ro(self._arr.key0[idx]), _ro(self._arr.key1[idx])

    @cached_property
    def available_s(self) -> np.ndarray:
        """Earliest projected time a core of each node is free (>= now), s."""
        return _ro(np.maximum(self.time, self._arr.proj_min))

    @cached_property
    def recent_assignments(self) -> np.ndarray:
        """Assignments per node, decayed with a 10 s time constant."""
        st = self._arr
        return _ro(st.recent * np.exp(-(self.time - st.recent_t) / core.RECENT_TAU_S))

    @cached_property
    def observations(self) -> NodeObservations:
        """What each node's completed and running tasks revealed, as of :attr:`time`
        (:class:`NodeObservations`; empty when nothing is observed)."""
        obs = self._observed()
        return NodeObservations.empty(self.n_nodes) if obs is None else obs

    @cached_property
    def node_table(self) -> np.ndarray:
        """The estimates per node as compiled rules read them, ``(2 + R, N)``: rows
        1 / bandwidth, 1 / speed, then the latency from each region (the belief:
        nominal, or corrected by observations with ``estimates = "observed"``)."""
        st = self._arr
        return _ro(np.ascontiguousarray(np.vstack([1.0 / st.bandwidth, 1.0 / st.speed,
                                                   st.latency.T])))  # fmt: skip

    @cached_property
    def transfer_s(self) -> np.ndarray:
        """Latency + data / bandwidth, ``(B, N)``, s (estimated)."""
        st = self._arr
        t = self.tasks
        lat = st.latency[:, t.region].T
        return _ro(lat + t.data_mb[:, None] / st.bandwidth[None, :])

    @cached_property
    def ready_s(self) -> np.ndarray:
        """When the task's data would be at each node, ``(B, N)``, s (estimated)."""
        st = self._arr
        t = self.tasks
        lat = st.latency[:, t.region].T
        # same association as the simulator: (now + latency) + data / bandwidth
        return _ro((self.time + lat) + t.data_mb[:, None] / st.bandwidth[None, :])

    @cached_property
    def exec_s(self) -> np.ndarray:
        """Estimated execution time on one core of each node, ``(B, N)``, s."""
        return _ro(self.tasks.work_gi[:, None] / self._arr.speed[None, :])

    @cached_property
    def est_finish_s(self) -> np.ndarray:
        """``max(ready, available) + exec``: the finish-time estimate of MCT, ``(B, N)``, s."""
        return _ro(np.maximum(self.ready_s, self.available_s[None, :]) + self.exec_s)

    @cached_property
    def feasible(self) -> np.ndarray:
        """``(B, N)`` bool: the node has enough memory for the task (and is up)."""
        ok = self.tasks.memory_mb[:, None] <= self.cluster.memory_mb[None, :]
        if self._unavailable is not None:
            ok &= ~self._unavailable[None, :]
        return _ro(ok)

    def predict_finish(self, nodes: np.ndarray, *, true_work: bool = False) -> np.ndarray:
        """Exact finish times of the batch if assigned to ``nodes`` now.

        Follows the simulator's semantics on the current node state (running
        and queued tasks keep their place, the queue discipline orders the
        rest), assuming no further arrivals. Uses estimated work unless
        ``true_work`` (the base model has no estimate error, so both agree).

        Args:
            nodes: one node index per task of the batch, int array ``(B,)``.
        """
        nodes = np.ascontiguousarray(nodes, dtype=np.int64)
        return core.predict(self._handle, self.time, self.tasks.index, nodes, not true_work)


STATE_COLUMNS = {
    "task_id": "task_id",
    "arrival_s": "arrival",
    "ready_s": "ready",
    "region": "region",
    "data_mb": "data",
    "work_gi": "work_est",
    "memory_mb": "mem_req",
    "deadline_abs_s": "abs_deadline",
    "priority": "priority",
}
"""A task field of :class:`TaskBatch` or :class:`NodeSnapshot` -> the compiled state's column
holding it (work: the schedulers' estimate)."""


def state_columns(names: tuple[str, ...]) -> Callable[[Any, Any], list[np.ndarray]]:
    """``get(st, idx)``: the task fields ``names`` (see :data:`STATE_COLUMNS`) of compiled
    state ``st`` at task indices ``idx``, in that order."""
    columns = operator.attrgetter(*(STATE_COLUMNS[n] for n in names))
    return lambda st, idx: [a[idx] for a in columns(st)]


batch_columns = state_columns(tuple(f.name for f in fields(TaskBatch) if f.name != "index"))
"""``batch_columns(st, idx)``: a :class:`TaskBatch`'s columns (in field order, ``index``
aside) of the tasks ``idx`` of compiled state ``st``."""

# the queued tasks' fields of a NodeSnapshot (queued_NAME), their nodes aside
_QUEUED_FIELDS = tuple(
    f.name for f in fields(NodeSnapshot) if f.name.startswith("queued_") and f.name != "queued_node"
)
_queued_columns = state_columns(tuple(n.removeprefix("queued_") for n in _QUEUED_FIELDS))


def _state_snapshot(
    st: Any, time: float, up: np.ndarray, recent: np.ndarray, obs: NodeObservations | None
) -> NodeSnapshot:
    """The :class:`NodeSnapshot` of compiled state ``st`` at decision time ``time``."""
    n_nodes = st.cores.shape[0]
    r_node, r_fin = [], []
    for j in range(n_nodes):
        for s in range(int(st.cores[j])):
            i = int(st.slot_task[j, s])
            if i >= 0:
                r_node.append(j)
                # as core.predict with estimates: the expected end of the running task
                r_fin.append(st.start[i] + st.work_est[i] / st.speed[j])
    q_node, q_idx = [], []
    for j in range(n_nodes):
        chain = []
        i = int(st.qhead[j])
        while i >= 0:
            chain.append(i)
            i = int(st.qnext[i])
        chain.reverse()  # the list is pushed at its head: oldest assignment last
        q_idx += chain
        q_node += [j] * len(chain)
    qi = np.asarray(q_idx, dtype=np.int64)
    return NodeSnapshot(
        time=time,
        up=up,
        running_node=np.asarray(r_node, dtype=np.int64),
        running_finish_s=np.asarray(r_fin, dtype=np.float64),
        queued_node=np.asarray(q_node, dtype=np.int64),
        **dict(zip(_QUEUED_FIELDS, _queued_columns(st, qi), strict=True)),
        recent_assignments=recent,
        core_free_s=st.proj,
        observations=obs,
    )


def _snapshot_state(
    cluster: Cluster,
    tasks: TaskBatch,
    snap: NodeSnapshot,
    queue: str,
    observed: NodeObservations | None = None,
) -> tuple[Any, Any]:
    """A compiled state holding the batch (``0..B-1``), the queued and the running tasks;
    with ``observed``, its estimates corrected by them (:func:`believe`)."""
    b = len(tasks)
    q = snap.queued_node.shape[0]
    r = snap.running_node.shape[0]
    zq, zr = np.zeros(q), np.zeros(r)

    def col(batch: np.ndarray, queued: np.ndarray, running: np.ndarray, dt: type) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate([batch, queued, running]), dtype=dt)

    fin = snap.running_finish_s
    st = build_state(
        cluster,
        queue=queue,
        arrival=col(tasks.arrival_s, snap.queued_arrival_s, fin, np.float64),
        region=col(tasks.region, np.zeros(q, np.int64), np.zeros(r, np.int64), np.int64),
        data=col(tasks.data_mb, zq, zr, np.float64),
        work=col(tasks.work_gi, snap.queued_work_gi, zr, np.float64),
        mem_req=col(tasks.memory_mb, zq, zr, np.float64),
        abs_deadline=col(tasks.deadline_abs_s, snap.queued_deadline_abs_s, zr + np.inf, np.float64),
        priority=col(tasks.priority, snap.queued_priority, np.zeros(r, np.int64), np.int64),
        task_id=col(tasks.task_id, snap.queued_task_id, np.full(r, -1, np.int64), np.int64),
    )
    t = snap.time
    down = ~snap.up
    st.up[:] = snap.up
    if observed is not None:
        st = st._replace(speed=st.speed.copy(), bandwidth=st.bandwidth.copy(),
                         latency=st.latency.copy())  # fmt: skip
        believe(st, cluster, observed, snap.time)
    # running tasks: start at their expected finish with no work left, so that
    # start + work_est / speed (what predictions read) is that finish exactly
    for k in range(r):
        i = b + q + k
        j = int(snap.running_node[k])
        s = int(st.free_slots[j, st.n_free[j] - 1])
        st.n_free[j] -= 1
        st.slot_task[j, s] = i
        st.slot_of[i] = s
        st.node[i] = j
        st.start[i] = fin[k]
        st.finish[i] = fin[k]
        st.dur[i] = 0.0
        st.decision[i] = st.ready[i] = fin[k]
    derive = snap.core_free_s is None
    if derive:
        # the cores run the running tasks; the queued ones are list-scheduled after them
        for j in range(cluster.n_nodes):
            busy = np.sort(fin[snap.running_node == j])
            st.proj[j, : busy.shape[0]] = busy
    handle = compile_state(st)
    core.place_queued(handle, b, snap.queued_node, t, snap.queued_ready_s, derive)
    if not derive:
        st.proj[:] = snap.core_free_s
    st.proj[down] = np.inf
    st.proj_min[:] = st.proj.min(axis=1)
    if snap.recent_assignments is not None:
        st.recent[:] = snap.recent_assignments
    st.recent_t[:] = t
    st.counters[core.C_COMMITTED] = q + r
    return st, handle


@runtime_checkable
class Policy(Protocol):
    """A scheduler: given a batch and a view, one node index per task.

    Implementations may also define ``run_compiled(run) -> bool`` to run a
    whole simulation in compiled code, given a :class:`CompiledRun` (the engine
    falls back to calling :meth:`assign` batch by batch when it is absent or
    returns False, and never offers it with options on).
    """

    name: str

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        """Prepare for a new run on ``cluster``; ``rng`` is the run's only randomness."""

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        """Return an int array of node indices, one per task of ``tasks``."""
        ...


@dataclass(frozen=True, eq=False)
class CompiledRun:
    """What a fused compiled policy loop gets instead of the engine (docs/VIEW.md).

    The loop decides and simulates every batch itself, in compiled code, on
    :attr:`state`; the engine then summarises the result.
    """

    state: Any
    """Opaque handle of the compiled state, as :attr:`ClusterView.compiled`, read and
    written by the loop (through :mod:`hybridsched.sim.core`'s ``advance`` and ``commit``)."""
    decision_s: np.ndarray
    """Decision time of each task, decision order, s."""
    batch_start: np.ndarray
    """Offsets of the batches into the tasks, ``n_batches + 1`` entries."""

    @property
    def n_tasks(self) -> int:
        """Number of tasks in the run."""
        return int(self.decision_s.shape[0])

    def batch_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Decision times (per task) and batch start offsets, decision order."""
        return self.decision_s, self.batch_start
