"""``hybridsched/IoTCloud-v0``: the scheduler as a Gymnasium environment.

One step is one decision: which node takes the next task. Each episode draws a
fresh cluster and workload from the scenario (the instance seed comes from the
environment's generator, so ``reset(seed=s)`` fixes the whole episode) and runs
the exact simulator (:class:`~hybridsched.sim.Engine`) one task at a time; with
a decision interval > 0 the tasks of a batch are decided one after another,
each seeing the ones before it.

Observation (a ``Dict``):

* ``task`` ``(8,)``: ``log1p`` work (GI), data (MB) and memory (GB); priority
  one-hot (0, 1, >= 2); ``log1p`` of the relative deadline (0 without one);
  ``log1p`` of MCT's best estimated response (s).
* ``nodes`` ``(N, F)``: per node, the pair features of this task on that node
  (:mod:`hybridsched.learn.features`: MCT's estimate relative to the best,
  execution, transfer, queueing delay, backlog, busy cores, speed, cores,
  energy, idle power, recent assignments, deadline slack, priority).
* ``action_mask`` ``(N,)`` int8: 1 where the node has memory for the task.

Action: ``Discrete(N)``, a node index. An infeasible node is, with
``invalid_action="random"`` (default, so that an agent without masking still
trains), replaced by a random feasible node and charged ``invalid_penalty``;
with ``"raise"`` it raises :class:`~hybridsched.errors.PolicyError`.
:meth:`IoTCloudEnv.action_masks` serves maskable agents.

Reward: minus the cost the cluster accrues until the next decision
(:func:`hybridsched.train.objective.accrue`; weights in ``objective``), divided
by ``reward_scale``; the episode's rewards sum to minus its objective (plus any
invalid-action penalties). ``info`` carries ``mct_action`` (the node MCT would
choose) and, at the end, the run's ``summary`` and ``objective``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from hybridsched.errors import ConfigError, PolicyError
from hybridsched.learn.features import N_FEATURES, pair_features
from hybridsched.sim import ClusterView, Engine, SimConfig, TaskBatch
from hybridsched.train.objective import Objective, accrue
from hybridsched.workload import Scenario, generate, get_scenario

TASK_FEATURES = 8
"""Length of the ``task`` part of the observation."""

INVALID_ACTIONS = ("random", "raise")


class IoTCloudEnv(gym.Env):
    """Place IoT tasks on edge/fog/cloud nodes, one decision per task.

    Args:
        scenario: scenario preset name or :class:`~hybridsched.workload.Scenario`.
        load: offered work / cluster capacity.
        n_tasks: tasks per episode.
        decision_interval: batching interval, s (0: decide each task on arrival).
        queue: queue discipline at the nodes, ``fifo`` or ``priority``.
        objective: weights (an :class:`~hybridsched.train.objective.Objective` or a
            mapping with ``response``, ``miss``, ``energy``).
        reward_scale: rewards are divided by this (> 0).
        invalid_action: ``random`` or ``raise`` (see the module docstring).
        invalid_penalty: reward charged for an infeasible action (``random`` only).
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)

    def __init__(
        self,
        scenario: str | Scenario = "iot-default",
        load: float = 0.8,
        n_tasks: int = 1000,
        decision_interval: float = 0.0,
        queue: str = "fifo",
        objective: Objective | dict[str, Any] | None = None,
        reward_scale: float = 1.0,
        invalid_action: str = "random",
        invalid_penalty: float = 1.0,
    ) -> None:
        sc = scenario if isinstance(scenario, Scenario) else get_scenario(scenario)
        self.scenario = sc
        self.load = float(load)
        self.n_tasks = int(n_tasks)
        self.sim_config = SimConfig(decision_interval=decision_interval, queue=queue)
        self.objective = (
            objective if isinstance(objective, Objective) else Objective.from_dict(objective)
        )
        if not reward_scale > 0:
            raise ConfigError(f"reward_scale: must be > 0, got {reward_scale!r}")
        if invalid_action not in INVALID_ACTIONS:
            raise ConfigError(
                f"invalid_action: must be one of {', '.join(INVALID_ACTIONS)}, got "
                f"{invalid_action!r}"
            )
        self.reward_scale = float(reward_scale)
        self.invalid_action = invalid_action
        self.invalid_penalty = float(invalid_penalty)
        # validates scenario, n_tasks and load once, and fixes N
        cluster, _ = generate(sc, 1, self.load, 0)
        n = cluster.n_nodes
        self.n_nodes = n
        self.observation_space = spaces.Dict(
            {
                "task": spaces.Box(-np.inf, np.inf, (TASK_FEATURES,), np.float32),
                "nodes": spaces.Box(-np.inf, np.inf, (n, N_FEATURES), np.float32),
                "action_mask": spaces.MultiBinary(n),
            }
        )
        self.action_space = spaces.Discrete(n)
        self.engine: Engine | None = None
        self._obs: dict[str, np.ndarray] | None = None
        self._mask = np.zeros(n, dtype=np.bool_)
        self._best = 0
        self._t = 0.0
        self._lo = 0

    # ------------------------------------------------------------------ api

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode on a new instance.

        ``options={"instance_seed": k}`` plays the instance of
        ``generate(scenario, n_tasks, load, k)`` instead of drawing one.
        """
        super().reset(seed=seed)
        options = options or {}
        if "instance_seed" in options:
            inst = int(options["instance_seed"])
        else:
            inst = int(self.np_random.integers(0, 2**31 - 1))
        cluster, workload = generate(self.scenario, self.n_tasks, self.load, inst)
        self.engine = Engine(cluster, workload, self.sim_config)
        c = cluster
        self._dynpow = np.ascontiguousarray((c.power_max_w - c.power_idle_w) / c.cores)
        self._idle_w = float(np.sum(c.power_idle_w))
        self._w_miss = np.asarray(self.objective.miss, dtype=np.float64)
        self._pending = np.zeros(self.engine.n_tasks, dtype=np.bool_)
        self._t = float(self.engine.state.arrival[0])
        self._lo = 0
        batch = self.engine.next_batch()
        assert batch is not None  # a workload has at least one task
        self._observe(*batch)
        return self._obs, {"instance_seed": inst, "mct_action": self._best}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Place the pending task on node ``action``; observe the next decision."""
        if self.engine is None or self._obs is None:
            raise PolicyError("step: call reset() first")
        a = int(action)
        info: dict[str, Any] = {"invalid_action": False}
        penalty = 0.0
        if not (0 <= a < self.n_nodes and self._mask[a]):
            if self.invalid_action == "raise":
                raise PolicyError(f"action {action!r}: node is infeasible or out of range")
            feasible = np.flatnonzero(self._mask)
            a = int(feasible[self.np_random.integers(feasible.shape[0])])
            penalty = self.invalid_penalty
            info["invalid_action"] = True
        info["node"] = a
        eng = self.engine
        eng.commit([a])
        batch = eng.next_batch()
        if batch is None:
            result = eng.finish(policy_name="rl-env")
            t_end = float(np.max(result.tasks["finish_s"]))
            cost = self._accrue(t_end)
            info["summary"] = result.summary
            info["objective"] = self.objective.total(result.summary, result.tasks)
            self._obs = _zero_obs(self._obs)
            self._mask[:] = False
            terminated = True
        else:
            cost = self._accrue(eng.now)
            self._observe(*batch)
            info["mct_action"] = self._best
            terminated = False
        reward = -cost / self.reward_scale - penalty
        return self._obs, float(reward), terminated, False, info

    def action_masks(self) -> np.ndarray:
        """Feasible nodes of the pending decision, bool ``(N,)`` (for maskable agents)."""
        return self._mask.copy()

    # -------------------------------------------------------------- helpers

    def _accrue(self, t1: float) -> float:
        o = self.objective
        cost, self._lo = accrue(
            self.engine.cstate,
            self._t,
            t1,
            self._lo,
            self._dynpow,
            self._idle_w,
            o.response,
            self._w_miss,
            o.energy,
            self._pending,
        )
        self._t = t1
        return float(cost)

    def _observe(self, tasks: TaskBatch, view: ClusterView) -> None:
        nodes = pair_features(tasks, view)[0]
        feasible = view.feasible[0]
        self._mask = feasible.copy()
        ef = np.where(feasible, view.est_finish_s[0], np.inf)
        self._best = int(np.argmin(ef))
        dl = tasks.deadline_abs_s[0] - tasks.arrival_s[0]
        p = int(tasks.priority[0])
        task = np.array(
            [
                np.log1p(tasks.work_gi[0]),
                np.log1p(tasks.data_mb[0]),
                np.log1p(tasks.memory_mb[0] / 1024.0),
                p == 0,
                p == 1,
                p >= 2,
                np.log1p(dl) if np.isfinite(dl) else 0.0,
                np.log1p(ef[self._best] - view.time),
            ],
            dtype=np.float32,
        )
        self._obs = {"task": task, "nodes": nodes, "action_mask": feasible.astype(np.int8)}


def _zero_obs(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.zeros_like(v) for k, v in obs.items()}
