"""The ``rl`` trainer's rollouts, one shard of simulator copies at a time.

The ``n_envs`` simulator copies of a run are cut into ``shards`` fixed,
contiguous groups (:func:`~hybridsched.train.workers.share`). A
:class:`RolloutShard` owns one group: its :class:`~hybridsched.train.rollout.VecSim`,
its action-sampling generator and its stream of episode seeds. A rollout of a
shard depends only on the shard and the weights it is given: its network
forward runs over its own copies only (a forward's floating-point sums depend
on the batch it is part of, so the batch is the shard, never the worker), and
its draws come from its own generators. A :class:`RolloutWorker` (a Ray actor
on the ray backend) holds a contiguous share of the shards; the trainer
gathers their buffers in shard order. So a run's weights depend on its
``shards``, never on how many workers step them (tested: 2 Ray workers give
the same weights as 1 local worker, bit for bit, on the same machine).

With one shard the generators are the trainer's own (those of runs made
before sharding), so such runs and their saved states are unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from hybridsched.learn.features import N_FEATURES
from hybridsched.learn.network import PairScorer, masked_logits
from hybridsched.train.config import TrainConfig
from hybridsched.train.rollout import VecSim
from hybridsched.train.scaffold import torch_threads, training_seeds


class RolloutShard:
    """A group of simulator copies with its own random streams.

    Args:
        config: the run's configuration.
        copies: the run-wide indices of this shard's copies.
        sample_ss, episode_ss: seeds of its action sampling and episode seeds.
        saved: what :meth:`state` returned (on resume), or None.
    """

    def __init__(
        self,
        config: TrainConfig,
        copies: range,
        sample_ss: np.random.SeedSequence,
        episode_ss: np.random.SeedSequence,
        saved: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.copies = copies
        self.sample_rng = np.random.default_rng(sample_ss)
        self.episode_rng = np.random.default_rng(episode_ss)
        spec = config.spec()
        if saved is not None:
            for g, state in zip((self.sample_rng, self.episode_rng), saved["rng"], strict=True):
                g.bit_generator.state = state
        seeds = training_seeds(self.episode_rng)
        if saved is not None and saved.get("copies") is not None:
            self.vs = VecSim.resume(spec, seeds, saved["copies"], config.objective)
        else:
            self.vs = VecSim(spec, len(copies), seeds, config.objective)

    def state(self) -> dict[str, Any]:
        """The generators and the copies' episodes, JSON-able (for ``state.pt``)."""
        return {
            "rng": [g.bit_generator.state for g in (self.sample_rng, self.episode_rng)],
            "copies": self.vs.episode_state(),
        }

    def rollout(self, model: PairScorer) -> dict[str, Any]:
        """``rollout_steps`` decisions of every copy, sampled from ``model``.

        Returns the candidates' features ``obs (T, E, k, F)`` and ``mask``, the
        chosen position ``act`` and its ``logp``, the baseline ``value (T+1, E)``,
        each decision's cost ``costs (T, E)``, ``done (T, E)`` (the episode
        ended after the decision), and ``ended``: ``(step, copy, objective per
        task)`` of each finished episode.
        """
        c = self.config
        vs = self.vs
        steps, e, n = c.rollout_steps, vs.n_envs, vs.n_nodes
        k = min(c.candidates, n)
        obs = torch.empty(steps, e, k, N_FEATURES)
        mask = torch.empty(steps, e, k, dtype=torch.bool)
        act = torch.empty(steps, e, dtype=torch.long)
        logp = torch.empty(steps, e)
        value = torch.empty(steps + 1, e)
        episodes = np.empty((steps + 1, e), dtype=np.int64)
        tasks = np.empty((steps, e), dtype=np.int64)
        ended: list[tuple[int, int, float]] = []
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
                before = episodes[t]
                for ep, summary in vs.step(a.numpy()):
                    copy = self.copies[int(np.flatnonzero(before == ep)[0])]
                    ended.append((t, copy, summary["objective"] / summary["tasks"]))
            episodes[steps] = vs.episode_ids()
            x = torch.from_numpy(vs.obs)
            m = torch.from_numpy(vs.mask)
            h = model.embed(x)
            top = masked_logits(model.score(x, h), m).topk(k, dim=1).indices
            hk = h.gather(1, top[..., None].expand(-1, -1, h.shape[-1]))
            value[steps] = model.value(hk, m.gather(1, top))
        return {
            "obs": obs,
            "mask": mask,
            "act": act,
            "logp": logp,
            "value": value,
            "costs": vs.costs(episodes[:steps], tasks),
            "done": episodes[1:] != episodes[:-1],
            "ended": ended,
        }


class RolloutWorker:
    """The shards one worker steps (a Ray actor on the ray backend).

    Args:
        config: the run's configuration.
        shards: ``(copies, sample_ss, episode_ss, saved)`` of each of its shards.
    """

    def __init__(self, config: TrainConfig, shards: Sequence[tuple]) -> None:
        self.config = config
        with torch_threads(config.threads):
            self.shards = [RolloutShard(config, *s) for s in shards]
            self.model = PairScorer(N_FEATURES, config.hidden, config.init)

    def rollout(self, weights: Mapping[str, torch.Tensor]) -> list[dict[str, Any]]:
        """Each shard's rollout (:meth:`RolloutShard.rollout`) with ``weights``, in shard order."""
        with torch_threads(self.config.threads):
            self.model.load_state_dict(weights)
            return [s.rollout(self.model) for s in self.shards]

    def state(self) -> list[dict[str, Any]]:
        """Each shard's :meth:`RolloutShard.state`, in shard order."""
        return [s.state() for s in self.shards]

    def cpu_seconds(self) -> float:
        """CPU seconds this worker's process has used so far (for benchmarks)."""
        return time.process_time()

    def n_nodes(self) -> list[int]:
        """Each shard's node count (the width of its observations)."""
        return [s.vs.n_nodes for s in self.shards]
