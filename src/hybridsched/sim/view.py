"""What a scheduler may see, and the protocol the simulator calls.

A scheduler (policy) receives a :class:`TaskBatch` (the tasks decided together,
one task when the decision interval is 0) and a read-only :class:`ClusterView`
of the cluster at the decision time. It returns one node index per task.

All per-(task, node) quantities are ``(B, N)`` NumPy arrays so that a colony or
a neural network can score every pair at once; they are computed on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster
from hybridsched.sim import core
from hybridsched.sim.state import build_state, compile_state


def _ro(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.setflags(write=False)
    return v


@dataclass(frozen=True, eq=False)
class TaskBatch:
    """The tasks of one decision, in decision order (arrival, then task_id).

    Work is the schedulers' estimate (equal to the true work in the base model).
    """

    index: np.ndarray
    """Engine-internal task indices (decision order), int64[B]."""
    task_id: np.ndarray
    """Task ids from the workload, int64[B]."""
    arrival_s: np.ndarray
    """Arrival times, s."""
    region: np.ndarray
    """Source regions, int64[B]."""
    data_mb: np.ndarray
    """Input data, MB."""
    work_gi: np.ndarray
    """Estimated compute demand, GI."""
    memory_mb: np.ndarray
    """Memory needed, MB."""
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
        out = {k: _column(k, v, dt) for k, (v, dt) in cols.items()}
        b = out["task_id"].shape[0]
        for k, v in out.items():
            if v.shape[0] != b:
                raise ConfigError(f"task batch: column {k} has {v.shape[0]} rows, task_id has {b}")
        return cls(index=np.arange(b, dtype=np.int64), **out)


def _column(name: str, value: Any, dtype: type, ndim: int = 1) -> np.ndarray:
    """``value`` as a read-only contiguous array of ``dtype`` with ``ndim`` dimensions."""
    a = np.array(value, dtype=dtype, copy=True, ndmin=ndim)
    if a.ndim != ndim:
        raise ConfigError(f"{name}: must be a {ndim}-dimensional array, got shape {a.shape}")
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


OBS_TAU_S = 30.0
"""Time constant of the decayed averages of observations, s (docs/MODEL.md section 13)."""
OBS_PRIOR_WEIGHT = 1.0
"""Weight of the nominal value (a ratio of 1) in an observed estimate: one observation's."""


def decayed_mean(
    mean: float, weight: float, last: float, count: int, x: float, t: float
) -> tuple[float, float]:
    """The decayed mean ``(mean, weight)`` after ratio ``x`` observed at ``t``.

    ``(mean, weight)`` was last updated at ``last``, after ``count`` observations.
    Weight ``w * exp(-(t - last) / OBS_TAU_S) + 1``, mean ``m + (x - m) / w``; the
    first observation is the mean, with weight 1. Plain Python: the simulator runs
    it compiled (``fault_kernels.observe``), the live service as it is, so both
    record the same numbers.
    """
    if count == 0:
        return x, 1.0
    w = weight * math.exp(-(t - last) / OBS_TAU_S) + 1.0
    return mean + (x - mean) / w, w


ESTIMATES = ("nominal", "observed")
"""What the view's execution and transfer estimates are: the cluster file's values, or
those values corrected by the observations (:meth:`NodeObservations.exec_factor`)."""

_OBS_FIELDS = (
    ("exec_ratio", np.float64),
    ("exec_weight", np.float64),
    ("exec_time_s", np.float64),
    ("exec_count", np.int64),
    ("transfer_ratio", np.float64),
    ("transfer_weight", np.float64),
    ("transfer_time_s", np.float64),
    ("transfer_count", np.int64),
    ("running_ratio", np.float64),
)


@dataclass(frozen=True, eq=False)
class NodeObservations:
    """What each node's tasks revealed: realized over nominal times, with their timestamps.

    Per node, arrays ``(N,)``. A ratio is realized over nominal: for an execution,
    ``(finish - start) / (work estimate / nominal speed)``; for a transfer,
    ``(ready - decision) / (nominal ready - decision)`` (transfers of no time are
    not observed). Each ratio is an exponentially time-decayed mean (time
    constant :data:`OBS_TAU_S`): at an observation ``x`` at ``t``, the weight
    becomes ``w * exp(-(t - time) / tau) + 1`` and the mean ``m + (x - m) / w``.
    Never the conditions themselves: only what completed (and running) tasks show.
    """

    exec_ratio: np.ndarray
    """Decayed mean of realized / nominal execution time (NaN: none observed)."""
    exec_weight: np.ndarray
    """Its weight as of :attr:`exec_time_s` (decayed count of observations)."""
    exec_time_s: np.ndarray
    """Time of the last execution observed, s (-inf: none)."""
    exec_count: np.ndarray
    """Executions observed, int64."""
    transfer_ratio: np.ndarray
    """Decayed mean of realized / nominal transfer time (NaN: none observed)."""
    transfer_weight: np.ndarray
    """Its weight as of :attr:`transfer_time_s`."""
    transfer_time_s: np.ndarray
    """Time of the last transfer observed, s (-inf: none)."""
    transfer_count: np.ndarray
    """Transfers observed, int64."""
    running_ratio: np.ndarray
    """Largest elapsed / nominal execution time over the node's running tasks at the
    snapshot's time (0: none running)."""

    def __post_init__(self) -> None:
        n = None
        for name, dt in _OBS_FIELDS:
            a = _column(f"observations.{name}", getattr(self, name), dt)
            object.__setattr__(self, name, a)
            if n is None:
                n = a.shape[0]
            elif a.shape[0] != n:
                raise ConfigError(f"observations.{name}: has {a.shape[0]} nodes, expected {n}")

    @property
    def n_nodes(self) -> int:
        """Number of nodes ``N``."""
        return int(self.exec_ratio.shape[0])

    @classmethod
    def empty(cls, n_nodes: int) -> NodeObservations:
        """Nothing observed yet."""
        nan, zero = np.full(n_nodes, np.nan), np.zeros(n_nodes)
        never, none = np.full(n_nodes, -np.inf), np.zeros(n_nodes, dtype=np.int64)
        return cls(nan, zero, never, none, nan, zero, never, none, zero)

    def exec_factor(self, time: float) -> np.ndarray:
        """The observed estimate of execution time over nominal per node, at ``time``.

        ``(W * m + w0) / (W + w0)`` with ``m`` the mean ratio, ``W`` its weight
        decayed to ``time`` and ``w0`` = :data:`OBS_PRIOR_WEIGHT` (the nominal
        value as one observation), so that an estimate returns to nominal when
        nothing is observed for a while; then at least :attr:`running_ratio`
        (a running task already took that long). Exactly 1 when every ratio was 1.
        """
        f = _shrunk(self.exec_ratio, self.exec_weight, self.exec_time_s, self.exec_count, time)
        return np.maximum(f, self.running_ratio)

    def transfer_factor(self, time: float) -> np.ndarray:
        """The observed estimate of transfer time over nominal per node, at ``time``
        (as :meth:`exec_factor`, without a running part)."""
        return _shrunk(
            self.transfer_ratio, self.transfer_weight, self.transfer_time_s,
            self.transfer_count, time,
        )  # fmt: skip

    def check(self, n_nodes: int) -> None:
        """Refuse observations of another number of nodes, or ratios that are not > 0.

        Raises:
            ConfigError: naming the field and the node.
        """
        if self.n_nodes != n_nodes:
            raise ConfigError(
                f"snapshot.observations: has {self.n_nodes} nodes, the cluster has {n_nodes}"
            )
        for name in ("exec_ratio", "transfer_ratio"):
            a = getattr(self, name)
            bad = np.flatnonzero(~(np.isnan(a) | ((a > 0) & np.isfinite(a))))
            if bad.size:
                j = int(bad[0])
                raise ConfigError(
                    f"snapshot.observations.{name}: node {j}: must be a finite ratio > 0 or NaN "
                    f"(none), got {a[j]!r}"
                )


def _shrunk(
    mean: np.ndarray, weight: np.ndarray, last: np.ndarray, count: np.ndarray, time: float
) -> np.ndarray:
    """Decayed mean ratios shrunk towards 1 (the nominal value) by the prior weight."""
    seen = count > 0
    w = np.where(seen, weight * np.exp(-np.maximum(time - last, 0.0) / OBS_TAU_S), 0.0)
    m = np.where(seen, mean, 1.0)
    return (w * m + OBS_PRIOR_WEIGHT) / (w + OBS_PRIOR_WEIGHT)


_SNAP_TASK_COLUMNS = (
    ("queued_node", np.int64),
    ("queued_task_id", np.int64),
    ("queued_arrival_s", np.float64),
    ("queued_ready_s", np.float64),
    ("queued_work_gi", np.float64),
    ("queued_priority", np.int64),
    ("queued_deadline_abs_s", np.float64),
)


@dataclass(frozen=True, eq=False)
class NodeSnapshot:
    """Plain state of every node at one instant: what a live service knows. No engine.

    Arrays are copied to read-only arrays of the documented dtypes. Queued tasks
    are listed in assignment order (oldest first); running tasks in any order.
    """

    time: float
    """The decision instant, s (model time)."""
    up: np.ndarray
    """bool[N]: the node can take tasks now."""
    running_node: np.ndarray
    """int64[R]: node of each running task."""
    running_finish_s: np.ndarray
    """float64[R]: its expected finish (start + estimated execution time), s."""
    queued_node: np.ndarray
    """int64[Q]: node of each task assigned but not started."""
    queued_task_id: np.ndarray
    """int64[Q]."""
    queued_arrival_s: np.ndarray
    """float64[Q]."""
    queued_ready_s: np.ndarray
    """float64[Q]: when its data is (expected) at the node, s."""
    queued_work_gi: np.ndarray
    """float64[Q]: estimated work, GI."""
    queued_priority: np.ndarray
    """int64[Q]."""
    queued_deadline_abs_s: np.ndarray
    """float64[Q]: arrival + deadline, inf when none."""
    recent_assignments: np.ndarray | None = None
    """float64[N]: assignments decayed to ``time`` (10 s time constant); None: zeros."""
    core_free_s: np.ndarray | None = None
    """float64[N, C]: the projected core-free times to use as they are (the engine's
    list-scheduling projection, ``inf`` beyond a node's cores); None: derived (running
    tasks' finishes, then the queued tasks list-scheduled in assignment order)."""
    observations: NodeObservations | None = None
    """What completed and running tasks revealed per node; None: nothing observed."""

    def __post_init__(self) -> None:
        t = self.time
        if not isinstance(t, (int, float, np.floating, np.integer)) or np.isnan(t):
            raise ConfigError(f"snapshot: time must be a number (seconds), got {t!r}")
        put = object.__setattr__
        put(self, "time", float(t))
        put(self, "up", _column("snapshot.up", self.up, np.bool_))
        put(self, "running_node", _column("snapshot.running_node", self.running_node, np.int64))
        put(
            self,
            "running_finish_s",
            _column("snapshot.running_finish_s", self.running_finish_s, np.float64),
        )
        if self.running_node.shape != self.running_finish_s.shape:
            raise ConfigError(
                f"snapshot: running_node has {self.running_node.shape[0]} rows, "
                f"running_finish_s has {self.running_finish_s.shape[0]}"
            )
        q = None
        for name, dt in _SNAP_TASK_COLUMNS:
            a = _column(f"snapshot.{name}", getattr(self, name), dt)
            put(self, name, a)
            if q is None:
                q = a.shape[0]
            elif a.shape[0] != q:
                raise ConfigError(f"snapshot: {name} has {a.shape[0]} rows, queued_node has {q}")
        if self.recent_assignments is not None:
            r = _column("snapshot.recent_assignments", self.recent_assignments, np.float64)
            put(self, "recent_assignments", r)
        if self.core_free_s is not None:
            cf = _column("snapshot.core_free_s", self.core_free_s, np.float64, 2)
            put(self, "core_free_s", cf)

    @property
    def n_nodes(self) -> int:
        """Number of nodes ``N``."""
        return int(self.up.shape[0])

    @classmethod
    def empty(cls, n_nodes: int, time: float = 0.0) -> NodeSnapshot:
        """Every node up and idle at ``time``."""
        i0 = np.zeros(0, dtype=np.int64)
        f0 = np.zeros(0)
        return cls(
            time=time,
            up=np.ones(n_nodes, dtype=bool),
            running_node=i0,
            running_finish_s=f0,
            queued_node=i0,
            queued_task_id=i0,
            queued_arrival_s=f0,
            queued_ready_s=f0,
            queued_work_gi=f0,
            queued_priority=i0,
            queued_deadline_abs_s=f0,
        )

    def check(self, cluster: Cluster) -> None:
        """Check the snapshot against ``cluster``.

        Raises:
            ConfigError: naming the field, the row, the value and the rule.
        """
        n = cluster.n_nodes
        if self.up.shape[0] != n:
            raise ConfigError(f"snapshot.up: has {self.up.shape[0]} nodes, the cluster has {n}")
        for name in ("running_node", "queued_node"):
            a = getattr(self, name)
            bad = np.flatnonzero((a < 0) | (a >= n))
            if bad.size:
                k = int(bad[0])
                raise ConfigError(
                    f"snapshot.{name}: row {k + 1}: node index {int(a[k])} is out of range "
                    f"0..{n - 1}"
                )
        down = ~self.up
        for name in ("running_node", "queued_node"):
            a = getattr(self, name)
            bad = np.flatnonzero(down[a])
            if bad.size:
                k = int(bad[0])
                raise ConfigError(
                    f"snapshot.{name}: row {k + 1}: node {int(a[k])} is down; a down node "
                    f"has no running or queued task"
                )
        busy = np.bincount(self.running_node, minlength=n)
        over = np.flatnonzero(busy > cluster.cores)
        if over.size:
            j = int(over[0])
            raise ConfigError(
                f"snapshot.running_node: node {j} runs {int(busy[j])} tasks, it has "
                f"{int(cluster.cores[j])} cores"
            )
        if not np.all(self.queued_work_gi > 0):
            k = int(np.argmin(self.queued_work_gi > 0))
            raise ConfigError(
                f"snapshot.queued_work_gi: row {k + 1}: must be > 0, got {self.queued_work_gi[k]!r}"
            )
        if self.recent_assignments is not None and self.recent_assignments.shape[0] != n:
            raise ConfigError(
                f"snapshot.recent_assignments: has {self.recent_assignments.shape[0]} nodes, "
                f"the cluster has {n}"
            )
        if self.observations is not None:
            self.observations.check(n)
        if self.core_free_s is not None and self.core_free_s.shape != (n, int(cluster.cores.max())):
            raise ConfigError(
                f"snapshot.core_free_s: must have shape ({n}, {int(cluster.cores.max())}), got "
                f"{self.core_free_s.shape}"
            )


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


def believe(st: Any, cluster: Cluster, obs: NodeObservations, time: float) -> None:
    """Write the observed estimates at ``time`` into state ``st``'s speed, latency, bandwidth.

    Nominal values (``cluster``'s) times :meth:`NodeObservations.transfer_factor`
    (latency; bandwidth divided) and divided by :meth:`NodeObservations.exec_factor`
    (speed). With every ratio 1 they are the nominal values exactly.
    """
    fe = obs.exec_factor(time)
    fx = obs.transfer_factor(time)
    st.speed[:] = cluster.speed / fe
    st.bandwidth[:] = cluster.bandwidth_mb_s / fx
    st.latency[:] = cluster.latency_s * fx[:, None]


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
        queued_task_id=st.task_id[qi],
        queued_arrival_s=st.arrival[qi],
        queued_ready_s=st.ready[qi],
        queued_work_gi=st.work_est[qi],
        queued_priority=st.priority[qi],
        queued_deadline_abs_s=st.abs_deadline[qi],
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
