"""Training the hybrid's network through the ant colony: REINFORCE on the ants' costs.

DeepACO-style: the network supplies the colony's desirability ``eta``; ants
sample assignments with probabilities ``tau^alpha * eta'^beta`` over each
task's candidate nodes (``eta'`` the colony's dynamic correction by the ant's
own earlier placements, a constant given those placements; ``tau`` treated as
the constant 1); each ant's cost is the colony's exact batch cost
(:func:`hybridsched.policies.cost.evaluate`). The loss is
``mean_ants((cost - mean cost) / mean cost * log p(ant))`` (the advantage
divided by the batch's mean cost so batches of any scale weigh alike), so the
network learns which nodes the colony should try.

One story: :class:`HybridTrainConfig` -> :class:`HybridTrainer` collects
decision-batch snapshots from simulated runs (MCT decides, every batch of at
least two tasks is kept with probability ``keep``), then loops *sample K ants
on a few snapshots -> one gradient step -> (every so often) evaluate the hybrid
on held-out seeds and checkpoint*. The network starts from the shipped ``rl``
weights. Writes ``config.json``, ``best.pt``, ``last.pt``, ``state.pt``,
``curve.csv`` and ``curve.png``.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridsched import __version__
from hybridsched.errors import ConfigError
from hybridsched.learn.features import FEATURE_NAMES, pair_features
from hybridsched.learn.network import NEG, PairScorer, load_checkpoint, save_checkpoint
from hybridsched.policies import cost as costmod
from hybridsched.policies.hybrid import FALLBACK_CHECKPOINT
from hybridsched.sim.view import ClusterView, TaskBatch

log = logging.getLogger(__name__)

TRAIN_SEED_BASE = 1_000_000
"""Training workloads use seeds >= this; validation seeds lie below."""
VALIDATION_SEED_BASE = 10_000
"""First validation seed."""


@dataclass(frozen=True)
class HybridTrainConfig:
    """Everything a hybrid training run needs; written to ``config.json`` and checkpoints."""

    scenario: str = "iot-default"
    """Scenario preset of the workloads."""
    load: float = 0.9
    """Offered work / cluster capacity."""
    n_tasks: int = 2000
    """Tasks per collection run."""
    decision_interval: float = 0.5
    """Batching interval, s."""
    queue: str = "priority"
    """Queue discipline at the nodes."""
    seed: int = 0
    """Root seed."""
    minutes: float = 5.0
    """Wall-clock budget, minutes."""
    max_updates: int = 0
    """Stop after this many updates (0: time only)."""
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
    eval_every_s: float = 60.0
    """Seconds between evaluations (one also at the start and the end)."""

    def __post_init__(self) -> None:
        for name in ("n_tasks", "collect_runs", "ants", "snapshots_per_update", "candidates"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"hybrid train config: {name} must be an integer >= 1, got {v!r}")
        if self.ants < 2:
            raise ConfigError(f"hybrid train config: ants must be >= 2, got {self.ants}")
        if not 0 < self.keep <= 1:
            raise ConfigError(f"hybrid train config: keep must be in (0, 1], got {self.keep}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HybridTrainConfig:
        """Build from a mapping; unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"hybrid train config: unknown key(s) {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class Snapshot:
    """One decision batch, frozen: what sampling ants and costing them needs."""

    x: torch.Tensor
    """Pair features ``(B, N, F)``."""
    allowed: np.ndarray
    """Nodes the colony may use ``(B, N)`` bool: the feasible ones (the policy's
    deadline rule is a repair after the colony, not a restriction of its search)."""
    order: np.ndarray
    """Construction order (priority, then slack)."""
    ready: np.ndarray
    """Ready time per pair, s."""
    dur: np.ndarray
    """Execution time per pair, s."""
    d: float
    """Decision time, s."""
    proj: np.ndarray
    """Projected core-free times ``(N, C)``."""
    pm0: np.ndarray
    """``max(d, earliest free core)`` per node."""
    problem: Any
    """Compiled batch problem (:func:`hybridsched.policies.cost.compile_problem`)."""


def snapshot(tasks: TaskBatch, view: ClusterView, weights: costmod.CostWeights) -> Snapshot:
    """Freeze a decision batch (copies of everything the ants read)."""
    best = np.min(np.where(view.feasible, view.est_finish_s, np.inf), axis=1)
    slack = tasks.deadline_abs_s - best
    b = len(tasks)
    return Snapshot(
        x=torch.from_numpy(pair_features(tasks, view)),
        allowed=np.array(view.feasible),
        order=np.lexsort((np.arange(b), slack, tasks.priority)).astype(np.int64),
        ready=np.array(view.ready_s),
        dur=np.array(view.exec_s),
        d=float(view.time),
        proj=np.array(view.core_free_s),
        pm0=np.array(view.available_s),
        problem=costmod.compile_problem(costmod.build_problem(tasks, view, weights)),
    )


class _Collector:
    """MCT that keeps snapshots of the batches it decides (a policy for the engine)."""

    name = "mct-collector"

    def __init__(self, keep: float, rng: np.random.Generator, out: list[Snapshot]) -> None:
        from hybridsched.policies import make_policy

        self._mct = make_policy("mct")
        self._keep = keep
        self._rng = rng
        self._out = out
        self._w = costmod.CostWeights()

    def reset(self, cluster, rng) -> None:
        self._mct.reset(cluster, rng)

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        if len(tasks) >= 2 and self._rng.random() < self._keep:
            self._out.append(snapshot(tasks, view, self._w))
        return self._mct.assign(tasks, view)


def collect(
    config: HybridTrainConfig, seeds: list[int], rng: np.random.Generator
) -> list[Snapshot]:
    """Snapshots of decision batches from MCT runs on the given workload seeds."""
    from hybridsched.sim import SimConfig, simulate
    from hybridsched.workload import generate

    out: list[Snapshot] = []
    for s in seeds:
        cluster, workload = generate(config.scenario, config.n_tasks, config.load, s)
        simulate(
            cluster,
            workload,
            _Collector(config.keep, rng, out),
            config=SimConfig(decision_interval=config.decision_interval, queue=config.queue),
            seed=s,
        )
    return out


def candidates(logits: torch.Tensor, allowed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best-scoring allowed nodes per task ``(B, k)`` and which entries are valid."""
    masked = torch.where(torch.from_numpy(allowed), logits, torch.full_like(logits, NEG))
    k = min(k, logits.shape[1])
    vals, idx = masked.topk(k, dim=1)
    return idx.numpy().astype(np.int64), (vals > NEG / 2).numpy()


def sample_ants(
    snap: Snapshot,
    z: np.ndarray,
    cand: np.ndarray,
    valid: np.ndarray,
    beta: float,
    u: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Construct ``K`` ants as the colony does (dynamic correction on), vectorised over ants.

    Args:
        snap: the batch.
        z: base log-weights ``beta * logit / T + alpha * log tau`` on the candidates ``(B, k)``.
        cand, valid: candidate nodes and their validity ``(B, k)``.
        beta: the desirability exponent (for the correction ``ratio^beta``).
        u: uniform draws ``(K, B)``.

    Returns:
        ``(picks (K, B) candidate positions, corr (K, B, k) log-corrections)``.
    """
    n_ants, b = u.shape
    k = cand.shape[1]
    ar = np.arange(n_ants)
    pm = np.broadcast_to(snap.pm0, (n_ants, snap.pm0.shape[0])).copy()
    touched = np.zeros_like(pm, dtype=bool)
    rows = np.broadcast_to(snap.proj, (n_ants, *snap.proj.shape)).copy()
    picks = np.zeros((n_ants, b), dtype=np.int64)
    corr = np.zeros((n_ants, b, k))
    d = snap.d
    for t in snap.order:
        js = cand[t]
        r = snap.ready[t, js]
        du = snap.dur[t, js]
        base = np.maximum(r, np.maximum(d, snap.pm0[js])) + du - d
        now = np.maximum(r, np.maximum(d, pm[:, js])) + du - d
        c = np.where(touched[:, js], beta * np.log(base / now), 0.0)
        logit = np.where(valid[t], z[t] + c, -np.inf)
        logit -= logit.max(axis=1, keepdims=True)
        w = np.exp(logit)
        cum = np.cumsum(w, axis=1)
        x = u[:, t] * cum[:, -1]
        pick = np.minimum((cum <= x[:, None]).sum(axis=1), k - 1)
        pick = np.where(valid[t, pick], pick, 0)
        picks[:, t] = pick
        corr[:, t] = c
        j = js[pick]
        touched[ar, j] = True
        row = rows[ar, j]
        cc = np.argmin(row, axis=1)
        row[ar, cc] = np.maximum(snap.ready[t, j], row[ar, cc]) + snap.dur[t, j]
        rows[ar, j] = row
        pm[ar, j] = row.min(axis=1)
    return picks, corr


def reinforce_loss(
    model: PairScorer,
    snaps: list[Snapshot],
    config: HybridTrainConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, float]:
    """The REINFORCE loss over ``snaps`` and the mean relative ant cost (for the curve)."""
    losses = []
    rel = []
    for snap in snaps:
        logits = model.score(snap.x).double()
        cand, valid = candidates(logits.detach(), snap.allowed, config.candidates)
        lc = logits.gather(1, torch.from_numpy(cand))
        z = config.beta * lc / config.temperature  # log tau = 0
        u = rng.random((config.ants, cand.shape[0]))
        picks, corr = sample_ants(snap, z.detach().numpy(), cand, valid, config.beta, u)
        nodes = np.take_along_axis(
            np.broadcast_to(cand, (config.ants, *cand.shape)), picks[:, :, None], axis=2
        )[:, :, 0]
        costs = costmod.evaluate(snap.problem, np.ascontiguousarray(nodes))
        full = z.unsqueeze(0) + torch.from_numpy(corr)
        full = torch.where(torch.from_numpy(valid).unsqueeze(0), full, torch.full_like(full, -1e30))
        logp = torch.log_softmax(full, dim=2).gather(2, torch.from_numpy(picks)[:, :, None])
        logp = logp.squeeze(2).sum(dim=1)
        mean = float(costs.mean())
        adv = torch.from_numpy((costs - mean) / max(abs(mean), 1e-9))
        losses.append((adv * logp).mean())
        rel.append(mean)
    return torch.stack(losses).mean(), float(np.mean(rel))


def expected_cost(
    model: PairScorer, snaps: list[Snapshot], config: HybridTrainConfig, seed: int = 0
) -> float:
    """Mean ant cost over ``snaps`` with fixed draws (for tests and monitoring)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        return reinforce_loss(model, snaps, config, rng)[1]


CURVE_COLUMNS = (
    "elapsed_s",
    "updates",
    "train_ant_cost",
    "val_mean_response_s",
    "mct_mean_response_s",
    "best_mean_response_s",
)


class HybridTrainer:
    """One hybrid training run in folder ``out``."""

    def __init__(self, config: HybridTrainConfig, out: Path) -> None:
        self.config = config
        self.out = Path(out)
        ss = np.random.SeedSequence(config.seed)
        collect_ss, sample_ss, pick_ss = ss.spawn(3)
        self.model, self.init_config = load_checkpoint(config.init or FALLBACK_CHECKPOINT)
        self.model.train()
        self.optim = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.collect_rng = np.random.default_rng(collect_ss)
        self.sample_rng = np.random.default_rng(sample_ss)
        self.pick_rng = np.random.default_rng(pick_ss)
        self.updates = 0
        self.elapsed_s = 0.0
        self.best = float("inf")
        self.mct = float("nan")
        self.last_val = float("nan")
        self.train_cost = float("nan")
        self.snaps: list[Snapshot] = []

    def resolved_config(self) -> dict[str, Any]:
        """The config as run, with what training resolved."""
        return {
            **self.config.to_dict(),
            "policy": "hybrid",
            "version": __version__,
            "feature_names": list(FEATURE_NAMES),
            "validation_seeds": self.validation_seeds(),
            "updates": self.updates,
            "best_val_mean_response_s": self.best,
            "mct_val_mean_response_s": self.mct,
        }

    def validation_seeds(self) -> list[int]:
        """Held-out seeds."""
        return [VALIDATION_SEED_BASE + k for k in range(self.config.eval_seeds)]

    def save_state(self) -> None:
        """Write ``last.pt`` and ``state.pt`` (for ``--resume``)."""
        save_checkpoint(self.out / "last.pt", self.model, self.resolved_config())
        meta = {
            "config": self.config.to_dict(),
            "updates": self.updates,
            "elapsed_s": self.elapsed_s,
            "best": self.best,
            "mct": self.mct,
            "rng": [
                g.bit_generator.state for g in (self.collect_rng, self.sample_rng, self.pick_rng)
            ],
        }
        blob = {
            "model": self.model.state_dict(),
            "optim": self.optim.state_dict(),
            "meta": json.dumps(meta),
        }
        tmp = self.out / "state.pt.tmp"
        torch.save(blob, tmp)
        tmp.replace(self.out / "state.pt")

    @classmethod
    def resume(cls, out: Path) -> HybridTrainer:
        """Rebuild a trainer from ``out/state.pt``."""
        path = Path(out) / "state.pt"
        if not path.is_file():
            raise ConfigError(f"--resume {out}: no state.pt there (not a training folder?)")
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
        tr = cls(HybridTrainConfig.from_dict(meta["config"]), Path(out))
        tr.model.load_state_dict(blob["model"])
        tr.optim.load_state_dict(blob["optim"])
        tr.updates, tr.elapsed_s = int(meta["updates"]), float(meta["elapsed_s"])
        tr.best, tr.mct = float(meta["best"]), float(meta["mct"])
        for g, s in zip((tr.collect_rng, tr.sample_rng, tr.pick_rng), meta["rng"], strict=True):
            g.bit_generator.state = s
        return tr

    def evaluate(self, policy: str = "hybrid") -> float:
        """Mean response, s, over the validation seeds (the hybrid with the current network)."""
        from hybridsched.policies import make_policy
        from hybridsched.sim import SimConfig, simulate
        from hybridsched.workload import generate

        c = self.config
        total, n = 0.0, 0
        for s in self.validation_seeds():
            cluster, workload = generate(c.scenario, c.eval_tasks, c.load, s)
            pol = make_policy(policy)
            if policy == "hybrid":
                pol.model = self.model
                pol.temperature = c.temperature
            res = simulate(
                cluster,
                workload,
                pol,
                config=SimConfig(decision_interval=c.decision_interval, queue=c.queue),
                seed=s,
            )
            total += res.summary["mean_response_s"] * res.summary["tasks"]
            n += res.summary["tasks"]
        return total / n

    def _evaluate_and_keep(self) -> None:
        self.model.eval()
        with torch.no_grad():
            val = self.evaluate()
        self.model.train()
        self.last_val = val
        if val < self.best:
            self.best = val
            save_checkpoint(self.out / "best.pt", self.model, self.resolved_config())
        new = not (self.out / "curve.csv").is_file()
        with (self.out / "curve.csv").open("a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(CURVE_COLUMNS)
            w.writerow(
                [f"{self.elapsed_s:.1f}", self.updates, self.train_cost, val, self.mct, self.best]
            )
        self.save_state()
        plot_curve(self.out / "curve.csv", self.out / "curve.png")

    def run(
        self,
        minutes: float | None = None,
        progress: Callable[[HybridTrainer, float], None] | None = None,
    ) -> HybridTrainer:
        """Train for ``minutes`` (default: the config's) of wall-clock time."""
        c = self.config
        # one thread: the tensors are small, and 2 shared cores oversubscribe badly
        torch.set_num_threads(1)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(c.to_dict(), indent=2))
        budget = 60.0 * (c.minutes if minutes is None else minutes)
        t0 = time.perf_counter()
        e0 = self.elapsed_s
        seeds = [
            int(s) for s in self.collect_rng.integers(TRAIN_SEED_BASE, 2**31 - 1, c.collect_runs)
        ]
        self.snaps = collect(c, seeds, self.collect_rng)
        if not self.snaps:
            raise ConfigError("hybrid training: no decision batch of >= 2 tasks was collected")
        if self.mct != self.mct:
            self.mct = self.evaluate("mct")
        self._evaluate_and_keep()
        last_eval = time.perf_counter()
        while True:
            session = time.perf_counter() - t0
            if session >= budget or (c.max_updates and self.updates >= c.max_updates):
                break
            pick = self.pick_rng.choice(
                len(self.snaps), min(c.snapshots_per_update, len(self.snaps)), replace=False
            )
            loss, cost = reinforce_loss(
                self.model, [self.snaps[i] for i in pick], c, self.sample_rng
            )
            self.optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
            self.optim.step()
            self.updates += 1
            self.train_cost = cost
            self.elapsed_s = e0 + time.perf_counter() - t0
            if time.perf_counter() - last_eval >= c.eval_every_s:
                self._evaluate_and_keep()
                last_eval = time.perf_counter()
            if progress:
                progress(self, min(time.perf_counter() - t0, budget))
        self.elapsed_s = e0 + time.perf_counter() - t0
        self._evaluate_and_keep()
        return self


def plot_curve(csv_path: Path, png_path: Path) -> None:
    """Plot validation mean response (and MCT's) against training time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    t = [float(r["elapsed_s"]) / 60 for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot(
        t, [float(r["val_mean_response_s"]) for r in rows], marker="o", label="hybrid (validation)"
    )
    ax.axhline(
        float(rows[-1]["mct_mean_response_s"]), color="k", ls="--", lw=1, label="MCT (validation)"
    )
    ax.set_xlabel("training time, min")
    ax.set_ylabel("mean response, s")
    ax.set_title("hybridsched hybrid: learning curve")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


__all__ = [
    "HybridTrainConfig",
    "HybridTrainer",
    "Snapshot",
    "collect",
    "expected_cost",
    "reinforce_loss",
    "sample_ants",
    "snapshot",
]
