"""The learned scheduler: a pair-scoring network trained by policy gradient (PPO).

For each task the network scores every (task, node) pair from the features of
:mod:`hybridsched.learn.features` and the task goes to the best-scoring feasible
node (``greedy``, the default) or to one drawn from the masked softmax with the
run's generator. The tasks of a batch are placed one at a time, each seeing the
tentative placement of the ones before it, as the heuristics do. A network made
for the observed features (21) also reads what the view observes of each node
(:func:`~hybridsched.learn.features.observe_nodes`); an older one (18) does not.

The weights come from a checkpoint written by ``hybridsched train rl``
(``checkpoint=PATH``: a ``.pt`` file or a training folder, whose ``best.pt`` is
read); without one, the small default shipped in ``hybridsched/checkpoints``
(see docs/RL.md for how it was trained). torch is imported when the policy is
built, never by the simulator.

At its defaults ``rl`` holds two networks: the default one, which places every
task as MCT does, and ``rl-drift.pt``, distilled from the hybrid under drift.
A batch is placed by the drift network when the view observes drift (observed
estimates, and some node's observed execution or transfer factor off 1 by more
than ``drift_tolerance``), else by the default one. Where nothing drifts, every
observed factor is exactly 1, so the schedules are MCT's (docs/RL.md, session 25).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.learn.features import (
    N_BASE_FEATURES,
    N_FEATURES,
    N_STATIC,
    node_table,
    observe_nodes,
    pair_features_one,
    place_tentative,
)
from hybridsched.learn.forward import NEG, block_logits, compiled_weights
from hybridsched.model import Cluster
from hybridsched.policies.base import register
from hybridsched.sim.view import ClusterView, TaskBatch

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "rl-default.pt"
"""The checkpoint shipped with the package."""
DRIFT_CHECKPOINT = DEFAULT_CHECKPOINT.with_name("rl-drift.pt")
"""The network shipped for drifting clusters (the hybrid distilled, docs/RL.md)."""


_REGRET, _IS_BEST = 0, 1
"""Columns of the pair features: ``regret`` and ``is_best`` (MCT's node and its ties)."""


def regret_cut(cap: float | None) -> Any:
    """``max_regret`` as a limit on the regret feature (float32), inf: no limit.

    The feature is ``sq((ef - m) / m)``, so ``(ef - m) / m <= cap`` is
    ``regret <= cap / (1 + cap)``; compared in float32, the features' type, so a node
    exactly at the limit stays.
    """
    finite = cap is not None and cap < np.inf
    return np.float32(cap / (1.0 + cap)) if finite else np.inf


def near_best(x: np.ndarray, mask: np.ndarray, cut: Any) -> np.ndarray:
    """``mask`` cut to the nodes whose regret feature is at most ``cut``.

    MCT's node (``is_best``) always stays; where no node is left (no feasible node),
    the mask is kept whole. ``x`` is ``(..., N, F)`` and ``mask`` ``(..., N)``.
    """
    near = mask & ((x[..., _REGRET] <= cut) | (x[..., _IS_BEST] > 0.5))
    return np.where(near.any(-1, keepdims=True), near, mask)


class _Network(NamedTuple):
    """One checkpoint as ``rl`` uses it."""

    path: Path
    model: Any
    config: dict[str, Any]
    weights: Any
    """The compiled forward's weights (:func:`~hybridsched.learn.forward.compiled_weights`)."""
    cap: float | None
    """The regret limit in force (``max_regret``), None: none."""
    cut: Any
    """``cap`` as a limit on the regret feature (float32), inf: none."""


@register
@dataclass
class RLPolicy:
    """Learned pair-scoring network (PPO by default); greedy over the masked softmax."""

    name: ClassVar[str] = "rl"
    preferred_estimates: ClassVar[str] = "observed"
    """Observed under ``--estimates auto``: the drift network (below) was trained and
    measured with observed estimates. Where nothing drifts the observed estimates are
    the nominal ones exactly (every ratio is 1), so the default network places
    every task as ``mct`` does; with estimate noise ``auto`` is nominal anyway."""
    checkpoint: str = field(
        default="", metadata={"help": "checkpoint .pt or training folder; empty: the shipped one"}
    )
    greedy: bool = field(default=True, metadata={"help": "argmax (else sample the softmax)"})
    threads: int = field(
        default=1,
        metadata={"help": "kept for old commands: the forward is compiled, on one thread"},
    )
    max_regret: float = field(
        default=-1.0,
        metadata={
            "help": "only nodes whose estimated response is at most (1 + this) times the "
            "best node's, for both networks; inf: no limit; < 0: each checkpoint's own "
            "setting (none: no limit)"
        },
    )

    drift_checkpoint: str = field(
        default="",
        metadata={
            "help": "network used while the view observes drift (see drift_tolerance; "
            "observed estimates only); empty: the shipped rl-drift.pt when checkpoint "
            "is empty, else none; 'none': never"
        },
    )
    drift_tolerance: float = field(
        default=0.1,
        metadata={
            "help": "drift is observed when some node's observed execution or transfer "
            "factor is off 1 by more than this"
        },
    )

    def __post_init__(self) -> None:
        if np.isnan(self.max_regret):
            raise ConfigError("rl max_regret: must be a number (< 0: the checkpoint's), got nan")
        tol = self.drift_tolerance
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
            raise ConfigError(f"rl drift_tolerance: must be a number >= 0, got {tol!r}")
        self._default = self._load(Path(self.checkpoint) if self.checkpoint else DEFAULT_CHECKPOINT)
        self._drift: _Network | None = None
        if self.drift_checkpoint != "none" and (self.drift_checkpoint or not self.checkpoint):
            try:
                self._drift = self._load(Path(self.drift_checkpoint or DRIFT_CHECKPOINT))
            except ConfigError as e:
                raise ConfigError(f"rl drift_checkpoint: {e}") from None
        self.drift_batches = 0  # batches of this run placed by the drift network
        self._rng = np.random.default_rng(0)
        self._static = np.zeros((0, N_STATIC))

    @property
    def path(self) -> Path:
        """The default network's checkpoint."""
        return self._default.path

    @property
    def model(self) -> Any:
        """The default network."""
        return self._default.model

    @property
    def config(self) -> dict[str, Any]:
        """The default network's training config."""
        return self._default.config

    @property
    def _cap(self) -> float | None:
        """The default network's regret limit in force (None: none)."""
        return self._default.cap

    def _load(self, path: Path) -> _Network:
        """The checkpoint at ``path``, with the regret limit this policy applies to it."""
        from hybridsched.learn.network import load_checkpoint

        model, config = load_checkpoint(path)
        cap = self.max_regret if self.max_regret >= 0 else config.get("max_regret")
        if cap is not None and not (isinstance(cap, int | float) and float(cap) >= 0):
            raise ConfigError(
                f"rl checkpoint {path}: max_regret in its config must be a number >= 0, got {cap!r}"
            )
        cap = None if cap is None else float(cap)
        return _Network(path, model, config, compiled_weights(model), cap, regret_cut(cap))

    def drifting(self, view: ClusterView) -> bool:
        """Whether ``view`` observes drift: observed estimates, and some node's observed
        execution or transfer factor off 1 by more than ``drift_tolerance``."""
        if view.estimates != "observed":
            return False
        obs = view.observations
        t = float(view.time)
        tol = self.drift_tolerance
        for f in (obs.exec_factor(t), obs.transfer_factor(t)):
            if np.any(np.abs(f - 1.0) > tol):
                return True
        return False

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        """Start a run on ``cluster``; ``rng`` drives sampling when not greedy."""
        self._rng = rng
        self._static = node_table(cluster)
        self.drift_batches = 0

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        """One node per task: score every pair, place the batch one task at a time.

        The network's forward is the compiled :func:`~hybridsched.learn.forward.block_logits`
        (torch's to about 1e-5), as the hybrid scores its shortlists.
        """
        batch = len(tasks) > 1
        # tentative placements of a batch go on copies; a single task only reads
        proj = view.core_free_s.copy() if batch else view.core_free_s
        proj_min = view.core_free_min_s.copy() if batch else view.core_free_min_s
        queued_work = view.queued_work_s.copy() if batch else view.queued_work_s
        recent = view.recent_count.copy() if batch else view.recent_count
        recent_t = view.recent_time_s.copy() if batch else view.recent_time_s
        n = view.n_nodes
        use = self._default
        if self._drift is not None and self.drifting(view):
            use = self._drift
            self.drift_batches += 1
        model, cut = use.model, use.cut
        if model.n_features > N_BASE_FEATURES:
            observe_nodes(self._static, view)
        x = np.zeros((n, N_FEATURES), dtype=np.float32)
        xt = np.empty((N_FEATURES, n), dtype=np.float32)
        mask = np.zeros(n, dtype=np.bool_)
        h1 = np.empty((model.hidden, n), dtype=np.float32)
        h2 = np.empty_like(h1)
        scores = np.empty(n)
        down = view.unavailable
        nodes = np.empty(len(tasks), dtype=np.int64)
        for k, i in enumerate(tasks.index):
            pair_features_one(
                view.compiled, i, view.time, proj_min, queued_work, recent, recent_t,
                self._static, x, mask,
            )  # fmt: skip
            if down is not None:
                mask &= ~down
            if cut < np.inf:
                mask = near_best(x, mask, cut)
            xt[:] = x.T
            block_logits(xt, use.weights, h1, h2, scores)
            logits = np.where(mask, scores.astype(np.float32), np.float32(NEG))
            if not self.greedy:
                logits = logits + self._rng.gumbel(size=n)
            j = int(np.argmax(logits))
            nodes[k] = j
            if batch:
                place_tentative(
                    view.compiled, i, j, view.time, proj, proj_min, queued_work, recent,
                    recent_t,
                )  # fmt: skip
        return nodes

    def describe(self) -> dict[str, Any]:
        """Where the weights came from and how they were trained, and the drift network."""

        def about(net: _Network) -> dict[str, Any]:
            return {"checkpoint": str(net.path), **net.config, "max_regret": net.cap}

        out = about(self._default)
        if self._drift is not None:
            out["drift"] = {**about(self._drift), "tolerance": float(self.drift_tolerance)}
        return out
