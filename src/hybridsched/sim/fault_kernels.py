"""Compiled kernels of the simulator with options: failures, shared links, jitter, conditions.

They work on the engine's :class:`~hybridsched.sim.state.CoreState` plus a
:class:`FaultArrays` of their own, declared once in :data:`FAULT_FIELDS`: an
indexed event heap (one live event per task and per link, so displaced tasks
leave nothing stale behind), the per-node link state, and the true node speed,
latency and bandwidth in force now. The CoreState's ``speed``, ``latency`` and
``bandwidth`` are what schedulers believe (the nominal values): the bookkeeping
that a view shows (projection, queued work) uses them; what really happens
(transfer and execution times) uses the true ones here. The model is
``docs/OPTIONS.md``'s; :mod:`hybridsched.sim.options_engine` drives them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from hybridsched.sim import core, observations
from hybridsched.sim.layout import declare, parse_fields

P_IDLE = 0  # not on a node: undecided, waiting for a re-decision, or parked
P_LATENCY = 1  # in its latency; its event: the data enters the shared link
P_LINK = 2  # data in the shared link (the link's event finishes it)
P_TRANSIT = 3  # in transfer; its event: ready
P_WAITING = 4  # ready, in the node's waiting queue
P_RUNNING = 5  # on a core; its event: finish
P_DONE = 6
P_REJECTED = 7

# FaultArrays.counters
K_HEAP = 0  # events in the heap
K_ACTIVE = 1  # tasks on a node (assigned, not finished)
K_SHARED = 2  # 1: shared links

LINK_TOL = 1e-9
"""A transfer with less than this fraction of its data left when its link's
earliest one finishes is finished too (rounding of the shared-rate updates)."""
FAULT_FIELDS = parse_fields(
    """
ev_time   float64[::1]  time of each event id (task i: i, link j: n + j), n + N
hp_id     int64[::1]    binary heap of event ids, n + N
hp_pos    int64[::1]    heap position of each id, -1 when absent, n + N
phase     int64[::1]    phase of each task (P_*)
rem       float64[::1]  data left in the link per task, MB
lnext     int64[::1]    next in the link's member list, per task
lprev     int64[::1]    previous in the link's member list, per task
lhead     int64[::1]    head of each node's link member list
lcount    int64[::1]    transfers in each node's link
lrate     float64[::1]  current rate of each transfer of the link, MB/s
lt        float64[::1]  time of the last update of the link, s
wasted    float64[::1]  core-seconds of killed runs per node
speed     float64[::1]  true per-core speed per node now (nominal x conditions), GI/s
bandwidth float64[::1]  true ingress bandwidth per node now, MB/s
latency   float64[:,::1] true latency from each region now, s, (N, R)
speed0    float64[::1]  nominal per-core speed per node, GI/s
bw0       float64[::1]  nominal ingress bandwidth per node, MB/s
lat0      float64[:,::1] nominal latency from each region, s, (N, R)
ready0    float64[::1]  nominal ready time of each task's last transfer, s
q_est     float64[::1]  estimated execution time booked in queued work at assignment, s
obs       float64[:,::1] per node: exec ratio mean, weight, time; transfer the same, (N, 6)
obs_n     int64[:,::1]  per node: executions and transfers observed, (N, 2)
counters  int64[::1]    events in the heap, tasks on a node, shared links on, spare
"""
)
"""The one declaration of the failure and network state: ``(name, numba type, meaning)``."""

FaultArrays, FAULT_TYPE, _make_fault = declare(FAULT_FIELDS, "FaultArrays", "Fault", globals())


def compile_faults(arrays: Any) -> Any:
    """The compiled handle over the same arrays (no copy)."""
    return _make_fault(arrays)


# ----------------------------------------------------------------------------
# indexed event heap: (time, id), one entry per id at most
# ----------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _lt(fs, a, b):
    ta = fs.ev_time[a]
    tb = fs.ev_time[b]
    return ta < tb or (ta == tb and a < b)


@njit(cache=True)
def _sift_up(fs, k):
    h = fs.hp_id
    pos = fs.hp_pos
    x = h[k]
    while k > 0:
        p = (k - 1) >> 1
        y = h[p]
        if not _lt(fs, x, y):
            break
        h[k] = y
        pos[y] = k
        k = p
    h[k] = x
    pos[x] = k


@njit(cache=True)
def _sift_down(fs, k):
    h = fs.hp_id
    pos = fs.hp_pos
    m = fs.counters[K_HEAP]
    x = h[k]
    while True:
        c = 2 * k + 1
        if c >= m:
            break
        if c + 1 < m and _lt(fs, h[c + 1], h[c]):
            c += 1
        if not _lt(fs, h[c], x):
            break
        h[k] = h[c]
        pos[h[k]] = k
        k = c
    h[k] = x
    pos[x] = k


@njit(cache=True)
def _hp_set(fs, e, t):
    """Schedule event ``e`` at ``t`` (insert, or move it when already scheduled)."""
    k = fs.hp_pos[e]
    if k < 0:
        m = fs.counters[K_HEAP]
        fs.counters[K_HEAP] = m + 1
        fs.hp_id[m] = e
        fs.hp_pos[e] = m
        fs.ev_time[e] = t
        _sift_up(fs, m)
    else:
        old = fs.ev_time[e]
        fs.ev_time[e] = t
        if t < old:
            _sift_up(fs, k)
        else:
            _sift_down(fs, k)


@njit(cache=True)
def _hp_remove(fs, e):
    k = fs.hp_pos[e]
    if k < 0:
        return
    m = fs.counters[K_HEAP] - 1
    fs.counters[K_HEAP] = m
    fs.hp_pos[e] = -1
    if k == m:
        return
    last = fs.hp_id[m]
    fs.hp_id[k] = last
    fs.hp_pos[last] = k
    _sift_up(fs, k)
    _sift_down(fs, fs.hp_pos[last])


# ----------------------------------------------------------------------------
# shared ingress links (processor sharing, equal shares)
# ----------------------------------------------------------------------------


@njit(cache=True)
def _link_update(fs, j, t):
    """Bring the data left of every transfer in link ``j`` to time ``t``."""
    if fs.lcount[j] > 0 and t > fs.lt[j]:
        x = (t - fs.lt[j]) * fs.lrate[j]
        f = fs.lhead[j]
        while f >= 0:
            fs.rem[f] -= x
            f = fs.lnext[f]
    fs.lt[j] = t


@njit(cache=True)
def _link_reschedule(st, fs, j, t):
    n = fs.phase.shape[0]
    k = fs.lcount[j]
    if k == 0:
        _hp_remove(fs, n + j)
        return
    fs.lrate[j] = fs.bandwidth[j] / k
    m = np.inf
    f = fs.lhead[j]
    while f >= 0:
        if fs.rem[f] < m:
            m = fs.rem[f]
        f = fs.lnext[f]
    _hp_set(fs, n + j, t + m / fs.lrate[j])


@njit(cache=True)
def _link_remove(fs, j, f):
    core.list_unlink(fs.lnext, fs.lprev, fs.lhead, f, j)
    fs.lcount[j] -= 1


@njit(cache=True)
def _link_enter(st, fs, i, j, t):
    _link_update(fs, j, t)
    core.list_push(fs.lnext, fs.lprev, fs.lhead, i, j)
    fs.lcount[j] += 1
    fs.rem[i] = st.data[i]
    fs.phase[i] = P_LINK
    _link_reschedule(st, fs, j, t)


decayed_mean = njit(cache=True)(observations.decayed_mean)
"""The decayed-mean update of observations, compiled (the one rule, sim.view)."""


@njit(cache=True)
def observe(fs, j, k, x, t):
    """Record ratio ``x`` observed on node ``j`` at ``t`` (``k``: 0 execution, 1 transfer)."""
    o = 3 * k
    m, w = decayed_mean(fs.obs[j, o], fs.obs[j, o + 1], fs.obs[j, o + 2], fs.obs_n[j, k], x, t)
    fs.obs[j, o] = m
    fs.obs[j, o + 1] = w
    fs.obs[j, o + 2] = t
    fs.obs_n[j, k] += 1


@njit(cache=True)
def running_ratio(st, fs, t):
    """Per node, the largest elapsed / nominal execution time of its running tasks at ``t``
    (0 when none runs)."""
    n_nodes = st.cores.shape[0]
    out = np.zeros(n_nodes)
    for j in range(n_nodes):
        for s in range(st.cores[j]):
            i = st.slot_task[j, s]
            if i >= 0:
                r = (t - st.start[i]) / (st.work_est[i] / fs.speed0[j])
                if r > out[j]:
                    out[j] = r
    return out


@njit(cache=True)
def _make_ready(st, fs, i, j, t):
    st.ready[i] = t
    fs.phase[i] = P_WAITING
    core.join_waiting(st, i, j)
    nominal = fs.ready0[i] - st.decision[i]
    if nominal > 0:
        observe(fs, j, 1, (t - st.decision[i]) / nominal, t)


@njit(cache=True)
def _link_event(st, fs, j, t):
    """The earliest transfer(s) of link ``j`` finish at ``t``."""
    _link_update(fs, j, t)
    first = -1
    m = np.inf
    f = fs.lhead[j]
    while f >= 0:
        if fs.rem[f] < m:
            m = fs.rem[f]
            first = f
        f = fs.lnext[f]
    f = fs.lhead[j]
    while f >= 0:
        nxt = fs.lnext[f]
        if f == first or fs.rem[f] <= LINK_TOL * st.data[f]:
            _link_remove(fs, j, f)
            fs.rem[f] = 0.0
            _make_ready(st, fs, f, j, t)
        f = nxt
    _link_reschedule(st, fs, j, t)


# ----------------------------------------------------------------------------
# the event loop
# ----------------------------------------------------------------------------


@njit(cache=True)
def _dispatch(st, fs, j, t):
    if not st.up[j]:
        return
    while st.n_free[j] > 0 and st.wroot[j] >= 0:
        i, f = core.start_next(st, j, t)
        booked = st.work_est[i] / st.speed[j]
        if booked != fs.q_est[i]:
            # the estimate changed since the assignment: take out what was put in
            st.queued_work[j] += booked - fs.q_est[i]
        dur = st.work[i] / fs.speed[j]
        if dur != st.dur[i]:
            # the true speed in force at the start, not the belief booked at assignment
            st.busy_s[j] += dur - st.dur[i]
            st.dur[i] = dur
            f = t + dur
            st.finish[i] = f
        fs.phase[i] = P_RUNNING
        _hp_set(fs, i, f)


@njit(cache=True)
def set_speed(st, fs, j, t, v):
    """Node ``j``'s true per-core speed becomes ``v`` at ``t`` (after the events before ``t``).

    Each task running on ``j`` that finishes after ``t`` does its remaining work
    at the new speed: ``finish = t + (finish - t) * v_old / v`` (left to right).

    Returns:
        the number of running tasks re-timed.
    """
    v_old = fs.speed[j]
    fs.speed[j] = v
    if v == v_old:
        return 0
    m = 0
    for s in range(st.cores[j]):
        i = st.slot_task[j, s]
        if i >= 0 and st.finish[i] > t:
            f_old = st.finish[i]
            f = t + (f_old - t) * v_old / v
            st.finish[i] = f
            st.dur[i] = f - st.start[i]
            st.busy_s[j] += f - f_old
            _hp_set(fs, i, f)
            m += 1
    return m


@njit(cache=True)
def set_bandwidth(st, fs, j, t, bw):
    """Node ``j``'s true ingress bandwidth becomes ``bw`` at ``t``.

    A transfer in flight without shared links keeps the bandwidth of its
    decision; with shared links the link's transfers are re-timed to the new
    rate from ``t`` on.
    """
    if bw == fs.bandwidth[j]:
        return
    if fs.lcount[j] > 0:
        _link_update(fs, j, t)
        fs.bandwidth[j] = bw
        _link_reschedule(st, fs, j, t)
    else:
        fs.bandwidth[j] = bw


@njit(cache=True)
def advance(st, fs, until):
    """Process every instant strictly before ``until`` (task events, then dispatch)."""
    n = fs.phase.shape[0]
    n_dirty = 0
    while fs.counters[K_HEAP] > 0 and fs.ev_time[fs.hp_id[0]] < until:
        t = fs.ev_time[fs.hp_id[0]]
        while fs.counters[K_HEAP] > 0 and fs.ev_time[fs.hp_id[0]] == t:
            e = fs.hp_id[0]
            _hp_remove(fs, e)
            if e >= n:
                j = e - n
                _link_event(st, fs, j, t)
            else:
                j = st.node[e]
                ph = fs.phase[e]
                if ph == P_RUNNING:
                    core.release_core(st, e, j)
                    fs.phase[e] = P_DONE
                    fs.counters[K_ACTIVE] -= 1
                    observe(fs, j, 0, st.dur[e] / (st.work_est[e] / fs.speed0[j]), t)
                elif ph == P_TRANSIT:
                    _make_ready(st, fs, e, j, t)
                else:  # P_LATENCY
                    _link_enter(st, fs, e, j, t)
            n_dirty = core.mark_dirty(st, j, n_dirty)
        for k in range(n_dirty):
            j = st.dirty[k]
            st.is_dirty[j] = False
            _dispatch(st, fs, j, t)
        n_dirty = 0


@njit(cache=True)
def commit_many(st, fs, idx, nodes, d, lat_factor):
    """Assign tasks ``idx[k]`` to ``nodes[k]`` at ``d``; latencies x ``lat_factor[k]``.

    Bookkeeping is :func:`hybridsched.sim.core.commit`'s (the projection uses the
    ready time the scheduler believes); the transfer is timed with the true
    latency and bandwidth in force now, the latency jittered, through the
    shared link when it is on.
    """
    shared = fs.counters[K_SHARED] == 1
    for k in range(idx.shape[0]):
        i = idx[k]
        j = nodes[k]
        r = d + st.latency[j, st.region[i]] + st.data[i] / st.bandwidth[j]
        st.start[i] = np.nan
        st.finish[i] = np.nan
        core.book(st, i, j, d, r)
        fs.q_est[i] = st.work_est[i] / st.speed[j]
        fs.ready0[i] = d + fs.lat0[j, st.region[i]] + st.data[i] / fs.bw0[j]
        fs.counters[K_ACTIVE] += 1
        s = d + fs.latency[j, st.region[i]] * lat_factor[k]
        if shared and st.data[i] > 0:
            fs.phase[i] = P_LATENCY
            _hp_set(fs, i, s)
        else:
            fs.phase[i] = P_TRANSIT
            _hp_set(fs, i, s + st.data[i] / fs.bandwidth[j])


@njit(cache=True)
def check_and_commit(st, fs, idx, nodes, d, lat_factor):
    """:func:`commit_many` when every assignment is valid, else nothing.

    Returns:
        ``(0, -1)`` when committed, else ``(code, k)`` for the first bad entry,
        code 1: index out of range, 2: node down, 3: too little memory.
    """
    n_nodes = st.cores.shape[0]
    for k in range(idx.shape[0]):
        j = nodes[k]
        if j < 0 or j >= n_nodes:
            return 1, k
        if not st.up[j]:
            return 2, k
        if st.mem_req[idx[k]] > st.memory[j]:
            return 3, k
    commit_many(st, fs, idx, nodes, d, lat_factor)
    return 0, -1


@njit(cache=True)
def node_down(st, fs, j, t):
    """Node ``j`` fails at ``t``: kill and displace its tasks.

    Returns:
        (displaced task indices, their decision times, their start times (NaN
        when not started)). Tasks finishing exactly at ``t`` are not killed.
    """
    cap = st.cores[j] + st.n_queued[j]
    out = np.empty(cap, dtype=np.int64)
    dec = np.empty(cap)
    started = np.empty(cap)
    m = 0
    for s in range(st.cores[j]):
        i = st.slot_task[j, s]
        if i >= 0 and st.finish[i] > t:
            fs.wasted[j] += t - st.start[i]
            st.busy_s[j] -= st.finish[i] - t
            st.slot_task[j, s] = -1
            st.free_slots[j, st.n_free[j]] = s
            st.n_free[j] += 1
            _hp_remove(fs, i)
            out[m] = i
            dec[m] = st.decision[i]
            started[m] = st.start[i]
            m += 1
    i = st.qhead[j]
    while i >= 0:
        _hp_remove(fs, i)
        out[m] = i
        dec[m] = st.decision[i]
        started[m] = np.nan
        m += 1
        i = st.qnext[i]
    st.qhead[j] = -1
    st.wroot[j] = -1
    st.n_queued[j] = 0
    st.queued_work[j] = 0.0
    fs.lhead[j] = -1
    fs.lcount[j] = 0
    _hp_remove(fs, fs.phase.shape[0] + j)
    for q in range(m):
        i = out[q]
        fs.phase[i] = P_IDLE
        st.node[i] = -1
        st.decision[i] = np.nan
        st.ready[i] = np.nan
        st.dur[i] = np.nan
        st.start[i] = np.nan
        st.finish[i] = np.nan
        st.slot_of[i] = -1
    fs.counters[K_ACTIVE] -= m
    st.up[j] = False
    for c in range(st.cores[j]):
        st.proj[j, c] = np.inf
    st.proj_min[j] = np.inf
    return out[:m], dec[:m], started[:m]


@njit(cache=True)
def node_up(st, fs, j, t):
    """Node ``j`` is back at ``t``, idle."""
    st.up[j] = True
    for c in range(st.cores[j]):
        st.proj[j, c] = t
    st.proj_min[j] = t
