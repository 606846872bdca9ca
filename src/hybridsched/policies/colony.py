"""A MAX-MIN ant colony over the batch problem of :mod:`hybridsched.policies.cost`.

Per decision batch of ``B`` tasks:

1. **Desirability.** A pluggable ``heuristic(tasks, view) -> eta`` scores every
   (task, node) pair, ``(B, N)``, higher is better, 0 for a node that cannot take
   the task. The default is the classic ``eta = 1 / predicted response``, with
   MCT's estimate ``est_finish - now``; a learned policy can supply its own.
2. **Candidate lists.** Each task considers only its ``k`` most desirable
   feasible nodes (plus the nodes the seed assignments chose), so a
   construction step costs ``O(k)`` whatever the cluster size.
3. **Construction order** (dynamic prioritisation): most urgent first, by
   priority class, then deadline slack ``deadline - best estimated finish``.
4. **Ants.** Ant ``a`` places the tasks in that order, task ``i`` on candidate
   node ``j`` with probability proportional to ``tau_ij^alpha * eta'_ij^beta``,
   where ``eta' = eta * (r0 / r)`` corrects the desirability by the load the ant
   itself has already put on ``j``: ``r0`` and ``r`` are the task's estimated
   response on ``j`` before and after the ant's own earlier placements
   (list-scheduled on the node's projected core-free times, as MCT does). With
   the default heuristic, ``eta'`` is exactly ``1 / r``.
5. **Evaluation** by the exact batch cost (:func:`~hybridsched.policies.cost.evaluate_one`,
   with its per-(node, task set) memo).
6. **MAX-MIN pheromone.** ``tau`` lives in ``[tau_min, tau_max]`` (``tau_max = 1``;
   ``tau_min`` from ``p_best`` as in Stützle and Hoos 2000). Each iteration it
   evaporates by ``rho`` and the iteration-best ant deposits ``rho * tau_max`` on
   its choices; every ``global_every``-th iteration the best-so-far deposits
   instead. After ``restart_after`` iterations without improvement the trails
   are reset to their initial values.
7. **Seeds.** The best-so-far starts as the best of the seed policies'
   assignments (MCT, EDF-MCT and max-min by default) and is replaced only by a
   strictly cheaper one: the colony is never worse than its seeds. The initial
   trails lean to it (``explore``): its choices start at ``tau_max`` and the
   other candidates of each task are scaled so that an ant places about
   ``explore`` tasks elsewhere; ``explore = 0`` is the classic uniform start.
8. **Local search** (optional): first-improvement moves (a task to another of
   its candidates) and swaps (two tasks on different nodes exchange them, in
   small batches), each evaluated exactly on the two nodes it changes, with
   don't-look bits and a cheap bound that skips hopeless moves. It improves the
   best seed first, then every ``ls_every``-th iteration-best ant near where it
   differs from the best-so-far (an iterated local search driven by the ants).
9. **Memory across batches.** A persistent trail ``M[class, node]``, with the
   class of a task its (region, priority class, size bucket of work), initialises
   the batch's trails: ``tau0 = tau_max * (1 - memory + memory * M)`` (before the
   lean to the seed, which keeps the ratios among the other candidates). After
   each batch, ``M`` evaporates by ``memory_rho`` for the classes in the batch and
   the batch's best assignment deposits ``memory_rho`` on its (class, node) pairs.

The per-batch loop (construction, evaluation, local search, pheromone update)
is one compiled kernel; :func:`construct_numpy` is the same construction step
vectorised over ants with NumPy, kept as the reference that the benchmark
compares the compiled one with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster
from hybridsched.policies import cost as costmod
from hybridsched.sim import core
from hybridsched.sim.view import ClusterView, TaskBatch

Heuristic = Callable[[TaskBatch, ClusterView], np.ndarray]
"""``heuristic(tasks, view) -> eta``: desirability ``(B, N)``, >= 0, 0 where infeasible."""

MEMORY_MIN = 0.05
"""Floor of the cross-batch trail (its ceiling is 1, the neutral value it starts at)."""

ORDERS = ("priority", "slack", "arrival")
"""Construction orders: priority then slack (default), slack only, or decision order."""


def completion_heuristic(tasks: TaskBatch, view: ClusterView) -> np.ndarray:
    """The classic desirability: ``1 / (est_finish - now)``, 0 on infeasible nodes."""
    eta = 1.0 / (view.est_finish_s - view.time)
    return np.where(view.feasible, eta, 0.0)


@dataclass(frozen=True)
class ColonyParams:
    """Parameters of the MAX-MIN ant system (see the module docstring)."""

    ants: int = 8
    """Ants per iteration."""
    iterations: int = 8
    """Iterations per batch."""
    alpha: float = 1.0
    """Exponent of the pheromone."""
    beta: float = 2.0
    """Exponent of the desirability."""
    rho: float = 0.2
    """Evaporation rate of the batch's trails, in (0, 1]."""
    p_best: float = 0.05
    """Probability that a converged colony builds its best solution (sets tau_min)."""
    candidates: int = 8
    """Candidate nodes per task (the most desirable ones)."""
    global_every: int = 3
    """Every this many iterations the best-so-far deposits instead of the iteration-best."""
    restart_after: int = 5
    """Reset the trails after this many iterations without improvement (0: never)."""
    local_search: int = 10
    """Most sweeps of move-and-swap local search per improved solution (0: off)."""
    ls_every: int = 2
    """Local search on the iteration-best every this many iterations (0: only on the best
    seed and the final best)."""
    prune: bool = True
    """Skip local-search moves that a cheap bound shows cannot pay (see own_cost_bound)."""
    swap_limit: int = 32
    """Try swaps only in batches of at most this many tasks (moves are always tried)."""
    dynamic_eta: bool = True
    """Correct the desirability by the load the ant has placed itself."""
    order: str = "priority"
    """Construction order: ``priority``, ``slack`` or ``arrival``."""
    memory: float = 0.5
    """Weight of the cross-batch trail in the initial trails, in [0, 1] (0: no memory)."""
    memory_rho: float = 0.1
    """Evaporation (and deposit) rate of the cross-batch trail, in (0, 1]."""
    size_buckets: int = 4
    """Work-size buckets of the memory's task classes (edges 0.5, 2, 8, ... GI)."""
    explore: float = 4.0
    """Start the trails around the best seed: its choices at tau_max, the others so that an
    ant places about this many tasks elsewhere (0: the classic uniform start)."""
    seeds: tuple[str, ...] = ("mct", "edf-mct", "max-min")
    """Policies whose assignments seed the best-so-far."""

    def __post_init__(self) -> None:
        ints = {
            "ants": 1,
            "iterations": 0,
            "candidates": 1,
            "global_every": 1,
            "restart_after": 0,
            "local_search": 0,
            "ls_every": 0,
            "swap_limit": 0,
            "size_buckets": 1,
        }
        for name, lo in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ConfigError(f"aco {name}: must be an integer >= {lo}, got {v!r}")
        for name, lo, hi, lo_open in (
            ("alpha", 0.0, math.inf, False),
            ("beta", 0.0, math.inf, False),
            ("rho", 0.0, 1.0, True),
            ("p_best", 0.0, 1.0, True),
            ("memory", 0.0, 1.0, False),
            ("memory_rho", 0.0, 1.0, True),
            ("explore", 0.0, math.inf, False),
        ):
            v = getattr(self, name)
            bad = isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
            if bad or v < lo or v > hi or (lo_open and v == lo):
                rule = f"in ({lo:g}, {hi:g}]" if lo_open else f">= {lo:g}"
                if hi != math.inf and not lo_open:
                    rule = f"in [{lo:g}, {hi:g}]"
                raise ConfigError(f"aco {name}: must be a number {rule}, got {v!r}")
        if self.order not in ORDERS:
            raise ConfigError(f"aco order: must be one of {', '.join(ORDERS)}, got {self.order!r}")


@dataclass(frozen=True)
class ColonyResult:
    """What the colony found for one batch."""

    nodes: np.ndarray
    """The best assignment, one node index per task."""
    cost: float
    """Its cost (:mod:`hybridsched.policies.cost`)."""
    seed_cost: float
    """The cost of the best seed assignment (the colony's starting point)."""
    evaluations: int
    """Assignments evaluated (ants, local search moves count one each)."""
    problem: Any = None
    """The batch problem's compiled handle (:func:`hybridsched.policies.cost.compile_problem`)."""


# ----------------------------------------------------------------------------
# compiled kernels
# ----------------------------------------------------------------------------


@njit(cache=True)
def construct_ant(
    u,
    order,
    cand,
    ncand,
    tau,
    etab,
    alpha,
    beta,
    dynamic,
    ready,
    dur,
    d,
    proj,
    pm0,
    cores,
    pm,
    slot,
    rows,
    wts,
    out,
):
    """Build one ant's assignment into ``out`` (see the module docstring, step 4).

    Args:
        u: one uniform draw per construction step, ``(B,)``.
        order: the construction order (task indices).
        cand, ncand: candidate nodes per task ``(B, K)`` and how many are valid.
        tau: trails ``(B, K)``; etab: ``eta ** beta`` on the candidates ``(B, K)``.
        alpha, beta: exponents; dynamic: correct eta by the ant's own load.
        ready, dur: per (task, node) ready time and execution time, s.
        d: the decision time; proj, pm0: the nodes' projected core-free times
            and their minima.
        cores: cores per node.
        pm, slot, rows, wts: scratch (``pm`` a copy of ``pm0``, ``slot`` all -1).
    """
    nused = 0
    for q in range(order.shape[0]):
        t = order[q]
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
                rows[s, : cores[j]] = proj[j, : cores[j]]
            pm[j] = core.project(rows[s, : cores[j]], ready[t, j], dur[t, j])
    # restore the scratch for the next ant
    for t in range(out.shape[0]):
        j = out[t]
        slot[j] = -1
        pm[j] = pm0[j]


@njit(cache=True)
def _members(sol, j, skip, add, members):
    """Tasks of ``sol`` on node ``j``, without ``skip`` and with ``add`` (-1: none)."""
    nm = 0
    for t in range(sol.shape[0]):
        if sol[t] == j and t != skip:
            members[nm] = t
            nm += 1
    if add >= 0:
        members[nm] = add
        nm += 1
    return nm


@njit(cache=True)
def _node_cost(p, ws, sol, j, skip, add, members):
    nm = _members(sol, j, skip, add, members)
    zkey, mkey, mval, count = ws[8], ws[9], ws[10], ws[11]
    h1, h2 = costmod.memo_key(zkey, j, members, nm)
    found, s = costmod.memo_get(mkey, h1, h2)
    if found:
        return mval[s, 0], mval[s, 1]
    c, last = costmod.node_cost(p, j, members, nm, ws)
    costmod.memo_put(mkey, mval, count, s, h1, h2, c, last)
    return c, last


@njit(cache=True)
def _horizon(p, nlast, a, la, b, lb):
    """Horizon cost with node ``a``'s last finish ``la`` and ``b``'s ``lb`` replaced."""
    last = p.h0
    for j in range(nlast.shape[0]):
        if j != a and j != b:
            last = max(last, nlast[j])
    return costmod.horizon_cost(p, max(last, max(la, lb)))


@njit(cache=True)
def _wake_on(sol, x, active):
    """Mark for local search the tasks on node ``x`` (it gained a task: they may leave)."""
    for t in range(sol.shape[0]):
        if sol[t] == x:
            active[t] = True


@njit(cache=True)
def _wake_near(sol, x, by_off, by_node, active):
    """Mark the tasks on node ``x`` and those with ``x`` as a candidate (it lost a task)."""
    _wake_on(sol, x, active)
    for k in range(by_off[x], by_off[x + 1]):
        active[by_node[k]] = True


@njit(cache=True)
def wake_differences(sol, ref, by_off, by_node, active):
    """Mark the tasks near where ``sol`` differs from ``ref`` (a local optimum)."""
    active[:] = False
    for t in range(sol.shape[0]):
        if sol[t] != ref[t]:
            _wake_on(sol, sol[t], active)
            _wake_near(sol, ref[t], by_off, by_node, active)


@njit(cache=True)
def local_search(p, ws, sol, cand, ncand, lb, sweeps, swaps, members, active, by_off, by_node):
    """First-improvement moves and swaps on ``sol`` (in place), with don't-look bits.

    Only tasks marked in ``active`` are examined; an accepted change marks the
    tasks on the two nodes it touched, and those that have a node that lost a
    task as a candidate.
    A move sends a task to another of its candidates; a swap (when ``swaps``)
    exchanges the nodes of two tasks, each a candidate of the other. Each
    change is evaluated on the two nodes it touches (and the horizon). A move
    is not tried when the task's cost alone on the new node, ``lb`` (see
    :func:`own_cost_bound`), is no less than what leaving its node saves
    (horizon included).

    Returns:
        ``(cost, evaluations)``: the new cost and the number of changes tried.
    """
    n = p.cores.shape[0]
    b = sol.shape[0]
    # a typed -1, not a literal: literal arguments make numba compile a variant per value
    none = np.int64(-1)
    use_lb = lb.shape[0] > 0
    ncost = np.zeros(n)
    nlast = np.empty(n)
    for j in range(n):
        nlast[j] = costmod._last0(p, j)
    used = np.zeros(n, dtype=np.bool_)
    for t in range(b):
        used[sol[t]] = True
    for j in range(n):
        if used[j]:
            ncost[j], nlast[j] = _node_cost(p, ws, sol, j, none, none, members)
    body = ncost.sum()
    cur = body + _horizon(p, nlast, none, 0.0, none, 0.0)
    tol = 1e-12 * max(1.0, abs(cur))
    evals = 0
    looked = np.zeros(b, dtype=np.bool_)
    for _ in range(sweeps):
        if not active.any():
            break
        looked[:] = active
        for t in range(b):
            if not active[t]:
                continue
            active[t] = False
            a = sol[t]
            ca, la = _node_cost(p, ws, sol, a, t, none, members)
            gain = cur - (body - ncost[a] + ca + _horizon(p, nlast, a, la, none, 0.0))
            for c in range(ncand[t]):
                j = cand[t, c]
                if j == a or (use_lb and lb[t, c] >= gain):
                    continue
                evals += 1
                cj, lj = _node_cost(p, ws, sol, j, none, t, members)
                new_body = body - ncost[a] - ncost[j] + ca + cj
                new = new_body + _horizon(p, nlast, a, la, j, lj)
                if new < cur - tol:
                    sol[t] = j
                    ncost[a], nlast[a], ncost[j], nlast[j] = ca, la, cj, lj
                    body = new_body
                    cur = new
                    _wake_near(sol, a, by_off, by_node, active)
                    _wake_on(sol, j, active)
                    active[t] = False
                    looked[t] = True
                    a = j
                    ca, la = _node_cost(p, ws, sol, a, t, none, members)
                    gain = cur - (body - ncost[a] + ca + _horizon(p, nlast, a, la, none, 0.0))
        if not swaps:
            continue
        for t1 in range(b):
            for t2 in range(t1 + 1, b):
                a = sol[t1]
                j = sol[t2]
                if a == j or not (looked[t1] or looked[t2]):
                    continue
                ok1 = False
                for c in range(ncand[t1]):
                    ok1 = ok1 or cand[t1, c] == j
                ok2 = False
                for c in range(ncand[t2]):
                    ok2 = ok2 or cand[t2, c] == a
                if not (ok1 and ok2):
                    continue
                evals += 1
                # a loses t1 and gains t2, j the reverse
                sol[t1] = j
                ca, la = _node_cost(p, ws, sol, a, none, t2, members)
                sol[t1] = a
                sol[t2] = a
                cj, lj = _node_cost(p, ws, sol, j, none, t1, members)
                sol[t2] = j
                new_body = body - ncost[a] - ncost[j] + ca + cj
                new = new_body + _horizon(p, nlast, a, la, j, lj)
                if new < cur - tol:
                    sol[t1] = j
                    sol[t2] = a
                    ncost[a], nlast[a], ncost[j], nlast[j] = ca, la, cj, lj
                    body = new_body
                    cur = new
                    _wake_near(sol, a, by_off, by_node, active)
                    _wake_near(sol, j, by_off, by_node, active)
    return cur, evals


@njit(cache=True)
def own_cost_bound(p, cand, ncand):
    """Per candidate, the cost of the task on that node if nothing else were there.

    It starts at ``max(ready, earliest free core)``; the delay it would cause
    to others and the horizon are left out. A filter for the local search.
    """
    b, k = cand.shape
    lb = np.zeros((b, k))
    for t in range(b):
        for c in range(ncand[t]):
            j = cand[t, c]
            r = p.ready[t, j]
            s = max(r, p.cf[j, 0])
            f = s + p.dur[t, j]
            v = p.w_response * (f - p.arrival[t]) + p.w_energy * p.dyn_j[t, j]
            v += p.ww[t] * (s - r)
            if f > p.dl[t]:
                v += p.mw[t]
            lb[t, c] = v * p.inv_b
    return lb


@njit(cache=True)
def _by_node(cand, ncand, n):
    """For each node, the tasks that have it as a candidate (CSR: offsets, tasks)."""
    off = np.zeros(n + 1, dtype=np.int64)
    for t in range(cand.shape[0]):
        for c in range(ncand[t]):
            off[cand[t, c] + 1] += 1
    for j in range(n):
        off[j + 1] += off[j]
    fill = off[:-1].copy()
    out = np.empty(off[n], dtype=np.int64)
    for t in range(cand.shape[0]):
        for c in range(ncand[t]):
            j = cand[t, c]
            out[fill[j]] = t
            fill[j] += 1
    return off, out


@njit(cache=True)
def run_mmas(
    p,
    ws,
    u,
    order,
    cand,
    ncand,
    tau0,
    etab,
    alpha,
    beta,
    rho,
    tau_min,
    global_every,
    restart_after,
    ls_sweeps,
    ls_every,
    swaps,
    prune,
    dynamic,
    proj,
    pm0,
    best,
    best_cost,
):
    """The MAX-MIN ant system on one batch (``tau_max = 1``).

    With local search, the best seed is first improved to a local optimum;
    each ``ls_every``-th iteration-best ant is then improved near where it
    differs from the best-so-far (or, with ``ls_every = 0``, only the final
    best, near where it differs from the improved seed).

    Args:
        p: the batch problem (compiled handle).
        ws: its scratch (:func:`hybridsched.policies.cost.make_scratch`).
        u: uniform draws ``(iterations, ants, B)``.
        best, best_cost: the seed assignment (updated in place) and its cost.
        (the rest as in :func:`construct_ant` and :class:`ColonyParams`).

    Returns:
        ``(best cost, evaluations)``.
    """
    n_it, n_ants, b = u.shape
    k = cand.shape[1]
    n = pm0.shape[0]
    tau = tau0.copy()
    ant = np.empty(b, dtype=np.int64)
    ib = np.empty(b, dtype=np.int64)
    pm = pm0.copy()
    slot = np.full(n, -1, dtype=np.int64)
    rows = np.empty((b, proj.shape[1]))
    wts = np.empty(k)
    members = np.empty(b, dtype=np.int64)
    active = np.ones(b, dtype=np.bool_)
    by_off, by_node = _by_node(cand, ncand, n)
    lb = own_cost_bound(p, cand, ncand) if prune else np.zeros((0, 0))
    evals = 0
    if ls_sweeps > 0:
        best_cost, e = local_search(
            p, ws, best, cand, ncand, lb, ls_sweeps, swaps, members, active, by_off, by_node
        )
        evals += e
    ref = best.copy()
    since = 0
    for it in range(n_it):
        ib_cost = np.inf
        for a in range(n_ants):
            construct_ant(
                u[it, a],
                order,
                cand,
                ncand,
                tau,
                etab,
                alpha,
                beta,
                dynamic,
                p.ready,
                p.dur,
                p.d,
                proj,
                pm0,
                p.cores,
                pm,
                slot,
                rows,
                wts,
                ant,
            )
            c = costmod.evaluate_one(p, ant, ws)
            evals += 1
            if c < ib_cost:
                ib_cost = c
                ib[:] = ant
        if ls_sweeps > 0 and ls_every > 0 and (it + 1) % ls_every == 0:
            wake_differences(ib, best, by_off, by_node, active)
            ib_cost, e = local_search(
                p, ws, ib, cand, ncand, lb, ls_sweeps, swaps, members, active, by_off, by_node
            )
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
        wake_differences(best, ref, by_off, by_node, active)
        best_cost, e = local_search(
            p, ws, best, cand, ncand, lb, ls_sweeps, swaps, members, active, by_off, by_node
        )
        evals += e
    return best_cost, evals


def construct_numpy(
    u: np.ndarray,
    order: np.ndarray,
    cand: np.ndarray,
    ncand: np.ndarray,
    tau: np.ndarray,
    etab: np.ndarray,
    alpha: float,
    beta: float,
    dynamic: bool,
    ready: np.ndarray,
    dur: np.ndarray,
    d: float,
    proj: np.ndarray,
    pm0: np.ndarray,
) -> np.ndarray:
    """All ants of one iteration at once, vectorised over ants with NumPy.

    The same rule and the same draws as :func:`construct_ant`, so the same
    assignments; kept as the reference the benchmark times the compiled kernel
    against. ``u`` is ``(ants, B)``; returns ``(ants, B)`` node indices.
    """
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


# ----------------------------------------------------------------------------
# the colony
# ----------------------------------------------------------------------------


class Colony:
    """A MAX-MIN ant colony that assigns decision batches (see the module docstring).

    Args:
        params: the colony's parameters.
        weights: the batch cost's weights.
        heuristic: the desirability; default :func:`completion_heuristic`.
    """

    def __init__(
        self,
        params: ColonyParams | None = None,
        weights: costmod.CostWeights | None = None,
        heuristic: Heuristic | None = None,
    ) -> None:
        self.params = params or ColonyParams()
        self.weights = weights or costmod.CostWeights()
        if heuristic is not None and not callable(heuristic):
            raise ConfigError(f"aco heuristic: must be callable, got {heuristic!r}")
        self.heuristic: Heuristic = heuristic or completion_heuristic
        self._rng = np.random.default_rng(0)
        self._seeds: list = []
        self._memory = np.ones((0, 0))
        self._n_prio = 3

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        """Start a run on ``cluster``: forget the memory, re-seed, build the seed policies."""
        from hybridsched.policies.base import make_policy

        self._rng = rng
        self._seeds = []
        for name, child in zip(self.params.seeds, rng.spawn(len(self.params.seeds)), strict=True):
            pol = make_policy(name)
            pol.reset(cluster, child)
            self._seeds.append(pol)
        n_classes = cluster.n_regions * self._n_prio * self.params.size_buckets
        self._memory = np.ones((n_classes, cluster.n_nodes))

    def task_classes(self, tasks: TaskBatch) -> np.ndarray:
        """The memory's class of each task: (region, priority class, size bucket)."""
        nb = self.params.size_buckets
        # bucket edges 0.5, 2, 8, ... GI (x4 apart)
        size = np.floor(np.log(np.maximum(tasks.work_gi, 1e-300) / 0.5) / np.log(4.0)) + 1
        size = np.clip(size, 0, nb - 1).astype(np.int64)
        prio = np.minimum(tasks.priority, self._n_prio - 1)
        return (tasks.region * self._n_prio + prio) * nb + size

    def construction_order(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        """Task indices, most urgent first (see :attr:`ColonyParams.order`)."""
        b = len(tasks)
        if self.params.order == "arrival":
            return np.arange(b, dtype=np.int64)
        best = np.min(np.where(view.feasible, view.est_finish_s, np.inf), axis=1)
        slack = tasks.deadline_abs_s - best
        if self.params.order == "slack":
            return np.lexsort((np.arange(b), slack)).astype(np.int64)
        return np.lexsort((np.arange(b), slack, tasks.priority)).astype(np.int64)

    def candidates(
        self, eta: np.ndarray, seeds: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most desirable nodes per task, with every seed's node among them.

        Returns:
            ``cand (B, K)`` (best first; padding repeats the last valid one) and
            ``ncand (B,)``, the number of valid entries.
        """
        b, n = eta.shape
        k = min(self.params.candidates, n)
        if k < n:
            part = np.argpartition(-eta, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(n), (b, n))
        vals = np.take_along_axis(eta, part, axis=1)
        # best first; ties by node index, for a deterministic order
        srt = np.lexsort((part, -vals), axis=1)
        cand = np.zeros((b, k + len(seeds)), dtype=np.int64)
        cand[:, :k] = np.take_along_axis(part, srt, axis=1)
        ncand = np.sum(vals > 0, axis=1).astype(np.int64)
        for s in seeds:
            valid = np.arange(cand.shape[1]) < ncand[:, None]
            missing = np.flatnonzero(~np.any((cand == s[:, None]) & valid, axis=1))
            cand[missing, ncand[missing]] = s[missing]
            ncand[missing] += 1
        cand = cand[:, : max(int(ncand.max()), 1)]
        # pad beyond ncand with a valid node so that every entry is an index
        fill = cand[np.arange(b), np.maximum(ncand - 1, 0)]
        cand = np.where(np.arange(cand.shape[1]) < ncand[:, None], cand, fill[:, None])
        return np.ascontiguousarray(cand), ncand

    def solve(self, tasks: TaskBatch, view: ClusterView) -> ColonyResult:
        """Assign one batch: seeds, then the MAX-MIN ant system; update the memory."""
        prm = self.params
        b = len(tasks)
        p = costmod.compile_problem(costmod.build_problem(tasks, view, self.weights))
        seeds = [np.asarray(pol.assign(tasks, view), dtype=np.int64) for pol in self._seeds]
        ws = costmod.make_scratch(p)
        seed_costs = [costmod.evaluate_one(p, s, ws) for s in seeds]
        if seeds:
            i = int(np.argmin(seed_costs))
            best, best_cost = seeds[i].copy(), float(seed_costs[i])
        else:
            best, best_cost = None, np.inf
        eta = np.asarray(self.heuristic(tasks, view), dtype=np.float64)
        if eta.shape != (b, view.n_nodes):
            raise ConfigError(
                f"aco heuristic: must return shape {(b, view.n_nodes)}, got {eta.shape}"
            )
        eta = np.where(view.feasible & np.isfinite(eta) & (eta > 0), eta, 0.0)
        cand, ncand = self.candidates(eta, seeds)
        if np.any(ncand == 0):
            raise ConfigError("aco heuristic: gives no node with eta > 0 to some task")
        order = self.construction_order(tasks, view)
        etab = np.take_along_axis(eta, cand, axis=1)
        etab = etab * etab if prm.beta == 2.0 else etab**prm.beta
        cls = self.task_classes(tasks)
        tau0 = 1.0 - prm.memory + prm.memory * self._memory[cls[:, None], cand]
        if best is None:
            best = np.ascontiguousarray(cand[:, 0])
            best_cost = costmod.evaluate_one(p, best, ws)
        elif prm.explore > 0 and prm.alpha > 0:
            tau0 = self._near_seed(tau0, cand, ncand, etab, best)
        tau_min = self._tau_min(b, cand.shape[1])
        tau0 = np.ascontiguousarray(np.clip(tau0, tau_min, 1.0))
        u = self._rng.random((prm.iterations, prm.ants, b))
        best = np.ascontiguousarray(best)
        cost, evals = run_mmas(
            p,
            ws,
            u,
            order,
            cand,
            ncand,
            tau0,
            np.ascontiguousarray(etab),
            float(prm.alpha),
            float(prm.beta),
            float(prm.rho),
            float(tau_min),
            int(prm.global_every),
            int(prm.restart_after),
            int(prm.local_search),
            int(prm.ls_every),
            b <= prm.swap_limit,
            bool(prm.prune),
            bool(prm.dynamic_eta),
            view.core_free_s,
            view.available_s,
            best,
            float(best_cost),
        )
        self._remember(cls, best)
        seed_cost = float(min(seed_costs)) if seeds else float("nan")
        return ColonyResult(
            nodes=best, cost=float(cost), seed_cost=seed_cost, evaluations=evals, problem=p
        )

    def _near_seed(
        self,
        tau0: np.ndarray,
        cand: np.ndarray,
        ncand: np.ndarray,
        etab: np.ndarray,
        best: np.ndarray,
    ) -> np.ndarray:
        """Initial trails around the best seed: its choices at ``tau_max``, the others
        scaled per task so that an ant places about ``explore`` tasks elsewhere (keeping
        their ratios, hence the memory's preferences)."""
        prm = self.params
        b = cand.shape[0]
        valid = np.arange(cand.shape[1]) < ncand[:, None]
        on = (cand == best[:, None]) & valid
        w = np.where(valid, etab, 0.0)
        e_seed = np.sum(np.where(on, w, 0.0), axis=1)
        off = np.sum(np.where(valid & ~on, tau0**prm.alpha * w, 0.0), axis=1)
        p = min(0.5, prm.explore / b)  # wanted chance that a task leaves the seed's node
        with np.errstate(divide="ignore", invalid="ignore"):
            f = (p * e_seed / ((1.0 - p) * off)) ** (1.0 / prm.alpha)
        f = np.where((off > 0) & np.isfinite(f), f, 1.0)
        return np.where(on, 1.0, f[:, None] * tau0)

    def _tau_min(self, b: int, k: int) -> float:
        # Stützle and Hoos (2000): tau_min = tau_max (1 - p_dec) / ((avg - 1) p_dec)
        p_dec = self.params.p_best ** (1.0 / max(b, 1))
        avg = max(k / 2.0, 2.0)
        return float(min(1.0, (1.0 - p_dec) / ((avg - 1.0) * p_dec)))

    def _remember(self, cls: np.ndarray, best: np.ndarray) -> None:
        prm = self.params
        if prm.memory == 0:
            return
        m = self._memory
        present = np.unique(cls)
        m[present] *= 1.0 - prm.memory_rho
        pairs = np.unique(cls * m.shape[1] + best)  # one deposit per (class, node) pair
        m.reshape(-1)[pairs] += prm.memory_rho
        m[present] = np.clip(m[present], MEMORY_MIN, 1.0)
