"""The engine with options: node failures, estimate noise, shared links and jitter.

:func:`hybridsched.sim.simulate` with ``options=`` is the entry point; with every
option off it is the base model (the fused compiled loop).
Estimate noise alone runs the base engine too, with
:attr:`SimConfig.work_estimate`. Failures and the network need
:class:`OptionsEngine`, a subclass of :class:`~hybridsched.sim.engine.Engine`
with the same surface (``next_batch``, ``commit``, ``run``, ``finish``) that
always calls the policy's ``assign``, batch by batch.

The model (``docs/OPTIONS.md`` has the full text):

* **Failures.** Node ``j`` is down on ``[down, up)``. At ``down`` every task
  running on it (unless it finishes exactly then) is killed, and every task
  assigned to it but not started (in transfer or waiting) is displaced; each
  counts a retry and goes back to the scheduler at ``down`` (the next batch
  boundary ``ceil(down / delta) * delta`` when ``delta > 0``), and its data
  moves again. A down node gets no task (the view marks it unavailable) and runs
  nothing. A task that no up node can take waits for one to come back, and is
  rejected when none ever will.
* **Order within an instant** ``t``: node down/up events, then decisions, then
  task events (completions, readiness), then dispatch; with no outage this is
  exactly the base model's order.
* **Shared links.** After its latency, a transfer's data enters the node's
  ingress link, whose bandwidth is split equally among the transfers in it
  (processor sharing); a lone transfer takes ``data / bandwidth`` as in the
  base model.
* **Jitter.** Each transfer's latency is multiplied by a lognormal factor with
  mean 1. The schedulers' view keeps nominal transfer times.

The compiled kernels are in :mod:`hybridsched.sim.fault_kernels`; node events
are rare and handled here, in Python.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field, replace

import numpy as np

from hybridsched.errors import ConfigError, PolicyError, SimulationError
from hybridsched.model import Cluster, Workload
from hybridsched.sim.engine import Engine, SimConfig, SimResult, _node_indices
from hybridsched.sim.fault_kernels import (
    K_ACTIVE,
    P_DONE,
    P_REJECTED,
    FaultArrays,
    advance,
    check_and_commit,
    compile_faults,
    node_down,
    node_up,
)
from hybridsched.sim.options import (
    WORK_EST_COLUMN,
    SimOptions,
    estimate_work,
    lognormal_factors,
    option_seeds,
)
from hybridsched.sim.state import compile_state
from hybridsched.sim.view import ClusterView, Policy, TaskBatch

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------
# the engine
# ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class OptionsResult(SimResult):
    """A run with options: per-task results, summary, and what the failures did."""

    outages: dict[str, np.ndarray] = field(default_factory=dict)
    """Outages that happened: node (name), node_index, down_s, up_s (inf: never back)."""
    attempts: dict[str, np.ndarray] = field(default_factory=dict)
    """Interrupted attempts: task_id, node (name), node_index, decision_s, start_s
    (NaN when it had not started), end_s (the failure)."""


class OptionsEngine(Engine):
    """The engine with failures, shared links and latency jitter (see the module doc).

    Same surface as :class:`Engine`; the policy is always called through ``assign``
    (``fused`` is off).
    Batches hold the tasks decided at one instant: new arrivals and tasks sent
    back by a failure, in decision order (arrival, then task_id); with
    ``decision_interval = 0`` one task at a time.

    Args:
        cluster, workload, config: as for :class:`Engine` (``config.work_estimate``
            carries estimate noise).
        options: the options; estimate noise must already be in ``config``.
        seed: seed of the option randomness (generated outages, jitter), see
            :func:`~hybridsched.sim.options.option_seeds`.
    """

    fused = False

    def __init__(
        self,
        cluster: Cluster,
        workload: Workload,
        config: SimConfig | None = None,
        options: SimOptions | None = None,
        *,
        seed: int | None = 0,
    ) -> None:
        super().__init__(cluster, workload, config)
        options = SimOptions() if options is None else options
        self.options = options
        n = self.n_tasks
        n_nodes = cluster.n_nodes
        # memory is masked (-1) while a node is down, so it needs its own copy
        self.state = self.state._replace(memory=self.state.memory.copy())
        st = self.state
        for a in (st.decision, st.ready, st.dur, st.start, st.finish):
            a.fill(np.nan)  # a rejected task keeps them: it never ran
        self.cstate = compile_state(self.state)
        self.farrays = FaultArrays(
            ev_time=np.zeros(n + n_nodes),
            hp_id=np.zeros(n + n_nodes, dtype=np.int64),
            hp_pos=np.full(n + n_nodes, -1, dtype=np.int64),
            phase=np.zeros(n, dtype=np.int64),
            rem=np.zeros(n),
            lnext=np.full(n, -1, dtype=np.int64),
            lprev=np.full(n, -1, dtype=np.int64),
            lhead=np.full(n_nodes, -1, dtype=np.int64),
            lcount=np.zeros(n_nodes, dtype=np.int64),
            lrate=np.zeros(n_nodes),
            lt=np.zeros(n_nodes),
            down=np.zeros(n_nodes, dtype=np.bool_),
            mem=np.array(cluster.memory_mb, dtype=np.float64),
            wasted=np.zeros(n_nodes),
            counters=np.array([0, 0, int(bool(options.shared_links)), 0], dtype=np.int64),
        )
        self.fstate = compile_faults(self.farrays)
        if self.config.work_estimate is not None:
            self.hide_true_work()
        self._unavailable = self.farrays.down.view()
        self._unavailable.setflags(write=False)

        seeds = option_seeds(seed)
        self._jitter_rng = np.random.default_rng(seeds.jitter)
        self._jit_buf = np.zeros(0)
        self._jit_pos = 0
        self._perm_down = np.zeros(n_nodes, dtype=bool)
        self._need_max = float(self.state.mem_req.max())
        self._update_bounds()
        self._node_events: list[tuple[float, int, int, int, float]] = []  # t, seq, kind, j, up
        self._seq = 0
        self._mtbf, self._mttr = options.tier_rates(cluster)
        self._fail_rngs = [np.random.default_rng(s) for s in seeds.failures.spawn(n_nodes)]
        t0 = float(self.state.arrival[0])
        if options.failures is not None:
            tr = options.failures
            nodes = tr.node_index(cluster).tolist()
            for j, down, up in zip(nodes, tr.down_s.tolist(), tr.up_s.tolist(), strict=True):
                self._push_node_event(down, 0, j, up)
        else:
            for j in np.flatnonzero(np.isfinite(self._mtbf)).tolist():
                self._schedule_failure(j, t0)

        self._retries = np.zeros(n, dtype=np.int64)
        self._rejected_at = np.full(n, np.nan)
        self._reason: dict[int, str] = {}
        self._pending: list[tuple[float, int]] = []  # (decision time, task) sent back
        self._parked: set[int] = set()  # wait for a node that fits to come back
        self._outages: list[tuple[int, float, float]] = []  # node, down, up
        self._attempts: list[tuple[int, int, float, float, float]] = []
        self._next_arrival = 0  # next arrival batch
        self._todo = np.zeros(0, dtype=np.int64)  # placeable tasks at the current instant
        self._todo_pos = 0
        self._cur = np.zeros(0, dtype=np.int64)  # the open batch
        self._now = -np.inf
        self._over = False
        self._arange = np.arange(n, dtype=np.int64)
        self._ones = np.ones(1 if self.config.decision_interval == 0 else n)

    # --------------------------------------------------------------- failures

    def _push_node_event(self, t: float, kind: int, j: int, up: float = np.inf) -> None:
        heapq.heappush(self._node_events, (t, self._seq, kind, j, up))
        self._seq += 1

    def _schedule_failure(self, j: int, after: float) -> None:
        """Draw node ``j``'s next outage (exponential up and repair times)."""
        rng = self._fail_rngs[j]
        down = after + self._mtbf[j] * rng.standard_exponential()
        up = down + self._mttr[j] * rng.standard_exponential()
        self._push_node_event(down, 0, j, up)

    def _jitter(self, k: int) -> np.ndarray:
        """The next ``k`` latency factors (drawn in blocks: one draw per call is slow)."""
        if self._jit_pos + k > self._jit_buf.size:
            fresh = lognormal_factors(self._jitter_rng, self.options.latency_jitter, max(k, 4096))
            self._jit_buf = np.concatenate([self._jit_buf[self._jit_pos :], fresh])
            self._jit_pos = 0
        out = self._jit_buf[self._jit_pos : self._jit_pos + k]
        self._jit_pos += k
        return out

    def _redecision_time(self, t: float) -> float:
        delta = float(self.config.decision_interval)
        return t if delta == 0 else float(np.ceil(t / delta) * delta)

    def _apply_node_events(self, t: float) -> None:
        """Apply every node event stamped ``t`` (downs and ups), then unpark or reject."""
        st = self.state
        while self._node_events and self._node_events[0][0] == t:
            _, _, kind, j, up = heapq.heappop(self._node_events)
            if kind == 0:
                if up <= t:  # an empty outage (a zero repair time)
                    if self.options.failures is None:
                        self._schedule_failure(j, t)
                    continue
                idx, dec, started = node_down(self.cstate, self.fstate, j, t)
                self._outages.append((j, t, up))
                for i, d, s in zip(idx.tolist(), dec.tolist(), started.tolist(), strict=True):
                    self._attempts.append((i, j, d, s, t))
                    self._retries[i] += 1
                    heapq.heappush(self._pending, (self._redecision_time(t), i))
                if np.isinf(up):
                    self._perm_down[j] = True
                else:
                    self._push_node_event(up, 1, j)
            else:
                node_up(self.cstate, self.fstate, j, t)
                if self.options.failures is None:
                    self._schedule_failure(j, t)
        self._update_bounds()
        if self._parked:
            for i in sorted(self._parked):
                if st.mem_req[i] <= self._up_mem:
                    self._parked.discard(i)
                    heapq.heappush(self._pending, (self._redecision_time(t), i))
                elif st.mem_req[i] > self._ever_mem:
                    self._parked.discard(i)
                    self._reject(i, t)

    def _update_bounds(self) -> None:
        """Largest memory on an up node, and on a node not down for good, MB."""
        mem = self.farrays.mem
        up = mem[~self.farrays.down]
        ever = mem[~self._perm_down]
        self._up_mem = float(up.max()) if up.size else -np.inf
        self._ever_mem = float(ever.max()) if ever.size else -np.inf

    def _reject(self, i: int, t: float) -> None:
        self.farrays.phase[i] = P_REJECTED
        self._rejected_at[i] = t
        need = float(self.state.mem_req[i])
        self._reason[i] = (
            f"no node that is up can ever take it: it needs {need:g} MB and every node with "
            f"that much memory is down for good at {t:g} s"
        )

    def _triage(self, idx: np.ndarray, t: float) -> np.ndarray:
        """The tasks of ``idx`` that an up node can take; park or reject the others."""
        if self._need_max <= self._up_mem:  # every task fits an up node
            return idx
        need = self.state.mem_req[idx]
        ok = need <= self._up_mem
        for i in idx[~ok].tolist():
            if self.state.mem_req[i] <= self._ever_mem:
                self._parked.add(i)
            else:
                self._reject(i, t)
        return idx[ok]

    # ------------------------------------------------------------- stepping

    @property
    def now(self) -> float:
        """The current decision time (``-inf`` before the first, ``inf`` when done), s."""
        return np.inf if self._over else self._now

    @property
    def done(self) -> bool:
        """True once every task is finished, rejected or placed with nothing left to decide."""
        return self._over

    def _busy(self) -> bool:
        return bool(self.farrays.counters[K_ACTIVE] > 0 or self._parked)

    def _next_instant(self) -> bool:
        """Advance to the next instant with tasks to place; False when there is none."""
        dec, starts = self._dec_time, self._batch_start
        inf = np.inf
        while True:
            b = self._next_arrival
            d_arr = float(dec[starts[b]]) if b < self.n_batches else inf
            d = self._pending[0][0] if self._pending else inf
            d = min(d, d_arr)
            tn = self._node_events[0][0] if self._node_events else inf
            if tn <= d and tn < inf and (d < inf or self._busy()):
                advance(self.cstate, self.fstate, tn)
                if d < inf or self._busy():  # else the run ended before this failure
                    self._apply_node_events(tn)
                continue
            if d == inf:
                advance(self.cstate, self.fstate, inf)
                if self._parked:  # pragma: no cover - parked tasks always have an up event
                    raise SimulationError(f"{len(self._parked)} tasks wait for a node forever")
                return False
            advance(self.cstate, self.fstate, d)
            back = []
            while self._pending and self._pending[0][0] == d:
                back.append(heapq.heappop(self._pending)[1])
            if d_arr == d:
                idx = self._arange[starts[b] : starts[b + 1]]
                self._next_arrival += 1
                if back:
                    idx = np.sort(np.concatenate([idx, np.asarray(back, dtype=np.int64)]))
            else:
                idx = np.sort(np.asarray(back, dtype=np.int64))
            idx = self._triage(idx, d)
            if idx.size:
                self._now = d
                self._todo = idx
                self._todo_pos = 0
                return True

    def next_batch(self) -> tuple[TaskBatch, ClusterView] | None:
        """Advance to the next decision and return its undecided tasks and the view.

        Returns the rest of the open batch when it is only partly committed;
        ``None`` when nothing is left to decide.
        """
        if self._over:
            return None
        if self._cur.size == 0:
            if self._todo_pos >= self._todo.size and not self._next_instant():
                self._over = True
                self._batch = self.n_batches
                return None
            if self.config.decision_interval == 0:
                self._cur = self._todo[self._todo_pos : self._todo_pos + 1]
            else:
                self._cur = self._todo[self._todo_pos :]
            self._batch = max(self._batch, 0)
        tasks = self._task_batch(self._cur)
        return tasks, self._view(tasks)

    def _view(self, tasks: TaskBatch) -> ClusterView:
        arrays, handle = self._seen or (self.state, self.cstate)
        down = self._unavailable
        return ClusterView._over(
            arrays,
            handle,
            self._now,
            self.cluster,
            tasks,
            queue=self.config.queue,
            unavailable=down,
        )

    def commit(self, nodes: np.ndarray | list[int] | int) -> None:
        """Assign the next ``len(nodes)`` tasks of the open batch.

        Raises:
            PolicyError: wrong length, an index out of range, a node that is down,
                or a node without memory for its task.
        """
        if self._cur.size == 0:
            raise SimulationError("commit: no open decision; call next_batch() first")
        nodes_arr = _node_indices(nodes, self._cur.size)
        k = nodes_arr.shape[0]
        idx = self._cur[:k]
        factor = self._jitter(k) if self.options.latency_jitter > 0 else self._ones[:k]
        code, q = check_and_commit(self.cstate, self.fstate, idx, nodes_arr, self._now, factor)
        if code == 2:
            raise PolicyError(
                f"task {int(self.state.task_id[idx[q]])}: node "
                f"{self.cluster.node_names[int(nodes_arr[q])]!r} is down at {self._now:g} s; "
                f"the view marks it unavailable"
            )
        if code:
            self._check_assignment(idx, nodes_arr)  # raises with the base engine's message
        self._cur = self._cur[k:]
        self._todo_pos += k

    # --------------------------------------------------------------- running

    def finish(self, policy_name: str = "") -> OptionsResult:
        """Simulate to the end (nothing may be left to decide) and summarise."""
        if self._finished is not None:
            return self._finished  # type: ignore[return-value]
        if not self._over:
            if self._cur.size or self.next_batch() is not None:
                raise SimulationError("finish: tasks are still undecided; commit them first")
        st = self.state
        fa = self.farrays
        inv = np.empty_like(self.order)
        inv[self.order] = np.arange(self.order.shape[0])
        done = fa.phase[inv] == P_DONE
        rejected = fa.phase[inv] == P_REJECTED
        if not np.all(done | rejected):  # pragma: no cover - conservation
            raise SimulationError("finish: some tasks neither finished nor were rejected")
        names = np.asarray(self.cluster.node_names, dtype=object)
        node = st.node[inv]
        reason = np.full(len(inv), "", dtype=object)
        for i, text in self._reason.items():
            reason[int(self.order[i])] = text
        tasks = self._task_columns(inv, np.where(node >= 0, names[np.maximum(node, 0)], None))
        tasks["status"] = np.where(done, "finished", "rejected").astype(object)
        tasks["retries"] = self._retries[inv]
        tasks["rejected_s"] = self._rejected_at[inv]
        tasks["reason"] = reason
        if self.config.work_estimate is not None:
            tasks["work_est_gi"] = st.work_est[inv]
        out = np.asarray(self._outages, dtype=np.float64).reshape(-1, 3)
        onode = out[:, 0].astype(np.int64)
        summary = self._summary(
            inv,
            tasks,
            policy_name,
            done=done,
            retries=self._retries,
            wasted=fa.wasted,
            outage_node=onode,
            outage_down=out[:, 1],
            outage_up=out[:, 2],
        )
        att = np.asarray([a[:2] for a in self._attempts], dtype=np.int64).reshape(-1, 2)
        att_t = np.asarray([a[2:] for a in self._attempts], dtype=np.float64).reshape(-1, 3)
        self._finished = OptionsResult(
            tasks=tasks,
            summary=summary,
            outages={
                "node": names[onode],
                "node_index": onode,
                "down_s": out[:, 1],
                "up_s": out[:, 2],
            },
            attempts={
                "task_id": st.task_id[att[:, 0]],
                "node": names[att[:, 1]],
                "node_index": att[:, 1],
                "decision_s": att_t[:, 0],
                "start_s": att_t[:, 1],
                "end_s": att_t[:, 2],
            },
        )
        return self._finished  # type: ignore[return-value]


def _with_option_columns(result: SimResult, options: SimOptions) -> SimResult:
    """Add the columns and keys of a run with options to a base-engine result."""
    tasks = dict(result.tasks)
    n = tasks["task_id"].shape[0]
    tasks["status"] = np.full(n, "finished", dtype=object)
    tasks["retries"] = np.zeros(n, dtype=np.int64)
    tasks["rejected_s"] = np.full(n, np.nan)
    tasks["reason"] = np.full(n, "", dtype=object)
    summary = dict(result.summary)
    summary.update(
        finished=n, rejected=0, retries=0, availability=1.0, outages=0, wasted_core_s=0.0
    )
    return OptionsResult(tasks=tasks, summary=summary)


def simulate_options(
    cluster: Cluster,
    workload: Workload,
    policy: Policy,
    config: SimConfig,
    options: SimOptions,
    seed: int | None = 0,
) -> SimResult:
    """Simulate with options on (see the module doc); :func:`hybridsched.sim.simulate` calls it.

    The policy draws from ``numpy.random.default_rng(seed)`` as in the base model;
    the options draw from independent children of ``SeedSequence(seed)``.

    Raises:
        ConfigError: ``config.work_estimate`` set together with ``estimate_cv``.
    """
    seeds = option_seeds(seed)
    source = "exact"
    if options.estimates_on:
        if config.work_estimate is not None:
            raise ConfigError(
                "options.estimate_cv: config.work_estimate is set already; use one or the other"
            )
        cv = float(options.estimate_cv or 0.0)
        est, source = estimate_work(workload, cv, np.random.default_rng(seeds.estimates))
        if WORK_EST_COLUMN in workload.extra and cv > 0:
            log.warning("estimate_cv=%g is not used: the workload has %s", cv, WORK_EST_COLUMN)
        config = replace(config, work_estimate=est)
    if options.needs_engine:
        engine: Engine = OptionsEngine(cluster, workload, config, options, seed=seed)
        result = engine.run(policy, np.random.default_rng(seed))
    else:
        # estimate noise alone: the base engine (fused loop included), views hide true work
        engine = Engine(cluster, workload, config)
        engine.hide_true_work()
        result = _with_option_columns(engine.run(policy, np.random.default_rng(seed)), options)
        inv = np.empty_like(engine.order)
        inv[engine.order] = np.arange(engine.order.shape[0])
        result.tasks["work_est_gi"] = engine.state.work_est[inv]
    result.summary["estimates"] = source
    return result
