"""The configurations of the training runs: everything a run needs, saved beside it.

:class:`TrainConfig` for the ``rl`` trainer (:mod:`hybridsched.train.trainer`),
:class:`HybridTrainConfig` for the ``hybrid`` trainer
(:mod:`hybridsched.train.hybrid_trainer`). Validated on construction; their
defaults are also the ``hybridsched train rl`` / ``train hybrid`` defaults.
Kept apart from the trainers so that reading them needs no torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from hybridsched.errors import ConfigError

if TYPE_CHECKING:
    from hybridsched.train.objective import Objective
    from hybridsched.train.rollout import InstanceSpec

_C = TypeVar("_C", bound="RunConfig")


def _objective() -> Objective:
    # imported on use: the objective's compiled kernels pull in numba, which the
    # CLI's start-up (it reads these defaults) does not need
    from hybridsched.train.objective import Objective

    return Objective()


def _require_counts(config: object, what: str, names: tuple[str, ...]) -> None:
    """Refuse the first of the fields ``names`` (in order) that is not an integer >= 1."""
    for name in names:
        v = getattr(config, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{what}: {name} must be an integer >= 1, got {v!r}")


def check_budget(minutes: object, what: str = "minutes:") -> None:
    """Refuse a time budget that is not a finite number >= 0 (``what`` starts the message)."""
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)):
        raise ConfigError(f"{what} must be a number >= 0, got {minutes!r}")
    if not 0 <= minutes < math.inf:
        raise ConfigError(f"{what} must be a number >= 0, got {minutes!r}")


def check_workers(backend: object, workers: object) -> None:
    """Refuse a backend name or worker count that cannot train (``--backend``, ``--workers``).

    The local backend trains in this process: one worker (docs/SCALE.md).
    """
    from hybridsched.experiments.backends import BACKENDS

    if backend not in BACKENDS:
        raise ConfigError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers: must be an integer >= 1, got {workers!r}")
    if backend == "local" and workers > 1:
        raise ConfigError(
            f"--workers {workers}: the local backend trains in this process (one worker); "
            "use --backend ray for more workers"
        )


@dataclass(frozen=True)
class EpisodeConfig:
    """The instances a run trains on: a scenario at a load, and the simulator's options."""

    scenario: str = "iot-default"
    """Scenario preset the episodes are drawn from."""
    load: float = 0.8
    """Offered work / cluster capacity."""
    n_tasks: int = 2000
    """Tasks per training episode (one workload)."""
    decision_interval: float = 0.0
    """Batching interval, s (0: one decision per arrival)."""
    queue: str = "fifo"
    """Queue discipline at the nodes."""
    drift: str = "none"
    """What changes during an episode: ``none``, ``scenario`` (its own conditions) or
    ``random`` (conditions and a mix shift drawn per episode; docs/RL.md)."""
    estimates: str = "nominal"
    """The view's estimates during episodes: ``nominal`` or ``observed``."""

    def spec(self, n_tasks: int | None = None) -> InstanceSpec:
        """The instances of this run (``n_tasks`` per episode unless given)."""
        from hybridsched.train.rollout import InstanceSpec

        return InstanceSpec(
            self.scenario,
            self.load,
            self.n_tasks if n_tasks is None else n_tasks,
            self.decision_interval,
            self.queue,
            self.drift,
            self.estimates,
        )


@dataclass(frozen=True)
class RunConfig(EpisodeConfig):
    """What the training scaffold (:class:`~hybridsched.train.scaffold.TrainingRun`) reads
    of every run's config: the seed, the budget, the evaluation cadence and where the
    work runs; checked here once for both trainers, with the unknown-key check of
    :meth:`from_dict` and the JSON form of :meth:`to_dict`."""

    seed: int = 0
    """Root seed of the run."""
    minutes: float = 10.0
    """Wall-clock budget, minutes (evaluation included)."""
    max_updates: int = 0
    """Stop after this many updates (0: only the time budget counts)."""
    eval_every_s: float = 30.0
    """Seconds of training between evaluations (one also at the start and the end)."""
    threads: int = 1
    """Torch threads (1: the tensors are small, and 2 shared cores oversubscribe badly)."""
    backend: str = "local"
    """Where the simulation runs: ``local`` (this process) or ``ray`` (Ray actors)."""
    workers: int = 1
    """Workers (Ray actors), each simulating a share of the run: rl's rollout shards,
    hybrid's collection runs and their snapshots' ants."""

    what: ClassVar[str] = "train config"
    """How messages name the config."""

    def __post_init__(self) -> None:
        check_workers(self.backend, self.workers)
        self.spec()  # validates drift and estimates
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"{self.what}: seed must be an integer >= 0, got {self.seed!r}")
        check_budget(self.minutes, f"{self.what}: minutes")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping (inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls: type[_C], data: dict[str, Any]) -> _C:
        """Build from a mapping; unknown keys are refused, listing the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(
                f"{cls.what}: unknown key(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**data)


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    """Everything a training run needs; written to ``config.json`` and into checkpoints."""

    objective: Objective = field(default_factory=_objective)
    """Weights of response time, deadline misses by priority and energy."""
    n_envs: int = 256
    """Simulator copies stepped together."""
    rollout_steps: int = 16
    """Decisions per copy per update."""
    candidates: int = 16
    """Best-scoring nodes per decision kept for the update and the baseline."""
    hidden: int = 32
    """Width of the pair network."""
    init: str = "zero"
    """Initial policy: ``zero`` (uniform) or ``mct`` (greedy starts as MCT)."""
    lr: float = 1e-3
    """Adam learning rate."""
    gamma: float = 0.9
    """Discount per decision."""
    gae_lambda: float = 0.9
    """GAE lambda."""
    average_reward: bool = False
    """Differential returns: each reward minus the rollout's mean reward (with ``gamma``
    1 this is the average-reward return; a decision answers for the queueing it causes
    to every later task, not only the next few)."""
    clip: float = 0.2
    """PPO ratio clip."""
    epochs: int = 2
    """Passes over each rollout."""
    minibatch: int = 1024
    """Decisions per gradient step."""
    ent_coef: float = 0.0
    """Entropy bonus."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    max_grad_norm: float = 0.5
    """Gradient norm clip."""
    eval_seeds: int = 4
    """Number of validation seeds."""
    eval_tasks: int = 5000
    """Tasks per validation episode."""
    shards: int = 1
    """Fixed groups of the copies, each with its own random streams and network forward:
    the weights depend on it, not on ``workers`` (:mod:`hybridsched.train.rl_rollout`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_counts(
            self,
            self.what,
            (
                "n_tasks",
                "n_envs",
                "rollout_steps",
                "candidates",
                "hidden",
                "epochs",
                "minibatch",
                "eval_seeds",
                "eval_tasks",
                "threads",
                "shards",
            ),
        )
        if self.shards > self.n_envs:
            raise ConfigError(
                f"--shards {self.shards}: more shards than simulator copies (--envs {self.n_envs})"
            )
        if self.workers > self.shards:
            raise ConfigError(
                f"--workers {self.workers}: the run has {self.shards} shard(s) of simulator "
                f"copies and a worker steps whole shards, so at most {self.shards} worker(s) "
                "(a new run takes --shards)"
            )
        for name in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name}: must be in [0, 1], got {getattr(self, name)!r}")
        if self.lr <= 0 or self.clip <= 0:
            raise ConfigError(f"{self.what}: lr > 0 and clip > 0 are required")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping (inverse of :meth:`from_dict`)."""
        d = asdict(self)
        d["objective"] = self.objective.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys are refused, listing the known ones."""
        from hybridsched.train.objective import Objective

        objective = data.get("objective")
        if objective is not None and not isinstance(objective, Objective):
            data = {**data, "objective": Objective.from_dict(objective)}
        return super().from_dict(data)


@dataclass(frozen=True)
class HybridTrainConfig(RunConfig):
    """Everything a hybrid training run needs; written to ``config.json`` and checkpoints.

    The episodes are the collection runs (MCT decides; their batches are the snapshots).
    """

    load: float = 0.9
    """Offered work / cluster capacity."""
    decision_interval: float = 0.5
    """Batching interval, s; > 0 (the hybrid decides batches)."""
    queue: str = "priority"
    """Queue discipline at the nodes."""
    # two of RunConfig's fields, with this trainer's defaults
    minutes: float = 5.0
    eval_every_s: float = 60.0
    collect_runs: int = 4
    """Simulated runs the snapshots are collected from."""
    keep: float = 0.5
    """Probability of keeping a decision batch (of >= 2 tasks) as a snapshot."""
    ants: int = 16
    """Ants sampled per snapshot per update."""
    snapshots_per_update: int = 4
    """Snapshots per gradient step."""
    candidates: int = 8
    """Candidate nodes per task (highest scores)."""
    alpha: float = 1.0
    """Pheromone exponent (tau is the constant 1 in training)."""
    beta: float = 2.0
    """Desirability exponent."""
    temperature: float = 1.0
    """eta = exp(logit / temperature)."""
    lr: float = 3e-4
    """Adam learning rate."""
    max_grad_norm: float = 1.0
    """Gradient norm clip."""
    init: str = ""
    """Initial weights (checkpoint path); empty: the shipped rl network."""
    eval_seeds: int = 2
    """Validation seeds."""
    eval_tasks: int = 1500
    """Tasks per validation run."""

    what: ClassVar[str] = "hybrid train config"

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_counts(
            self,
            self.what,
            ("n_tasks", "collect_runs", "ants", "snapshots_per_update", "candidates", "threads"),
        )
        if self.ants < 2:
            raise ConfigError(f"{self.what}: ants must be >= 2, got {self.ants}")
        if not 0 < self.keep <= 1:
            raise ConfigError(f"{self.what}: keep must be in (0, 1], got {self.keep}")
        if not self.decision_interval > 0:
            raise ConfigError(
                f"{self.what}: decision_interval must be > 0 (the hybrid decides "
                f"batches; at 0 every batch is one task), got {self.decision_interval!r}"
            )
