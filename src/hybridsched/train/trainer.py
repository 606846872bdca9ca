"""PPO training of the pair-scoring network on batched simulator rollouts.

One story, top to bottom: :class:`TrainConfig` (everything a run needs, saved
beside its results); :func:`train` builds or resumes a :class:`Trainer`, which
loops *rollout -> update -> (every so often) evaluate and checkpoint* until its
time budget is spent.

* Rollout: ``n_envs`` simulator copies (:class:`~hybridsched.train.rollout.VecSim`)
  each take ``rollout_steps`` decisions; one network forward scores every
  (task, node) pair of all copies; actions are sampled from the masked softmax.
  For the update, each decision keeps only its ``candidates`` best-scoring
  nodes (and the chosen one): the policy's mass outside them is negligible,
  and the update costs ``N / candidates`` times less. The value baseline pools
  the same candidates.
* Reward: minus each decision's own task cost
  (:class:`~hybridsched.train.objective.Objective`), divided by MCT's mean cost
  per task on the validation seeds; returns are discounted by ``gamma`` so that a decision also
  answers
  for the queueing it causes the next ones. Advantages by GAE.
* Evaluation: the greedy policy on held-out validation seeds (never trained
  on); the best one is ``best.pt``, the shipped kind of checkpoint.

Seeds: ``TrainConfig.seed`` is spawned into the network init, the action
sampling, the minibatch order and the training episodes' seeds; with the same
config (and the same number of updates) training is bit-for-bit repeatable,
across a stop and ``--resume`` too: the loop, checkpoints, curve and
save/resume are the shared :mod:`hybridsched.train.scaffold`, and ``state.pt``
also keeps the simulator copies' episodes (their seeds and decisions so far,
replayed on resume).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from hybridsched import __version__
from hybridsched.errors import ConfigError
from hybridsched.learn.features import FEATURE_NAMES, N_FEATURES
from hybridsched.learn.network import PairScorer, masked_logits
from hybridsched.train import scaffold
from hybridsched.train.config import TrainConfig
from hybridsched.train.rl_rollout import RolloutWorker
from hybridsched.train.rollout import run_greedy
from hybridsched.train.scaffold import (
    TRAIN_SEED_BASE,
    VALIDATION_SEED_BASE,
    TrainingRun,
    validation_seeds,
)
from hybridsched.train.workers import WorkerGroup, share


@dataclass
class Progress(scaffold.Progress):
    """Where an rl run stands; its scores are objectives per task.

    ``val`` is the greedy policy's on the validation seeds, ``train`` that of the
    latest finished training episodes (sampled policy).
    """

    decisions: int = 0
    """Decisions taken in rollouts so far."""
    rollout_s: float = 0.0
    """Seconds spent in rollouts (environment + policy forward + sampling)."""
    update_s: float = 0.0
    """Seconds spent in PPO updates."""

    LEGACY: ClassVar[dict[str, str]] = {
        "val_objective": "val",
        "best_objective": "best",
        "mct_objective": "mct",
        "train_objective": "train",
    }

    def status(self) -> str:
        """One line for a progress bar."""
        return f"{super().status()}  {self.rollout_rate:,.0f} dec/s"

    @property
    def rollout_rate(self) -> float:
        """Decisions per second through environment + policy in rollouts."""
        return self.decisions / self.rollout_s if self.rollout_s > 0 else 0.0

    @property
    def training_rate(self) -> float:
        """Decisions per second of rollouts and updates together (evaluation excluded)."""
        busy = self.rollout_s + self.update_s
        return self.decisions / busy if busy > 0 else 0.0

    @property
    def overall_rate(self) -> float:
        """Decisions per second over the whole run (updates and evaluation included)."""
        return self.decisions / self.elapsed_s if self.elapsed_s > 0 else 0.0


def greedy_actor(model: PairScorer) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """``act(obs, mask, best) -> nodes``: the argmax of the masked scores (for ``run_greedy``)."""

    def act(obs: np.ndarray, mask: np.ndarray, best: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(torch.from_numpy(obs), torch.from_numpy(mask))
        return logits.argmax(dim=1).numpy()

    return act


class Trainer(TrainingRun):
    """One training run in folder ``out`` (see the module docstring)."""

    config_class = TrainConfig
    progress_class = Progress

    def __init__(self, config: TrainConfig, out: Path) -> None:
        super().__init__(config, out)
        init_ss, sample_ss, order_ss, episode_ss = self.seeds.spawn(4)
        with torch.random.fork_rng():
            torch.manual_seed(int(init_ss.generate_state(1)[0]))
            self.model = PairScorer(N_FEATURES, config.hidden, config.init)
        self.optim = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.order_rng = np.random.default_rng(order_ss)
        # one shard keeps the streams of runs made before sharding
        self._streams = (
            [(sample_ss, episode_ss)]
            if config.shards == 1
            else list(
                zip(sample_ss.spawn(config.shards), episode_ss.spawn(config.shards), strict=True)
            )
        )
        self.reward_scale = 0.0
        self._group: WorkerGroup | None = None
        self._saved_shards: list[dict[str, Any]] | None = None
        self._train_costs: list[float] = []

    # ------------------------------------------------------------ state

    def generators(self) -> Sequence[np.random.Generator]:
        """The minibatch order (each shard keeps its own generators: :meth:`extra_state`)."""
        return (self.order_rng,)

    @classmethod
    def upgrade_state(cls, meta: dict[str, Any]) -> dict[str, Any]:
        """A ``state.pt`` from before sharding: its sampling and episode generators in one shard."""
        if "shards" in meta:
            return meta
        sample, order, episode = meta["rng"]
        shard = {"rng": [sample, episode], "copies": meta.get("copies")}
        return {**meta, "rng": [order], "shards": [shard]}

    def resolved_config(self) -> dict[str, Any]:
        """The config as run, with what training resolved (for checkpoints)."""
        ray = self._group is not None and self.config.backend == "ray"
        nodes = {"ray_nodes": self._group.nodes} if ray else {}
        return {
            **self.config.to_dict(),
            **nodes,
            "version": __version__,
            "feature_names": list(FEATURE_NAMES),
            "reward_scale": self.reward_scale,
            "validation_seeds": validation_seeds(self.config.eval_seeds),
            "mct_objective": self.progress.mct,
            "best_objective": self.progress.best,
            "updates": self.progress.updates,
            "decisions": self.progress.decisions,
        }

    def _shard_states(self) -> list[dict[str, Any]] | None:
        if self._group is None:
            return self._saved_shards
        return [s for worker in self._group.call("state") for s in worker]

    def extra_state(self) -> dict[str, Any]:
        """The reward scale, each shard's generators and episodes, the latest episode costs."""
        return {
            "reward_scale": self.reward_scale,
            "shards": self._shard_states(),
            "train_costs": self._train_costs[-self.config.n_envs :],
        }

    def load_extra_state(self, meta: Mapping[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved."""
        self.reward_scale = float(meta["reward_scale"])
        self._saved_shards = meta["shards"]
        self._train_costs = [float(v) for v in meta.get("train_costs", [])]

    # ------------------------------------------------------------ running

    def evaluate(self) -> list[dict]:
        """Summaries of the greedy policy on the validation seeds."""
        c = self.config
        self.model.eval()
        return run_greedy(
            greedy_actor(self.model),
            c.spec(c.eval_tasks),
            validation_seeds(c.eval_seeds),
            c.objective,
        )

    def _reference(self) -> None:
        c = self.config
        mct = run_greedy(
            lambda obs, mask, best: best,
            c.spec(c.eval_tasks),
            validation_seeds(c.eval_seeds),
            c.objective,
        )
        self.progress.mct = _per_task(mct)
        if self.reward_scale <= 0:
            self.reward_scale = max(self.progress.mct, 1e-9)

    def prepare(self) -> None:
        """MCT's validation objective (the reward scale), then the rollout workers."""
        c = self.config
        self._reference()
        if self._group is not None:
            return
        saved = self._saved_shards or [None] * c.shards
        shards = [
            (copies, sample_ss, episode_ss, state)
            for copies, (sample_ss, episode_ss), state in zip(
                share(c.n_envs, c.shards), self._streams, saved, strict=True
            )
        ]
        group = WorkerGroup(c.backend, c.workers, self.ray_address)
        try:
            owned = share(c.shards, c.workers)
            group.start(RolloutWorker, [(c, shards[w.start : w.stop]) for w in owned])
            widths = {n for worker in group.call("n_nodes") for n in worker}
        except BaseException:
            group.close()
            raise
        if len(widths) != 1:
            group.close()
            raise ConfigError(f"rl training: the shards' clusters differ in size: {sorted(widths)}")
        self._group = group
        self._saved_shards = None

    def run(
        self,
        minutes: float | None = None,
        progress: Callable[[Progress], None] | None = None,
        *,
        graceful: bool = False,
    ):
        """Train for ``minutes`` (see :meth:`TrainingRun.run`); the workers end with it."""
        try:
            return super().run(minutes, progress, graceful=graceful)
        finally:
            if self._group is not None:
                with contextlib.suppress(Exception):
                    self._saved_shards = self._shard_states()
                self._group.close()
                self._group = None

    def validate(self) -> tuple[float, list[dict]]:
        """The greedy policy's objective per task on the validation seeds."""
        res = self.evaluate()
        return _per_task(res), res

    def curve_row(self, details: list[dict]) -> dict[str, Any]:
        """The curve row of the latest evaluation."""
        p = self.progress
        return {
            "elapsed_s": round(p.elapsed_s, 3),
            "updates": p.updates,
            "decisions": p.decisions,
            "rollout_decisions_per_s": round(p.rollout_rate, 1),
            "training_decisions_per_s": round(p.training_rate, 1),
            "overall_decisions_per_s": round(p.overall_rate, 1),
            "train_objective": p.train,
            "val_objective": p.val,
            "val_mean_response_s": float(np.mean([r["mean_response_s"] for r in details])),
            "mct_objective": p.mct,
            "best_objective": p.best,
        }

    def plot(self) -> None:
        """Redraw ``curve.png``."""
        plot_curve(self.out / "curve.csv", self.out / "curve.png")

    def update(self) -> None:
        """One rollout of every copy, then one PPO update on it."""
        batch = self._rollout()
        t_update = time.perf_counter()
        self._update(batch)
        self.progress.update_s += time.perf_counter() - t_update

    def _rollout(self) -> dict[str, Any]:
        """Every shard's rollout with the current weights, gathered in shard order."""
        c = self.config
        assert self._group is not None
        t0 = time.perf_counter()
        weights = self._group.put(self.model.state_dict())
        parts = [b for worker in self._group.call("rollout", weights) for b in worker]
        batch = {key: torch.cat([b[key] for b in parts], dim=1) for key in _GATHERED}
        costs = np.concatenate([b["costs"] for b in parts], axis=1)
        done = torch.from_numpy(np.concatenate([b["done"] for b in parts], axis=1))
        for _, _, cost in sorted(e for b in parts for e in b["ended"]):
            self._train_costs.append(cost)
        steps, e = costs.shape
        p = self.progress
        p.decisions += steps * e
        p.rollout_s += time.perf_counter() - t0
        if self._train_costs:
            p.train = float(np.mean(self._train_costs[-c.n_envs :]))
        reward = torch.from_numpy(-costs / self.reward_scale).to(torch.float32)
        if c.average_reward:
            reward = reward - reward.mean()
        value = batch["value"]
        adv = _gae(reward, value, done, c.gamma, c.gae_lambda)
        k = batch["obs"].shape[2]
        return {
            "obs": batch["obs"].reshape(steps * e, k, N_FEATURES),
            "mask": batch["mask"].reshape(steps * e, k),
            "act": batch["act"].reshape(-1),
            "logp": batch["logp"].reshape(-1),
            "adv": adv.reshape(-1),
            "ret": (adv + value[:steps]).reshape(-1),
        }

    def _update(self, batch: dict[str, Any]) -> None:
        c = self.config
        model = self.model
        model.train()
        n = batch["act"].shape[0]
        adv = batch["adv"]
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        for _ in range(c.epochs):
            order = torch.from_numpy(self.order_rng.permutation(n))
            for lo in range(0, n, c.minibatch):
                idx = order[lo : lo + c.minibatch]
                x = batch["obs"][idx]
                m = batch["mask"][idx]
                h = model.embed(x)
                logits = masked_logits(model.score(x, h), m)
                logp_all = torch.log_softmax(logits, dim=1)
                logp = logp_all.gather(1, batch["act"][idx, None]).squeeze(1)
                ratio = torch.exp(logp - batch["logp"][idx])
                a = adv[idx]
                pg = -torch.min(ratio * a, ratio.clamp(1 - c.clip, 1 + c.clip) * a).mean()
                v = model.value(h, m)
                v_loss = 0.5 * ((v - batch["ret"][idx]) ** 2).mean()
                loss = pg + c.vf_coef * v_loss
                if c.ent_coef:
                    ent = -(logp_all.exp() * logp_all).sum(dim=1).mean()
                    loss = loss - c.ent_coef * ent
                self.optim.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), c.max_grad_norm)
                self.optim.step()


_GATHERED = ("obs", "mask", "act", "logp", "value")
"""The rollout tensors gathered along the copies' axis."""


def _gae(
    reward: torch.Tensor, value: torch.Tensor, done: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    steps = reward.shape[0]
    adv = torch.zeros_like(reward)
    last = torch.zeros_like(reward[0])
    for t in range(steps - 1, -1, -1):
        nonterminal = (~done[t]).to(reward.dtype)
        delta = reward[t] + gamma * value[t + 1] * nonterminal - value[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv


def _per_task(summaries: list[dict]) -> float:
    return float(sum(s["objective"] for s in summaries) / sum(s["tasks"] for s in summaries))


def plot_curve(csv_path: Path, png_path: Path) -> None:
    """Plot the learning curve of ``curve.csv`` (validation and training objective vs time)."""
    scaffold.plot_curve(
        csv_path,
        png_path,
        series=[
            ("val_objective", "validation (greedy)"),
            ("train_objective", "training (sampled)"),
        ],
        reference=("mct_objective", "MCT (validation)"),
        ylabel="objective per task (mean response, s, by default)",
        title="hybridsched rl: learning curve",
        log_scale=True,  # the untrained policy is orders of magnitude worse
    )


def train(
    config: TrainConfig | None = None,
    out: str | Path = "runs/rl",
    *,
    resume: bool = False,
    minutes: float | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> Trainer:
    """Train (or, with ``resume``, continue training in ``out``) and return the trainer.

    Writes to ``out``: ``config.json``, ``best.pt`` (best validation; what the
    ``rl`` policy loads), ``last.pt``, ``state.pt`` (for resuming), ``curve.csv``
    and ``curve.png``.

    Args:
        config: the run's configuration (ignored when resuming: the folder's is used).
        out: the run folder.
        resume: continue the run saved in ``out``.
        minutes: wall-clock budget of this call (default: the config's).
        progress: called with the :class:`Progress` after every update.
    """
    out = Path(out)
    if resume:
        trainer = Trainer.resume(out)
    else:
        trainer = Trainer(config or TrainConfig(), out)
    trainer.run(minutes, progress)
    return trainer


__all__ = [
    "TRAIN_SEED_BASE",
    "VALIDATION_SEED_BASE",
    "Progress",
    "TrainConfig",
    "Trainer",
    "plot_curve",
    "train",
    "validation_seeds",
]
