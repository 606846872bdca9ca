"""Batched rollouts: many simulator copies stepped in lockstep, one decision each per step.

The Gymnasium environment goes through the engine's Python API one decision at
a time; training needs tens of thousands of decisions per second, so
:class:`VecSim` drives ``E`` engines directly through the compiled kernels:
one call commits every copy's last decision, advances each to its next
decision and writes its pair features
(:func:`~hybridsched.learn.features.pair_features_one`) into one ``(E, N, F)``
array, ready for a single network forward. The schedules are exactly those of
``Engine.next_batch``/``commit``
with the same choices (tested), and every episode ends with ``Engine.finish``.

**Drift.** With ``InstanceSpec.drift`` other than ``none`` (or observed
estimates) a copy is an :class:`~hybridsched.sim.options_engine.OptionsEngine`
whose conditions change during the episode (``random``: drawn per episode with
:func:`~hybridsched.workload.drift.sample_drift` and
:func:`~hybridsched.workload.drift.sample_mix_shift` from the episode seed, for
domain randomization; ``scenario``: the scenario's own conditions, as
:func:`~hybridsched.workload.generate_instance` draws them). Such a copy is an options engine that
:func:`_step_drift` steps on its fault kernels, one compiled call per copy and
decision: change points, task events, observed estimates (written into the
state's speed, latency and bandwidth, as the engine's observation hook does)
and the features, the observed columns included
(:func:`~hybridsched.learn.features.observe_nodes` is their reference). The
order is the engine's, so a copy gives exactly the schedule of
``simulate(..., options=...)`` with the same choices (tested). Failures,
jitter and shared links are not simulated here.

Each copy plays one workload per episode and starts a new one (the next seed)
when it is done. Per-task costs (:class:`~hybridsched.train.objective.Objective`)
are exact once a task has started; for a task still queued when costs are asked
for, its finish is predicted by simulating its node's queue with no further
arrivals.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, typed

from hybridsched.errors import ConfigError
from hybridsched.learn.features import N_FEATURES, node_table, pair_features_one
from hybridsched.sim import Engine, SimConfig, SimResult, core, observations
from hybridsched.sim.fault_kernels import (
    K_ACTIVE,
    advance,
    check_and_commit,
    running_ratio,
    set_bandwidth,
    set_speed,
)
from hybridsched.sim.observations import ESTIMATES
from hybridsched.sim.options_engine import ConditionsHook
from hybridsched.train.objective import Objective
from hybridsched.workload import Scenario, generate, generate_instance, generate_random_drift

DRIFTS = ("none", "scenario", "random")
"""What changes during an episode: nothing (the base model), the scenario's own
conditions, or conditions and a task-mix shift drawn per episode."""


@dataclass(frozen=True)
class InstanceSpec:
    """The instances an environment draws: a scenario at a load, and run options."""

    scenario: str | Scenario = "iot-default"
    """Scenario preset name (or a :class:`~hybridsched.workload.Scenario`)."""
    load: float = 0.8
    """Offered work / cluster capacity."""
    n_tasks: int = 2000
    """Tasks per episode (one workload)."""
    decision_interval: float = 0.0
    """Batching interval, s; 0 decides each task at its arrival."""
    queue: str = "fifo"
    """Queue discipline at the nodes: fifo or priority."""
    drift: str = "none"
    """What changes during an episode (:data:`DRIFTS`)."""
    estimates: str = "nominal"
    """The view's estimates: ``nominal`` or ``observed`` (docs/MODEL.md 12.1)."""

    def __post_init__(self) -> None:
        if self.drift not in DRIFTS:
            raise ConfigError(f"drift: must be one of {', '.join(DRIFTS)}, got {self.drift!r}")
        if self.estimates not in ESTIMATES:
            raise ConfigError(
                f"estimates: must be one of {', '.join(ESTIMATES)}, got {self.estimates!r}"
            )

    @property
    def compiled(self) -> bool:
        """True when episodes run on the base model (the compiled lockstep)."""
        return self.drift == "none" and self.estimates == "nominal"

    def build(self, seed: int) -> Engine:
        """A fresh engine on the instance drawn from ``seed``."""
        config = SimConfig(decision_interval=self.decision_interval, queue=self.queue)
        if self.compiled:
            cluster, workload = generate(self.scenario, self.n_tasks, self.load, int(seed))
            return Engine(cluster, workload, config)
        from hybridsched.sim.conditions import Conditions
        from hybridsched.sim.options import SimOptions
        from hybridsched.sim.options_engine import OptionsEngine

        draw = generate_random_drift if self.drift == "random" else generate_instance
        inst = draw(self.scenario, self.n_tasks, self.load, int(seed))
        cluster, workload, frame = inst.cluster, inst.workload, inst.conditions
        cond = None if frame is None else Conditions.from_frame(frame, cluster, "<drift>")
        options = SimOptions(conditions=cond, estimates=self.estimates)
        return OptionsEngine(cluster, workload, config, options, seed=int(seed))


@njit(cache=True)
def _step_all(states, decs, statics, ks, actions, act, out, mask, best):
    """Commit ``actions`` (where ``act``), then observe each copy's next decision."""
    for e in range(len(states)):
        st = states[e]
        dec = decs[e]
        k = ks[e]
        if act[e]:
            core.commit(st, k, actions[e], dec[k])
            k += 1
            ks[e] = k
        if k < dec.shape[0]:
            d = dec[k]
            core.advance(st, d)
            best[e] = pair_features_one(
                st, k, d, st.proj_min, st.queued_work, st.recent, st.recent_t, statics[e],
                out[e], mask[e],
            )  # fmt: skip


@njit(cache=True)
def predict_unstarted(st, d, finish):
    """Write into ``finish`` the predicted finish of every assigned, unstarted task.

    Simulates each node's queue from time ``d`` (the engine advanced to ``d``)
    with the true durations and no further arrivals.
    """
    for j in range(st.cores.shape[0]):
        m = st.n_queued[j]
        if m == 0:
            continue
        idx, ready, k0, k1, tid, dur = core.queue_arrays(m)
        core.gather_queue(st, j, 0, idx, ready, k0, k1, tid, dur, core.DUR_BOOKED)
        cf = np.empty(st.cores[j])
        for s in range(st.cores[j]):
            ti = st.slot_task[j, s]
            cf[s] = st.finish[ti] if ti >= 0 else d
        start = core.simulate_node(d, cf, ready, k0, k1, tid, dur)
        for q in range(m):
            finish[idx[q]] = start[q] + dur[q]


_shrunk1 = njit(cache=True)(observations.shrunk_factor)
"""One node's observed factor, compiled (the simulator's own formula)."""


@njit(cache=True)
def _conditions_until(st, fs, t, inclusive, cp_t, cp_node, cp_f, cp):
    """Apply the change points before ``t`` (at ``t`` too when ``inclusive``), as
    :class:`~hybridsched.sim.options_engine.ConditionsHook` does; after the last
    decision (``t`` = inf) only while tasks are on nodes."""
    while cp[0] < cp_t.shape[0]:
        tn = cp_t[cp[0]]
        if tn > t or (tn == t and not inclusive):
            return
        if t == np.inf and fs.counters[K_ACTIVE] <= 0:
            return
        advance(st, fs, tn)
        if t == np.inf and fs.counters[K_ACTIVE] <= 0:
            return
        while cp[0] < cp_t.shape[0] and cp_t[cp[0]] == tn:
            q = cp[0]
            j = cp_node[q]
            fs.latency[j] = fs.lat0[j] * cp_f[q, 1]
            set_bandwidth(st, fs, j, tn, fs.bw0[j] * cp_f[q, 2])
            cp[1] += set_speed(st, fs, j, tn, fs.speed0[j] * cp_f[q, 0])
            cp[0] += 1


@njit(cache=True)
def _step_drift(
    st, fs, dec, k, act, node, observed, cp_t, cp_node, cp_f, cp, static, out, mask, one
):
    """One copy on the fault kernels: commit task ``k - 1``'s node (``act``), then
    advance to decision ``k`` (change points, task events, observed estimates) and
    write its features. The engine's order: :meth:`Engine._next_instant` with a
    :class:`ConditionsHook` and an :class:`ObservationHook`.

    Returns:
        ``(k, MCT's node)``; -1 when the episode is fully decided.
    """
    if act:
        idx = np.full(1, k, dtype=np.int64)
        code, _ = check_and_commit(st, fs, idx, np.full(1, node, dtype=np.int64), dec[k], one)
        if code:
            raise ValueError("infeasible node")
        k += 1
    if k >= dec.shape[0]:
        _conditions_until(st, fs, np.inf, True, cp_t, cp_node, cp_f, cp)
        return k, -1
    d = dec[k]
    _conditions_until(st, fs, d, True, cp_t, cp_node, cp_f, cp)
    advance(st, fs, d)
    rr = running_ratio(st, fs, d)
    for j in range(st.cores.shape[0]):
        fe = max(_shrunk1(fs.obs[j, 0], fs.obs[j, 1], fs.obs[j, 2], fs.obs_n[j, 0], d), rr[j])
        fx = _shrunk1(fs.obs[j, 3], fs.obs[j, 4], fs.obs[j, 5], fs.obs_n[j, 1], d)
        if observed:
            st.speed[j] = fs.speed0[j] / fe
            st.bandwidth[j] = fs.bw0[j] / fx
            st.latency[j] = fs.lat0[j] * fx
        static[j, 4] = np.log(fe)
        static[j, 5] = np.log(fx)
        static[j, 6] = rr[j] / (1.0 + rr[j])
    best = pair_features_one(
        st, k, d, st.proj_min, st.queued_work, st.recent, st.recent_t, static, out, mask
    )
    return k, best


class _Copy:
    """One simulator copy: its engine and the episode it plays."""

    def __init__(self, engine: Engine, episode: int, seed: int) -> None:
        self.engine = engine
        self.episode = episode
        self.seed = seed
        self.dec = np.ascontiguousarray(engine.batch_bounds()[0])
        self.static = node_table(engine.cluster)
        options = getattr(engine, "options", None)
        if options is None:
            return
        # the copy runs on the fault kernels (see _step_drift); no failures, jitter, links
        cond = options.conditions
        if cond is None:
            cond_t, cond_node, cond_f = np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 3))
        else:
            cond_t, cond_node, cond_f = cond.change_points()
        self.cp = (cond_t, cond_node, np.ascontiguousarray(cond_f), np.zeros(2, np.int64))
        self.observed = options.estimates == "observed"
        self.one = np.ones(1)

    def step(self, k: int, act: bool, node: int, out: np.ndarray, mask: np.ndarray) -> tuple:
        """:func:`_step_drift` on this copy: ``(k, MCT's node)``."""
        e = self.engine
        return _step_drift(
            e.cstate, e.kernel.fstate, self.dec, k, act, node, self.observed, *self.cp,
            self.static, out, mask, self.one,
        )  # fmt: skip

    def finish(self) -> SimResult:
        """The run's result once every decision was stepped here."""
        e = self.engine
        if not self.spec_compiled:
            # the engine did not run its own loop: mark it over, report the conditions
            e._over = True
            e._next_arrival = e.n_batches
            for h in e.hooks:
                if isinstance(h, ConditionsHook):
                    h.changes = int(self.cp[3][0])
                    h.retimed = int(self.cp[3][1])
        return e.finish(policy_name="rl")

    @property
    def spec_compiled(self) -> bool:
        """True on the base model (no options)."""
        return getattr(self.engine, "options", None) is None


class VecSim:
    """``E`` simulator copies stepped in lockstep (see the module docstring).

    Args:
        spec: the instances to draw.
        n_envs: number of copies ``E``.
        seeds: an iterator of episode seeds; each copy takes the next one when it
            starts an episode.
        objective: the cost weights (for :meth:`costs`).
        restart: start a new episode when one ends (training); without it a
            finished copy stays idle (evaluation on a fixed list of seeds).
    """

    def __init__(
        self,
        spec: InstanceSpec,
        n_envs: int,
        seeds: Iterator[int],
        objective: Objective | None = None,
        *,
        restart: bool = True,
    ) -> None:
        if n_envs < 1:
            raise ConfigError(f"n_envs: must be >= 1, got {n_envs}")
        self.spec = spec
        self.objective = objective or Objective()
        self.restart = restart
        self._seeds = seeds
        self._episodes = 0
        self.copies: list[_Copy] = [self._new_copy() for _ in range(n_envs)]
        self.n_nodes = max(c.engine.cluster.n_nodes for c in self.copies)
        e = n_envs
        self.obs = np.zeros((e, self.n_nodes, N_FEATURES), dtype=np.float32)
        """Pair features of each copy's pending decision, ``(E, N, F)``."""
        self.mask = np.zeros((e, self.n_nodes), dtype=np.bool_)
        """Feasible nodes of each pending decision (False for padding and idle copies)."""
        self.best = np.zeros(e, dtype=np.int64)
        """MCT's choice for each pending decision."""
        self.k = np.zeros(e, dtype=np.int64)
        """Decision-order index of each copy's pending task."""
        self.active = np.ones(e, dtype=np.bool_)
        """Copies with a pending decision."""
        self._n = np.array([c.dec.shape[0] for c in self.copies], dtype=np.int64)
        self._states = typed.List([c.engine.cstate for c in self.copies])
        self._decs = typed.List([c.dec for c in self.copies])
        self._statics = typed.List([c.static for c in self.copies])
        self._finished: dict[int, tuple[np.ndarray, dict]] = {}
        self._taken = np.zeros((e, int(self._n.max())), dtype=np.int64)
        """The nodes each copy chose so far in its episode (for :meth:`episode_state`)."""
        self._step(np.zeros(e, dtype=np.int64), np.zeros(e, dtype=np.bool_))

    def episode_state(self) -> dict[str, Any]:
        """Each copy's episode so far, JSON-able: what :meth:`resume` needs to rebuild it."""
        return {
            "seeds": [c.seed for c in self.copies],
            "episodes": [c.episode for c in self.copies],
            "next_episode": self._episodes,
            "taken": [self._taken[i, : self.k[i]].tolist() for i in range(self.n_envs)],
        }

    @classmethod
    def resume(
        cls,
        spec: InstanceSpec,
        seeds: Iterator[int],
        state: Mapping[str, Any],
        objective: Objective | None = None,
    ) -> VecSim:
        """Rebuild copies from :meth:`episode_state` by replaying their decisions.

        The simulator is deterministic: the same seeds and the same decisions
        give the same states, so a resumed run continues exactly where the
        saved one stood. Later episodes draw their seeds from ``seeds``.
        """
        vs = cls(spec, len(state["seeds"]), itertools.chain(state["seeds"], seeds), objective)
        for c, ep in zip(vs.copies, state["episodes"], strict=True):
            c.episode = int(ep)
        vs._episodes = int(state["next_episode"])
        taken = state["taken"]
        depth = max((len(t) for t in taken), default=0)
        plan = np.zeros((vs.n_envs, max(depth, 1)), dtype=np.int64)
        lengths = np.array([len(t) for t in taken], dtype=np.int64)
        for i, t in enumerate(taken):
            plan[i, : len(t)] = t
        for t in range(depth):
            act = lengths > t
            vs._taken[act, t] = plan[act, t]
            vs._step(np.ascontiguousarray(plan[:, t]), act)
        return vs

    @property
    def n_envs(self) -> int:
        """Number of copies ``E``."""
        return len(self.copies)

    def _new_copy(self) -> _Copy:
        seed = int(next(self._seeds))
        engine = self.spec.build(seed)
        self._episodes += 1
        return _Copy(engine, self._episodes - 1, seed)

    def _step(self, actions: np.ndarray, act: np.ndarray) -> None:
        if self.spec.compiled:
            _step_all(
                self._states, self._decs, self._statics, self.k, actions, act, self.obs,
                self.mask, self.best,
            )  # fmt: skip
            return
        for e, c in enumerate(self.copies):
            k, best = c.step(
                int(self.k[e]), bool(act[e]), int(actions[e]), self.obs[e], self.mask[e]
            )
            self.k[e] = k
            if best >= 0:
                self.best[e] = best

    def episode_ids(self) -> np.ndarray:
        """The episode each copy is playing (its last one when idle), ``(E,)``."""
        return np.array([c.episode for c in self.copies], dtype=np.int64)

    def step(self, actions: np.ndarray) -> list[tuple[int, dict]]:
        """Commit one node per active copy and observe the next decisions.

        A copy whose workload is fully decided finishes its episode, then starts
        the next one (new seed; its observation is that episode's first) or,
        without ``restart``, goes idle.

        Returns:
            ``(episode id, summary)`` of each episode that ended in this step.
        """
        actions = np.ascontiguousarray(actions, dtype=np.int64)
        act = self.active.copy()
        rows = np.flatnonzero(act)
        bad = ~self.mask[rows, actions[rows]]
        if bad.any():
            k = int(rows[np.argmax(bad)])
            raise ConfigError(f"copy {k}: node {int(actions[k])} is infeasible or out of range")
        self._taken[rows, self.k[rows]] = actions[rows]
        self._step(actions, act)
        ended = [self._end_episode(int(i)) for i in np.flatnonzero(act & (self.k >= self._n))]
        if ended and self.restart:
            self._step(actions, np.zeros(self.n_envs, dtype=np.bool_))
        return ended

    def _end_episode(self, i: int) -> tuple[int, dict]:
        c = self.copies[i]
        result = c.finish()
        st = c.engine.state
        obj = self.objective
        costs = obj.task_costs(c.engine.cluster, st, st.finish)
        costs[-1] += obj.idle_cost(c.engine.cluster, float(st.arrival[0]), float(st.finish.max()))
        summary = dict(result.summary)
        summary["seed"] = c.seed
        summary["objective"] = float(costs.sum())
        self._finished[c.episode] = (costs, summary)
        self.mask[i] = False
        if not self.restart:
            self.active[i] = False
            return c.episode, summary
        new = self._new_copy()
        if new.engine.cluster.n_nodes > self.n_nodes:
            raise ConfigError(
                f"episode seed {new.seed}: {new.engine.cluster.n_nodes} nodes, more than the "
                f"{self.n_nodes} this batch was built for"
            )
        self.copies[i] = new
        self._states[i] = new.engine.cstate
        self._decs[i] = new.dec
        self._statics[i] = new.static
        self._n[i] = new.dec.shape[0]
        if self._n[i] > self._taken.shape[1]:
            grow = self._n[i] - self._taken.shape[1]
            self._taken = np.pad(self._taken, ((0, 0), (0, grow)))
        self.k[i] = 0
        return c.episode, summary

    def costs(self, episodes: np.ndarray, tasks: np.ndarray) -> np.ndarray:
        """Per-decision costs of the decisions ``(episodes[t, e], tasks[t, e])``.

        Exact for finished episodes and started tasks, predicted for queued ones
        (see :func:`predict_unstarted`). Forgets finished episodes not asked for.
        """
        out = np.zeros(episodes.shape)
        live = {c.episode: i for i, c in enumerate(self.copies)}
        for ep in np.unique(episodes).tolist():
            sel = episodes == ep
            if ep in self._finished:
                out[sel] = self._finished[ep][0][tasks[sel]]
                continue
            i = live[ep]
            c = self.copies[i]
            st = c.engine.state
            finish = st.finish.copy()
            predict_unstarted(c.engine.cstate, float(c.dec[self.k[i]]), finish)
            out[sel] = self.objective.task_costs(c.engine.cluster, st, finish, tasks[sel])
        keep = set(np.unique(episodes).tolist())
        self._finished = {k: v for k, v in self._finished.items() if k in keep}
        return out


def run_greedy(
    act: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    spec: InstanceSpec,
    seeds: list[int],
    objective: Objective | None = None,
) -> list[dict]:
    """Play one episode on each seed with ``act(obs, mask, best) -> nodes``; their summaries."""
    vs = VecSim(spec, len(seeds), iter(seeds), objective, restart=False)
    summaries: dict[int, dict] = {}
    while vs.active.any():
        for ep, summary in vs.step(act(vs.obs, vs.mask, vs.best)):
            summaries[ep] = summary
    return [summaries[ep] for ep in range(len(seeds))]
