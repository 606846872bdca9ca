"""The loop that the classic heuristics share: batch placement and the fused simulation.

Every heuristic scores nodes with the same per-(task, node) estimates:

* ``ready = now + latency[node, region] + data / bandwidth``
* ``exec = work_estimate / speed``
* ``finish = max(ready, earliest projected free core) + exec`` (MCT's estimate)

and the tasks of a batch are placed one at a time, each seeing the projection
updated by the ones before it (:func:`hybridsched.sim.core.project`). Ties go
to the lowest node index. A node a task does not :func:`fits` (down, or too
little memory) is never chosen.

Each rule is one compiled function in its policy's module: ``choose`` (the node
of one task: mct, met, olb, least-loaded, round-robin, random, energy-aware),
``order`` (the order of a batch: edf-mct, then MCT's node) or ``score`` (the
batch task placed next: min-min, max-min, sufferage). :func:`decide` places a
batch with a rule and is the one loop they share; a policy calls it from
``assign`` (tentative updates on copies of the projection) or, through
:func:`run_fused`, inside a fully compiled simulation loop (real commits);
both give identical schedules. The rule codes below select the rule's
function: a branch on a value that is the same for the whole run. The
single-task rules are compiled inline (``inline="always"``) into the loop, as
they were when all rules were one function: a call per task measured about
5 % slower on 1M tasks.

numba's cache tracks only the file of the function it compiled: after editing
a rule's module, clear the cache (``__pycache__/*.nbi``) of this one.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.sim import core

MCT = 0
MET = 1
OLB = 2
LEAST_LOADED = 3
ROUND_ROBIN = 4
RANDOM = 5
EDF_MCT = 6
ENERGY = 7
MIN_MIN = 8
MAX_MIN = 9
SUFFERAGE = 10


@njit(cache=True, inline="always")
def fits(st, i, j):
    """Task ``i`` may go to node ``j``: the node is up and has the memory the task needs.

    Availability is the state's ``up`` mask (docs/VIEW.md); memory is only the fit.
    """
    return st.up[j] and st.mem_req[i] <= st.memory[j]


@njit(cache=True, inline="always")
def ready(st, i, j, d, inv):
    """Estimated ready time of task ``i`` on node ``j`` at decision time ``d``.

    Reciprocals instead of divisions, and the latency table transposed (rows
    2.. of ``inv``): these are estimates for choosing; the simulator computes
    the exact ready time on commit.
    """
    return d + inv[2 + st.region[i], j] + st.data[i] * inv[0, j]


@njit(cache=True, inline="always")
def argmin(scores):
    """The first index of the smallest score, -1 when all are ``inf`` (infeasible)."""
    best = np.inf
    arg = -1
    for j in range(scores.shape[0]):
        if scores[j] < best:
            best = scores[j]
            arg = j
    return arg


@njit(cache=True)
def best_two(st, i, d, proj_min, inv):
    """Best and second-best estimated finish of task ``i`` and the best node."""
    best = np.inf
    second = np.inf
    arg = -1
    for j in range(st.cores.shape[0]):
        if not fits(st, i, j):
            continue
        f = max(ready(st, i, j, d, inv), proj_min[j]) + st.work_est[i] * inv[1, j]
        if f < best:
            second = best
            best = f
            arg = j
        elif f < second:
            second = f
    return best, second, arg


@njit(cache=True)
def _choose(st, i, d, rule, proj_min, nq, u, dynpow, rr, inv, scratch):
    """The node for task ``i`` under a single-task rule; returns (node, new rr)."""
    if rule == MCT or rule == EDF_MCT:
        return mct.choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch)
    if rule == ROUND_ROBIN:
        return round_robin.choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch)
    if rule == RANDOM:
        return random.choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch)
    if rule == MET:
        return met.choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch)
    if rule == OLB:
        return olb.choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch)
    if rule == LEAST_LOADED:
        return least_loaded.choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch)
    return energy_aware.choose(st, i, d, proj_min, nq, u, dynpow, rr, inv, scratch)


@njit(cache=True)
def _score(rule, best, second):
    """The score of a batch task under a batch rule (the highest is placed next)."""
    if rule == MIN_MIN:
        return min_min.score(best, second)
    if rule == MAX_MIN:
        return max_min.score(best, second)
    return sufferage.score(best, second)


@njit(cache=True)
def _place(st, i, j, d, real, proj, proj_min, nq, inv):
    if real:
        core.commit(st, i, j, d)
    else:
        r = ready(st, i, j, d, inv)
        proj_min[j] = core.project(proj[j], r, st.work_est[i] * inv[1, j])
        nq[j] += 1


# Candidates kept per batch task by the batch rules: enough that a placement
# rarely forces a rescan of every node, few enough to scan on every placement.
TOP_K = 16


@njit(cache=True, inline="always")
def _finish(st, i, j, d, proj_min, inv):
    """MCT's finish estimate of task ``i`` on node ``j`` (the expression of :func:`best_two`)."""
    return max(ready(st, i, j, d, inv), proj_min[j]) + st.work_est[i] * inv[1, j]


@njit(cache=True)
def _scan(st, i, d, proj_min, inv, topf, topn):
    """Keep task ``i``'s ``TOP_K`` smallest finish estimates over every feasible node.

    Fills ``topf``/``topn`` (sorted by estimate, then node index) and returns
    (count, threshold): every feasible node left out has an estimate >= the
    threshold (``inf`` when none is left out).
    """
    kk = topf.shape[0]
    cnt = 0
    thr = np.inf
    need = st.mem_req[i]
    memory = st.memory
    up = st.up
    for j in range(st.cores.shape[0]):
        if need > memory[j] or not up[j]:  # fits(), with the arrays loaded once
            continue
        f = _finish(st, i, j, d, proj_min, inv)
        if cnt == kk:
            if not f < topf[kk - 1]:
                if f < thr:
                    thr = f
                continue
            if topf[kk - 1] < thr:
                thr = topf[kk - 1]
            p = kk - 1
        else:
            p = cnt
            cnt += 1
        # insertion: strictly smaller moves up, so an earlier node stays first on ties
        while p > 0 and f < topf[p - 1]:
            topf[p] = topf[p - 1]
            topn[p] = topn[p - 1]
            p -= 1
        topf[p] = f
        topn[p] = j
    return cnt, thr


@njit(cache=True, inline="always")
def _top_two(topf, topn, cnt):
    """Best estimate, its node (lowest index on ties), second-best estimate of a list."""
    best = np.inf
    arg = -1
    for q in range(cnt):
        if topf[q] < best or (topf[q] == best and topn[q] < arg):
            best = topf[q]
            arg = topn[q]
    second = np.inf
    for q in range(cnt):
        if topn[q] != arg and topf[q] < second:
            second = topf[q]
    return best, second, arg


@njit(cache=True)
def _decide_batch_rule(st, idx, d, rule, real, proj, proj_min, nq, inv, out):
    """Min-min, max-min, sufferage: place the batch task of highest score, repeat.

    The same schedule as rescanning every node for every unplaced task after each
    placement (:func:`best_two`), without the O(B * N) rescan per placement: a
    placement changes only its node's ``proj_min`` and (list scheduling) never
    lowers it, so each unplaced task keeps its ``TOP_K`` best nodes and a
    threshold below which no other node can be. After a placement on ``j`` a
    task re-evaluates ``j`` only if ``j`` is in its list, and rescans every node
    only when its best is no longer below the threshold (or its second-best
    above it). The estimates use the expression of :func:`best_two`, so they are
    bit-identical, and ties resolve the same way (lowest node index for the best,
    first batch position for the pick). Should a projection ever move earlier,
    every task rescans.
    """
    b = idx.shape[0]
    kk = TOP_K
    left = np.ones(b, dtype=np.bool_)
    bst = np.empty(b)
    snd = np.empty(b)
    arg = np.empty(b, dtype=np.int64)
    topf = np.empty((b, kk))
    topn = np.empty((b, kk), dtype=np.int64)
    cnt = np.empty(b, dtype=np.int64)
    thr = np.empty(b)
    for k in range(b):
        cnt[k], thr[k] = _scan(st, idx[k], d, proj_min, inv, topf[k], topn[k])
        bst[k], snd[k], arg[k] = _top_two(topf[k], topn[k], cnt[k])
    for _ in range(b):
        pick = -1
        pick_score = 0.0
        for k in range(b):
            if not left[k]:
                continue
            score = _score(rule, bst[k], snd[k])
            if pick < 0 or score > pick_score:
                pick = k
                pick_score = score
        left[pick] = False
        j = arg[pick]
        out[pick] = j
        before = proj_min[j]
        _place(st, idx[pick], j, d, real, proj, proj_min, nq, inv)
        after = proj_min[j]
        if after == before:
            continue  # the column did not change: every estimate stands
        for k in range(b):
            if not left[k]:
                continue
            i = idx[k]
            if after < before:
                cnt[k], thr[k] = _scan(st, i, d, proj_min, inv, topf[k], topn[k])
                bst[k], snd[k], arg[k] = _top_two(topf[k], topn[k], cnt[k])
                continue
            hit = False
            for q in range(cnt[k]):
                if topn[k, q] == j:
                    topf[k, q] = _finish(st, i, j, d, proj_min, inv)
                    hit = True
                    break
            if not hit:
                continue  # j is not among the candidates and only got later
            bb, ss, aa = _top_two(topf[k], topn[k], cnt[k])
            if not (bb < thr[k] or thr[k] == np.inf) or ss > thr[k]:
                cnt[k], thr[k] = _scan(st, i, d, proj_min, inv, topf[k], topn[k])
                bb, ss, aa = _top_two(topf[k], topn[k], cnt[k])
            bst[k] = bb
            snd[k] = ss
            arg[k] = aa


@njit(cache=True)
def decide(st, idx, d, rule, u, dynpow, inv, rr, real, proj, proj_min, nq):
    """Place the tasks ``idx`` (decision order) at time ``d`` under ``rule``.

    Args:
        st: the engine state (:class:`hybridsched.sim.core.CoreState`).
        idx: the batch's task indices.
        d: the decision time.
        rule: one of the rule codes of this module.
        u: one uniform draw in [0, 1) per task (the random rule).
        dynpow: per node, (power_max - power_idle) / cores, W per busy core.
        inv: per node, rows 1 / bandwidth, 1 / speed, then latency per region,
            shape (2 + R, N) (see :func:`node_table`).
        rr: the round-robin pointer.
        real: commit to the engine (the fused loop) instead of tentative updates.
        proj, proj_min, nq: projection, its row minima and queued counts to read
            and update (the engine's own arrays when ``real``, else copies).

    Returns:
        (nodes per task of ``idx``, new round-robin pointer).
    """
    b = idx.shape[0]
    out = np.empty(b, dtype=np.int64)
    if rule == MIN_MIN or rule == MAX_MIN or rule == SUFFERAGE:
        _decide_batch_rule(st, idx, d, rule, real, proj, proj_min, nq, inv, out)
        return out, rr
    if rule == EDF_MCT:
        order = edf_mct.order(st, idx)
    else:
        order = np.arange(b)
    scratch = np.empty(st.cores.shape[0])
    for q in range(b):
        k = order[q]
        i = idx[k]
        j, rr = _choose(st, i, d, rule, proj_min, nq, u[k], dynpow, rr, inv, scratch)
        out[k] = j
        _place(st, i, j, d, real, proj, proj_min, nq, inv)
    return out, rr


def node_table(cluster) -> np.ndarray:
    """The per-node table the rules read: 1 / bandwidth, 1 / speed, latency by region."""
    return np.ascontiguousarray(
        np.vstack([1.0 / cluster.bandwidth_mb_s, 1.0 / cluster.speed, cluster.latency_s.T])
    )


@njit(cache=True)
def run_fused(st, dec_time, batch_start, rule, u, dynpow, inv, rr):
    """Run a whole simulation with a compiled rule: advance, decide, commit.

    Returns:
        the final round-robin pointer.
    """
    scratch = np.empty(st.cores.shape[0])
    for b in range(batch_start.shape[0] - 1):
        lo = batch_start[b]
        hi = batch_start[b + 1]
        d = dec_time[lo]
        core.advance(st, d)
        if hi - lo == 1:
            # one task (every decision at interval 0): no batch arrays to allocate
            if rule >= MIN_MIN:
                j = best_two(st, lo, d, st.proj_min, inv)[2]
            else:
                j, rr = _choose(
                    st, lo, d, rule, st.proj_min, st.n_queued, u[lo], dynpow, rr, inv, scratch
                )
            core.commit(st, lo, j, d)
            continue
        idx = np.arange(lo, hi)
        if hi - lo > 1 and rule >= EDF_MCT and rule != ENERGY:
            # rules that reorder the batch decide on copies first, then commit in batch
            # order, exactly as the engine commits what ``assign`` returns
            nodes, rr = decide(
                st,
                idx,
                d,
                rule,
                u[lo:hi],
                dynpow,
                inv,
                rr,
                False,
                st.proj.copy(),
                st.proj_min.copy(),
                st.n_queued.copy(),
            )
            for k in range(hi - lo):
                core.commit(st, idx[k], nodes[k], d)
        else:
            _, rr = decide(
                st, idx, d, rule, u[lo:hi], dynpow, inv, rr, True, st.proj, st.proj_min, st.n_queued
            )
    return rr


# The rules, one module each. Imported last: each module reads the rule codes
# and helpers above, and its policy class subclasses KernelPolicy (the base
# module imports this one at its end). numba resolves these names when it
# compiles, after every import is done.
from hybridsched.policies import (  # noqa: E402
    edf_mct,
    energy_aware,
    least_loaded,
    max_min,
    mct,
    met,
    min_min,
    olb,
    random,
    round_robin,
    sufferage,
)
