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
config (and the same number of updates) training is bit-for-bit repeatable.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridsched import __version__
from hybridsched.errors import ConfigError
from hybridsched.learn.features import FEATURE_NAMES, N_FEATURES
from hybridsched.learn.network import PairScorer, masked_logits, save_checkpoint
from hybridsched.train.objective import Objective
from hybridsched.train.rollout import InstanceSpec, VecSim, run_greedy

log = logging.getLogger(__name__)

TRAIN_SEED_BASE = 1_000_000
"""Training episodes use seeds >= this; validation and benchmark seeds lie below."""
VALIDATION_SEED_BASE = 10_000
"""First validation seed (held out from training; benchmarks use 20_000 on)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; written to ``config.json`` and into checkpoints."""

    scenario: str = "iot-default"
    """Scenario preset the episodes are drawn from."""
    load: float = 0.8
    """Offered work / cluster capacity."""
    n_tasks: int = 2000
    """Tasks per training episode."""
    decision_interval: float = 0.0
    """Batching interval, s (0: one decision per arrival)."""
    queue: str = "fifo"
    """Queue discipline at the nodes."""
    objective: Objective = field(default_factory=Objective)
    """Weights of response time, deadline misses by priority and energy."""
    seed: int = 0
    """Root seed of the run."""
    minutes: float = 10.0
    """Wall-clock budget, minutes (evaluation included)."""
    max_updates: int = 0
    """Stop after this many updates (0: only the time budget counts)."""
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
    eval_every_s: float = 30.0
    """Seconds of training between evaluations (one also at the start and the end)."""
    threads: int = 1
    """Torch threads (1 is fastest on 2 shared cores)."""

    def __post_init__(self) -> None:
        positive = ("n_tasks", "n_envs", "rollout_steps", "candidates", "hidden", "epochs")
        for name in positive:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"train config: {name} must be an integer >= 1, got {v!r}")
        for name in ("minibatch", "eval_seeds", "eval_tasks", "threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"train config: {name} must be an integer >= 1, got {v!r}")
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ConfigError(f"train config: gamma and gae_lambda must be in [0, 1], got {self}")
        if self.minutes < 0 or self.lr <= 0 or self.clip <= 0:
            raise ConfigError("train config: minutes >= 0, lr > 0 and clip > 0 are required")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"train config: seed must be an integer >= 0, got {self.seed!r}")

    def spec(self, n_tasks: int | None = None) -> InstanceSpec:
        """The instances of this run (``n_tasks`` per episode unless given)."""
        return InstanceSpec(
            self.scenario,
            self.load,
            self.n_tasks if n_tasks is None else n_tasks,
            self.decision_interval,
            self.queue,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping (inverse of :meth:`from_dict`)."""
        d = asdict(self)
        d["objective"] = self.objective.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys are refused, listing the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(
                f"train config: unknown key(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        data = dict(data)
        if "objective" in data and not isinstance(data["objective"], Objective):
            data["objective"] = Objective.from_dict(data["objective"])
        return cls(**data)


@dataclass
class Progress:
    """Where a run stands; handed to the progress callback after every update."""

    elapsed_s: float = 0.0
    """Wall-clock seconds of training, this session and earlier ones."""
    budget_s: float = 0.0
    """This session's wall-clock budget, s."""
    session_s: float = 0.0
    """Seconds spent in this session."""
    updates: int = 0
    """PPO updates so far."""
    decisions: int = 0
    """Decisions taken in rollouts so far."""
    rollout_s: float = 0.0
    """Seconds spent in rollouts (environment + policy forward + sampling)."""
    update_s: float = 0.0
    """Seconds spent in PPO updates."""
    val_objective: float = float("nan")
    """Last validation objective per task (greedy)."""
    best_objective: float = float("inf")
    """Best validation objective per task so far."""
    mct_objective: float = float("nan")
    """MCT's validation objective per task (the reference)."""
    train_objective: float = float("nan")
    """Objective per task of the latest finished training episodes (sampled policy)."""

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


CURVE_COLUMNS = (
    "elapsed_s",
    "updates",
    "decisions",
    "rollout_decisions_per_s",
    "training_decisions_per_s",
    "overall_decisions_per_s",
    "train_objective",
    "val_objective",
    "val_mean_response_s",
    "mct_objective",
    "best_objective",
)


def validation_seeds(n: int) -> list[int]:
    """The held-out seeds training evaluates on."""
    return [VALIDATION_SEED_BASE + k for k in range(n)]


def greedy_actor(model: PairScorer) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """``act(obs, mask, best) -> nodes``: the argmax of the masked scores (for ``run_greedy``)."""

    def act(obs: np.ndarray, mask: np.ndarray, best: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(torch.from_numpy(obs), torch.from_numpy(mask))
        return logits.argmax(dim=1).numpy()

    return act


class Trainer:
    """One training run in folder ``out`` (see the module docstring)."""

    def __init__(self, config: TrainConfig, out: Path) -> None:
        self.config = config
        self.out = Path(out)
        ss = np.random.SeedSequence(config.seed)
        init_ss, sample_ss, order_ss, episode_ss = ss.spawn(4)
        with torch.random.fork_rng():
            torch.manual_seed(int(init_ss.generate_state(1)[0]))
            self.model = PairScorer(N_FEATURES, config.hidden, config.init)
        self.optim = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.sample_rng = np.random.default_rng(sample_ss)
        self.order_rng = np.random.default_rng(order_ss)
        self.episode_rng = np.random.default_rng(episode_ss)
        self.progress = Progress()
        self.reward_scale = 0.0
        self.vs: VecSim | None = None
        self._train_costs: list[float] = []

    # ------------------------------------------------------------ state

    def resolved_config(self) -> dict[str, Any]:
        """The config as run, with what training resolved (for checkpoints)."""
        return {
            **self.config.to_dict(),
            "version": __version__,
            "feature_names": list(FEATURE_NAMES),
            "reward_scale": self.reward_scale,
            "validation_seeds": validation_seeds(self.config.eval_seeds),
            "mct_objective": self.progress.mct_objective,
            "best_objective": self.progress.best_objective,
            "updates": self.progress.updates,
            "decisions": self.progress.decisions,
        }

    def save_state(self) -> None:
        """Write ``last.pt`` (weights + config) and ``state.pt`` (what resuming needs)."""
        save_checkpoint(self.out / "last.pt", self.model, self.resolved_config())
        prog = asdict(self.progress)
        blob = {
            "model": self.model.state_dict(),
            "optim": self.optim.state_dict(),
            "meta": json.dumps(
                {
                    "config": self.config.to_dict(),
                    "progress": prog,
                    "reward_scale": self.reward_scale,
                    "rng": [
                        g.bit_generator.state
                        for g in (self.sample_rng, self.order_rng, self.episode_rng)
                    ],
                }
            ),
        }
        tmp = self.out / "state.pt.tmp"
        torch.save(blob, tmp)
        tmp.replace(self.out / "state.pt")

    @classmethod
    def resume(cls, out: Path) -> Trainer:
        """Rebuild a trainer from ``out/state.pt``."""
        path = Path(out) / "state.pt"
        if not path.is_file():
            raise ConfigError(f"--resume {out}: no state.pt there (not a training folder?)")
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
        trainer = cls(TrainConfig.from_dict(meta["config"]), Path(out))
        trainer.model.load_state_dict(blob["model"])
        trainer.optim.load_state_dict(blob["optim"])
        trainer.progress = Progress(**meta["progress"])
        trainer.reward_scale = float(meta["reward_scale"])
        for g, state in zip(
            (trainer.sample_rng, trainer.order_rng, trainer.episode_rng), meta["rng"], strict=True
        ):
            g.bit_generator.state = state
        return trainer

    # ------------------------------------------------------------ running

    def _episode_seeds(self):
        while True:
            yield int(self.episode_rng.integers(TRAIN_SEED_BASE, 2**31 - 1))

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
        self.progress.mct_objective = _per_task(mct)
        if self.reward_scale <= 0:
            self.reward_scale = max(self.progress.mct_objective, 1e-9)

    def _evaluate_and_keep(self) -> dict[str, Any]:
        res = self.evaluate()
        p = self.progress
        p.val_objective = _per_task(res)
        best = p.val_objective < p.best_objective
        if best:
            p.best_objective = p.val_objective
            save_checkpoint(self.out / "best.pt", self.model, self.resolved_config())
        row = {
            "elapsed_s": round(p.elapsed_s, 3),
            "updates": p.updates,
            "decisions": p.decisions,
            "rollout_decisions_per_s": round(p.rollout_rate, 1),
            "training_decisions_per_s": round(p.training_rate, 1),
            "overall_decisions_per_s": round(p.overall_rate, 1),
            "train_objective": p.train_objective,
            "val_objective": p.val_objective,
            "val_mean_response_s": float(np.mean([r["mean_response_s"] for r in res])),
            "mct_objective": p.mct_objective,
            "best_objective": p.best_objective,
        }
        path = self.out / "curve.csv"
        new = not path.exists()
        with path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=CURVE_COLUMNS)
            if new:
                w.writeheader()
            w.writerow(row)
        self.save_state()
        log.info(
            "update %d: validation %.4f (MCT %.4f)", p.updates, p.val_objective, p.mct_objective
        )
        return row

    def run(
        self, minutes: float | None = None, progress: Callable[[Progress], None] | None = None
    ) -> Progress:
        """Train for ``minutes`` (default: the config's) and return where the run stands."""
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        budget = 60.0 * (c.minutes if minutes is None else minutes)
        (self.out / "config.json").write_text(json.dumps(self.resolved_config(), indent=2) + "\n")
        old_threads = torch.get_num_threads()
        torch.set_num_threads(c.threads)
        try:
            return self._loop(budget, progress)
        finally:
            torch.set_num_threads(old_threads)

    def _loop(self, budget: float, progress: Callable[[Progress], None] | None) -> Progress:
        c = self.config
        p = self.progress
        p.budget_s = budget
        start = time.perf_counter()
        base_elapsed = p.elapsed_s

        def tick() -> None:
            p.session_s = time.perf_counter() - start
            p.elapsed_s = base_elapsed + p.session_s

        self._reference()
        if p.updates == 0:
            self._evaluate_and_keep()
        last_eval = time.perf_counter()
        self.vs = VecSim(c.spec(), c.n_envs, self._episode_seeds(), c.objective)
        while True:
            tick()
            if p.session_s >= budget or (c.max_updates and p.updates >= c.max_updates):
                break
            batch = self._rollout()
            t_update = time.perf_counter()
            self._update(batch)
            p.update_s += time.perf_counter() - t_update
            p.updates += 1
            tick()
            if time.perf_counter() - last_eval >= c.eval_every_s:
                self._evaluate_and_keep()
                last_eval = time.perf_counter()
            if progress is not None:
                progress(p)
        tick()
        self._evaluate_and_keep()
        (self.out / "config.json").write_text(json.dumps(self.resolved_config(), indent=2) + "\n")
        plot_curve(self.out / "curve.csv", self.out / "curve.png")
        if progress is not None:
            progress(p)
        return p

    def _rollout(self) -> dict[str, Any]:
        c = self.config
        vs = self.vs
        assert vs is not None
        t0 = time.perf_counter()
        steps, e, n = c.rollout_steps, vs.n_envs, vs.n_nodes
        k = min(c.candidates, n)
        obs = torch.empty(steps, e, k, N_FEATURES)
        mask = torch.empty(steps, e, k, dtype=torch.bool)
        act = torch.empty(steps, e, dtype=torch.long)
        logp = torch.empty(steps, e)
        value = torch.empty(steps + 1, e)
        episodes = np.empty((steps + 1, e), dtype=np.int64)
        tasks = np.empty((steps, e), dtype=np.int64)
        model = self.model
        model.eval()
        rows = torch.arange(e)
        with torch.inference_mode():
            for t in range(steps):
                x = torch.from_numpy(vs.obs)
                m = torch.from_numpy(vs.mask)
                h = model.embed(x)
                logits = masked_logits(model.score(x, h), m)
                g = torch.from_numpy(self.sample_rng.gumbel(size=(e, n)).astype(np.float32))
                a = (logits + g).argmax(dim=1)
                top = logits.topk(k, dim=1).indices
                missing = ~(top == a[:, None]).any(dim=1)
                top[missing, k - 1] = a[missing]
                pos = (top == a[:, None]).to(torch.int64).argmax(dim=1)
                lk = logits.gather(1, top)
                logp[t] = torch.log_softmax(lk, dim=1)[rows, pos]
                hk = h.gather(1, top[..., None].expand(-1, -1, h.shape[-1]))
                mk = m.gather(1, top)
                value[t] = model.value(hk, mk)
                obs[t] = x.gather(1, top[..., None].expand(-1, -1, N_FEATURES))
                mask[t] = mk
                act[t] = pos
                episodes[t] = vs.episode_ids()
                tasks[t] = vs.k
                for _, summary in vs.step(a.numpy()):
                    self._train_costs.append(summary["objective"] / summary["tasks"])
            episodes[steps] = vs.episode_ids()
            x = torch.from_numpy(vs.obs)
            m = torch.from_numpy(vs.mask)
            h = model.embed(x)
            top = masked_logits(model.score(x, h), m).topk(k, dim=1).indices
            hk = h.gather(1, top[..., None].expand(-1, -1, h.shape[-1]))
            value[steps] = model.value(hk, m.gather(1, top))
        costs = vs.costs(episodes[:steps], tasks)
        p = self.progress
        p.decisions += steps * e
        p.rollout_s += time.perf_counter() - t0
        if self._train_costs:
            p.train_objective = float(np.mean(self._train_costs[-c.n_envs :]))
        reward = torch.from_numpy(-costs / self.reward_scale).to(torch.float32)
        done = torch.from_numpy(episodes[1:] != episodes[:-1])
        adv = _gae(reward, value, done, c.gamma, c.gae_lambda)
        return {
            "obs": obs.reshape(steps * e, k, N_FEATURES),
            "mask": mask.reshape(steps * e, k),
            "act": act.reshape(-1),
            "logp": logp.reshape(-1),
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    t = [float(r["elapsed_s"]) / 60 for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(t, [float(r["val_objective"]) for r in rows], marker="o", label="validation (greedy)")
    ax.plot(t, [float(r["train_objective"]) for r in rows], alpha=0.6, label="training (sampled)")
    ax.axhline(float(rows[-1]["mct_objective"]), color="k", ls="--", lw=1, label="MCT (validation)")
    ax.set_yscale("log")  # the untrained policy is orders of magnitude worse
    ax.set_xlabel("training time, min")
    ax.set_ylabel("objective per task (mean response, s, by default)")
    ax.set_title("hybridsched rl: learning curve")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


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


__all__ = ["Progress", "TrainConfig", "Trainer", "plot_curve", "train"]
