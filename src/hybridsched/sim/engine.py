"""The simulator: decision batches, policy calls and the exact base model of docs/MODEL.md.

The surface is small, like SimPy's ``Environment``::

    engine = Engine(cluster, workload, decision_interval=0.5, queue="priority")
    while (batch := engine.next_batch()) is not None:
        tasks, view = batch
        engine.commit(policy.assign(tasks, view))
    result = engine.finish()

or simply ``simulate(cluster, workload, policy)``, the one entry point (the CLI,
the experiments and the benchmarks use it; ``options=`` turns on failures,
estimate noise, jitter or shared links). ``now`` is the current
decision time; :meth:`Engine.commit` may also take part of a batch at a time
(one task per call, as a Gymnasium environment does), each part seeing the
effect of the ones before it.

There is one loop, :class:`Engine`'s. What goes beyond the base model plugs
into it: a :class:`Kernel` (how task events are simulated and assignments
booked; the base model's, or :class:`~hybridsched.sim.options_engine.FaultKernel`
with its indexed event heap, shared links and jitter) and
:class:`EngineHooks` (behaviours with events of their own: node failures in
:class:`~hybridsched.sim.options_engine.FailureHook`). With neither, the
engine is the base model and offers policies their fused compiled loop.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hybridsched.errors import ConfigError, PolicyError, SimulationError
from hybridsched.model import Cluster, Workload
from hybridsched.sim import core
from hybridsched.sim.metrics import summarize
from hybridsched.sim.options import SimOptions
from hybridsched.sim.state import CoreState, build_state, compile_state
from hybridsched.sim.view import (
    ClusterView,
    CompiledRun,
    NodeSnapshot,
    Policy,
    TaskBatch,
    batch_columns,
)

if TYPE_CHECKING:
    from hybridsched.sim.observations import NodeObservations

QUEUES = ("fifo", "priority")

MAX_IDLE_EVENTS = 100_000
"""Hook events in a row, with nothing to decide and nothing on a node, after which a
hook still holding tasks is taken to never release them (the run stops with an error)."""


def _node_indices(nodes: np.ndarray | list[int] | int, most: int) -> np.ndarray:
    """``nodes`` as int64, checked: 1 to ``most`` of them, integers.

    Raises:
        PolicyError: naming the shape or the dtype.
    """
    arr = np.atleast_1d(np.asarray(nodes))
    k = arr.shape[0]
    if arr.ndim != 1 or k == 0 or k > most:
        raise PolicyError(
            f"commit: expected 1 to {most} node indices for this batch, got shape {arr.shape}"
        )
    if arr.dtype.kind not in "iu":
        raise PolicyError(f"commit: node indices must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


@dataclass(frozen=True)
class SimConfig:
    """Options of one simulation run (the base model when left at defaults)."""

    decision_interval: float = 0.0
    """Batching interval delta, s; 0 decides each task at its arrival."""
    queue: str = "fifo"
    """Queue discipline at the nodes: ``fifo`` or ``priority``."""
    work_estimate: np.ndarray | None = field(default=None, compare=False)
    """Work the schedulers see, GI, per workload row; ``None``: the true work."""

    def __post_init__(self) -> None:
        d = self.decision_interval
        if not isinstance(d, (int, float)) or isinstance(d, bool) or not np.isfinite(d) or d < 0:
            raise ConfigError(f"decision interval: must be a number >= 0 (seconds), got {d!r}")
        if self.queue not in QUEUES:
            raise ConfigError(f"queue: must be one of {', '.join(QUEUES)}, got {self.queue!r}")


@dataclass(frozen=True, eq=False)
class SimResult:
    """Per-task times (workload row order) and the summary of one run."""

    tasks: dict[str, np.ndarray]
    """Columns of tasks.parquet: task_id, node (name), node_index, decision_s, ready_s,
    start_s, finish_s, response_s, met_deadline, priority."""
    summary: dict[str, Any]
    """The keys of summary.json (docs/MODEL.md) and a few more."""


class EngineHooks:
    """An optional behaviour of the engine loop; every method here does nothing.

    The base model is :class:`Engine` with no hooks. A behaviour beyond it
    (node failures, time windows of node speed, latency or bandwidth)
    subclasses this and overrides what it needs. At each instant ``t``
    the engine:

    1. simulates the task events strictly before ``t`` (``engine.kernel.advance(t)``);
    2. calls :meth:`before_instant` on each hook whose :meth:`next_event_time`
       is ``t`` (its own events: a node failing or coming back, a window
       opening) -- only while tasks remain to decide or are in the system;
    3. gathers the tasks decided at ``t`` (the arrival batch of ``t`` and the
       tasks sent back with :meth:`Engine.send_back`, in decision order) and
       passes them through each hook's :meth:`triage`;
    4. hands them to the policy; each :meth:`Engine.commit` books them through
       the kernel, then calls :meth:`on_commit`.

    At the end, :meth:`finish_columns`, :meth:`summary_extra` and
    :meth:`result` add what the hook reports.
    """

    def attach(self, engine: Engine) -> None:
        """Called once by :meth:`Engine.add_hooks`, before the first decision."""
        self.engine = engine

    def next_event_time(self) -> float:
        """Time of this hook's next own event, s (``inf``: none)."""
        return np.inf

    def before_instant(self, t: float) -> None:
        """Apply this hook's events stamped ``t`` (task events before ``t`` are done)."""

    def holds_tasks(self) -> bool:
        """True while the hook keeps tasks out of the loop (they wait for its events)."""
        return False

    def triage(self, idx: np.ndarray, t: float) -> np.ndarray:
        """The tasks of ``idx`` to decide now; the hook keeps or rejects the others."""
        return idx

    def on_commit(self, idx: np.ndarray, nodes: np.ndarray, t: float) -> None:
        """Tasks ``idx`` were assigned to ``nodes`` at ``t``."""

    def finish_columns(self, inv: Any, tasks: dict[str, np.ndarray]) -> None:
        """Add or replace per-task columns (workload row order, ``inv``) in place."""

    def summary_extra(self, inv: Any, tasks: dict[str, np.ndarray]) -> dict[str, Any]:
        """Keyword arguments for :func:`~hybridsched.sim.metrics.summarize`."""
        return {}

    def result(self, result: SimResult) -> SimResult:
        """The run's result, possibly wrapped with what the hook recorded."""
        return result


class Kernel:
    """How an engine simulates task events and books assignments: the base model's.

    :meth:`advance` processes every instant strictly before ``until``;
    :meth:`commit` books valid assignments (raising :class:`PolicyError` and
    changing nothing otherwise). A kernel with more state (failures, shared
    links, see :mod:`hybridsched.sim.options_engine`) replaces ``engine.kernel``.
    """

    unavailable: np.ndarray | None = None
    """Read-only mask of the nodes that are down, for views; ``None``: all up."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def advance(self, until: float) -> None:
        """Simulate the task events of every instant before ``until``."""
        core.advance(self.engine.cstate, until)

    def commit(self, idx: np.ndarray, nodes: np.ndarray, t: float) -> None:
        """Assign tasks ``idx`` to ``nodes`` at ``t``, or raise and change nothing."""
        self.engine._check_assignment(idx, nodes)
        core.commit_many(self.engine.cstate, idx, nodes, t)

    def observations(self, t: float) -> NodeObservations | None:
        """What tasks revealed per node as of ``t``; the base model keeps none."""
        return None

    def active(self) -> bool:
        """True while tasks are on nodes (assigned, not finished); only asked with hooks."""
        st = self.engine.state
        return bool(st.counters[core.C_COMMITTED] > st.counters[core.C_DISPATCHED]) or bool(
            (st.n_free < st.cores).any()
        )


class Engine:
    """Discrete-event simulator, driven decision by decision: one loop for every model.

    The loop (``next_batch``, ``commit``, ``now``, ``done``, ``finish``) is this
    class's. Optional behaviours plug in as :class:`EngineHooks`
    (:meth:`add_hooks`) and as a :class:`Kernel` with more state; with none,
    the engine is the base model of docs/MODEL.md and ``run`` offers policies
    their fused compiled loop.

    Args:
        cluster: the validated cluster.
        workload: the validated workload (regions and memory must fit the cluster).
        config: run options; keyword shortcuts ``decision_interval`` and ``queue``.
    """

    def __init__(
        self,
        cluster: Cluster,
        workload: Workload,
        config: SimConfig | None = None,
        *,
        decision_interval: float | None = None,
        queue: str | None = None,
    ) -> None:
        if config is None:
            config = SimConfig(
                decision_interval=0.0 if decision_interval is None else decision_interval,
                queue="fifo" if queue is None else queue,
            )
        elif decision_interval is not None or queue is not None:
            raise ConfigError("pass either config or decision_interval/queue, not both")
        if len(workload) == 0:
            raise ConfigError("workload: has no tasks; nothing to simulate")
        if int(workload.region.max()) >= cluster.n_regions:
            bad = int(np.argmax(workload.region >= cluster.n_regions))
            raise ConfigError(
                f"workload row {bad + 1}: region {int(workload.region[bad])} is out of range for "
                f"cluster {cluster.name!r} with {cluster.n_regions} regions"
            )
        self.cluster = cluster
        self.workload = workload
        self.config = config
        self.scheduler_seconds = 0.0
        """Wall-clock time spent inside the policy, s."""
        self.compile_seconds: float | None = None
        """The policy's ``compile_seconds`` after its reset (None: it has none), s."""

        # decision order: arrival, then task_id
        a, ids = workload.arrival_s, workload.task_id
        # most workloads come sorted by (arrival, task_id): skip the reorder then
        self._identity = bool(np.all((a[1:] > a[:-1]) | ((a[1:] == a[:-1]) & (ids[1:] > ids[:-1]))))
        order = np.arange(len(a)) if self._identity else np.lexsort((ids, a))
        self.order = order
        arrival = np.array(a if self._identity else a[order], dtype=np.float64)
        delta = float(config.decision_interval)
        if delta > 0:
            dec = np.ceil(arrival / delta) * delta
            # batches: runs of equal decision time (decision time is monotone in arrival)
            starts = np.flatnonzero(np.r_[True, dec[1:] != dec[:-1]])
        else:
            dec = arrival.copy()
            starts = np.arange(arrival.shape[0])
        self._dec_time = dec
        self._batch_start = np.r_[starts, arrival.shape[0]].astype(np.int64)
        self.state = self._build_state(order, arrival)
        """The simulator's arrays (:class:`~hybridsched.sim.core.CoreState`)."""
        if config.work_estimate is not None:
            est = np.asarray(config.work_estimate, dtype=np.float64)
            if est.shape != workload.work_gi.shape or not np.all(est > 0):
                raise ConfigError("work_estimate: must give one value > 0 per task")
            self.state = self.state._replace(work_est=np.ascontiguousarray(est[order]))
        self.cstate = core.compile_state(self.state)
        """The compiled handle over the same arrays, for kernels."""
        self.kernel: Kernel = Kernel(self)
        """Simulates task events and books assignments (see :class:`Kernel`)."""
        self.hooks: tuple[EngineHooks, ...] = ()
        """Optional behaviours of the loop, in call order."""
        self._finished: SimResult | None = None
        self._seen: tuple[CoreState, Any] | None = None  # what views read, when not the state
        self.estimates = "nominal"
        """What the views' estimates are: ``nominal``, or ``observed`` (a hook keeps the
        state's speed, latency and bandwidth at the observed estimates)."""
        self._table: np.ndarray | None = None  # the views' node_table, kept while unchanged

        # the loop
        self._arange = np.arange(self.n_tasks, dtype=np.int64)
        self._next_arrival = 0  # next arrival batch
        self._pending: list[tuple[float, int]] = []  # (decision time, task) sent back
        self._idle_events = 0  # hook events in a row with nothing else happening
        self._todo = self._arange[:0]  # tasks to decide at the current instant
        self._todo_pos = 0
        self._cur = self._arange[:0]  # the open batch (undecided tasks of it)
        self._now = -np.inf
        self._over = False

    def add_hooks(self, *hooks: EngineHooks) -> None:
        """Plug ``hooks`` into the loop (before the first decision), calling their ``attach``."""
        if self._now > -np.inf or self._over:
            raise SimulationError("add_hooks: the run has started; add hooks before it")
        self.hooks = self.hooks + hooks
        for h in hooks:
            h.attach(self)

    @property
    def fused(self) -> bool:
        """``run`` offers the policy's fused compiled loop: the base model only."""
        return not self.hooks and type(self.kernel) is Kernel

    def hide_true_work(self) -> None:
        """Views (and compiled policies through them) see estimated work in place of the true.

        They then read a copy of the state's handle whose ``work`` is ``work_est``
        and whose ``dur`` is hidden; the simulator still runs the true work.
        """
        st = self.state
        seen = st._replace(work=st.work_est, dur=np.full_like(st.dur, np.nan))
        self._seen = (seen, compile_state(seen))

    # ------------------------------------------------------------------ state

    def _build_state(self, order: np.ndarray, arrival: np.ndarray) -> CoreState:
        w = self.workload
        identity = self._identity

        def task_col(a: np.ndarray, dtype: type) -> np.ndarray:
            # a writable, contiguous copy in decision order (kernels need writable arrays)
            return np.array(a if identity else a[order], dtype=dtype, order="C")

        return build_state(
            self.cluster,
            queue=self.config.queue,
            arrival=arrival,
            region=task_col(w.region, np.int64),
            data=task_col(w.data_mb, np.float64),
            work=task_col(w.work_gi, np.float64),
            mem_req=task_col(w.memory_mb, np.float64),
            abs_deadline=arrival + task_col(w.deadline_s, np.float64),
            priority=task_col(w.priority, np.int64),
            task_id=task_col(w.task_id, np.int64),
        )

    # ------------------------------------------------------------- stepping

    @property
    def n_tasks(self) -> int:
        """Number of tasks in the run."""
        return int(self.order.shape[0])

    @property
    def n_batches(self) -> int:
        """Number of arrival batches (decision times of new tasks)."""
        return int(self._batch_start.shape[0] - 1)

    @property
    def now(self) -> float:
        """The current decision time (``-inf`` before the first, ``inf`` when done), s."""
        return np.inf if self._over else self._now

    @property
    def done(self) -> bool:
        """True once nothing is left to decide."""
        return self._over

    def batch_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Decision times (per task) and arrival batch start offsets, decision order."""
        return self._dec_time, self._batch_start

    def send_back(self, i: int, t: float) -> None:
        """Task ``i`` goes back to the scheduler at ``t`` (the next batch boundary when delta > 0).

        For hooks: the engine decides it again with the tasks of that instant.
        """
        delta = float(self.config.decision_interval)
        d = t if delta == 0 else float(np.ceil(t / delta) * delta)
        heapq.heappush(self._pending, (d, i))

    def _busy(self) -> bool:
        """Tasks are still in the system (on nodes, or held by a hook)."""
        return self.kernel.active() or any(h.holds_tasks() for h in self.hooks)

    def _check_progress(self, d: float, tn: float) -> None:
        """Refuse a hook that holds tasks through endless events while nothing else happens.

        Counts hook events in a row with nothing to decide and nothing on a node;
        past :data:`MAX_IDLE_EVENTS` the run stops instead of looping forever.
        """
        if d < np.inf or self.kernel.active():
            self._idle_events = 0
            return
        self._idle_events += 1
        if self._idle_events > MAX_IDLE_EVENTS:
            held = next(h for h in self.hooks if h.holds_tasks())
            raise SimulationError(
                f"{type(held).__name__} held tasks through {MAX_IDLE_EVENTS:,} events in a row "
                f"(to {tn:g} s) while nothing ran and nothing was decided: it never releases them"
            )

    def _next_instant(self) -> bool:
        """Advance to the next instant with tasks to decide; False when there is none."""
        dec, starts, hooks = self._dec_time, self._batch_start, self.hooks
        inf = np.inf
        while True:
            b = self._next_arrival
            d_arr = float(dec[starts[b]]) if b < starts.shape[0] - 1 else inf
            d = self._pending[0][0] if self._pending else inf
            d = min(d, d_arr)
            if hooks:
                tn = min(h.next_event_time() for h in hooks)
                if tn <= d and tn < inf and (d < inf or self._busy()):
                    self.kernel.advance(tn)
                    if d < inf or self._busy():  # else the run ended before this event
                        self._check_progress(d, tn)
                        for h in hooks:
                            if h.next_event_time() == tn:
                                h.before_instant(tn)
                    continue
            if d == inf:
                self.kernel.advance(inf)
                held = [h for h in hooks if h.holds_tasks()]
                if held:
                    raise SimulationError(
                        f"{type(held[0]).__name__} holds tasks but has no event to come: "
                        f"they would never be decided"
                    )
                return False
            self._idle_events = 0
            self.kernel.advance(d)
            if d_arr == d:
                idx = self._arange[starts[b] : starts[b + 1]]
                self._next_arrival += 1
            else:
                idx = self._arange[:0]
            if self._pending and self._pending[0][0] == d:
                back = []
                while self._pending and self._pending[0][0] == d:
                    back.append(heapq.heappop(self._pending)[1])
                idx = np.sort(np.concatenate([idx, np.asarray(back, dtype=np.int64)]))
            for h in hooks:
                idx = h.triage(idx, d)
            if idx.size:
                self._now = d
                self._todo = idx
                self._todo_pos = 0
                return True

    def next_batch(self) -> tuple[TaskBatch, ClusterView] | None:
        """Advance to the next decision and return its undecided tasks and the view.

        Batches hold the tasks decided at one instant (new arrivals, and tasks
        sent back by a hook), in decision order (arrival, then task_id); with
        ``decision_interval = 0`` one task at a time. Returns the rest of the
        open batch when it is only partly committed; ``None`` when nothing is
        left to decide.
        """
        if self._over:
            return None
        if self._cur.size == 0:
            if self._todo_pos >= self._todo.size and not self._next_instant():
                self._over = True
                return None
            if self.config.decision_interval == 0:
                self._cur = self._todo[self._todo_pos : self._todo_pos + 1]
            else:
                self._cur = self._todo[self._todo_pos :]
        tasks = self._task_batch(self._cur)
        return tasks, self._view(tasks)

    def beliefs_changed(self) -> None:
        """For hooks: the state's speed, latency or bandwidth estimates were rewritten."""
        self._table = None

    def _view(self, tasks: TaskBatch) -> ClusterView:
        arrays, handle = self._seen or (self.state, self.cstate)
        view = ClusterView._over(
            arrays,
            handle,
            self._now,
            self.cluster,
            tasks,
            queue=self.config.queue,
            unavailable=self.kernel.unavailable,
            observations=self.kernel.observations,
            estimates=self.estimates,
            table=self._table,
        )
        if self._table is None:
            self._table = view.node_table
        return view

    def snapshot(self) -> NodeSnapshot:
        """The plain node state at the current decision (what :meth:`next_batch`'s view shows).

        ``ClusterView.from_snapshot(cluster, tasks, engine.snapshot())`` gives the
        engine's own view (see docs/VIEW.md).
        """
        if self._now == -np.inf or self._over:
            raise SimulationError("snapshot: no open decision; call next_batch() first")
        return self._view(self._task_batch(self._arange[:0])).snapshot()

    def _task_batch(self, idx: np.ndarray) -> TaskBatch:
        return TaskBatch(*batch_columns(self.state, idx), index=idx)

    def commit(self, nodes: np.ndarray | list[int] | int) -> None:
        """Assign the next ``len(nodes)`` undecided tasks of the open batch.

        Raises:
            PolicyError: wrong length, a node index out of range, a node that
                is down, or a node without memory for its task.
        """
        if self._cur.size == 0:
            raise SimulationError("commit: no open decision; call next_batch() first")
        nodes_arr = _node_indices(nodes, self._cur.size)
        k = nodes_arr.shape[0]
        idx = self._cur[:k]
        self.kernel.commit(idx, nodes_arr, self._now)
        for h in self.hooks:
            h.on_commit(idx, nodes_arr, self._now)
        self._cur = self._cur[k:]
        self._todo_pos += k

    def _check_assignment(self, idx: np.ndarray, nodes: np.ndarray) -> None:
        n_nodes = self.cluster.n_nodes
        bad = (nodes < 0) | (nodes >= n_nodes)
        if bad.any():
            k = int(np.argmax(bad))
            raise PolicyError(
                f"task {int(self.state.task_id[idx[k]])}: node index {int(nodes[k])} is out of "
                f"range 0..{n_nodes - 1}"
            )
        fits = self.state.mem_req[idx] <= self.state.memory[nodes]
        if not fits.all():
            k = int(np.argmin(fits))
            j = int(nodes[k])
            raise PolicyError(
                f"task {int(self.state.task_id[idx[k]])}: node {self.cluster.node_names[j]!r} has "
                f"{self.state.memory[j]:g} MB, the task needs {self.state.mem_req[idx[k]]:g} MB"
            )

    # --------------------------------------------------------------- running

    def run(self, policy: Policy, rng: np.random.Generator | int | None = 0) -> SimResult:
        """Run the whole simulation with ``policy`` and return the result."""
        if self._now > -np.inf or self._over:
            raise SimulationError("run: this engine has already started; build a new one")
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        policy.reset(self.cluster, gen)
        # compiling kernels in reset is not deciding: reported apart (docs/MODEL.md)
        self.compile_seconds = getattr(policy, "compile_seconds", None)
        compiled = getattr(policy, "run_compiled", None) if self.fused else None
        if compiled is not None:
            t = time.perf_counter()
            dec, starts = self.batch_bounds()
            ran = compiled(CompiledRun(self.cstate, dec, starts))
            if ran:
                # the compiled loop interleaves simulation and decisions; count all of it
                self.scheduler_seconds += time.perf_counter() - t
                self._over = True
                self._next_arrival = self.n_batches
                return self.finish(policy_name=policy.name)
        while (batch := self.next_batch()) is not None:
            tasks, view = batch
            t = time.perf_counter()
            nodes = policy.assign(tasks, view)
            self.scheduler_seconds += time.perf_counter() - t
            self.commit(nodes)
        return self.finish(policy_name=policy.name)

    def finish(self, policy_name: str = "") -> SimResult:
        """Simulate to the end (nothing may be left to decide) and summarise."""
        if self._finished is not None:
            return self._finished
        if not self._over:
            if self.fused:
                # the base model may also be driven by compiled code on cstate directly
                # (the RL rollouts): every task committed is then the end
                left = self.n_tasks - int(self.state.counters[core.C_COMMITTED])
                if left:
                    raise SimulationError(f"finish: {left} tasks are undecided")
            elif self._cur.size or self.next_batch() is not None:
                raise SimulationError("finish: tasks are still undecided; commit them first")
        self.kernel.advance(np.inf)
        self._over = True
        if self._identity:
            inv = slice(None)
        else:
            inv = np.empty_like(self.order)
            inv[self.order] = np.arange(self.order.shape[0])
        tasks = self._task_columns(inv)
        extra: dict[str, Any] = {}
        for h in self.hooks:
            h.finish_columns(inv, tasks)
            extra.update(h.summary_extra(inv, tasks))
        result = SimResult(tasks=tasks, summary=self._summary(inv, tasks, policy_name, **extra))
        for h in self.hooks:
            result = h.result(result)
        self._finished = result
        return result

    def _task_columns(self, inv: Any) -> dict[str, np.ndarray]:
        """The columns of tasks.parquet every run has, in workload row order (``inv``)."""
        st = self.state
        arrival = st.arrival[inv]
        finish = st.finish[inv]
        node = st.node[inv]
        return {
            "task_id": st.task_id[inv],
            "node": np.asarray(self.cluster.node_names)[node],
            "node_index": node,
            "arrival_s": arrival,
            "decision_s": st.decision[inv],
            "ready_s": st.ready[inv],
            "start_s": st.start[inv],
            "finish_s": finish,
            "response_s": finish - arrival,
            "met_deadline": finish <= st.abs_deadline[inv],
            "priority": st.priority[inv],
        }

    def _summary(
        self, inv: Any, tasks: dict[str, np.ndarray], policy_name: str, **options: Any
    ) -> dict[str, Any]:
        """The run's summary (:func:`~hybridsched.sim.metrics.summarize`, ``options`` passed on)."""
        st = self.state
        summary = summarize(
            self.cluster,
            arrival=tasks["arrival_s"],
            finish=tasks["finish_s"],
            abs_deadline=st.abs_deadline[inv],
            node=st.node[inv],
            dur=st.dur[inv],
            priority=tasks["priority"],
            **options,
        )
        summary["scheduler_seconds"] = self.scheduler_seconds
        if self.compile_seconds is not None:
            summary["compile_seconds"] = float(self.compile_seconds)
        summary["policy"] = policy_name
        summary["decision_interval_s"] = float(self.config.decision_interval)
        summary["queue"] = self.config.queue
        return summary


def simulate(
    cluster: Cluster,
    workload: Workload,
    policy: Policy,
    *,
    options: SimOptions | None = None,
    decision_interval: float = 0.0,
    queue: str = "fifo",
    seed: int | np.random.Generator | None = 0,
    config: SimConfig | None = None,
) -> SimResult:
    """Simulate ``workload`` on ``cluster`` under ``policy``: the one entry point.

    With ``options`` off (``None`` or nothing set) this is the exact base model
    (:class:`Engine`; the fused compiled loop of heuristics that have one). With
    failures, estimate noise, jitter or shared links on, see
    :mod:`hybridsched.sim.options_engine`; the result then has the option
    columns and keys (:class:`~hybridsched.sim.options_engine.OptionsResult`).

    Args:
        options: conditions beyond the base model (docs/OPTIONS.md).
        decision_interval, queue: shortcuts for ``config``.
        seed: the policy's randomness; the options draw from independent children.
        config: run options (batching interval, queue, work estimates).
    """
    if config is None:
        config = SimConfig(decision_interval=decision_interval, queue=queue)
    if options is not None and options.active:
        from hybridsched.sim.options_engine import simulate_options

        if isinstance(seed, np.random.Generator):
            raise ConfigError("seed: must be an integer or None when options are on")
        return simulate_options(cluster, workload, policy, config, options, seed)
    return Engine(cluster, workload, config).run(policy, seed)
