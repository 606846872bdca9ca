"""Local search of the ant colony: moves and swaps on one batch assignment.

First-improvement moves (a task to another of its candidate nodes) and swaps
(two tasks on different nodes exchange them), each evaluated exactly on the
two nodes it changes (:func:`hybridsched.policies.cost_kernels.node_cost`, with
the per-(node, task set) memo) and the horizon; don't-look bits keep the work
near the last change, and a cheap bound (:func:`own_cost_bound`) skips moves
that cannot pay (or, with the colony's ``prune_alone``, the tighter heuristic
filter :func:`alone_cost_bound`). Used by :func:`hybridsched.policies.ants.run_mmas`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.policies import cost_kernels as costmod


@njit(cache=True)
def node_lists(sol, n):
    """Per node, the tasks ``sol`` sends there in ascending order: a linked list.

    Returns:
        ``(head, nxt)``: the first task of each node (-1: none) and the next
        task after each task (-1: the last).
    """
    head = np.full(n, -1, dtype=np.int64)
    nxt = np.full(sol.shape[0], -1, dtype=np.int64)
    for t in range(sol.shape[0] - 1, -1, -1):
        nxt[t] = head[sol[t]]
        head[sol[t]] = t
    return head, nxt


@njit(cache=True)
def unlink(head, nxt, j, t):
    """Take task ``t`` out of node ``j``'s list."""
    if head[j] == t:
        head[j] = nxt[t]
    else:
        s = head[j]
        while nxt[s] != t:
            s = nxt[s]
        nxt[s] = nxt[t]
    nxt[t] = -1


@njit(cache=True)
def link(head, nxt, j, t):
    """Put task ``t`` into node ``j``'s list, keeping it ascending."""
    if head[j] < 0 or head[j] > t:
        nxt[t] = head[j]
        head[j] = t
        return
    s = head[j]
    while nxt[s] >= 0 and nxt[s] < t:
        s = nxt[s]
    nxt[t] = nxt[s]
    nxt[s] = t


@njit(cache=True)
def _members(head, nxt, j, skip, add, members):
    """Tasks on node ``j`` (ascending), without ``skip`` and with ``add`` last (-1: none)."""
    nm = 0
    t = head[j]
    while t >= 0:
        if t != skip:
            members[nm] = t
            nm += 1
        t = nxt[t]
    if add >= 0:
        members[nm] = add
        nm += 1
    return nm


@njit(cache=True)
def _node_cost(p, sc, head, nxt, j, skip, add, members):
    # sc: ws[4:12], the scratch arrays the cost and its memo use
    fin, q_fin, buf, ibuf, zkey, mkey, mval, count = sc
    nm = _members(head, nxt, j, skip, add, members)
    h1, h2 = costmod.memo_key(zkey, j, members, nm)
    found, s = costmod.memo_get(mkey, h1, h2)
    if found:
        return mval[s, 0], mval[s, 1]
    c, last = costmod.node_cost_in(p, j, members, nm, fin, q_fin, buf, ibuf)
    costmod.memo_put(mkey, mval, count, s, h1, h2, c, last)
    return c, last


TOP = 3
"""Largest last finishes kept (the horizon leaves out at most the two nodes a change touches)."""


@njit(cache=True)
def _top_scan(nlast, top_v, top_j):
    """The ``TOP`` largest of ``nlast`` with their nodes, largest first (-inf, -2: padding)."""
    top_v[:] = -np.inf
    top_j[:] = -2
    for j in range(nlast.shape[0]):
        _top_insert(top_v, top_j, nlast[j], j)


@njit(cache=True)
def _top_insert(top_v, top_j, v, j):
    p = top_v.shape[0]
    while p > 0 and v > top_v[p - 1]:
        p -= 1
    if p == top_v.shape[0]:
        return
    for q in range(top_v.shape[0] - 1, p, -1):
        top_v[q] = top_v[q - 1]
        top_j[q] = top_j[q - 1]
    top_v[p] = v
    top_j[p] = j


@njit(cache=True)
def _top_set(nlast, top_v, top_j, j, v):
    """``nlast[j] = v``, keeping the top list exact (a rescan only when a kept one drops)."""
    old = nlast[j]
    nlast[j] = v
    for q in range(top_v.shape[0]):
        if top_j[q] == j:
            if v < old:
                _top_scan(nlast, top_v, top_j)
                return
            for r in range(q, top_v.shape[0] - 1):
                top_v[r] = top_v[r + 1]
                top_j[r] = top_j[r + 1]
            top_v[-1] = -np.inf
            top_j[-1] = -2
            _top_insert(top_v, top_j, v, j)
            return
    _top_insert(top_v, top_j, v, j)


@njit(cache=True)
def _horizon(p, top_v, top_j, a, la, b, lb):
    """Horizon cost with node ``a``'s last finish ``la`` and ``b``'s ``lb`` replaced.

    The largest last finish of the other nodes is the first of the top list
    that is neither ``a`` nor ``b`` (the same maximum as a scan of every node).
    """
    last = p.h0
    for q in range(top_v.shape[0]):
        if top_j[q] != a and top_j[q] != b:
            last = max(last, top_v[q])
            break
    return costmod.horizon_cost(p, max(last, max(la, lb)))


@njit(cache=True)
def _move(head, nxt, sol, t, a, j):
    """Send task ``t`` from node ``a`` to node ``j`` (``sol`` and the node lists)."""
    sol[t] = j
    unlink(head, nxt, a, t)
    link(head, nxt, j, t)


@njit(cache=True)
def _set_pair(nlast, top_v, top_j, ncost, a, ca, la, j, cj, lj):
    """Nodes ``a`` and ``j`` changed: their new costs and last finishes (top list kept exact)."""
    ncost[a], ncost[j] = ca, cj
    _top_set(nlast, top_v, top_j, a, la)
    _top_set(nlast, top_v, top_j, j, lj)


@njit(cache=True)
def _wake_on(head, nxt, x, active):
    """Mark for local search the tasks on node ``x`` (it gained a task: they may leave)."""
    t = head[x]
    while t >= 0:
        active[t] = True
        t = nxt[t]


@njit(cache=True)
def _wake_near(head, nxt, x, by_off, by_node, active):
    """Mark the tasks on node ``x`` and those with ``x`` as a candidate (it lost a task)."""
    _wake_on(head, nxt, x, active)
    for k in range(by_off[x], by_off[x + 1]):
        active[by_node[k]] = True


@njit(cache=True)
def wake_differences(sol, ref, by_off, by_node, active):
    """Mark the tasks near where ``sol`` differs from ``ref`` (a local optimum)."""
    active[:] = False
    head, nxt = node_lists(sol, by_off.shape[0] - 1)
    for t in range(sol.shape[0]):
        if sol[t] != ref[t]:
            _wake_on(head, nxt, sol[t], active)
            _wake_near(head, nxt, ref[t], by_off, by_node, active)


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

    The tasks of each node are kept in a list (:func:`node_lists`) and the
    largest last finishes in a top list, so a trial costs the size of the two
    nodes it touches, not the batch or the cluster.

    Returns:
        ``(cost, evaluations)``: the new cost and the number of changes tried.
    """
    n = p.cores.shape[0]
    b = sol.shape[0]
    # a typed -1, not a literal: literal arguments make numba compile a variant per value
    none = np.int64(-1)
    use_lb = lb.shape[0] > 0
    head, nxt = node_lists(sol, n)
    # the eight scratch arrays a node's cost and its memo use: a call that takes the whole
    # tuple counts a reference to each of its twelve arrays, on every call
    sc = ws[4:12]
    ncost = np.zeros(n)
    nlast = np.empty(n)
    for j in range(n):
        nlast[j] = costmod._last0(p, j)
    for j in range(n):
        if head[j] >= 0:
            ncost[j], nlast[j] = _node_cost(p, sc, head, nxt, j, none, none, members)
    top_v = np.empty(TOP)
    top_j = np.empty(TOP, dtype=np.int64)
    _top_scan(nlast, top_v, top_j)
    body = ncost.sum()
    cur = body + _horizon(p, top_v, top_j, none, 0.0, none, 0.0)
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
            ca, la = _node_cost(p, sc, head, nxt, a, t, none, members)
            gain = cur - (body - ncost[a] + ca + _horizon(p, top_v, top_j, a, la, none, 0.0))
            for c in range(ncand[t]):
                j = cand[t, c]
                if j == a or (use_lb and lb[t, c] >= gain):
                    continue
                evals += 1
                cj, lj = _node_cost(p, sc, head, nxt, j, none, t, members)
                new_body = body - ncost[a] - ncost[j] + ca + cj
                new = new_body + _horizon(p, top_v, top_j, a, la, j, lj)
                if new < cur - tol:
                    _move(head, nxt, sol, t, a, j)
                    _set_pair(nlast, top_v, top_j, ncost, a, ca, la, j, cj, lj)
                    body, cur = new_body, new
                    _wake_near(head, nxt, a, by_off, by_node, active)
                    _wake_on(head, nxt, j, active)
                    active[t] = False
                    looked[t] = True
                    a = j
                    ca, la = _node_cost(p, sc, head, nxt, a, t, none, members)
                    gain = cur - (
                        body - ncost[a] + ca + _horizon(p, top_v, top_j, a, la, none, 0.0)
                    )
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
                ca, la = _node_cost(p, sc, head, nxt, a, t1, t2, members)
                cj, lj = _node_cost(p, sc, head, nxt, j, t2, t1, members)
                new_body = body - ncost[a] - ncost[j] + ca + cj
                new = new_body + _horizon(p, top_v, top_j, a, la, j, lj)
                if new < cur - tol:
                    _move(head, nxt, sol, t1, a, j)
                    _move(head, nxt, sol, t2, j, a)
                    _set_pair(nlast, top_v, top_j, ncost, a, ca, la, j, cj, lj)
                    body, cur = new_body, new
                    _wake_near(head, nxt, a, by_off, by_node, active)
                    _wake_near(head, nxt, j, by_off, by_node, active)
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
def alone_cost_bound(p, ws, cand, ncand):
    """Per candidate, the task's cost on that node alone with the node's queue: a
    tighter filter for the local search than :func:`own_cost_bound`, and a heuristic.

    The task's response, wait and energy there, plus the delay it causes the
    node's queued tasks (as :func:`~hybridsched.policies.cost_kernels.node_cost`
    prices them). Deadline penalties are left out (the task's own counts only
    where :func:`own_cost_bound` has it): a move is skipped when this is no less
    than what leaving its node saves. Never below :func:`own_cost_bound`.

    Not a true bound. A batch task already on the node can make room for the
    task: it takes a core that a long queued task of lower priority would
    otherwise take, and when it ends, the task, now ready, goes first. The
    task's marginal cost there is then below its cost alone
    (``tests/test_colony_scale.py`` has a hand-computed case). Misses are left
    out because that is when such a move matters most: it can rescue a deadline.
    """
    lb = own_cost_bound(p, cand, ncand)
    members = np.empty(1, dtype=np.int64)
    fin, q_fin, buf, ibuf = ws[4], ws[5], ws[6], ws[7]
    wr = p.w_response
    for t in range(cand.shape[0]):
        members[0] = t
        for c in range(ncand[t]):
            j = cand[t, c]
            _, _, r = costmod._schedule(p, j, members, 1, fin, q_fin, buf, ibuf)
            f = fin[t]
            v = wr * (f - p.arrival[t]) + p.w_energy * p.dyn_j[t, j]
            v += p.ww[t] * (f - p.dur[t, j] - p.ready[t, j])
            if max(p.ready[t, j], p.cf[j, 0]) + p.dur[t, j] > p.dl[t]:
                v += p.mw[t]  # it misses even at its earliest
            if p.w_displaced > 0:
                extra = 0.0
                for i in range(r):
                    q = ibuf[3, i]
                    extra += wr * (q_fin[q] - p.q_f0[q])
                v += p.w_displaced * extra
            v *= p.inv_b
            if v > lb[t, c]:
                lb[t, c] = v
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
