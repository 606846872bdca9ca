"""The engine with options: node failures, estimate noise, shared links, jitter, conditions.

:func:`hybridsched.sim.simulate` with ``options=`` is the entry point; with every
option off it is the base model (the fused compiled loop).
Estimate noise alone runs the base engine too, with
:attr:`SimConfig.work_estimate`. Failures and the network need
:class:`OptionsEngine`: :class:`~hybridsched.sim.engine.Engine`'s own loop with
a :class:`FaultKernel` (indexed event heap, shared links, jitter) and a
:class:`FailureHook` (node events, re-decisions, parking, rejections, the
retry limit) plugged in; it always calls the policy's ``assign``, batch by
batch.

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
* **Conditions** (:class:`ConditionsHook`). Windows multiply a node's true
  speed, latency and bandwidth; running tasks continue at the new speed, a
  transfer takes the values of its decision. The view keeps nominal values.

The compiled kernels are in :mod:`hybridsched.sim.fault_kernels`; node events
are rare and handled here, in Python.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hybridsched.errors import ConfigError, PolicyError, SimulationError
from hybridsched.model import Cluster, Workload
from hybridsched.sim.engine import Engine, EngineHooks, Kernel, SimConfig, SimResult
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
    running_ratio,
    set_bandwidth,
    set_speed,
)
from hybridsched.sim.observations import NodeObservations, believe
from hybridsched.sim.options import (
    WORK_EST_COLUMN,
    SimOptions,
    estimate_work,
    lognormal_factors,
    option_seeds,
)
from hybridsched.sim.state import compile_state
from hybridsched.sim.view import Policy

log = logging.getLogger(__name__)

RETRY_LIMIT = "retry limit"
"""Reason of a task rejected after more than ``SimOptions.max_retries`` interruptions."""

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


class FaultKernel(Kernel):
    """The kernel of the options: an indexed event heap, shared links, jitter, node state.

    Task events go through :mod:`hybridsched.sim.fault_kernels` (each task has
    at most one live event, so a failure can withdraw it); transfers share
    their node's ingress link when ``options.shared_links`` is on, and each
    latency is multiplied by a lognormal factor when ``options.latency_jitter``
    is on. Nodes can be taken down and brought back (:meth:`node_down`,
    :meth:`node_up`), which :class:`FailureHook` does.

    Args:
        engine: the engine (its state is prepared for this kernel here).
        options: the options.
        jitter_seed: seed of the latency factors.
    """

    def __init__(self, engine: Engine, options: SimOptions, jitter_seed: Any) -> None:
        super().__init__(engine)
        self.options = options
        n = engine.n_tasks
        n_nodes = engine.cluster.n_nodes
        # the estimates of speed, latency and bandwidth may follow observations: each
        # needs its own copy
        st = engine.state
        engine.state = st._replace(
            speed=st.speed.copy(),
            bandwidth=st.bandwidth.copy(),
            latency=st.latency.copy(),
        )
        st = engine.state
        for a in (st.decision, st.ready, st.dur, st.start, st.finish):
            a.fill(np.nan)  # a rejected task keeps them: it never ran
        engine.cstate = compile_state(engine.state)
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
            wasted=np.zeros(n_nodes),
            # the truth starts nominal; a ConditionsHook changes it
            speed=np.array(engine.cluster.speed, dtype=np.float64),
            bandwidth=np.array(engine.cluster.bandwidth_mb_s, dtype=np.float64),
            latency=np.array(engine.cluster.latency_s, dtype=np.float64, order="C"),
            speed0=np.array(engine.cluster.speed, dtype=np.float64),
            bw0=np.array(engine.cluster.bandwidth_mb_s, dtype=np.float64),
            lat0=np.array(engine.cluster.latency_s, dtype=np.float64, order="C"),
            ready0=np.zeros(n),
            q_est=np.zeros(n),
            obs=np.zeros((n_nodes, 6)),
            obs_n=np.zeros((n_nodes, 2), dtype=np.int64),
            counters=np.array([0, 0, int(bool(options.shared_links)), 0], dtype=np.int64),
        )
        self.fstate = compile_faults(self.farrays)
        self._jitter_rng = np.random.default_rng(jitter_seed)
        self._jit_buf = np.zeros(0)
        self._jit_pos = 0
        self._ones = np.ones(1 if engine.config.decision_interval == 0 else n)

    @property
    def unavailable(self) -> np.ndarray:  # type: ignore[override]
        """The nodes that are down now (``~state.up``), for views."""
        return ~self.engine.state.up

    def observations(self, t: float) -> NodeObservations:  # type: ignore[override]
        """What completed and running tasks revealed per node, as of ``t``.

        The decayed means are the kernel's (updated at each completion and data
        arrival); the running ratio is computed here from the tasks on the cores.
        """
        fa = self.farrays
        seen = fa.obs_n > 0
        return NodeObservations(
            exec_ratio=np.where(seen[:, 0], fa.obs[:, 0], np.nan),
            exec_weight=fa.obs[:, 1],
            exec_time_s=np.where(seen[:, 0], fa.obs[:, 2], -np.inf),
            exec_count=fa.obs_n[:, 0],
            transfer_ratio=np.where(seen[:, 1], fa.obs[:, 3], np.nan),
            transfer_weight=fa.obs[:, 4],
            transfer_time_s=np.where(seen[:, 1], fa.obs[:, 5], -np.inf),
            transfer_count=fa.obs_n[:, 1],
            running_ratio=running_ratio(self.engine.cstate, self.fstate, t),
        )

    def advance(self, until: float) -> None:
        """Simulate the task events of every instant before ``until``."""
        advance(self.engine.cstate, self.fstate, until)

    def active(self) -> bool:
        """True while tasks are on nodes (assigned, not finished)."""
        return bool(self.farrays.counters[K_ACTIVE] > 0)

    def _jitter(self, k: int) -> np.ndarray:
        """The next ``k`` latency factors (drawn in blocks: one draw per call is slow)."""
        if self._jit_pos + k > self._jit_buf.size:
            fresh = lognormal_factors(self._jitter_rng, self.options.latency_jitter, max(k, 4096))
            self._jit_buf = np.concatenate([self._jit_buf[self._jit_pos :], fresh])
            self._jit_pos = 0
        out = self._jit_buf[self._jit_pos : self._jit_pos + k]
        self._jit_pos += k
        return out

    def commit(self, idx: np.ndarray, nodes: np.ndarray, t: float) -> None:
        """Assign tasks ``idx`` to ``nodes`` at ``t``, or raise and change nothing.

        Raises:
            PolicyError: an index out of range, a node that is down, or a node
                without memory for its task.
        """
        k = idx.shape[0]
        factor = self._jitter(k) if self.options.latency_jitter > 0 else self._ones[:k]
        e = self.engine
        code, q = check_and_commit(e.cstate, self.fstate, idx, nodes, t, factor)
        if code == 2:
            raise PolicyError(
                f"task {int(e.state.task_id[idx[q]])}: node "
                f"{e.cluster.node_names[int(nodes[q])]!r} is down at {t:g} s; "
                f"the view marks it unavailable"
            )
        if code:
            e._check_assignment(idx, nodes)  # raises with the base engine's message

    def node_down(self, j: int, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Node ``j`` fails at ``t``: its tasks are killed or displaced (see fault_kernels)."""
        return node_down(self.engine.cstate, self.fstate, j, t)

    def node_up(self, j: int, t: float) -> None:
        """Node ``j`` is back at ``t``, idle."""
        node_up(self.engine.cstate, self.fstate, j, t)

    def set_conditions(
        self, j: int, t: float, speed: float, latency: np.ndarray, bandwidth: float
    ) -> int:
        """Node ``j``'s true speed, latency (per region) and bandwidth from ``t`` on.

        Returns:
            the number of running tasks re-timed by a change of speed.
        """
        fa = self.farrays
        fa.latency[j] = latency
        set_bandwidth(self.engine.cstate, self.fstate, j, t, bandwidth)
        return int(set_speed(self.engine.cstate, self.fstate, j, t, speed))


class ObservationHook(EngineHooks):
    """Estimates that follow observations (``SimOptions.estimates = "observed"``).

    Before each decision instant it writes the observed estimates
    (:func:`~hybridsched.sim.view.believe`) into the state's speed, latency and
    bandwidth, which the view, its accessors and compiled policies read.
    """

    def __init__(self, kernel: FaultKernel) -> None:
        self.kernel = kernel

    def triage(self, idx: np.ndarray, t: float) -> np.ndarray:
        """Update the estimates to ``t``; every task is decided."""
        e = self.engine
        believe(e.state, e.cluster, self.kernel.observations(t), t)
        e.beliefs_changed()
        return idx


class ConditionsHook(EngineHooks):
    """Windows of node speed, latency and bandwidth on a :class:`FaultKernel`.

    Its events are the change points of the windows
    (:meth:`~hybridsched.sim.conditions.Conditions.change_points`). At each one
    the node's true values become nominal x the multipliers in force: a task
    running there continues its remaining work at the new speed, a task started
    later runs at the speed of its start, a transfer takes the latency and
    bandwidth of its decision (with shared links the link follows the
    bandwidth). Schedulers keep seeing the nominal values.

    Args:
        kernel: the engine's kernel.
        conditions: the windows, built for the engine's cluster.
    """

    def __init__(self, kernel: FaultKernel, conditions: Any) -> None:
        self.kernel = kernel
        self.conditions = conditions

    def attach(self, engine: Engine) -> None:
        """Check the cluster and lay out the change points."""
        super().attach(engine)
        self.conditions.check(engine.cluster)
        self._t, self._node, self._factors = self.conditions.change_points()
        self._k = 0
        self.changes = 0
        """Change points applied during the run."""
        self.retimed = 0
        """Running tasks re-timed by a change of speed."""

    def next_event_time(self) -> float:
        """The next change point, s."""
        return float(self._t[self._k]) if self._k < self._t.shape[0] else np.inf

    def before_instant(self, t: float) -> None:
        """Apply every change point stamped ``t``."""
        c = self.engine.cluster
        while self._k < self._t.shape[0] and self._t[self._k] == t:
            j = int(self._node[self._k])
            fs, fl, fb = self._factors[self._k].tolist()
            self.retimed += self.kernel.set_conditions(
                j, t, c.speed[j] * fs, c.latency_s[j] * fl, c.bandwidth_mb_s[j] * fb
            )
            self.changes += 1
            self._k += 1

    def result(self, result: SimResult) -> SimResult:
        """The summary gains ``condition_windows``, ``condition_changes``, ``retimed_tasks``."""
        result.summary["condition_windows"] = len(self.conditions)
        result.summary["condition_changes"] = self.changes
        result.summary["retimed_tasks"] = self.retimed
        return result


class FailureHook(EngineHooks):
    """Node failures (a trace, or MTBF/MTTR per tier) on a :class:`FaultKernel`.

    Its events are node downs and ups. A task killed or displaced goes back to
    the scheduler (:meth:`Engine.send_back`) unless it passed
    ``options.max_retries``; a task no up node can take waits (parked) for one
    to come back, or is rejected when none ever will.

    Args:
        kernel: the engine's kernel.
        options: the options (``failures`` or ``mtbf_s``/``mttr_s``, ``max_retries``).
        failure_seed: seed of the generated outages (one child per node).
    """

    def __init__(self, kernel: FaultKernel, options: SimOptions, failure_seed: Any) -> None:
        self.kernel = kernel
        self.options = options
        self._failure_seed = failure_seed

    def attach(self, engine: Engine) -> None:
        """Set up the outages and the per-task records."""
        super().attach(engine)
        cluster = engine.cluster
        n = engine.n_tasks
        n_nodes = cluster.n_nodes
        options = self.options
        self._perm_down = np.zeros(n_nodes, dtype=bool)
        self._need_max = float(engine.state.mem_req.max())
        self._update_bounds()
        self._node_events: list[tuple[float, int, int, int, float]] = []  # t, seq, kind, j, up
        self._seq = 0
        self._mtbf, self._mttr = options.tier_rates(cluster)
        self._fail_rngs = [np.random.default_rng(s) for s in self._failure_seed.spawn(n_nodes)]
        t0 = float(engine.state.arrival[0])
        if options.failures is not None:
            tr = options.failures
            nodes = tr.node_index(cluster).tolist()
            for j, down, up in zip(nodes, tr.down_s.tolist(), tr.up_s.tolist(), strict=True):
                self._push_node_event(down, 0, j, up)
        else:
            for j in np.flatnonzero(np.isfinite(self._mtbf)).tolist():
                self._schedule_failure(j, t0)
        self.retries = np.zeros(n, dtype=np.int64)
        """Interruptions per task (decision order)."""
        self.rejected_at = np.full(n, np.nan)
        self.reason: dict[int, str] = {}
        self._parked: set[int] = set()  # wait for a node that fits to come back
        self.outages: list[tuple[int, float, float]] = []  # node, down, up
        self.attempts: list[tuple[int, int, float, float, float]] = []

    def _push_node_event(self, t: float, kind: int, j: int, up: float = np.inf) -> None:
        heapq.heappush(self._node_events, (t, self._seq, kind, j, up))
        self._seq += 1

    def _schedule_failure(self, j: int, after: float) -> None:
        """Draw node ``j``'s next outage (exponential up and repair times)."""
        rng = self._fail_rngs[j]
        down = after + self._mtbf[j] * rng.standard_exponential()
        up = down + self._mttr[j] * rng.standard_exponential()
        self._push_node_event(down, 0, j, up)

    def next_event_time(self) -> float:
        """The next node down or up, s."""
        return self._node_events[0][0] if self._node_events else np.inf

    def holds_tasks(self) -> bool:
        """Parked tasks wait for a node to come back."""
        return bool(self._parked)

    def before_instant(self, t: float) -> None:
        """Apply every node event stamped ``t`` (downs and ups), then unpark or reject."""
        engine = self.engine
        st = engine.state
        while self._node_events and self._node_events[0][0] == t:
            _, _, kind, j, up = heapq.heappop(self._node_events)
            if kind == 0:
                if up <= t:  # an empty outage (a zero repair time)
                    if self.options.failures is None:
                        self._schedule_failure(j, t)
                    continue
                idx, dec, started = self.kernel.node_down(j, t)
                self.outages.append((j, t, up))
                limit = self.options.max_retries
                for i, d, s in zip(idx.tolist(), dec.tolist(), started.tolist(), strict=True):
                    self.attempts.append((i, j, d, s, t))
                    self.retries[i] += 1
                    if self.retries[i] > limit:
                        self._reject(
                            i,
                            t,
                            f"{RETRY_LIMIT}: interrupted by failures {self.retries[i]} times, "
                            f"more than max_retries = {limit}",
                        )
                    else:
                        engine.send_back(i, t)
                if np.isinf(up):
                    self._perm_down[j] = True
                else:
                    self._push_node_event(up, 1, j)
            else:
                self.kernel.node_up(j, t)
                if self.options.failures is None:
                    self._schedule_failure(j, t)
        self._update_bounds()
        if self._parked:
            for i in sorted(self._parked):
                if st.mem_req[i] <= self._up_mem:
                    self._parked.discard(i)
                    engine.send_back(i, t)
                elif st.mem_req[i] > self._ever_mem:
                    self._parked.discard(i)
                    self._reject(i, t)

    def _update_bounds(self) -> None:
        """Largest memory on an up node, and on a node not down for good, MB."""
        st = self.engine.state
        up = st.memory[st.up]
        ever = st.memory[~self._perm_down]
        self._up_mem = float(up.max()) if up.size else -np.inf
        self._ever_mem = float(ever.max()) if ever.size else -np.inf

    def _reject(self, i: int, t: float, reason: str | None = None) -> None:
        self.kernel.farrays.phase[i] = P_REJECTED
        self.rejected_at[i] = t
        need = float(self.engine.state.mem_req[i])
        self.reason[i] = reason or (
            f"no node that is up can ever take it: it needs {need:g} MB and every node with "
            f"that much memory is down for good at {t:g} s"
        )

    def triage(self, idx: np.ndarray, t: float) -> np.ndarray:
        """The tasks of ``idx`` that an up node can take; park or reject the others."""
        if self._need_max <= self._up_mem:  # every task fits an up node
            return idx
        mem_req = self.engine.state.mem_req
        ok = mem_req[idx] <= self._up_mem
        for i in idx[~ok].tolist():
            if mem_req[i] <= self._ever_mem:
                self._parked.add(i)
            else:
                self._reject(i, t)
        return idx[ok]

    # ------------------------------------------------------------- results

    def finish_columns(self, inv: Any, tasks: dict[str, np.ndarray]) -> None:
        """Node (None when rejected), status, retries, rejected_s, reason, work_est_gi."""
        engine = self.engine
        st = engine.state
        phase = self.kernel.farrays.phase[inv]
        done = phase == P_DONE
        if not np.all(done | (phase == P_REJECTED)):  # pragma: no cover - conservation
            raise SimulationError("finish: some tasks neither finished nor were rejected")
        names = np.asarray(engine.cluster.node_names, dtype=object)
        node = tasks["node_index"]
        reason = np.full(node.shape[0], "", dtype=object)
        for i, text in self.reason.items():
            reason[int(engine.order[i])] = text
        tasks["node"] = np.where(node >= 0, names[np.maximum(node, 0)], None)
        tasks["status"] = np.where(done, "finished", "rejected").astype(object)
        tasks["retries"] = self.retries[inv]
        tasks["rejected_s"] = self.rejected_at[inv]
        tasks["reason"] = reason
        if engine.config.work_estimate is not None:
            tasks["work_est_gi"] = st.work_est[inv]
        self._done = done

    def summary_extra(self, inv: Any, tasks: dict[str, np.ndarray]) -> dict[str, Any]:
        """Finished tasks, retries, wasted core-seconds and the outages, for the summary."""
        out = np.asarray(self.outages, dtype=np.float64).reshape(-1, 3)
        return {
            "done": self._done,
            "retries": self.retries,
            "wasted": self.kernel.farrays.wasted,
            "outage_node": out[:, 0].astype(np.int64),
            "outage_down": out[:, 1],
            "outage_up": out[:, 2],
        }

    def result(self, result: SimResult) -> OptionsResult:
        """The result with the outages and the interrupted attempts."""
        engine = self.engine
        names = np.asarray(engine.cluster.node_names, dtype=object)
        out = np.asarray(self.outages, dtype=np.float64).reshape(-1, 3)
        onode = out[:, 0].astype(np.int64)
        att = np.asarray([a[:2] for a in self.attempts], dtype=np.int64).reshape(-1, 2)
        att_t = np.asarray([a[2:] for a in self.attempts], dtype=np.float64).reshape(-1, 3)
        return OptionsResult(
            tasks=result.tasks,
            summary=result.summary,
            outages={
                "node": names[onode],
                "node_index": onode,
                "down_s": out[:, 1],
                "up_s": out[:, 2],
            },
            attempts={
                "task_id": engine.state.task_id[att[:, 0]],
                "node": names[att[:, 1]],
                "node_index": att[:, 1],
                "decision_s": att_t[:, 0],
                "start_s": att_t[:, 1],
                "end_s": att_t[:, 2],
            },
        )


class OptionsEngine(Engine):
    """The engine with failures, shared links and latency jitter (see the module doc).

    :class:`Engine` itself with a :class:`FaultKernel` and, when failures are
    on, a :class:`FailureHook`: the loop and the surface are the engine's (the
    policy is called through ``assign``, batch by batch).

    Args:
        cluster, workload, config: as for :class:`Engine` (``config.work_estimate``
            carries estimate noise).
        options: the options; estimate noise must already be in ``config``.
        seed: seed of the option randomness (generated outages, jitter), see
            :func:`~hybridsched.sim.options.option_seeds`.
    """

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
        self.estimates = options.estimates
        seeds = option_seeds(seed)
        self.kernel = FaultKernel(self, options, seeds.jitter)
        if self.config.work_estimate is not None:
            self.hide_true_work()
        # always on: with no failures it has no events, and it reports the option columns
        self.add_hooks(FailureHook(self.kernel, options, seeds.failures))
        if options.conditions is not None:
            self.add_hooks(ConditionsHook(self.kernel, options.conditions))
        if options.estimates == "observed":
            self.add_hooks(ObservationHook(self.kernel))


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
