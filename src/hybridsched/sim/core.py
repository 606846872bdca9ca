"""Compiled kernels of the event simulator (numba, structure of arrays).

Everything here works on one :class:`~hybridsched.sim.state.CoreState`, a named
tuple of NumPy arrays declared once in :mod:`hybridsched.sim.state`, that
:class:`hybridsched.sim.engine.Engine` owns. Tasks are indexed in decision
order (arrival, then task_id); nodes in the cluster file's order.

Data structures, all preallocated:

* a global binary heap of events ``(time, code)``, stored side by side, with
  ``code = 2 * task + kind`` (kind 0: the task's data is ready at its node,
  kind 1: the task finishes);
* per node, a skew heap of ready tasks waiting for a core, threaded through the
  task-indexed arrays ``wleft``/``wright`` and ordered by the queue discipline's
  key ``(key0, key1, ready, task_id)``;
* per node, a doubly linked list of the tasks assigned but not started
  (``qnext``/``qprev``), for the exact prediction of a tentative assignment;
* per node, a stack of free core slots, and per slot the running task.

Semantics (docs/MODEL.md, "Semantics"): at any instant ``t`` every event stamped ``t``
is applied first; then, on each node touched, while a core is free and a ready
task waits, the discipline picks the next task. :func:`advance` processes the
instants strictly before a decision time, so the decision's own events (a task
ready at the decision instant) join that instant's dispatch.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.sim.state import (  # noqa: F401 - see below
    STATE_TYPE,
    CoreState,
    _StateProxy,
    _StateType,
    compile_state,
)

# Re-exported: the state is declared in state.py. The type names stay reachable
# here because numba's cache of an unchanged kernel module may name them here.
__all__ = ["STATE_TYPE", "CoreState", "compile_state"]

# Indices into CoreState.counters.
C_EVENTS = 0  # events in the global heap
C_DISPATCHED = 1  # tasks started so far
C_COMMITTED = 2  # tasks assigned so far

FIFO = 0
PRIORITY = 1

RECENT_TAU_S = 10.0

# which duration gather_queue gives each queued task
DUR_WORK = 0  # the true one, work / speed
DUR_EST = 1  # the schedulers' estimate, work_est / speed
DUR_BOOKED = 2  # the one booked at assignment (st.dur)
"""Time constant of the decayed count of recent assignments per node, s."""

# ----------------------------------------------------------------------------
# the global event heap (binary heap on time)
# ----------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _ev_put(ev, k, t, code):
    # slot k holds an event as two floats, its time and then its code, side by side
    # (one cache line per heap level); a code is an integer below 2^53, exact in float64
    ev[2 * k] = t
    ev[2 * k + 1] = code


@njit(cache=True, inline="always")
def _ev_move(ev, dst, src):
    ev[2 * dst] = ev[2 * src]
    ev[2 * dst + 1] = ev[2 * src + 1]


@njit(cache=True)
def _ev_push(st, t, code):
    k = st.counters[C_EVENTS]
    st.counters[C_EVENTS] = k + 1
    ev = st.ev
    while k > 0:
        parent = (k - 1) >> 1
        if ev[2 * parent] <= t:
            break
        _ev_move(ev, k, parent)
        k = parent
    _ev_put(ev, k, t, code)


@njit(cache=True)
def _ev_pop(st):
    ev = st.ev
    code = int(ev[1])
    m = st.counters[C_EVENTS] - 1
    st.counters[C_EVENTS] = m
    if m > 0:
        t = ev[2 * m]
        c = ev[2 * m + 1]
        k = 0
        while True:
            child = 2 * k + 1
            if child >= m:
                break
            if child + 1 < m and ev[2 * child + 2] < ev[2 * child]:
                child += 1
            if ev[2 * child] >= t:
                break
            _ev_move(ev, k, child)
            k = child
        _ev_put(ev, k, t, c)
    return code


# ----------------------------------------------------------------------------
# per-node waiting queue (skew heap threaded through task arrays)
# ----------------------------------------------------------------------------


@njit(cache=True)
def _before(st, a, b):
    """True when task ``a`` comes before task ``b`` in the queue discipline."""
    if st.key0[a] != st.key0[b]:
        return st.key0[a] < st.key0[b]
    if st.key1[a] != st.key1[b]:
        return st.key1[a] < st.key1[b]
    if st.ready[a] != st.ready[b]:
        return st.ready[a] < st.ready[b]
    return st.task_id[a] < st.task_id[b]


@njit(cache=True)
def _merge(st, a, b):
    if a < 0:
        return b
    if b < 0:
        return a
    if _before(st, b, a):
        a, b = b, a
    root = a
    left = st.wleft
    right = st.wright
    while True:
        r = right[a]
        if r < 0:
            right[a] = left[a]
            left[a] = b
            break
        if _before(st, b, r):
            r, b = b, r
        right[a] = left[a]
        left[a] = r
        a = r
    return root


# ----------------------------------------------------------------------------
# the event loop
# ----------------------------------------------------------------------------


@njit(cache=True, inline="always")
def list_push(nxt, prv, head, i, j):
    """Push ``i`` at the front of list ``j`` (doubly linked through ``nxt``/``prv``)."""
    h = head[j]
    prv[i] = -1
    nxt[i] = h
    if h >= 0:
        prv[h] = i
    head[j] = i


@njit(cache=True, inline="always")
def list_unlink(nxt, prv, head, i, j):
    """Take ``i`` out of list ``j`` (doubly linked through ``nxt``/``prv``)."""
    p = prv[i]
    q = nxt[i]
    if p >= 0:
        nxt[p] = q
    else:
        head[j] = q
    if q >= 0:
        prv[q] = p


@njit(cache=True)
def _unlink(st, i, j):
    list_unlink(st.qnext, st.qprev, st.qhead, i, j)


@njit(cache=True, inline="always")
def start_next(st, j, t):
    """Start node ``j``'s first waiting task on a free core at ``t``.

    Shared by every event loop (the base one here, the one with options in
    :mod:`hybridsched.sim.fault_kernels`); the caller schedules the finish.

    Returns:
        the task and its finish time.
    """
    i = st.wroot[j]
    st.wroot[j] = _merge(st, st.wleft[i], st.wright[i])
    k = st.n_free[j] - 1
    st.n_free[j] = k
    s = st.free_slots[j, k]
    st.slot_task[j, s] = i
    st.slot_of[i] = s
    st.start[i] = t
    f = t + st.dur[i]
    st.finish[i] = f
    st.busy_s[j] += st.dur[i]
    st.n_queued[j] -= 1
    st.queued_work[j] -= st.work_est[i] / st.speed[j]
    _unlink(st, i, j)
    return i, f


@njit(cache=True)
def _dispatch(st, j, t):
    while st.n_free[j] > 0 and st.wroot[j] >= 0:
        i, f = start_next(st, j, t)
        st.counters[C_DISPATCHED] += 1
        _ev_push(st, f, 2 * i + 1)


@njit(cache=True, inline="always")
def release_core(st, i, j):
    """Task ``i`` leaves its core of node ``j``."""
    s = st.slot_of[i]
    st.slot_task[j, s] = -1
    st.free_slots[j, st.n_free[j]] = s
    st.n_free[j] += 1


@njit(cache=True, inline="always")
def join_waiting(st, i, j):
    """Task ``i`` (ready) joins node ``j``'s waiting queue."""
    st.wleft[i] = -1
    st.wright[i] = -1
    st.wroot[j] = _merge(st, st.wroot[j], i)


@njit(cache=True, inline="always")
def mark_dirty(st, j, n_dirty):
    """Note node ``j`` as touched in this instant; returns the new count."""
    if not st.is_dirty[j]:
        st.is_dirty[j] = True
        st.dirty[n_dirty] = j
        n_dirty += 1
    return n_dirty


@njit(cache=True)
def advance(st, until):
    """Process every instant strictly before ``until`` (events, then dispatch)."""
    n_dirty = 0
    while st.counters[C_EVENTS] > 0 and st.ev[0] < until:
        t = st.ev[0]
        while st.counters[C_EVENTS] > 0 and st.ev[0] == t:
            code = _ev_pop(st)
            i = code >> 1
            j = st.node[i]
            if code & 1:
                release_core(st, i, j)
            else:
                join_waiting(st, i, j)
            n_dirty = mark_dirty(st, j, n_dirty)
        for k in range(n_dirty):
            j = st.dirty[k]
            st.is_dirty[j] = False
            _dispatch(st, j, t)
        n_dirty = 0


@njit(cache=True)
def project(proj, ready, dur):
    """List-schedule one task onto a node's projected core-free times, in place.

    The task takes the earliest-free core from ``max(ready, free)`` for ``dur``.

    Returns:
        the node's new earliest projected core-free time.
    """
    c = 0
    best = proj[0]
    for k in range(1, proj.shape[0]):
        if proj[k] < best:
            best = proj[k]
            c = k
    proj[c] = max(ready, best) + dur
    best = proj[0]
    for k in range(1, proj.shape[0]):
        if proj[k] < best:
            best = proj[k]
    return best


@njit(cache=True, inline="always")
def enqueue(st, i, j, d, r, dur_est):
    """Put task ``i`` on node ``j``'s unstarted list (decided at ``d``, ready at ``r``)."""
    st.node[i] = j
    st.decision[i] = d
    st.ready[i] = r
    list_push(st.qnext, st.qprev, st.qhead, i, j)  # the list runs from the last assigned
    st.n_queued[j] += 1
    st.queued_work[j] += dur_est


@njit(cache=True, inline="always")
def book(st, i, j, d, r):
    """The bookkeeping of an assignment: list, projection, recent count, true duration.

    Shared by every commit (here and in :mod:`hybridsched.sim.fault_kernels`);
    ``r`` is the nominal ready time, what a scheduler would estimate.
    """
    st.dur[i] = st.work[i] / st.speed[j]
    dur_est = st.work_est[i] / st.speed[j]
    enqueue(st, i, j, d, r, dur_est)
    st.proj_min[j] = project(st.proj[j], r, dur_est)
    # decayed recent-assignment count
    st.recent[j] = st.recent[j] * np.exp(-(d - st.recent_t[j]) / RECENT_TAU_S) + 1.0
    st.recent_t[j] = d
    st.counters[C_COMMITTED] += 1


@njit(cache=True)
def commit(st, i, j, d):
    """Assign task ``i`` to node ``j`` at decision time ``d``."""
    r = d + st.latency[j, st.region[i]] + st.data[i] / st.bandwidth[j]
    book(st, i, j, d, r)
    _ev_push(st, r, 2 * i)


@njit(cache=True)
def place_queued(st, first, nodes, d, ready, project_them):
    """Put tasks ``first, first + 1, ...`` on ``nodes`` as assigned, not started (snapshots).

    Their durations are the estimates; with ``project_them`` they are also
    list-scheduled onto the projection, in order.
    """
    for k in range(nodes.shape[0]):
        i = first + k
        j = nodes[k]
        dur = st.work_est[i] / st.speed[j]
        st.dur[i] = dur
        enqueue(st, i, j, d, ready[k], dur)
        if project_them:
            project(st.proj[j], ready[k], dur)


@njit(cache=True)
def commit_many(st, idx, nodes, d):
    """Assign tasks ``idx[k]`` to ``nodes[k]`` at decision time ``d``, in order."""
    for k in range(idx.shape[0]):
        commit(st, idx[k], nodes[k], d)


# ----------------------------------------------------------------------------
# exact prediction for a tentative assignment
# ----------------------------------------------------------------------------


@njit(cache=True)
def simulate_node(t0, core_free, ready, key0, key1, tid, dur):
    """Start times of tasks on one node from ``t0`` on, with no other arrivals.

    Args:
        t0: the current time; no task starts before it.
        core_free: when each core becomes free (running tasks' finish times, or <= t0).
        ready, key0, key1, tid, dur: per task ready time, discipline keys, id, duration.

    Returns:
        start times, one per task.
    """
    m = ready.shape[0]
    start = np.empty(m)
    order = np.argsort(ready, kind="mergesort")
    wait = np.empty(m, dtype=np.int64)
    run_node(t0, np.sort(core_free), ready, key0, key1, tid, dur, order, start, wait)
    return start


@njit(cache=True)
def run_node(t0, cf, ready, key0, key1, tid, dur, order, start, wait):
    """The per-node event loop of :func:`simulate_node`, on caller-provided buffers.

    This is the one implementation of the queue semantics for tentative
    schedules; callers that evaluate many small schedules (the colony's cost
    model) pass reused buffers instead of allocating.

    Args:
        t0: the current time; no task starts before it.
        cf: core-free times as a binary min-heap (a sorted array is one); updated
            in place.
        ready, key0, key1, tid, dur: per task ready time, discipline keys, id, duration.
        order: task indices by ready time (stable), at least ``len(ready)`` long.
        start: output, the start time per task.
        wait: scratch, at least ``len(ready)`` long.
    """
    run_from(t0, -np.inf, cf, ready, key0, key1, tid, dur, order, start, wait,
             (order[:0], start[:0]))  # fmt: skip


@njit(cache=True)
def run_from(t0, tcur, cf, ready, key0, key1, tid, dur, order, start, wait, rec):
    """The per-node event loop of :func:`run_node`, resumed at time ``tcur``.

    It first completes the instant ``tcur``: tasks ready by then wait, and free
    cores take them, as the loop does after a dispatch at ``tcur``; with
    ``tcur = -inf`` it is the whole loop (:func:`run_node`). The colony's cost
    resumes a node's schedule mid-queue with it
    (:mod:`hybridsched.policies.queue_plan`).

    Args:
        t0: the decision time; no task starts before it.
        tcur: the instant to resume at (the time of the last dispatch made).
        cf: core-free times as a binary min-heap; updated in place.
        ready, key0, key1, tid, dur: per task, as in ``run_node``.
        order: task indices by ready time; start: output; wait: scratch.
        rec: ``(task, time)``: each dispatch's task and time are written there
            (in dispatch order); zero-length arrays record nothing.
    """
    m = ready.shape[0]
    ncore = cf.shape[0]
    record = rec[0].shape[0] > 0
    nw = 0
    p = 0
    done = 0
    t = tcur
    first = True
    while done < m:
        if first:
            first = False
        else:
            nxt = np.inf
            if p < m:
                nxt = max(ready[order[p]], t0)
            if nw > 0 and cf[0] < nxt:
                nxt = max(cf[0], t0)
            t = nxt
        while p < m and ready[order[p]] <= t:
            x = order[p]
            k = nw
            nw += 1
            while k > 0:
                par = (k - 1) >> 1
                y = wait[par]
                if _key_lt(key0, key1, ready, tid, y, x):
                    break
                wait[k] = y
                k = par
            wait[k] = x
            p += 1
        while nw > 0 and cf[0] <= t:
            x = wait[0]
            nw -= 1
            if nw > 0:
                last = wait[nw]
                k = 0
                while True:
                    ch = 2 * k + 1
                    if ch >= nw:
                        break
                    if ch + 1 < nw and _key_lt(key0, key1, ready, tid, wait[ch + 1], wait[ch]):
                        ch += 1
                    if _key_lt(key0, key1, ready, tid, last, wait[ch]):
                        break
                    wait[k] = wait[ch]
                    k = ch
                wait[k] = last
            if record:
                rec[0][done] = x
                rec[1][done] = t
            start[x] = t
            done += 1
            v = t + dur[x]
            k = 0
            while True:
                ch = 2 * k + 1
                if ch >= ncore:
                    break
                if ch + 1 < ncore and cf[ch + 1] < cf[ch]:
                    ch += 1
                if v <= cf[ch]:
                    break
                cf[k] = cf[ch]
                k = ch
            cf[k] = v


@njit(cache=True)
def _key_lt(key0, key1, ready, tid, a, b):
    if key0[a] != key0[b]:
        return key0[a] < key0[b]
    if key1[a] != key1[b]:
        return key1[a] < key1[b]
    if ready[a] != ready[b]:
        return ready[a] < ready[b]
    return tid[a] < tid[b]


@njit(cache=True)
def queue_arrays(m):
    """Empty arrays for ``m`` queued tasks, as :func:`gather_queue` fills them:
    index, ready time, the two sort keys, id, duration."""
    return (np.empty(m, dtype=np.int64), np.empty(m), np.empty(m), np.empty(m),
            np.empty(m, dtype=np.int64), np.empty(m))  # fmt: skip


@njit(cache=True)
def gather_queue(st, j, pos, idx, ready, key0, key1, tid, dur, how):
    """Copy node ``j``'s assigned, unstarted tasks, in list order, into the arrays.

    Writes from index ``pos`` on: each task's index, ready time, sort keys, id and
    duration (``how``: ``DUR_WORK``, ``DUR_EST`` or ``DUR_BOOKED``), the inputs of
    :func:`simulate_node`.

    Returns:
        the index after the last one written.
    """
    i = st.qhead[j]
    while i >= 0:
        idx[pos] = i
        ready[pos] = st.ready[i]
        key0[pos] = st.key0[i]
        key1[pos] = st.key1[i]
        tid[pos] = st.task_id[i]
        if how == DUR_BOOKED:
            dur[pos] = st.dur[i]
        else:
            w = st.work_est[i] if how == DUR_EST else st.work[i]
            dur[pos] = w / st.speed[j]
        pos += 1
        i = st.qnext[i]
    return pos


@njit(cache=True)
def predict(st, d, idx, nodes, use_estimate):
    """Finish times of tasks ``idx`` if assigned to ``nodes`` at time ``d``.

    The node state is the engine's at ``d`` (after :func:`advance` to ``d``);
    tasks already assigned keep their place; no further tasks arrive. Only the
    nodes named in ``nodes`` are simulated. With ``use_estimate`` the durations
    are the schedulers' estimates (``work_est``), else the true ones.

    Returns:
        finish times, one per entry of ``idx``.
    """
    b = idx.shape[0]
    out = np.empty(b)
    done = np.zeros(b, dtype=np.bool_)
    for first in range(b):
        if done[first]:
            continue
        j = nodes[first]
        # tasks already on j, not started
        m0 = st.n_queued[j]
        mb = 0
        for k in range(first, b):
            if nodes[k] == j:
                mb += 1
        m = m0 + mb
        queued, ready, k0, k1, tid, dur = queue_arrays(m)
        how = DUR_EST if use_estimate else DUR_WORK
        pos = gather_queue(st, j, 0, queued, ready, k0, k1, tid, dur, how)
        back = np.empty(mb, dtype=np.int64)
        nb = 0
        for k in range(first, b):
            if nodes[k] == j:
                i = idx[k]
                ready[pos] = d + st.latency[j, st.region[i]] + st.data[i] / st.bandwidth[j]
                k0[pos] = st.key0[i]
                k1[pos] = st.key1[i]
                tid[pos] = st.task_id[i]
                w = st.work_est[i] if use_estimate else st.work[i]
                dur[pos] = w / st.speed[j]
                back[nb] = k
                nb += 1
                pos += 1
                done[k] = True
        ncore = st.cores[j]
        cf = np.empty(ncore)
        for s in range(ncore):
            ti = st.slot_task[j, s]
            if ti >= 0:
                if use_estimate:
                    cf[s] = st.start[ti] + st.work_est[ti] / st.speed[j]
                else:
                    cf[s] = st.finish[ti]
            else:
                cf[s] = d
        start = simulate_node(d, cf, ready, k0, k1, tid, dur)
        for q in range(mb):
            out[back[q]] = start[m0 + q] + dur[m0 + q]
    return out
