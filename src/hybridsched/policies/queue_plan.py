"""Each node's queue scheduled once per batch, so that inserting tasks resumes mid-queue.

The exact batch cost (:mod:`hybridsched.policies.cost_kernels`) schedules a
node's queued tasks together with the batch tasks sent there. The queued
tasks are the same for every candidate assignment of a batch, so their own
schedule (the *plan*: the order in which the node's event loop dispatches
them, the time of each dispatch and the core-free times before each) is
computed once per batch (:func:`queue_plan`). Adding batch tasks leaves every
dispatch of the plan unchanged up to the first one that a batch task can
take or precede (:func:`resume_point`); the schedule is then the same event
loop (:func:`~hybridsched.sim.core.run_from`) started from the plan's state at that dispatch, over
the queued tasks not dispatched yet and the batch tasks. So an evaluation
costs the queued tasks the batch tasks displace, not the whole queue: with a
long backlog of equal or higher priority, a new task goes to its end.

Exactness. Dispatch ``k`` of the plan happens at time ``t_k`` with the
earliest core free at ``e_k <= t_k``. A batch task ``m`` (ready ``r_m``, queue
key ``key_m``) changes nothing before dispatch ``k`` unless ``r_m <= t_k`` and
either ``key_m`` sorts before the key of the task dispatched at ``k`` (it
would be taken instead) or ``e_k < t_k`` (a core idles before ``t_k`` and
``m`` is waiting or could be: it may start in the gap). Before the first such
``k``, ``m``'s readiness only adds events at which no core takes it, which
move no dispatch. From the plan's state after ``k`` dispatches (the core-free
heap, the time of the last dispatch and the tasks left) the loop continues
exactly as the full one would, so the start times are the full loop's to the
bit (``tests/test_cost.py`` checks them against
:func:`hybridsched.sim.core.simulate_node`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.sim.core import run_from

RESUME_SLACK = 16
"""A node's queue is resumed only when longer than twice its batch tasks plus this
(shorter ones are simulated whole: finding the resume point would cost more)."""


@njit(cache=True, inline="always")
def resumable(nq, nm):
    """Whether a queue of ``nq`` tasks with ``nm`` batch tasks is resumed from its plan."""
    return nq > 2 * nm + RESUME_SLACK


@njit(cache=True)
def queue_plan(d, cf, cores, run_last, q_off, q_ready, q_key0, q_key1, q_tid, q_dur):
    """Each node's queue scheduled alone, dispatch by dispatch (see the module docstring).

    Args:
        d: the decision time; cf: core-free times per node, ascending ``(N, C)``;
        cores: cores per node; run_last: last finish of the running tasks;
        q_off, q_ready, q_key0, q_key1, q_tid, q_dur: the queued tasks by node.

    Returns:
        ``(qp_q, qp_t, qp_last, qs_off, snap, qp_max)``: per node, from ``q_off[j]`` on, the
        queued task (its index into the ``q_*`` arrays) of each dispatch and its
        time; from ``q_off[j] + j`` on, ``nq + 1`` values, the node's last finish
        (running tasks and the first ``k`` dispatched) for ``k = 0..nq``; and
        from ``qs_off[j]`` on, ``nq + 1`` sets of ``cores[j]`` core-free times,
        ascending, the state before each dispatch and after the last; ``qp_max[l, q_off[j] + k]``,
        the dispatch in ``k .. k + 2**l - 1`` that a batch task can least follow
        (:func:`_max_table`).
    """
    n = cores.shape[0]
    nq_all = q_off[n]
    qs_off = np.zeros(n + 1, dtype=np.int64)
    for j in range(n):
        qs_off[j + 1] = qs_off[j] + (q_off[j + 1] - q_off[j] + 1) * cores[j]
    qp_q = np.empty(nq_all, dtype=np.int64)
    qp_t = np.empty(nq_all)
    qp_last = np.empty(nq_all + n)
    snap = np.empty(qs_off[n])
    qmax = 0
    for j in range(n):
        qmax = max(qmax, q_off[j + 1] - q_off[j])
    start = np.empty(qmax)
    wait = np.empty(qmax, dtype=np.int64)
    for j in range(n):
        lo = q_off[j]
        hi = q_off[j + 1]
        nq = hi - lo
        nc = cores[j]
        heap = cf[j, :nc].copy()
        order = np.argsort(q_ready[lo:hi], kind="mergesort")
        task = qp_q[lo:hi]
        rec = (task, qp_t[lo:hi])
        run_from(d, -np.inf, heap, q_ready[lo:hi], q_key0[lo:hi], q_key1[lo:hi],
                 q_tid[lo:hi], q_dur[lo:hi], order, start, wait, rec)  # fmt: skip
        # the core-free times before each dispatch, ascending (a sorted array is a heap,
        # and a resume copies only the cores it can use): a dispatch takes the
        # earliest core and frees it again when its task ends
        s0 = qs_off[j]
        snap[s0 : s0 + nc] = cf[j, :nc]
        for k in range(nq if resumable(nq, 1) else 0):  # only a resumed plan reads them
            prev = snap[s0 + k * nc : s0 + (k + 1) * nc]
            cur = snap[s0 + (k + 1) * nc : s0 + (k + 2) * nc]
            v = start[task[k]] + q_dur[lo + task[k]]
            h = nc - 1
            while h > 0 and prev[h] > v:
                cur[h] = prev[h]
                h -= 1
            cur[:h] = prev[1 : h + 1]
            cur[h] = v
        last = run_last[j]
        qp_last[lo + j] = last
        for k in range(nq):
            x = task[k]
            last = max(last, start[x] + q_dur[lo + x])
            qp_last[lo + j + k + 1] = last
            task[k] = lo + x
    qp_max = _max_table(
        qmax, q_off, cores, qp_q, qp_t, qs_off, snap, q_key0, q_key1, q_ready, q_tid
    )
    return qp_q, qp_t, qp_last, qs_off, snap, qp_max


@njit(cache=True)
def _blocks(p_t, snap, base, nc, key0, key1, ready, tid, qa, ka, qb, kb):
    # does dispatch ka (task qa) stop a batch task whenever dispatch kb (task qb) does?
    # A dispatch after an idle core stops every batch task ready by then, any other
    # only those with a later key: the gap first, then the later key.
    ga = snap[base + ka * nc] < p_t[ka]
    gb = snap[base + kb * nc] < p_t[kb]
    if ga or gb:
        return ga
    return _key_before(
        key0[qb], key1[qb], ready[qb], tid[qb], key0[qa], key1[qa], ready[qa], tid[qa]
    )


@njit(cache=True)
def _max_table(qmax, q_off, cores, qp_q, qp_t, qs_off, snap, key0, key1, ready, tid):
    """Sparse table over each node's plan: per range of ``2**l`` dispatches, the one that
    stops a batch task if any in the range does (an idle core before it, else the latest key)."""
    n = cores.shape[0]
    levels = 1
    while (1 << levels) <= qmax:
        levels += 1
    out = np.empty((levels, qp_q.shape[0]), dtype=np.int64)
    for j in range(n):
        lo = q_off[j]
        nq = q_off[j + 1] - lo
        if not resumable(nq, 1):
            continue  # never resumed: no table
        for k in range(nq):
            out[0, lo + k] = k
        for lv in range(1, levels):
            h = 1 << (lv - 1)
            for k in range(nq - (1 << lv) + 1):
                a = out[lv - 1, lo + k]
                b = out[lv - 1, lo + k + h]
                qa = qp_q[lo + a]
                qb = qp_q[lo + b]
                pick = b
                if _blocks(
                    qp_t[lo:], snap, qs_off[j], cores[j], key0, key1, ready, tid, qa, a, qb, b
                ):
                    pick = a
                out[lv, lo + k] = pick
    return out


@njit(cache=True)
def _key_before(a0, a1, ar, at, b0, b1, br, bt):
    # core._key_lt on two tasks given by value
    if a0 != b0:
        return a0 < b0
    if a1 != b1:
        return a1 < b1
    if ar != br:
        return ar < br
    return at < bt


@njit(cache=True)
def resume_point(p, j, members, nm):
    """The first dispatch of node ``j``'s plan that the batch tasks ``members[:nm]`` may change.

    Returns:
        ``k`` in ``0..nq``: the plan's first ``k`` dispatches stand (see the module docstring).
    """
    lo = p.q_off[j]
    nq = p.q_off[j + 1] - lo
    if nq == 0:
        return 0
    nc = p.cores[j]
    base = p.qs_off[j]
    # the problem's arrays are read where they are used: a local name for an array costs
    # numba a counted reference on every call, reads inside the loops cost none
    best = nq
    for i in range(nm):
        t = members[i]
        r = p.ready[t, j]
        k0 = p.key0[t]
        k1 = p.key1[t]
        tid = p.tid[t]
        # the first dispatch at or after r (dispatch times never decrease)
        a = 0
        b = best
        while a < b:
            mid = (a + b) >> 1
            if p.qp_t[lo + mid] < r:
                a = mid + 1
            else:
                b = mid
        # the longest run of dispatches from there that the task cannot disturb
        k = a
        for lv in range(p.qp_max.shape[0] - 1, -1, -1):
            if k + (1 << lv) > best:
                continue
            x = p.qp_max[lv, lo + k]
            if p.snap[base + x * nc] < p.qp_t[lo + x]:
                continue
            q = p.qp_q[lo + x]
            if _key_before(k0, k1, r, tid, p.q_key0[q], p.q_key1[q], p.q_ready[q], p.q_tid[q]):
                continue
            k += 1 << lv
        best = k
        if best == 0:
            break
    return best
