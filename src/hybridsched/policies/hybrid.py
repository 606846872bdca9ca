"""Hybrid: a learned network supplies the ant colony's desirability (DeepACO for placement).

Per decision batch:

1. **Learned desirability.** One batched forward of the shared pair-scoring
   network (:mod:`hybridsched.learn.network`) scores every (task, node) pair of
   the batch from :func:`~hybridsched.learn.features.pair_features`; the
   desirability is ``eta = exp((logit - max_node logit) / temperature)``, 0 on
   infeasible nodes. No per-task forwards. On a cluster larger than
   :attr:`Hybrid.shortlist`, only each task's shortlisted pairs are featured
   and scored, in one compiled pass (:func:`shortlist_logits`, the network's
   forward compiled), and the colony gets their desirability only.
2. **Deadline awareness** (an exact repair of the colony's answer). The colony
   searches over every feasible node, its cost already penalising predicted
   misses. Its best assignment is then checked with the exact batch prediction
   of :mod:`hybridsched.policies.cost` (the simulator's own semantics on the
   node state at the decision): a task predicted to miss its deadline while
   some other feasible node would let it meet it, given where the rest of the
   batch goes, moves to the node where it finishes earliest among those. Tasks
   are visited by priority class, then deadline; passes repeat until no task
   moves (at most :data:`REPAIR_PASSES`). A task that meets its deadline
   nowhere stays where the colony put it.
3. **The colony** (:class:`~hybridsched.policies.colony.Colony`): candidate
   lists of the most desirable nodes, construction by priority class then
   slack (dynamic prioritisation), MAX-MIN trails ``tau^alpha * eta^beta``,
   local search, seed assignments, and the cross-batch pheromone memory that
   persists over the run.

The network is trained through the colony by REINFORCE on the ants' costs
(:mod:`hybridsched.train.hybrid_trainer`); without a hybrid checkpoint the
shipped ``rl`` network is used, which already ranks like MCT.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numba import njit

from hybridsched.errors import ConfigError
from hybridsched.learn.features import (
    N_BASE_FEATURES,
    N_FEATURES,
    node_estimates,
    node_table,
    observe_nodes,
    pair_features_one,
    pair_rows,
)
from hybridsched.learn.forward import block_logits, compiled_weights
from hybridsched.model import Cluster
from hybridsched.policies import cost
from hybridsched.policies.base import register
from hybridsched.policies.candidates import Listed, estimate_inputs, top_completion_row
from hybridsched.policies.colony import (
    Colony,
    ColonyResult,
    colony_args,
    completion_heuristic,
    top_candidates,
    warm_engine,
)
from hybridsched.policies.cost import CostFields
from hybridsched.policies.local_search import link, node_lists, unlink
from hybridsched.sim.view import ClusterView, TaskBatch

_CKPT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
DEFAULT_CHECKPOINT = _CKPT_DIR / "hybrid-default.pt"
"""The hybrid checkpoint shipped with the package."""
FALLBACK_CHECKPOINT = _CKPT_DIR / "rl-default.pt"
"""Used when no hybrid checkpoint is shipped: the ``rl`` network."""

LOGIT_FLOOR = -50.0
"""Lowest tempered logit kept (relative to the task's best), so eta never underflows to 0."""


@njit(cache=True)
def batch_features(st, idx, d, static, out, mask):
    """Pair features of every task of a batch against the same (pre-batch) node state.

    The compiled twin of :func:`hybridsched.learn.features.pair_features` (equal
    to float32 rounding), one call per batch: ``out (B, N, F)``, ``mask (B, N)``.
    """
    for k in range(idx.shape[0]):
        pair_features_one(
            st, idx[k], d, st.proj_min, st.queued_work, st.recent, st.recent_t, static,
            out[k], mask[k],
        )  # fmt: skip


@njit(cache=True)
def shortlist_logits(st, idx, d, static, inputs, feasible, net, nodes, logits, best):
    """Each task's shortlist, and the network's scores of its shortlisted pairs only.

    The shortlist is :meth:`Hybrid.shortlisted`'s (:func:`top_completion_row`);
    each pair's features are :func:`batch_features`'s row of that pair, scored
    by the compiled forward :func:`~hybridsched.learn.forward.block_logits`,
    the task's pairs together: a task's pass over every node is left only for its
    estimates (least ``ef``, least energy), and no ``(B, N, F)`` array is built.

    Args:
        st, idx, d, static: as :func:`batch_features`.
        inputs, feasible: :func:`~hybridsched.policies.candidates.estimate_inputs`
            (its first eight, then its last).
        net: :func:`~hybridsched.learn.forward.compiled_weights` of the network.
        nodes: ``(B, M)`` int, the shortlisted nodes (written).
        logits: ``(B, M)`` float, their scores (written).
        best: ``(B,)`` float, each task's earliest estimated finish
            (:func:`~hybridsched.policies.candidates.best_finish`, written).
    """
    n = st.cores.shape[0]
    k = nodes.shape[1]
    est = np.empty((3, n))
    mask = np.empty(n, dtype=np.bool_)
    val = np.empty(2 * n)
    sel = np.empty(n, dtype=np.int64)
    xt = np.empty((N_FEATURES, k), dtype=np.float32)  # float32, as the network reads them
    h1 = np.empty((net[1].shape[0], k), dtype=np.float32)
    h2 = np.empty((net[1].shape[0], k), dtype=np.float32)
    state = (st.proj_min, st.queued_work, st.recent, st.recent_t, static)
    for t in range(idx.shape[0]):
        i = idx[t]
        _, task = node_estimates(st, i, d, st.proj_min, static, est, mask)
        best[t] = top_completion_row(inputs, feasible, t, k, val, sel, nodes[t])
        pair_rows(st, i, d, state, est, task, mask, nodes[t], xt.T)  # pair q in column q
        block_logits(xt, net, h1, h2, logits[t])


def eta_from_logits(logits: np.ndarray, allowed: np.ndarray, temperature: float) -> np.ndarray:
    """``exp((logit - best) / temperature)`` on allowed pairs, 0 elsewhere, ``(B, N)``."""
    z = np.where(allowed, logits / temperature, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    z = np.maximum(z, LOGIT_FLOOR)
    return np.where(allowed, np.exp(z), 0.0)


REPAIR_PASSES = 4
"""Most passes of the deadline repair over the batch (it stops as soon as none moves)."""


@njit(cache=True)
def _schedule_node(p, ws, head, nxt, j, add, fin):
    """Schedule node ``j``'s tasks (its list, plus ``add`` unless -1) into ``fin``.

    The members go in ascending task order, as :func:`cost.schedule_assigned`
    gathers them, so the finish times are the same.
    """
    members = ws[3]
    nm = 0
    t = head[j]
    while t >= 0 or add >= 0:
        if add >= 0 and (t < 0 or add < t):
            members[nm] = add
            add = -1
        else:
            members[nm] = t
            t = nxt[t]
        nm += 1
    if nm == 0:
        return
    cost.node_schedule(p, j, members, nm, ws)
    for k in range(nm):
        fin[members[k]] = ws[4][members[k]]


@njit(cache=True)
def deadline_repair(p, ws, nodes, feasible, order, passes):
    """Move predicted deadline misses to a node where they meet it, in place.

    Args:
        p: the batch problem (compiled handle); ws: its scratch (``cost.make_scratch``).
        nodes: the assignment, one node per task; changed in place.
        feasible: ``(B, N)`` bool, nodes a task may use (memory, availability).
        order: the order in which tasks are visited (most urgent first).
        passes: most passes over the batch.

    Returns:
        the number of moves.
    """
    b = nodes.shape[0]
    n = p.cores.shape[0]
    none = np.int64(-1)
    fin = np.empty(b)  # finish times under the current assignment
    trial = np.empty(b)  # scratch of the trial moves
    # each node's tasks, so that a trial schedules that node only
    head, nxt = node_lists(nodes, n)
    for j in range(n):
        if head[j] >= 0:
            _schedule_node(p, ws, head, nxt, j, none, fin)
    moves = 0
    for _ in range(passes):
        changed = False
        for q in range(b):
            t = order[q]
            if fin[t] <= p.dl[t]:
                continue
            old = nodes[t]
            best_j = -1
            best_f = np.inf
            for j in range(n):
                # even with no wait it would miss: skip without scheduling the node
                if j == old or not feasible[t, j] or p.ready[t, j] + p.dur[t, j] > p.dl[t]:
                    continue
                _schedule_node(p, ws, head, nxt, j, t, trial)
                if trial[t] <= p.dl[t] and trial[t] < best_f:
                    best_f = trial[t]
                    best_j = j
            if best_j >= 0:
                nodes[t] = best_j
                unlink(head, nxt, old, t)
                link(head, nxt, best_j, t)
                _schedule_node(p, ws, head, nxt, old, none, fin)
                _schedule_node(p, ws, head, nxt, best_j, none, fin)
                moves += 1
                changed = True
        if not changed:
            break
    return moves


_WARM = False


def _warm_up(checkpoint: str) -> float:
    """Compile the hybrid's own kernels (features, repair) once per process; seconds taken.

    A throwaway hybrid runs :func:`~hybridsched.policies.colony.warm_engine`'s
    tiny workload, without and with a shortlist (its 2 nodes, 1 kept), so the
    first real batch does not count compilation as deciding.
    """
    global _WARM
    if _WARM:
        return 0.0
    _WARM = True  # first: the throwaway policy's reset comes back here
    t = time.perf_counter()
    for shortlist in (0, 1):  # every node scored (torch), then a shortlist (compiled)
        warm_engine().run(Hybrid(ants=2, iterations=2, checkpoint=checkpoint, shortlist=shortlist))
    return time.perf_counter() - t


_COLONY_ARGS = colony_args(
    "ants",
    "iterations",
    "ant_limit",
    "alpha",
    "beta",
    "rho",
    "candidates",
    "local_search",
    "ls_limit",
    "ls_gap",
    "prune_alone",
    "memory",
    "memory_rho",
    "seeds",
    defaults={"prune_alone": True},
)
"""The colony parameters the hybrid takes as arguments (the others keep their defaults).

``prune_alone`` is on for the hybrid (off for ``aco``): on the long-queue cases it
made the hybrid 1.2-1.7 times faster, with no significant change in its mean
response or energy on any preset and 2.7 % fewer missed deadlines on ``iot-drift``
(docs/PERFORMANCE.md, session 24)."""


@register
@dataclass
class Hybrid(_COLONY_ARGS, CostFields):
    """Learned eta + MAX-MIN ant colony, deadline-aware, pheromone across batches."""

    name: ClassVar[str] = "hybrid"
    preferred_estimates: ClassVar[str] = "observed"
    """Under ``--estimates auto`` (the default) the hybrid's view is corrected by what
    completed tasks revealed: on drifting workloads it is then 0.8-1.4 points further
    below ``aco`` than with nominal estimates, and without drift or noise the
    schedules are the nominal ones. With estimate noise (``estimate_cv``) observed
    estimates made it 1-5 % worse, so there ``auto`` is nominal (docs/HYBRID.md,
    session 17)."""

    checkpoint: str = field(
        default="",
        metadata={"help": "checkpoint .pt or training folder; empty: the shipped one"},
    )
    temperature: float = field(
        default=1.0, metadata={"help": "eta = exp(logit / temperature), > 0"}
    )
    deadline_aware: bool = field(
        default=True,
        metadata={"help": "never place a task where it misses a deadline it can meet elsewhere"},
    )
    threads: int = field(default=1, metadata={"help": "torch threads while scoring"})
    shortlist: int = field(
        default=128,
        metadata={
            "help": "on clusters larger than this, the network scores only each task's this "
            "many nodes of earliest estimated finish (0: every node)"
        },
    )

    def __post_init__(self) -> None:
        from hybridsched.learn.network import load_checkpoint

        if not (self.temperature > 0 and np.isfinite(self.temperature)):
            raise ConfigError(f"hybrid temperature: must be > 0, got {self.temperature!r}")
        if (
            isinstance(self.shortlist, bool)
            or not isinstance(self.shortlist, int)
            or (self.shortlist < 0)
        ):
            raise ConfigError(f"hybrid shortlist: must be an integer >= 0, got {self.shortlist!r}")
        self.params = self.colony_params()
        if self.checkpoint:
            path = Path(self.checkpoint)
        else:
            path = DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else FALLBACK_CHECKPOINT
        self.model, self.config = load_checkpoint(path)
        self.path = path
        self.colony = Colony(self.params, self.cost_weights(), self._heuristic)
        self._eta: np.ndarray | Listed = np.zeros((0, 0))
        self._net: tuple | None = None  # (model and its parameters' versions, weights)
        self._static = np.zeros((0, 4))
        self.last: ColonyResult | None = None
        """What the colony found for the latest batch (before the deadline repair)."""

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        """Start a run: the colony's draws come from ``rng``; its memory is cleared."""
        self.colony.reset(cluster, rng)
        self.compile_seconds = self.colony.compile_seconds + _warm_up(self.checkpoint)
        """Seconds this reset spent compiling the kernels (outside ``scheduler_seconds``)."""
        self._static = node_table(cluster)

    def logits(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        """The network's scores of the pairs of the batch, one forward, ``(B, N)``.

        With a shortlist (:attr:`shortlist` smaller than the cluster), only each
        task's shortlisted nodes are scored, by the compiled forward in the pass
        that makes their features (:func:`shortlist_logits`); the others get
        ``-inf``. Without one, every pair is scored by torch.
        """
        nodes, scores, _ = self._scores(tasks, view)
        if nodes is None:
            return scores
        full = np.full((len(tasks), view.n_nodes), -np.inf)
        full[np.arange(len(tasks))[:, None], nodes] = scores
        return full

    def _scores(self, tasks: TaskBatch, view: ClusterView) -> tuple:
        """``(nodes (B, M), their scores, earliest finish (B,))`` with a shortlist,
        else ``(None, scores (B, N), None)``."""
        import torch

        if self._static.shape[0] != view.n_nodes:
            self._static = node_table(view.cluster)
        if self.model.n_features > N_BASE_FEATURES:
            observe_nodes(self._static, view)
        b, n = len(tasks), view.n_nodes
        idx = np.ascontiguousarray(tasks.index, dtype=np.int64)
        d = float(view.time)
        if self.shortlist > 0 and n > self.shortlist:
            nodes = np.empty((b, self.shortlist), dtype=np.int64)
            out = np.empty((b, self.shortlist))
            best = np.empty(b)
            *inputs, feasible = estimate_inputs(tasks, view)
            net = self._compiled_weights()
            shortlist_logits(
                view.compiled, idx, d, self._static, tuple(inputs), feasible, net, nodes, out, best
            )
            return nodes, out, best
        feats = np.empty((b, n, N_FEATURES), dtype=np.float32)
        batch_features(view.compiled, idx, d, self._static, feats, np.empty((b, n), dtype=np.bool_))
        old = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                scores = self.model.score(torch.from_numpy(feats)).numpy().astype(np.float64)
                return None, scores, None
        finally:
            torch.set_num_threads(old)

    def _compiled_weights(self) -> tuple:
        """:func:`compiled_weights` of :attr:`model`, made again only when it changed
        (another model, or its parameters written in place, as training does)."""
        key = (self.model, tuple(p._version for p in self.model.parameters()))
        if self._net is None or self._net[0] != key:
            self._net = (key, compiled_weights(self.model))
        return self._net[1]

    def shortlisted(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray | None:
        """Each task's :attr:`shortlist` feasible nodes of earliest estimated finish.

        ``(B, M)`` node indices (a task with fewer feasible nodes has them all,
        then node 0, which its feasibility mask leaves out if it must), or None
        when every node is scored (no shortlist, or a cluster no larger than
        it). The network's cost is per pair, and a large cluster puts most of
        its nodes far from a task's best.
        """
        if self.shortlist == 0 or view.n_nodes <= self.shortlist:
            return None
        eta = completion_heuristic(tasks, view)  # 1 / estimated response: best first
        nodes, _, _ = top_candidates(
            eta,
            np.ascontiguousarray(view.feasible),
            self.shortlist,
            np.zeros((0, len(tasks)), dtype=np.int64),
        )
        return nodes

    def _heuristic(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray | Listed:
        nodes, logits, best = self._scores(tasks, view)
        if nodes is None:
            allowed = view.feasible & np.isfinite(logits)
            self._eta = eta_from_logits(logits, allowed, self.temperature)
            return self._eta
        # eta of the shortlisted pairs only (the others' is 0), no (B, N) matrix
        allowed = view.feasible[np.arange(len(tasks))[:, None], nodes] & np.isfinite(logits)
        self._eta = Listed(nodes, eta_from_logits(logits, allowed, self.temperature), best)
        return self._eta

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        """The colony's best assignment of the batch, repaired to the deadline rule."""
        self.last = self.colony.solve(tasks, view)
        nodes = np.array(self.last.nodes, dtype=np.int64)
        if self.deadline_aware and len(tasks) > 0:
            p = self.last.problem
            order = np.lexsort((tasks.deadline_abs_s, tasks.priority)).astype(np.int64)
            feasible = np.ascontiguousarray(view.feasible)
            deadline_repair(p, cost.make_scratch(p), nodes, feasible, order, REPAIR_PASSES)
        return nodes

    def describe(self) -> dict[str, Any]:
        """Where the network's weights came from and how they were trained."""
        return {"checkpoint": str(self.path), **self.config}
