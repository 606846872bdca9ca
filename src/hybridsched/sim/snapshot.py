"""A plain snapshot of node state, from which a view is built without an engine.

:class:`NodeSnapshot` is what the live service (or a test) hands
:meth:`hybridsched.sim.ClusterView.from_snapshot`: which nodes are up, what runs
where until when, what is queued, and optionally the observations; docs/VIEW.md
shows how. :meth:`hybridsched.sim.Engine.snapshot` gives one of a simulator state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster
from hybridsched.sim.observations import NodeObservations, read_only_column

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
        put(self, "up", read_only_column("snapshot.up", self.up, np.bool_))
        put(
            self,
            "running_node",
            read_only_column("snapshot.running_node", self.running_node, np.int64),
        )
        put(
            self,
            "running_finish_s",
            read_only_column("snapshot.running_finish_s", self.running_finish_s, np.float64),
        )
        if self.running_node.shape != self.running_finish_s.shape:
            raise ConfigError(
                f"snapshot: running_node has {self.running_node.shape[0]} rows, "
                f"running_finish_s has {self.running_finish_s.shape[0]}"
            )
        q = None
        for name, dt in _SNAP_TASK_COLUMNS:
            a = read_only_column(f"snapshot.{name}", getattr(self, name), dt)
            put(self, name, a)
            if q is None:
                q = a.shape[0]
            elif a.shape[0] != q:
                raise ConfigError(f"snapshot: {name} has {a.shape[0]} rows, queued_node has {q}")
        if self.recent_assignments is not None:
            r = read_only_column("snapshot.recent_assignments", self.recent_assignments, np.float64)
            put(self, "recent_assignments", r)
        if self.core_free_s is not None:
            cf = read_only_column("snapshot.core_free_s", self.core_free_s, np.float64, 2)
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
