"""What a scheduler may see, and the protocol the simulator calls.

A scheduler (policy) receives a :class:`TaskBatch` (the tasks decided together,
one task when the decision interval is 0) and a read-only :class:`ClusterView`
of the cluster at the decision time. It returns one node index per task.

All per-(task, node) quantities are ``(B, N)`` NumPy arrays so that a colony or
a neural network can score every pair at once; they are computed on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from hybridsched.model import Cluster
from hybridsched.sim import core

if TYPE_CHECKING:
    from hybridsched.sim.engine import Engine


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


class ClusterView:
    """A read-only view of the cluster at a decision time.

    Static node spec comes from :attr:`cluster`. Dynamic state per node:

    * :attr:`core_free_s` ``(N, C)``: projected time each core becomes free,
      list-scheduling the work already assigned in assignment order (estimates);
      padded with ``inf`` beyond a node's core count.
    * :attr:`available_s` ``(N,)``: ``max(time, earliest projected free core)``.
    * :attr:`busy_cores`, :attr:`queued_tasks`, :attr:`queued_work_s`
      (estimated core-seconds assigned but not started), :attr:`recent_assignments`
      (a count of assignments decayed with a 10 s time constant).

    Per (task, node): :attr:`transfer_s`, :attr:`ready_s`, :attr:`exec_s`,
    :attr:`est_finish_s` (MCT's estimate ``max(ready, available) + exec``) and
    :attr:`feasible` (memory). :meth:`predict_finish` gives the exact finish
    times of a tentative assignment under the base model.

    With node failures (:mod:`hybridsched.sim.faults`) the engine sets
    :attr:`unavailable`: a down node is infeasible for every task, its
    ``core_free_s`` and ``available_s`` are ``inf``.
    """

    unavailable: np.ndarray | None = None
    """Nodes that cannot take a task now (down), bool ``(N,)``; ``None`` in the base model."""

    def __init__(self, engine: Engine, tasks: TaskBatch) -> None:
        st = engine.state
        self._engine = engine
        self._st = st
        self.tasks = tasks
        self.time: float = engine.now
        """The decision time, s."""
        self.cluster: Cluster = engine.cluster
        """Static node spec (cores, speed, memory, bandwidth, power, latency)."""
        self.core_free_s = _ro(st.proj)
        self.state = engine.cstate
        """Engine internals (compiled handle), for compiled policies only; read-only by
        contract. ``arrays`` holds the same data as NumPy arrays."""
        self.arrays = st
        self.busy_cores: np.ndarray = _ro(st.cores - st.n_free)
        self.queued_tasks = _ro(st.n_queued)
        self.queued_work_s = _ro(st.queued_work)

    @property
    def n_nodes(self) -> int:
        """Number of nodes ``N``."""
        return self.cluster.n_nodes

    @cached_property
    def available_s(self) -> np.ndarray:
        """Earliest projected time a core of each node is free (>= now), s."""
        return _ro(np.maximum(self.time, self._st.proj_min))

    @cached_property
    def recent_assignments(self) -> np.ndarray:
        """Assignments per node, decayed with a 10 s time constant."""
        st = self._st
        return _ro(st.recent * np.exp(-(self.time - st.recent_t) / core.RECENT_TAU_S))

    @cached_property
    def transfer_s(self) -> np.ndarray:
        """Latency + data / bandwidth, ``(B, N)``, s."""
        c = self.cluster
        t = self.tasks
        lat = c.latency_s[:, t.region].T
        return _ro(lat + t.data_mb[:, None] / c.bandwidth_mb_s[None, :])

    @cached_property
    def ready_s(self) -> np.ndarray:
        """When the task's data would be at each node, ``(B, N)``, s."""
        c = self.cluster
        t = self.tasks
        lat = c.latency_s[:, t.region].T
        # same association as the simulator: (now + latency) + data / bandwidth
        return _ro((self.time + lat) + t.data_mb[:, None] / c.bandwidth_mb_s[None, :])

    @cached_property
    def exec_s(self) -> np.ndarray:
        """Estimated execution time on one core of each node, ``(B, N)``, s."""
        return _ro(self.tasks.work_gi[:, None] / self.cluster.speed[None, :])

    @cached_property
    def est_finish_s(self) -> np.ndarray:
        """``max(ready, available) + exec``: the finish-time estimate of MCT, ``(B, N)``, s."""
        return _ro(np.maximum(self.ready_s, self.available_s[None, :]) + self.exec_s)

    @cached_property
    def feasible(self) -> np.ndarray:
        """``(B, N)`` bool: the node has enough memory for the task (and is up)."""
        ok = self.tasks.memory_mb[:, None] <= self.cluster.memory_mb[None, :]
        if self.unavailable is not None:
            ok &= ~self.unavailable[None, :]
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
        return core.predict(self.state, self.time, self.tasks.index, nodes, not true_work)


@runtime_checkable
class Policy(Protocol):
    """A scheduler: given a batch and a view, one node index per task.

    Implementations may also define ``run_compiled(engine) -> bool`` to run a
    whole simulation in compiled code (the engine falls back to calling
    :meth:`assign` batch by batch when it is absent or returns False).
    """

    name: str

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        """Prepare for a new run on ``cluster``; ``rng`` is the run's only randomness."""

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        """Return an int array of node indices, one per task of ``tasks``."""
        ...
