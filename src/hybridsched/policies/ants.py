"""The ants of the MAX-MIN colony: construction, and the per-batch ant system.

:func:`construct_ant` builds one ant's assignment (step 4 of
:mod:`hybridsched.policies.colony`); :func:`run_mmas` is the whole per-batch
loop in one compiled kernel: construction, exact evaluation, local search
(:mod:`hybridsched.policies.local_search`) and the MAX-MIN pheromone update,
with its parameters as one :class:`MMASParams` value. :func:`construct_numpy`
is the same construction vectorised over ants with NumPy, kept as the
reference that the benchmark compares the compiled one with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numba import njit

from hybridsched.policies import cost_kernels as costmod
from hybridsched.policies.local_search import (
    _by_node,
    local_search,
    own_cost_bound,
    wake_differences,
)
from hybridsched.sim import core

if TYPE_CHECKING:
    from hybridsched.sim.view import ClusterView


class MMASParams(NamedTuple):
    """The ant system's parameters for one batch, as compiled code takes them.

    Built by :meth:`hybridsched.policies.colony.ColonyParams.kernel_params`
    (see :class:`~hybridsched.policies.colony.ColonyParams` for each meaning).
    """

    alpha: float
    beta: float
    rho: float
    tau_min: float
    global_every: int
    restart_after: int
    ls_sweeps: int
    ls_every: int
    ls_gap: float
    swaps: bool
    prune: bool
    dynamic: bool


class Construction(NamedTuple):
    """What every ant of a batch builds its assignment from (step 4 of the colony).

    The same for all the batch's ants and iterations; only the draws and the
    trails change.
    """

    order: np.ndarray
    """The construction order (task indices)."""
    cand: np.ndarray
    """Candidate nodes per task ``(B, K)``."""
    ncand: np.ndarray
    """How many of each task's candidates are valid ``(B,)``."""
    etab: np.ndarray
    """``eta ** beta`` on the candidates ``(B, K)``."""
    ready: np.ndarray
    """Per (task, node) ready time, s ``(B, N)``."""
    dur: np.ndarray
    """Per (task, node) execution time, s ``(B, N)``."""
    d: float
    """The decision time, s."""
    proj: np.ndarray
    """The nodes' projected core-free times ``(N, C)``."""
    pm0: np.ndarray
    """Their minima (not before ``d``) ``(N,)``."""
    cores: np.ndarray
    """Cores per node ``(N,)``."""

    @classmethod
    def of_problem(
        cls,
        problem: Any,
        view: ClusterView,
        order: np.ndarray,
        cand: np.ndarray,
        ncand: np.ndarray,
        etab: np.ndarray,
    ) -> Construction:
        """For a batch problem (:func:`~hybridsched.policies.cost.build_problem`) and
        the view it was built from (the nodes' projected core-free times)."""
        return cls(
            order,
            cand,
            ncand,
            np.ascontiguousarray(etab),
            problem.ready,
            problem.dur,
            problem.d,
            view.core_free_s,
            view.available_s,
            problem.cores,
        )


@njit(cache=True)
def ant_scratch(con):
    """The buffers of :func:`construct_ant` for ``con``: ``(pm, slot, rows, wts)``."""
    pm = con.pm0.copy()
    slot = np.full(con.pm0.shape[0], -1, dtype=np.int64)
    rows = np.empty((con.order.shape[0], con.proj.shape[1]))
    wts = np.empty(con.cand.shape[1])
    return pm, slot, rows, wts


@njit(cache=True)
def construct_ant(u, tau, con, prm, scratch, out):
    """Build one ant's assignment into ``out`` (see the module docstring, step 4).

    Args:
        u: one uniform draw per construction step, ``(B,)``.
        tau: trails ``(B, K)``.
        con: the batch's :class:`Construction`.
        prm: the parameters (:class:`MMASParams`: ``alpha``, ``beta`` and
            ``dynamic``, whether to correct eta by the ant's own load, are read).
        scratch: :func:`ant_scratch` (restored before returning).
        out: the node of each task ``(B,)``, written.
    """
    alpha, beta, dynamic = prm.alpha, prm.beta, prm.dynamic
    cand, ncand, etab, ready, dur, d = con.cand, con.ncand, con.etab, con.ready, con.dur, con.d
    pm0, cores = con.pm0, con.cores
    pm, slot, rows, wts = scratch
    nused = 0
    for q in range(con.order.shape[0]):
        t = con.order[q]
        total = 0.0
        for c in range(ncand[t]):
            w = tau[t, c] if alpha == 1.0 else tau[t, c] ** alpha
            w *= etab[t, c]
            j = cand[t, c]
            if dynamic and slot[j] >= 0:
                r = ready[t, j]
                base = max(r, max(d, pm0[j])) + dur[t, j] - d
                now = max(r, max(d, pm[j])) + dur[t, j] - d
                ratio = base / now
                w *= ratio * ratio if beta == 2.0 else ratio**beta
            total += w
            wts[c] = total
        x = u[q] * total
        pick = ncand[t] - 1
        for c in range(ncand[t]):
            if wts[c] > x:
                pick = c
                break
        j = cand[t, pick]
        out[t] = j
        if dynamic:
            s = slot[j]
            if s < 0:
                s = nused
                slot[j] = s
                nused += 1
                rows[s, : cores[j]] = con.proj[j, : cores[j]]
            pm[j] = core.project(rows[s, : cores[j]], ready[t, j], dur[t, j])
    # restore the scratch for the next ant
    for t in range(out.shape[0]):
        j = out[t]
        slot[j] = -1
        pm[j] = pm0[j]


class Search(NamedTuple):
    """What the local search of one batch keeps between calls (:func:`search_state`)."""

    lb: np.ndarray
    """Per candidate, the task's own cost there (:func:`own_cost_bound`; empty: no pruning)."""
    members: np.ndarray
    """Scratch, one per task."""
    active: np.ndarray
    """The don't-look bits, one per task."""
    by_off: np.ndarray
    """For each node, the offsets of the tasks that have it as a candidate."""
    by_node: np.ndarray
    """Those tasks."""


@njit(cache=True)
def search_state(p, cand, ncand, prune, lb=None):
    """The local search's state for a batch with candidates ``cand``/``ncand``.

    ``lb`` is the filter of trial moves per candidate (``(B, K)``); without it,
    :func:`own_cost_bound` when ``prune``, else none. The colony passes
    :func:`~hybridsched.policies.local_search.alone_cost_bound` with ``prune_alone``.
    """
    b = cand.shape[0]
    by_off, by_node = _by_node(cand, ncand, p.cores.shape[0])
    if lb is None:
        lb = own_cost_bound(p, cand, ncand) if prune else np.zeros((0, 0))
    members = np.empty(b, dtype=np.int64)
    active = np.ones(b, dtype=np.bool_)
    return Search(lb, members, active, by_off, by_node)


@njit(cache=True)
def _search(p, ws, sol, cand, ncand, sweeps, swaps, ls):
    """:func:`~hybridsched.policies.local_search.local_search` on the tasks ``ls`` marks."""
    return local_search(
        p, ws, sol, cand, ncand, ls.lb, sweeps, swaps, ls.members, ls.active, ls.by_off,
        ls.by_node,
    )  # fmt: skip


@njit(cache=True)
def polish(p, ws, sol, cand, ncand, sweeps, swaps, ls):
    """Local search on every task of ``sol`` (in place): the best seed, before the ants.

    Returns:
        ``(cost, evaluations)``.
    """
    ls.active[:] = True
    return _search(p, ws, sol, cand, ncand, sweeps, swaps, ls)


@njit(cache=True)
def search_near(p, ws, sol, ref, cand, ncand, sweeps, swaps, ls):
    """Local search on ``sol`` (in place) near where it differs from ``ref``, a local optimum.

    Returns:
        ``(cost, evaluations)``.
    """
    wake_differences(sol, ref, ls.by_off, ls.by_node, ls.active)
    return _search(p, ws, sol, cand, ncand, sweeps, swaps, ls)


@njit(cache=True)
def run_mmas(p, ws, u, con, tau0, prm, best, best_cost, ls):
    """The MAX-MIN ant system on one batch (``tau_max = 1``).

    ``best`` is the starting point, already a local optimum when local search
    is on (:func:`polish`). Each
    ``ls_every``-th iteration-best ant is improved near where it differs from
    the best-so-far (or, with ``ls_every = 0``, only the final best, near
    where it differs from the start).

    Args:
        p: the batch problem (compiled handle).
        ws: its scratch (:func:`hybridsched.policies.cost_kernels.make_scratch`).
        u: uniform draws ``(iterations, ants, B)``.
        con: what the ants build from (:class:`Construction`).
        tau0: the initial trails ``(B, K)``.
        prm: the parameters (:class:`MMASParams`).
        best, best_cost: the starting assignment (updated in place) and its cost.
        ls: the local search's state (:func:`search_state`).

    Returns:
        ``(best cost, evaluations)``.
    """
    rho, tau_min = prm.rho, prm.tau_min
    global_every, restart_after = prm.global_every, prm.restart_after
    ls_sweeps, ls_every, swaps = prm.ls_sweeps, prm.ls_every, prm.swaps
    cand, ncand = con.cand, con.ncand
    n_it, n_ants, b = u.shape
    tau = tau0.copy()
    ant = np.empty(b, dtype=np.int64)
    ib = np.empty(b, dtype=np.int64)
    scratch = ant_scratch(con)
    evals = 0
    ref = best.copy()
    since = 0
    for it in range(n_it):
        ib_cost = np.inf
        for a in range(n_ants):
            construct_ant(u[it, a], tau, con, prm, scratch, ant)
            c = costmod.evaluate_one(p, ant, ws)
            evals += 1
            if c < ib_cost:
                ib_cost = c
                ib[:] = ant
        near = prm.ls_gap <= 0.0 or ib_cost <= best_cost * (1.0 + prm.ls_gap)
        if ls_sweeps > 0 and ls_every > 0 and (it + 1) % ls_every == 0 and near:
            ib_cost, e = search_near(p, ws, ib, best, cand, ncand, ls_sweeps, swaps, ls)
            evals += e
        if ib_cost < best_cost:
            best_cost = ib_cost
            best[:] = ib
            since = 0
        else:
            since += 1
        src = best if (it + 1) % global_every == 0 else ib
        for t in range(b):
            for c in range(ncand[t]):
                v = tau[t, c] * (1.0 - rho)
                if cand[t, c] == src[t]:
                    v += rho
                tau[t, c] = min(1.0, max(tau_min, v))
        if restart_after > 0 and since >= restart_after:
            tau[:] = tau0
            since = 0
    if ls_sweeps > 0 and ls_every == 0:
        best_cost, e = search_near(p, ws, best, ref, cand, ncand, ls_sweeps, swaps, ls)
        evals += e
    return best_cost, evals


def construct_numpy(
    u: np.ndarray, tau: np.ndarray, con: Construction, prm: MMASParams
) -> np.ndarray:
    """All ants of one iteration at once, vectorised over ants with NumPy.

    The same rule and the same draws as :func:`construct_ant`, so the same
    assignments; kept as the reference the benchmark times the compiled kernel
    against. ``u`` is ``(ants, B)``; returns ``(ants, B)`` node indices.
    """
    alpha, beta, dynamic = prm.alpha, prm.beta, prm.dynamic
    order, cand, ncand, etab = con.order, con.cand, con.ncand, con.etab
    ready, dur, d, proj, pm0 = con.ready, con.dur, con.d, con.proj, con.pm0
    n_ants, b = u.shape
    ar = np.arange(n_ants)
    pm = np.broadcast_to(pm0, (n_ants, pm0.shape[0])).copy()
    touched = np.zeros((n_ants, pm0.shape[0]), dtype=bool)
    rows = np.broadcast_to(proj, (n_ants, *proj.shape)).copy() if dynamic else None
    out = np.empty((n_ants, b), dtype=np.int64)
    for q in range(b):
        t = int(order[q])
        m = int(ncand[t])
        js = cand[t, :m]
        w = (tau[t, :m] if alpha == 1.0 else tau[t, :m] ** alpha) * etab[t, :m]
        w = np.broadcast_to(w, (n_ants, m))
        if dynamic:
            r = ready[t, js]
            base = np.maximum(r, np.maximum(d, pm0[js])) + dur[t, js] - d
            now = np.maximum(r, np.maximum(d, pm[:, js])) + dur[t, js] - d
            ratio = base / now
            f = ratio * ratio if beta == 2.0 else ratio**beta
            w = np.where(touched[:, js], w * f, w)
        cum = np.cumsum(w, axis=1)
        x = u[:, q] * cum[:, -1]
        hit = cum > x[:, None]
        pick = np.where(hit.any(axis=1), np.argmax(hit, axis=1), m - 1)
        j = js[pick]
        out[:, t] = j
        if dynamic:
            touched[ar, j] = True
            row = rows[ar, j]  # (ants, C) copies
            c = np.argmin(row, axis=1)
            row[ar, c] = np.maximum(ready[t, j], row[ar, c]) + dur[t, j]
            rows[ar, j] = row
            pm[ar, j] = row.min(axis=1)
    return out
