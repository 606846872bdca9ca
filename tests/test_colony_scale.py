"""The colony's work bounded by the batch: each shortcut against the computation it replaces.

* the compiled desirability, construction order and the problem's ``(B, N)``
  arrays equal the view's NumPy ones to the bit;
* the one-pass candidate lists equal a full sort by (desirability, node index);
* the local search's incremental bookkeeping (node lists, top list of last
  finishes) leaves the exact cost of the assignment it returns, and no
  candidate move improves it;
* the deadline repair on node lists makes the moves of the full rescan;
* large batches (beyond ``ant_limit``) and the hybrid's shortlist: every task on a
  feasible node, the same schedule for the same seed;
* the hybrid's compiled shortlist: the nodes of the top-k rule, each task's earliest
  estimated finish, the network's scores of their features as torch gives them
  (to 2e-5), and the colony's candidate lists from the listed pairs only;
* ``compile_seconds`` reaches summary.json apart from ``scheduler_seconds``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridsched.learn.features import N_FEATURES
from hybridsched.learn.network import compiled_weights
from hybridsched.policies import colony, cost, make_policy
from hybridsched.policies.ants import polish, search_state
from hybridsched.policies.candidates import _kth_largest, estimate_inputs, listed_candidates
from hybridsched.policies.hybrid import (
    REPAIR_PASSES,
    batch_features,
    deadline_repair,
    shortlist_logits,
)
from hybridsched.sim import Engine, simulate
from hybridsched.workload import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from builders import make_cluster, make_workload
from test_aco import _problem_inputs


def test_compiled_dense_passes_equal_the_views_arrays() -> None:
    _, tasks, view = _problem_inputs()
    want = np.where(view.feasible, 1.0 / (view.est_finish_s - view.time), 0.0)
    assert np.array_equal(colony.completion_heuristic(tasks, view), want)
    p = cost.build_problem(tasks, view, cost.CostWeights())
    assert np.array_equal(p.ready, view.ready_s)
    assert np.array_equal(p.dur, view.exec_s)
    c = view.cluster
    assert np.array_equal(p.dyn_j, view.exec_s * ((c.power_max_w - c.power_idle_w) / c.cores))
    best = np.min(np.where(view.feasible, view.est_finish_s, np.inf), axis=1)
    slack = tasks.deadline_abs_s - best
    want_order = np.lexsort((np.arange(len(tasks)), slack, tasks.priority))
    assert np.array_equal(colony.Colony().construction_order(tasks, view), want_order)
    # the candidate pass of the default desirability: the same lists, and the same earliest finish
    seeds = np.zeros((0, len(tasks)), dtype=np.int64)
    avail = np.array(view.available_s)
    cand, ncand, val, first = colony.completion_candidates(
        view.feasible, 8, seeds, float(view.time), p.ready, p.dur, avail
    )
    want = colony.top_candidates(colony.completion_heuristic(tasks, view), view.feasible, 8, seeds)
    for t in range(len(tasks)):
        assert ncand[t] == want[1][t]
        assert np.array_equal(cand[t, : ncand[t]], want[0][t, : ncand[t]])
        assert np.array_equal(val[t, : ncand[t]], want[2][t, : ncand[t]])
    assert np.array_equal(first, best)


def _reference_candidates(eta, feasible, k, seeds):
    """The candidate rule written plainly: sort by (-eta, node), keep k, add the seeds."""
    out = []
    for t in range(eta.shape[0]):
        ok = [j for j in range(eta.shape[1]) if feasible[t, j] and 0 < eta[t, j] < np.inf]
        row = sorted(ok, key=lambda j: (-eta[t, j], j))[:k]
        for s in seeds:
            if s[t] not in row:
                row.append(int(s[t]))
        out.append(row)
    return out


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 6),
    n=st.integers(1, 9),
    k=st.integers(1, 5),
    n_seeds=st.integers(0, 2),
    seed=st.integers(0, 10_000),
)
def test_candidates_equal_a_full_sort(b: int, n: int, k: int, n_seeds: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    eta = rng.integers(0, 4, (b, n)).astype(np.float64) / 2  # many ties, some zeros
    feasible = rng.random((b, n)) < 0.8
    seeds = [rng.integers(0, n, b) for _ in range(n_seeds)]
    col = colony.Colony(colony.ColonyParams(candidates=k))
    cand, ncand, val = col._candidates(eta, feasible, seeds)
    want = _reference_candidates(eta, feasible, min(k, n), seeds)
    for t in range(b):
        assert cand[t, : ncand[t]].tolist() == want[t]
        masked = np.where(feasible[t] & (eta[t] > 0), eta[t], 0.0)
        assert np.array_equal(val[t, : ncand[t]], masked[cand[t, : ncand[t]]])
        # padding repeats the last valid entry
        assert np.all(cand[t, max(ncand[t], 1) :] == cand[t, max(ncand[t] - 1, 0)])


def _polished(tasks, view, sweeps: int = 200):
    col = colony.Colony(colony.ColonyParams(candidates=4))
    col.reset(view.cluster, np.random.default_rng(0), warm=False)
    p_tuple = cost.build_problem(tasks, view, col.weights)
    p = cost.compile_problem(p_tuple)
    eta = colony.completion_heuristic(tasks, view)
    start = col._seeds[0].assign(tasks, view)
    cand, ncand, _ = col._candidates(eta, view.feasible, [start])
    sol = np.ascontiguousarray(start, dtype=np.int64)
    ls = search_state(p, cand, ncand, True)
    c, _ = polish(p, cost.make_scratch(p), sol, cand, ncand, sweeps, len(tasks) <= 32, ls)
    return p_tuple, sol, c, cand, ncand


def test_local_search_returns_the_exact_cost_of_a_local_optimum() -> None:
    for scenario, n_tasks, load, seed in (
        ("iot-small", 300, 1.2, 4),
        ("iot-small", 200, 0.9, 1),
        ("iot-default", 3000, 1.0, 2),
    ):
        _, tasks, view = _problem_inputs(scenario, n_tasks, load, seed)
        p, sol, c, cand, ncand = _polished(tasks, view)
        exact = cost.batch_cost(p, sol)
        assert abs(c - exact) <= 1e-9 * max(1.0, abs(exact))
        # no candidate move improves it (the search ran to its end)
        for t in range(len(tasks)):
            for q in range(ncand[t]):
                moved = sol.copy()
                moved[t] = cand[t, q]
                assert cost.batch_cost(p, moved) >= exact - 1e-9 * max(1.0, abs(exact))


def _repair_by_full_rescan(pt, p, nodes, feasible, order, passes):
    """The deadline repair as it was: every trial reschedules from the whole assignment.

    ``pt`` is the problem's tuple (read here), ``p`` its compiled handle (for the kernels).
    """
    ws = cost.make_scratch(p)
    b, n = nodes.shape[0], feasible.shape[1]
    fin = np.empty(b)
    trial = np.empty(b)
    for j in range(n):
        cost.schedule_assigned(p, ws, nodes, j, fin)
    moves = 0
    for _ in range(passes):
        changed = False
        for t in order:
            if fin[t] <= pt.dl[t]:
                continue
            old, best_j, best_f = nodes[t], -1, np.inf
            for j in range(n):
                if j == old or not feasible[t, j] or pt.ready[t, j] + pt.dur[t, j] > pt.dl[t]:
                    continue
                nodes[t] = j
                cost.schedule_assigned(p, ws, nodes, j, trial)
                if trial[t] <= pt.dl[t] and trial[t] < best_f:
                    best_f, best_j = trial[t], j
            nodes[t] = old
            if best_j >= 0:
                nodes[t] = best_j
                cost.schedule_assigned(p, ws, nodes, old, fin)
                cost.schedule_assigned(p, ws, nodes, best_j, fin)
                moves += 1
                changed = True
        if not changed:
            break
    return moves


def test_deadline_repair_makes_the_moves_of_the_full_rescan() -> None:
    moved = 0
    for seed in range(4):
        _, tasks, view = _problem_inputs("iot-small", 400, 1.6, seed)
        pt = cost.build_problem(tasks, view, cost.CostWeights())
        p = cost.compile_problem(pt)
        feasible = np.ascontiguousarray(view.feasible)
        order = np.lexsort((tasks.deadline_abs_s, tasks.priority)).astype(np.int64)
        # everything on one node: many predicted misses to repair
        start = np.full(len(tasks), int(np.argmax(feasible.all(axis=0))), dtype=np.int64)
        want = start.copy()
        m_want = _repair_by_full_rescan(pt, p, want, feasible, order, REPAIR_PASSES)
        got = start.copy()
        m_got = deadline_repair(p, cost.make_scratch(p), got, feasible, order, REPAIR_PASSES)
        assert m_got == m_want
        assert np.array_equal(got, want)
        moved += m_got
    assert moved > 0


def _run(policy: str, args: dict, scenario: str, n_tasks: int, load: float, seed: int):
    cluster, workload = generate(scenario, n_tasks, load, seed=seed)
    res = simulate(
        cluster,
        workload,
        make_policy(policy, args),
        decision_interval=0.5,
        queue="priority",
        seed=seed,
    )
    return cluster, workload, res


def _check_feasible(cluster, workload, res) -> None:
    node = res.tasks["node_index"]
    assert np.all(node >= 0)
    assert np.all(workload.memory_mb <= cluster.memory_mb[node])


def test_large_batches_without_ants_place_feasibly_and_repeat() -> None:
    # ant_limit 4: most batches of this loaded run exceed it (polished seed only)
    args = {"ant_limit": "4"}
    cluster, workload, a = _run("aco", args, "iot-small", 400, 1.5, 3)
    _, _, b = _run("aco", args, "iot-small", 400, 1.5, 3)
    _check_feasible(cluster, workload, a)
    assert np.array_equal(a.tasks["node_index"], b.tasks["node_index"])
    # never worse than its best seed, batch by batch: the polished seed is kept only if cheaper
    pol = make_policy("aco", args)
    pol.reset(cluster, np.random.default_rng(0))
    _, tasks, view = _problem_inputs("iot-small", 400, 1.5, 3)
    found = pol.colony.solve(tasks, view)
    assert len(tasks) > 4
    assert found.cost <= found.seed_cost + 1e-12


def test_hybrid_shortlist_places_feasibly_and_repeats() -> None:
    # iot-small has fewer nodes than the default shortlist: a shortlist of 3 bites
    args = {"shortlist": "3", "ants": "4", "iterations": "2"}
    cluster, workload, a = _run("hybrid", args, "iot-small", 300, 1.0, 2)
    _, _, b = _run("hybrid", args, "iot-small", 300, 1.0, 2)
    _check_feasible(cluster, workload, a)
    assert np.array_equal(a.tasks["node_index"], b.tasks["node_index"])
    # a shortlist no smaller than the cluster scores every node: the same schedule as none
    _, _, full = _run("hybrid", {**args, "shortlist": "0"}, "iot-small", 300, 1.0, 2)
    _, _, wide = _run("hybrid", {**args, "shortlist": "1000"}, "iot-small", 300, 1.0, 2)
    assert np.array_equal(full.tasks["node_index"], wide.tasks["node_index"])


def test_compile_seconds_is_reported_apart() -> None:
    _, _, aco = _run("aco", {}, "iot-small", 50, 0.5, 0)
    assert aco.summary["compile_seconds"] >= 0.0
    assert "scheduler_seconds" in aco.summary
    _, _, mct = _run("mct", {}, "iot-small", 50, 0.5, 0)
    assert "compile_seconds" not in mct.summary


def _tied_batch():
    """The first batch on idle nodes of two speeds (ties), a third of them too small
    in memory for half the tasks (node 0 among them)."""
    nodes = [
        {"speed": 2.0 if j % 3 == 1 else 1.0, "memory_mb": 100.0 if j % 3 == 0 else 1000.0}
        for j in range(12)
    ]
    cluster = make_cluster(nodes, cores=2)
    rows = [
        {"task_id": i, "arrival_s": 0.1, "work_gi": 1.0 + i % 2, "memory_mb": 500.0 * (i % 2)}
        for i in range(6)
    ]
    engine = Engine(cluster, make_workload(rows), decision_interval=0.5, queue="priority")
    return engine.next_batch()


def test_hybrid_shortlist_scores_equal_every_nodes_scores() -> None:
    # the compiled shortlist: shortlisted()'s nodes to the bit (ties, fewer feasible nodes
    # than kept); their compiled scores: torch's on batch_features' rows of those pairs
    for tasks, view in (_problem_inputs()[1:], _tied_batch()):
        b, n = len(tasks), view.n_nodes
        pol = make_policy("hybrid")
        pol.reset(view.cluster, np.random.default_rng(0))
        idx = np.ascontiguousarray(tasks.index, dtype=np.int64)
        full = np.empty((b, n, N_FEATURES), dtype=np.float32)
        batch_features(view.compiled, idx, view.time, pol._static, full, np.empty((b, n), bool))
        with torch.inference_mode():
            scores = pol.model.score(torch.from_numpy(full)).numpy()
        *inputs, feasible = estimate_inputs(tasks, view)
        eta = colony.completion_heuristic(tasks, view)
        net = compiled_weights(pol.model)
        rng = np.random.default_rng(1)
        for k in (1, 3, n - 5, n - 1, n, n + 2):
            # shortlisted() as it would be on a larger cluster: top_candidates of eta
            seeds = np.zeros((0, b), dtype=np.int64)
            want = colony.top_candidates(eta, np.ascontiguousarray(feasible), k, seeds)[0]
            if k < n:
                pol.shortlist = k
                assert np.array_equal(pol.shortlisted(tasks, view), want)
            nodes = np.empty((b, k), dtype=np.int64)
            logits = np.empty((b, k))
            first = np.empty(b)
            args = (view.compiled, idx, view.time, pol._static, tuple(inputs), feasible, net)
            shortlist_logits(*args, nodes, logits, first)
            assert np.array_equal(first, colony.best_finish(*inputs, feasible))
            # the colony's lists from the listed pairs: top_candidates' of the matrix
            # ties; a node listed twice (node 0, padding) has one value, as a shortlist gives
            eta_l = ((nodes * 7 + np.arange(b)[:, None]) % 5 + 5) / 10.0
            dense = np.zeros((b, n))
            dense[np.arange(b)[:, None], nodes] = eta_l
            seeds = rng.integers(0, n, (2, b))
            want_c = colony.top_candidates(dense, np.ascontiguousarray(feasible), 4, seeds)
            got_c = listed_candidates(nodes, eta_l, np.ascontiguousarray(feasible), 4, seeds)
            for t in range(b):
                c = want_c[1][t]
                assert got_c[1][t] == c
                assert np.array_equal(got_c[0][t, :c], want_c[0][t, :c])
                assert np.array_equal(got_c[2][t, :c], want_c[2][t, :c])
            # the same nodes (in node order: a score does not depend on its place)
            assert np.array_equal(np.sort(nodes, axis=1), np.sort(want, axis=1))
            np.testing.assert_allclose(
                logits, scores[np.arange(b)[:, None], nodes], rtol=0, atol=2e-5
            )


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.integers(0, 6), min_size=1, max_size=40),
    k=st.integers(1, 40),
)
def test_kth_largest_is_the_sorted_kth(values, k) -> None:
    a = np.array(values, dtype=np.float64)
    k = min(k, len(a))
    assert _kth_largest(a, len(a), k, np.empty(len(a))) == np.sort(a)[::-1][k - 1]


def _room_maker():
    """One core; a long low-priority task Q queued behind a running one (free at 2.5 s).

    Batch at 2.0 s (weights: response 1, wait 2 and miss 2 for priority 0,
    displaced 1, energy 0.03; B = 2): ``s`` (0.5 s, ready 2.0) and ``t`` (0.2 s,
    its 0.6 MB take it to 2.6, deadline 5 s after its arrival), both priority 0.
    Alone, ``t`` is not ready when the core frees, Q (10 s) takes it and ``t``
    starts at 12.5, too late. With ``s``, ``s`` takes the core at 2.5 and ``t``
    follows it at 3.0, ahead of Q, in time.
    """
    cl = make_cluster([{"cores": 1}])
    wl = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.5, "work_gi": 1.5, "priority": 0},
            {"task_id": 1, "arrival_s": 0.5, "work_gi": 10.0, "priority": 2},
            {"task_id": 2, "arrival_s": 1.5, "work_gi": 0.5, "priority": 0},
            {"task_id": 3, "arrival_s": 1.5, "work_gi": 0.2, "data_mb": 0.6, "deadline_s": 5.0},
        ]
    )
    engine = Engine(cl, wl, decision_interval=1.0, queue="priority")
    tasks, view = engine.next_batch()
    engine.commit(np.zeros(len(tasks), dtype=np.int64))
    tasks, view = engine.next_batch()
    p = cost.compile_problem(cost.build_problem(tasks, view, cost.CostWeights()))
    return p, cost.make_scratch(p)


def test_the_alone_bound_is_the_cost_alone_and_not_a_true_bound() -> None:
    """``prune_alone``'s filter, hand-computed, and the case that makes it a heuristic."""
    from hybridsched.policies.local_search import alone_cost_bound, own_cost_bound

    p, ws = _room_maker()

    def node(*members: int) -> float:
        m = np.array(members, dtype=np.int64)
        return cost.node_cost(p, 0, m, len(m), ws)[0]

    # t alone: 12.5-12.7, response 11.2, wait 9.9, 4 J dynamic, its deadline (6.5) missed
    assert node(1) == pytest.approx((11.2 + 2 * 9.9 + 0.03 * 4 + 2) / 2)
    # s alone: 2.5-3.0 (response 1.5, wait 0.5, 10 J), Q 0.5 s later
    assert node(0) == pytest.approx((1.5 + 2 * 0.5 + 0.03 * 10 + 0.5) / 2)
    # both: s 2.5-3.0, t 3.0-3.2 (response 1.7, wait 0.4, in time), Q 0.7 s later
    both = (1.5 + 1.0 + 0.3) + (1.7 + 2 * 0.4 + 0.12) + 0.7
    assert node(0, 1) == pytest.approx(both / 2)
    # t's marginal cost beside s (1.41) is far below its cost alone (16.56)
    assert node(0, 1) - node(0) == pytest.approx(1.41)
    cand = np.zeros((2, 1), dtype=np.int64)
    ncand = np.ones(2, dtype=np.int64)
    own = own_cost_bound(p, cand, ncand)
    # own bound of t: from max(ready 2.6, core free 2.5), no wait, in time: (1.3 + 0.12) / 2
    assert own[1, 0] == pytest.approx(0.71)
    lb = alone_cost_bound(p, ws, cand, ncand)
    # alone, without the miss its earliest finish (2.8) does not make: 15.56, above 1.41
    assert lb[1, 0] == pytest.approx(15.56)
    assert lb[0, 0] == pytest.approx(node(0))
    assert np.all(lb >= own)


def test_prune_alone_keeps_the_bookkeeping_exact_and_only_improves() -> None:
    """With the alone filter the search may stop short of a local optimum, but the cost
    it returns is its assignment's exact cost, no worse than the start, and it tries
    fewer moves than with the own-cost bound."""
    from hybridsched.policies.local_search import alone_cost_bound

    for scenario, n_tasks, load, seed in (
        ("iot-default", 3000, 1.0, 2),
        ("iot-small", 300, 1.2, 4),
    ):
        _, tasks, view = _problem_inputs(scenario, n_tasks, load, seed)
        col = colony.Colony(colony.ColonyParams(candidates=4))
        col.reset(view.cluster, np.random.default_rng(0), warm=False)
        pt = cost.build_problem(tasks, view, col.weights)
        p = cost.compile_problem(pt)
        start = np.array(col._seeds[0].assign(tasks, view), dtype=np.int64)
        eta = colony.completion_heuristic(tasks, view)
        cand, ncand, _ = col._candidates(eta, view.feasible, [start])
        ws = cost.make_scratch(p)
        lb = alone_cost_bound(p, ws, cand, ncand)
        sol = start.copy()  # polish works in place
        swaps = len(tasks) <= 32
        c, evals = polish(
            p, ws, sol, cand, ncand, 200, swaps, search_state(p, cand, ncand, True, lb)
        )
        exact = cost.batch_cost(pt, sol)
        assert abs(c - exact) <= 1e-9 * max(1.0, abs(exact))
        assert exact < cost.batch_cost(pt, start)
        own = start.copy()
        ls = search_state(p, cand, ncand, True)
        _, evals_own = polish(p, cost.make_scratch(p), own, cand, ncand, 200, swaps, ls)
        assert np.all(lb >= ls.lb)
        # a queue behind busy cores (iot-default at 1.0) is where the filter bites
        assert evals < evals_own if scenario == "iot-default" else evals <= evals_own
