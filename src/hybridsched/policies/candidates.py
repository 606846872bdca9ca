"""The colony's desirability and candidate nodes: earliest estimated finish per (task, node).

:func:`completion_heuristic` is the default desirability (the inverse of MCT's
estimated finish, ``(B, N)``); :func:`completion_candidates` gives each task's
``k`` best nodes (plus the seeds' choices) in one compiled pass without building
that matrix, and :func:`top_candidates` the same from a given matrix. They give
the same bits as the view's NumPy arrays (tests/test_colony_scale.py).

For a desirability known on a few nodes per task only (the hybrid's shortlist):
:func:`top_completion_row` picks a task's ``k`` nodes of highest default
desirability in ``O(N)``, a :class:`Listed` carries values on listed pairs, and
:func:`listed_candidates` gives the candidate lists :func:`top_candidates` would
give on the matrix they stand for.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hybridsched.policies import cost as costmod
from hybridsched.sim.view import ClusterView, TaskBatch


def completion_heuristic(tasks: TaskBatch, view: ClusterView) -> np.ndarray:
    """The classic desirability: ``1 / (est_finish - now)``, 0 on infeasible nodes.

    ``est_finish`` is the view's MCT estimate (:attr:`ClusterView.est_finish_s`),
    computed here in one compiled pass with the same operations (so the same
    bits), without the view's intermediate ``(B, N)`` arrays.
    """
    eta = np.empty((len(tasks), view.n_nodes))
    _completion_eta(*estimate_inputs(tasks, view), eta)
    return eta


def estimate_inputs(tasks: TaskBatch, view: ClusterView) -> tuple:
    """What :func:`_completion_eta` and :func:`best_finish` read, as contiguous arrays."""
    return (
        *costmod.pair_inputs(tasks, view),
        np.ascontiguousarray(view.available_s, dtype=np.float64),
        np.ascontiguousarray(view.feasible),
    )


@njit(cache=True)
def _finish(d, lat, region, data, bw, work, speed, avail, t, j):
    # view.est_finish_s, operation for operation: max((d + lat) + data / bw, available) + exec
    return max((d + lat[j, region[t]]) + data[t] / bw[j], avail[j]) + work[t] / speed[j]


@njit(cache=True)
def _completion_eta(d, lat, region, data, bw, work, speed, avail, feasible, eta):
    for t in range(eta.shape[0]):
        for j in range(eta.shape[1]):
            if feasible[t, j]:
                eta[t, j] = 1.0 / (_finish(d, lat, region, data, bw, work, speed, avail, t, j) - d)
            else:
                eta[t, j] = 0.0


@njit(cache=True)
def best_finish(d, lat, region, data, bw, work, speed, avail, feasible):
    """Per task, the earliest estimated finish over its feasible nodes (inf: none)."""
    b, n = feasible.shape
    best = np.full(b, np.inf)
    for t in range(b):
        for j in range(n):
            if feasible[t, j]:
                best[t] = min(best[t], _finish(d, lat, region, data, bw, work, speed, avail, t, j))
    return best


@njit(cache=True)
def top_completion_row(inputs, feasible, t, k, val, sel, out):
    """Task ``t``'s ``k`` nodes of highest :func:`completion_heuristic` desirability, into ``out``.

    The nodes of :func:`top_candidates` on that matrix with no seeds (ties to
    the lower node index, node 0 past the counted ones), in node order instead
    of best first, without the matrix and without an insertion per node: one
    pass over the row, then a selection of the ``k``-th value, ``O(N)``.

    Args:
        inputs: the first eight of :func:`estimate_inputs` (``d`` to ``available``).
        feasible: ``(B, N)``, its last.
        t: the task (batch position); k: nodes kept, >= 1.
        val, sel: scratch, ``(>= 2 N,)`` float and ``(>= N,)`` int.
        out: ``(>= k,)`` int, written in ``0..k-1``.

    Returns:
        the task's earliest estimated finish over its feasible nodes (inf:
        none), as :func:`best_finish` gives it.
    """
    d, lat, region, data, bw, work, speed, avail = inputs
    cnt = 0
    best = np.inf
    for j in range(feasible.shape[1]):
        if feasible[t, j]:
            f = _finish(d, lat, region, data, bw, work, speed, avail, t, j)
            best = min(best, f)
            v = 1.0 / (f - d)
            if v > 0 and v < np.inf:
                val[cnt] = v
                sel[cnt] = j
                cnt += 1
    if cnt <= k:
        out[:cnt] = sel[:cnt]
        out[cnt:k] = 0
        return best
    thr = _kth_largest(val, cnt, k, val[cnt:])
    ties = k  # how many of the values equal to thr are kept, lowest nodes first
    for q in range(cnt):
        if val[q] > thr:
            ties -= 1
    w = 0
    for q in range(cnt):
        v = val[q]
        if v > thr or (v == thr and ties > 0):
            if v == thr:
                ties -= 1
            out[w] = sel[q]
            w += 1
    return best


@njit(cache=True)
def _kth_largest(a, n, k, buf):
    """The ``k``-th largest of ``a[:n]`` (quickselect on a copy in ``buf``)."""
    buf[:n] = a[:n]
    lo, hi, want = 0, n - 1, k - 1  # position in descending order
    while lo < hi:
        x, y, z = buf[lo], buf[(lo + hi) // 2], buf[hi]
        pivot = max(min(x, y), min(max(x, y), z))  # median of three
        i, j = lo, hi
        while i <= j:
            while buf[i] > pivot:
                i += 1
            while buf[j] < pivot:
                j -= 1
            if i <= j:
                buf[i], buf[j] = buf[j], buf[i]
                i += 1
                j -= 1
        if want <= j:
            hi = j
        elif want >= i:
            lo = i
        else:
            break
    return buf[want]


@njit(cache=True)
def top_candidates(eta, feasible, k, seeds):
    """Per task, the ``k`` nodes of highest ``eta``, then the seeds' nodes not among them.

    A node counts only where it is feasible and ``eta`` is finite and > 0.
    Best first, ties to the lower node index; one pass over the row, no sort.

    Args:
        eta, feasible: ``(B, N)``.
        k: candidates per task.
        seeds: ``(S, B)`` the seed assignments.

    Returns:
        ``(cand (B, k + S), ncand (B,), eta on cand (B, k + S))``; entries past
        ``ncand`` are unset.
    """
    none = np.zeros((0, 0))
    return _top_rows(eta, feasible, k, seeds, 0.0, none, none, np.zeros(0))[:3]


class Listed(NamedTuple):
    """A desirability given on listed nodes only: ``eta[t, q]`` of node ``nodes[t, q]``.

    The ``(B, N)`` matrix it stands for holds ``eta`` on the listed pairs and
    0 elsewhere (a node listed twice has the same value each time).
    """

    nodes: np.ndarray
    """``(B, M)`` int, the listed nodes of each task (any order)."""
    eta: np.ndarray
    """``(B, M)`` float, their desirability."""
    best: np.ndarray | None = None
    """``(B,)`` each task's earliest estimated finish (:func:`best_finish`), if known."""


@njit(cache=True)
def listed_candidates(nodes, eta, feasible, k, seeds):
    """:func:`top_candidates` of the matrix a :class:`Listed` stands for, without it.

    The same lists, values and counts: the ``k`` best by (desirability, then
    lower node index) over the listed pairs that count, then the seeds' nodes
    not among them (their value, or 0 when not listed). ``O(B M k)``.
    """
    b, m = nodes.shape
    w = k + seeds.shape[0]
    cand = np.zeros((b, w), dtype=np.int64)
    val = np.zeros((b, w))
    ncand = np.zeros(b, dtype=np.int64)
    for t in range(b):
        cnt = 0
        for e in range(m):
            j = nodes[t, e]
            v = eta[t, e] if feasible[t, j] else 0.0
            if v > 0 and v < np.inf and not _listed(cand, t, cnt, j):
                cnt = _insert(cand, val, t, cnt, k, v, j)
        for s in range(seeds.shape[0]):
            j = seeds[s, t]
            if not _listed(cand, t, cnt, j):
                v = 0.0
                for e in range(m):
                    if nodes[t, e] == j and feasible[t, j]:
                        v = eta[t, e]
                        break
                cand[t, cnt] = j
                val[t, cnt] = v if (v > 0 and v < np.inf) else 0.0
                cnt += 1
        ncand[t] = cnt
    return cand, ncand, val


@njit(cache=True)
def _ahead(v, j, v2, j2):
    # (v, j) ranks before (v2, j2): higher desirability, then the lower node
    return v > v2 or (v == v2 and j < j2)


@njit(cache=True)
def _listed(cand, t, cnt, j):
    found = False
    for q in range(cnt):
        found = found or cand[t, q] == j
    return found


@njit(cache=True)
def _insert(cand, val, t, cnt, k, v, j):
    """Put node ``j`` of value ``v`` in row ``t``'s best-first list of ``cnt``
    (at most ``k``) where it ranks, if it does; returns the new count."""
    if cnt == k and not _ahead(v, j, val[t, k - 1], cand[t, k - 1]):
        return cnt
    q = cnt if cnt < k else k - 1
    while q > 0 and _ahead(v, j, val[t, q - 1], cand[t, q - 1]):
        cand[t, q] = cand[t, q - 1]
        val[t, q] = val[t, q - 1]
        q -= 1
    cand[t, q] = j
    val[t, q] = v
    return min(cnt + 1, k)


@njit(cache=True)
def completion_candidates(feasible, k, seeds, d, ready, dur, avail):
    """:func:`top_candidates` of :func:`completion_heuristic`, without its ``(B, N)`` array.

    The desirability of each pair is computed in the pass from the batch
    problem's ready and execution times (the view's, to the bit) and the
    nodes' ``available_s``, with the same operations, so the same candidates.

    Returns:
        as :func:`top_candidates`, and each task's earliest estimated finish
        over its feasible nodes (what :meth:`Colony.construction_order` reads).
    """
    return _top_rows(np.zeros((0, 0)), feasible, k, seeds, d, ready, dur, avail)


@njit(cache=True)
def _value(eta, feasible, d, ready, dur, avail, t, j):
    """The desirability of (t, j), 0 when it does not count (infeasible, <= 0, inf)."""
    if not feasible[t, j]:
        return 0.0
    if ready.shape[0] > 0:
        v = 1.0 / ((max(ready[t, j], avail[j]) + dur[t, j]) - d)
    else:
        v = eta[t, j]
    return v if (v > 0 and v < np.inf) else 0.0


@njit(cache=True)
def _top_rows(eta, feasible, k, seeds, d, ready, dur, avail):
    b, n = feasible.shape
    w = k + seeds.shape[0]
    cand = np.zeros((b, w), dtype=np.int64)
    val = np.zeros((b, w))
    ncand = np.zeros(b, dtype=np.int64)
    best = np.full(b, np.inf)  # earliest estimated finish (times only)
    for t in range(b):
        cnt = 0
        for j in range(n):
            if ready.shape[0] > 0 and feasible[t, j]:
                best[t] = min(best[t], max(ready[t, j], avail[j]) + dur[t, j])
            v = _value(eta, feasible, d, ready, dur, avail, t, j)
            if v != 0.0:  # nodes come in order: an earlier node stays first on ties
                cnt = _insert(cand, val, t, cnt, k, v, j)
        for s in range(seeds.shape[0]):
            j = seeds[s, t]
            if not _listed(cand, t, cnt, j):
                cand[t, cnt] = j
                val[t, cnt] = _value(eta, feasible, d, ready, dur, avail, t, j)
                cnt += 1
        ncand[t] = cnt
    return cand, ncand, val, best
