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
weights. The loop, checkpoints, curve and save/resume are the shared
:mod:`hybridsched.train.scaffold`; the snapshots are a function of the seed
(collected again on resume, the same), so a resumed run reaches the same
weights as one never stopped. Writes ``config.json``, ``best.pt``,
``last.pt``, ``state.pt``, ``curve.csv`` and ``curve.png``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from hybridsched import __version__
from hybridsched.errors import ConfigError
from hybridsched.learn.features import FEATURE_NAMES, pair_features
from hybridsched.learn.network import NEG, PairScorer, load_checkpoint
from hybridsched.policies import cost as costmod
from hybridsched.policies.hybrid import FALLBACK_CHECKPOINT
from hybridsched.sim.view import ClusterView, TaskBatch
from hybridsched.train import scaffold
from hybridsched.train.config import HybridTrainConfig
from hybridsched.train.scaffold import (
    TRAIN_SEED_BASE,
    VALIDATION_SEED_BASE,
    TrainingRun,
    validation_seeds,
)
from hybridsched.train.workers import WorkerGroup, share


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


@dataclass
class SnapshotFeatures:
    """What the learner needs of a snapshot (the rest stays with the worker that holds it)."""

    x: torch.Tensor
    """Pair features ``(B, N, F)``."""
    allowed: np.ndarray
    """Nodes the colony may use ``(B, N)``."""


class SnapshotWorker:
    """Collects a share of the runs' snapshots and samples their ants (a Ray actor on ray).

    Args:
        config: the run's configuration.
    """

    def __init__(self, config: HybridTrainConfig) -> None:
        self.config = config
        self._runs: list[list[Snapshot]] = []
        self.snaps: list[Snapshot] = []

    def collect(self, seeds: list[int]) -> list[int]:
        """Snapshot every batch of >= 2 tasks of an MCT run per seed; the counts per run."""
        self._runs = [collect_all(self.config, s) for s in seeds]
        return [len(r) for r in self._runs]

    def keep(self, masks: list[np.ndarray]) -> list[SnapshotFeatures]:
        """Keep the snapshots ``masks`` (one per run) select; their features, in order."""
        self.snaps = [
            sn
            for run, m in zip(self._runs, masks, strict=True)
            for sn, k in zip(run, m, strict=True)
            if k
        ]
        self._runs = []
        return [SnapshotFeatures(sn.x, sn.allowed) for sn in self.snaps]

    def sample(self, jobs: list[tuple]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:func:`ants_and_costs` of ``(snapshot index, z, cand, valid, u)`` jobs, in order."""
        beta = self.config.beta
        return [
            ants_and_costs(self.snaps[i], z, cand, valid, beta, u) for i, z, cand, valid, u in jobs
        ]


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
    """MCT that snapshots every batch of >= 2 tasks it decides (a policy for the engine)."""

    name = "mct-collector"

    def __init__(self, out: list[Snapshot]) -> None:
        from hybridsched.policies import make_policy

        self._mct = make_policy("mct")
        self._out = out
        self._w = costmod.CostWeights()

    def reset(self, cluster, rng) -> None:
        self._mct.reset(cluster, rng)

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        if len(tasks) >= 2:
            self._out.append(snapshot(tasks, view, self._w))
        return self._mct.assign(tasks, view)


def collect_all(config: HybridTrainConfig, seed: int) -> list[Snapshot]:
    """Snapshots of every decision batch of >= 2 tasks of an MCT run on workload ``seed``."""
    out: list[Snapshot] = []
    # the episode's instance, its drift and estimates included (docs/RL.md)
    config.spec().build(seed).run(_Collector(out), seed)
    return out


def collect(
    config: HybridTrainConfig, seeds: list[int], rng: np.random.Generator
) -> list[Snapshot]:
    """Snapshots of decision batches from MCT runs on the given workload seeds.

    Each batch of >= 2 tasks is kept with probability ``config.keep``: one draw
    of ``rng`` per such batch, run by run, in decision order (the runs may be
    collected anywhere; the draws are made here, in this order).
    """
    out: list[Snapshot] = []
    for s in seeds:
        every = collect_all(config, s)
        out += [
            sn for sn, kept in zip(every, keep_draws(config, rng, len(every)), strict=True) if kept
        ]
    return out


def keep_draws(config: HybridTrainConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """Which of a run's ``n`` batches to keep: ``n`` draws of ``rng`` against ``config.keep``."""
    return rng.random(n) < config.keep


def ants_and_costs(
    snap: Snapshot, z: np.ndarray, cand: np.ndarray, valid: np.ndarray, beta: float, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`sample_ants` on ``snap``, and each ant's exact batch cost ``(K,)``."""
    picks, corr = sample_ants(snap, z, cand, valid, beta, u)
    nodes = np.take_along_axis(
        np.broadcast_to(cand, (u.shape[0], *cand.shape)), picks[:, :, None], axis=2
    )
    costs = costmod.evaluate(snap.problem, np.ascontiguousarray(nodes[:, :, 0]))
    return picks, corr, costs


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


Sampler = Callable[[list[tuple]], list[tuple[np.ndarray, np.ndarray, np.ndarray]]]
"""``sample(jobs) -> [(picks, corr, costs)]``: the ants of ``(z, cand, valid, u)`` per snapshot."""


def reinforce_loss(
    model: PairScorer,
    snaps: Sequence[Snapshot | SnapshotFeatures],
    config: HybridTrainConfig,
    rng: np.random.Generator,
    sample: Sampler | None = None,
) -> tuple[torch.Tensor, float]:
    """The REINFORCE loss over ``snaps`` and the mean relative ant cost (for the curve).

    The network's logits and the draws ``u`` are made here, in snapshot order;
    the ants are sampled and costed by ``sample`` (default: here, on the
    :class:`Snapshot` objects), wherever the snapshots live.
    """
    jobs = []
    zs = []
    for snap in snaps:
        logits = model.score(snap.x).double()
        cand, valid = candidates(logits.detach(), snap.allowed, config.candidates)
        lc = logits.gather(1, torch.from_numpy(cand))
        z = config.beta * lc / config.temperature  # log tau = 0
        u = rng.random((config.ants, cand.shape[0]))
        zs.append(z)
        jobs.append((z.detach().numpy(), cand, valid, u))
    if sample is None:
        ants = [
            ants_and_costs(sn, *job[:3], config.beta, job[3])
            for sn, job in zip(snaps, jobs, strict=True)
        ]
    else:
        ants = sample(jobs)
    losses = []
    rel = []
    for z, (_, _, valid, _), (picks, corr, costs) in zip(zs, jobs, ants, strict=True):
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


@dataclass
class HybridProgress(scaffold.Progress):
    """Where a hybrid run stands; its scores are mean responses, s.

    ``val`` is the hybrid's on the validation seeds, ``train`` the mean ant cost of
    the latest update's snapshots.
    """

    LEGACY: ClassVar[dict[str, str]] = {"last_val": "val", "train_cost": "train"}

    def status(self) -> str:
        """One line for a progress bar."""
        return f"{super().status()}  ant cost {self.train:.3f}"


class HybridTrainer(TrainingRun):
    """One hybrid training run in folder ``out``."""

    config_class = HybridTrainConfig
    progress_class = HybridProgress

    def __init__(self, config: HybridTrainConfig, out: Path) -> None:
        super().__init__(config, out)
        # not in state.pt: the snapshots are collected again on resume, with the same draws
        self._collect_ss, sample_ss, pick_ss = self.seeds.spawn(3)
        self.model, self.init_config = load_checkpoint(config.init or FALLBACK_CHECKPOINT)
        self.model.train()
        self.optim = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.sample_rng = np.random.default_rng(sample_ss)
        self.pick_rng = np.random.default_rng(pick_ss)
        self.snaps: list[SnapshotFeatures] = []
        """The snapshots' features, in collection order."""
        self._owner: list[tuple[int, int]] = []
        """(worker, index there) of each snapshot."""
        self._group: WorkerGroup | None = None

    # the figures, as attributes (what the CLI and callers read)
    updates = property(lambda self: self.progress.updates, doc="Updates so far.")
    elapsed_s = property(lambda self: self.progress.elapsed_s, doc="Seconds of training.")
    best = property(lambda self: self.progress.best, doc="Best validation mean response, s.")
    mct = property(lambda self: self.progress.mct, doc="MCT's validation mean response, s.")
    last_val = property(lambda self: self.progress.val, doc="Latest validation, s.")
    train_cost = property(lambda self: self.progress.train, doc="Latest mean ant cost.")

    @classmethod
    def upgrade_state(cls, meta: dict[str, Any]) -> dict[str, Any]:
        """A ``state.pt`` from before the scaffold: its figures at the top, three generators."""
        if "progress" in meta:
            return meta
        keys = ("updates", "elapsed_s", "best", "mct")
        return {**meta, "progress": {k: meta[k] for k in keys}, "rng": meta["rng"][1:]}

    def generators(self) -> list[np.random.Generator]:
        """Ant draws and snapshot picks (the collection's generator restarts from the seed)."""
        return [self.sample_rng, self.pick_rng]

    def resolved_config(self) -> dict[str, Any]:
        """The config as run, with what training resolved."""
        ray = self._group is not None and self.config.backend == "ray"
        return {
            **self.config.to_dict(),
            **({"ray_nodes": self._group.nodes} if ray else {}),
            "policy": "hybrid",
            "version": __version__,
            "feature_names": list(FEATURE_NAMES),
            "validation_seeds": self.validation_seeds(),
            "updates": self.progress.updates,
            "best_val_mean_response_s": self.progress.best,
            "mct_val_mean_response_s": self.progress.mct,
        }

    def validation_seeds(self) -> list[int]:
        """Held-out seeds."""
        return validation_seeds(self.config.eval_seeds)

    def evaluate(self, policy: str = "hybrid") -> float:
        """Mean response, s, over the validation seeds (the hybrid with the current network)."""
        from hybridsched.policies import make_policy

        c = self.config
        total, n = 0.0, 0
        for s in self.validation_seeds():
            pol = make_policy(policy)
            if policy == "hybrid":
                pol.model = self.model
                pol.temperature = c.temperature
            res = c.spec(c.eval_tasks).build(s).run(pol, s)
            total += res.summary["mean_response_s"] * res.summary["tasks"]
            n += res.summary["tasks"]
        return total / n

    def prepare(self) -> None:
        """Collect the snapshots in the workers (once per session) and MCT's validation figure."""
        if self._group is None:
            self._collect()
        if self.progress.mct != self.progress.mct:
            self.progress.mct = self.evaluate("mct")

    def _collect(self) -> None:
        c = self.config
        rng = np.random.default_rng(self._collect_ss)
        seeds = [int(s) for s in rng.integers(TRAIN_SEED_BASE, 2**31 - 1, c.collect_runs)]
        runs = share(c.collect_runs, c.workers)
        group = WorkerGroup(c.backend, c.workers, self.ray_address)
        try:
            group.start(SnapshotWorker, [(c,)] * c.workers)
            counts = group.call_each("collect", [([seeds[r] for r in w],) for w in runs])
            # the keep draws in run order, as one collection here would make them
            masks = [[keep_draws(c, rng, n) for n in worker] for worker in counts]
            kept = group.call_each("keep", [(m,) for m in masks])
        except BaseException:
            group.close()
            raise
        self.snaps = [SnapshotFeatures(f.x, np.array(f.allowed)) for worker in kept for f in worker]
        self._owner = [(w, i) for w, worker in enumerate(kept) for i in range(len(worker))]
        if not self.snaps:
            group.close()
            raise ConfigError("hybrid training: no decision batch of >= 2 tasks was collected")
        self._group = group

    def _sample(self, picked: list[int]) -> Sampler:
        """Send each picked snapshot's ants to the worker that holds it."""
        assert self._group is not None
        group = self._group

        def sample(jobs: list[tuple]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            per: list[list[tuple]] = [[] for _ in range(group.workers)]
            where = []
            for snap, job in zip(picked, jobs, strict=True):
                w, i = self._owner[snap]
                where.append((w, len(per[w])))
                per[w].append((i, *job))
            answers = group.call_each("sample", [(jobs_w,) for jobs_w in per])
            # copies: arrays from Ray's object store are read-only, which torch warns about
            return [tuple(np.array(a) for a in answers[w][k]) for w, k in where]

        return sample

    def update(self) -> None:
        """One REINFORCE step on a few snapshots."""
        c = self.config
        pick = self.pick_rng.choice(
            len(self.snaps), min(c.snapshots_per_update, len(self.snaps)), replace=False
        )
        picked = [int(i) for i in pick]
        loss, cost = reinforce_loss(
            self.model, [self.snaps[i] for i in picked], c, self.sample_rng, self._sample(picked)
        )
        self.optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
        self.optim.step()
        self.progress.train = cost

    def validate(self) -> tuple[float, None]:
        """The hybrid's mean response on the validation seeds, s."""
        self.model.eval()
        with torch.no_grad():
            val = self.evaluate()
        self.model.train()
        return val, None

    def curve_row(self, details: None) -> dict[str, Any]:
        """The curve row of the latest evaluation."""
        p = self.progress
        return {
            "elapsed_s": f"{p.elapsed_s:.1f}",
            "updates": p.updates,
            "train_ant_cost": p.train,
            "val_mean_response_s": p.val,
            "mct_mean_response_s": p.mct,
            "best_mean_response_s": p.best,
        }

    def plot(self) -> None:
        """Redraw ``curve.png``."""
        plot_curve(self.out / "curve.csv", self.out / "curve.png")

    def run(
        self,
        minutes: float | None = None,
        progress: scaffold.ProgressCallback | None = None,
        *,
        graceful: bool = False,
    ) -> HybridTrainer:
        """Train for ``minutes`` (default: the config's; see :meth:`TrainingRun.run`); the
        workers end with it."""
        try:
            super().run(minutes, progress, graceful=graceful)
        finally:
            if self._group is not None:
                self._group.close()
                self._group = None
        return self


def plot_curve(csv_path: Path, png_path: Path) -> None:
    """Plot validation mean response (and MCT's) against training time."""
    scaffold.plot_curve(
        csv_path,
        png_path,
        series=[("val_mean_response_s", "hybrid (validation)")],
        reference=("mct_mean_response_s", "MCT (validation)"),
        ylabel="mean response, s",
        title="hybridsched hybrid: learning curve",
    )


__all__ = [
    "TRAIN_SEED_BASE",
    "VALIDATION_SEED_BASE",
    "HybridProgress",
    "HybridTrainConfig",
    "HybridTrainer",
    "Snapshot",
    "collect",
    "expected_cost",
    "reinforce_loss",
    "sample_ants",
    "snapshot",
]
