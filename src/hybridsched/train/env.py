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
  Columns 18-20 are what the view observes of each node (observed execution
  and transfer factors, running ratio): 0 without drift.
* ``action_mask`` ``(N,)`` int8: 1 where the node has memory for the task.

Drift (``drift``): ``none`` (default), ``scenario`` (the scenario's own
conditions, e.g. ``iot-drift``) or ``random`` (conditions and a task-mix shift
drawn per episode from the instance seed, for domain randomization; see
:class:`~hybridsched.train.rollout.InstanceSpec`). ``estimates="observed"``
corrects the view's estimates by the observations (docs/MODEL.md 12.1).
``info["condition_windows"]`` at reset says how many windows the episode has.

Node order (``node_order``): with ``rank`` (the default) the rows of ``nodes``,
the mask and the actions list the nodes by MCT's estimated completion, best
first, infeasible last (ties by index); action 0 is MCT's choice. A given row
then means the same thing at every step, whatever the node's index, which is
what lets a stock agent (SB3's ``MultiInputPolicy``, an MLP over the flattened
observation) learn on a 100-node cluster; ``index`` lists them in cluster
order (action = node index). ``info["node"]`` is always the node index.

Action: ``Discrete(N)``, a position in that order. An infeasible one is, with
``invalid_action="random"`` (default, so that an agent without masking still
trains), replaced by a random feasible node and charged ``invalid_penalty``;
with ``"raise"`` it raises :class:`~hybridsched.errors.PolicyError`.
:meth:`IoTCloudEnv.action_masks` serves maskable agents.

Reward: minus the cost the cluster accrues until the next decision
(:func:`hybridsched.train.objective.accrue`; weights in ``objective``), divided
by ``reward_scale``; the episode's rewards sum to minus its objective divided
by ``reward_scale`` (plus any invalid-action penalties). ``info`` carries
``mct_action`` (the action that picks MCT's node: 0 in ``rank`` order) and, at
the end, the run's ``summary`` and ``objective``.
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
from hybridsched.train.rollout import InstanceSpec
from hybridsched.workload import Scenario, generate, get_scenario

TASK_FEATURES = 8
"""Length of the ``task`` part of the observation."""

INVALID_ACTIONS = ("random", "raise")
NODE_ORDERS = ("rank", "index")
REWARDS = ("task", "accrued")
DEFAULT_REWARD_SCALE = 10.0
"""Default divisor of the rewards: a decision then costs about 0.2 (MCT) to 1 (random)
on the scenario presets, a scale stock agents' value functions learn without tuning."""


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
        reward_scale: rewards are divided by this (> 0); default
            :data:`DEFAULT_REWARD_SCALE`.
        invalid_action: ``random`` or ``raise`` (see the module docstring).
        invalid_penalty: reward charged for an infeasible action (``random`` only),
            in reward units (after the scale).
        node_order: ``rank`` (default): the ``nodes`` rows, the mask and the actions
            list the nodes by MCT's estimated completion, best first (action 0 is
            MCT's choice, infeasible nodes last); ``index``: in cluster order (the
            action is the node index).
        reward: ``task`` (default): each decision is charged its own task's predicted
            cost, known at once; ``accrued``: what the cluster accrues until the
            next decision. Both sum to the episode's objective (module docstring).
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
        reward_scale: float = DEFAULT_REWARD_SCALE,
        invalid_action: str = "random",
        invalid_penalty: float = 1.0,
        node_order: str = "rank",
        reward: str = "task",
        drift: str = "none",
        estimates: str = "nominal",
    ) -> None:
        sc = scenario if isinstance(scenario, Scenario) else get_scenario(scenario)
        self.scenario = sc
        # validates drift and estimates; builds each episode's engine
        self._instances = InstanceSpec(
            sc, float(load), int(n_tasks), decision_interval, queue, drift, estimates
        )
        self.load = float(load)
        self.n_tasks = int(n_tasks)
        self.sim_config = SimConfig(decision_interval=decision_interval, queue=queue)
        self.objective = (
            objective if isinstance(objective, Objective) else Objective.from_dict(objective)
        )
        if not (isinstance(reward_scale, (int, float)) and 0 < reward_scale < np.inf):
            raise ConfigError(
                f"reward_scale: must be a finite number > 0, got {_plain(reward_scale)}"
            )
        if invalid_action not in INVALID_ACTIONS:
            raise ConfigError(
                f"invalid_action: must be one of {', '.join(INVALID_ACTIONS)}, got "
                f"{invalid_action!r}"
            )
        if node_order not in NODE_ORDERS:
            raise ConfigError(
                f"node_order: must be one of {', '.join(NODE_ORDERS)}, got {node_order!r}"
            )
        self.node_order = node_order
        if reward not in REWARDS:
            raise ConfigError(f"reward: must be one of {', '.join(REWARDS)}, got {reward!r}")
        self.reward = reward
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
        self._order = np.arange(n)
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
        self.engine = self._instances.build(inst)
        c = self.engine.cluster
        self._dynpow = np.ascontiguousarray((c.power_max_w - c.power_idle_w) / c.cores)
        self._idle_w = float(np.sum(c.power_idle_w))
        self._w_miss = np.asarray(self.objective.miss, dtype=np.float64)
        self._pending = np.zeros(self.engine.n_tasks, dtype=np.bool_)
        self._charged = 0.0
        self._t = float(self.engine.state.arrival[0])
        self._lo = 0
        batch = self.engine.next_batch()
        assert batch is not None  # a workload has at least one task
        self._observe(*batch)
        cond = getattr(self.engine, "options", None)
        windows = 0 if cond is None or cond.conditions is None else len(cond.conditions)
        info = {"instance_seed": inst, "mct_action": self._best, "condition_windows": windows}
        return self._obs, info

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Place the pending task on node ``action``; observe the next decision."""
        if self.engine is None or self._obs is None:
            raise PolicyError("step: call reset() first")
        a = int(action)
        info: dict[str, Any] = {"invalid_action": False}
        penalty = 0.0
        if not (0 <= a < self.n_nodes and self._mask[a]):
            if self.invalid_action == "raise":
                raise PolicyError(f"action {_plain(action)}: node is infeasible or out of range")
            feasible = np.flatnonzero(self._mask)
            a = int(feasible[self.np_random.integers(feasible.shape[0])])
            penalty = self.invalid_penalty
            info["invalid_action"] = True
        a = int(self._order[a])  # the node index
        info["node"] = a
        eng = self.engine
        predicted = self._task_cost(a)
        eng.commit([a])
        batch = eng.next_batch()
        if batch is None:
            result = eng.finish(policy_name="rl-env")
            t_end = float(np.max(result.tasks["finish_s"]))
            cost = self._accrue(t_end)
            info["summary"] = result.summary
            info["objective"] = self.objective.total(result.summary, result.tasks)
            if self.reward == "task":
                # the last decision settles the rest: idle energy, and where a
                # prediction was off (priority queues), the difference
                cost = info["objective"] - self._charged
            self._obs = _zero_obs(self._obs)
            self._mask[:] = False
            terminated = True
        else:
            cost = self._accrue(eng.now)
            if self.reward == "task":
                cost = predicted
                self._charged += predicted
            self._observe(*batch)
            info["mct_action"] = self._best
            terminated = False
        reward = -cost / self.reward_scale - penalty
        return self._obs, float(reward), terminated, False, info

    def action_masks(self) -> np.ndarray:
        """Feasible nodes of the pending decision, bool ``(N,)`` (for maskable agents)."""
        return self._mask.copy()

    # -------------------------------------------------------------- helpers

    def _task_cost(self, node: int) -> float:
        """The pending task's cost on ``node`` as predicted now: response, deadline
        penalty, dynamic energy (exact under FIFO queues with exact work)."""
        tasks, view = self._pending_view
        finish = float(view.est_finish_s[0, node])
        o = self.objective
        cost = o.response * (finish - float(tasks.arrival_s[0]))
        if finish > float(tasks.deadline_abs_s[0]):
            cost += float(self._w_miss[min(int(tasks.priority[0]), 2)])
        if o.energy:
            cost += o.energy * 1e-3 * float(self._dynpow[node] * view.exec_s[0, node])
        return cost

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
        self._pending_view = (tasks, view)
        nodes = pair_features(tasks, view)[0]
        feasible = view.feasible[0]
        ef = np.where(feasible, view.est_finish_s[0], np.inf)
        best = int(np.argmin(ef))
        if self.node_order == "rank":
            # best estimate first, ties by index, infeasible last: the same node
            # features mean the same position, whatever the node's index
            order = np.lexsort((np.arange(ef.shape[0]), ef))
            self._order = order
            nodes = nodes[order]
            feasible = feasible[order]
            self._best = 0
        else:
            self._best = best
        self._mask = feasible.copy()
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
                np.log1p(ef[best] - view.time),
            ],
            dtype=np.float32,
        )
        self._obs = {"task": task, "nodes": nodes, "action_mask": feasible.astype(np.int8)}


def _plain(v: Any) -> str:
    return repr(v.item()) if isinstance(v, np.generic) else repr(v)


def _zero_obs(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.zeros_like(v) for k, v in obs.items()}
