"""The ant colony scheduler: arguments, determinism, guarantees and quality.

* its arguments come from the CLI's strings, and bad ones are refused with the
  list of valid ones;
* the same seed gives the same schedule;
* it is never worse than its MCT seed, and on loaded small batches it finds
  the CP-SAT optimum (the benchmark checks the 1 % goal on 200+ batches);
* the NumPy and the compiled construction agree draw for draw;
* the desirability is pluggable, the memory persists and evaporates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hybridsched.errors import ConfigError
from hybridsched.policies import colony, cost, make_policy, policy_params
from hybridsched.policies.aco import ACO
from hybridsched.policies.optimal import solve_batch
from hybridsched.sim import Engine, simulate
from hybridsched.workload import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_optimal import small_instances


def test_arguments_from_strings_and_clear_errors() -> None:
    pol = make_policy("aco", {"ants": "16", "iterations": "10", "rho": "0.3", "memory": "0"})
    assert isinstance(pol, ACO)
    assert (pol.params.ants, pol.params.iterations, pol.params.rho) == (16, 10, 0.3)
    assert pol.params.memory == 0.0
    assert pol.params.seeds == ("mct", "edf-mct", "max-min")
    assert {"ants", "iterations", "alpha", "beta", "w_energy", "w_miss"} <= set(
        policy_params("aco")
    )
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) 'antz'.*valid arguments.*ants"):
        make_policy("aco", {"antz": "3"})
    # an ill-typed value lists the valid arguments too (README)
    with pytest.raises(
        ConfigError,
        match=r"ants='many' must be of type int; valid arguments: .*ants \(int, default 8\)",
    ):
        make_policy("aco", {"ants": "many"})
    with pytest.raises(ConfigError, match=r"prune='maybe' must be of type bool \(true/false"):
        make_policy("aco", {"prune": "maybe"})
    with pytest.raises(ConfigError, match=r"aco rho: must be a number in \(0, 1\]"):
        make_policy("aco", {"rho": "0"})
    with pytest.raises(ConfigError, match="aco order"):
        make_policy("aco", {"order": "random"})
    with pytest.raises(ConfigError, match="unknown name 'nope'"):
        simulate(*generate("iot-small", 20, 0.5, 0), make_policy("aco", {"seeds": "nope"}))
    with pytest.raises(ConfigError, match="heuristic: must be callable"):
        make_policy("aco", {"heuristic": "x"})


def _schedule(seed: int, **args: object) -> np.ndarray:
    cluster, workload = generate("iot-small", 300, 1.0, seed=1)
    pol = make_policy("aco", {"ants": 4, "iterations": 3, **args})
    res = simulate(cluster, workload, pol, decision_interval=0.5, queue="priority", seed=seed)
    return res.tasks["node_index"]


def test_ls_limit_turns_the_ants_local_search_off_on_larger_batches() -> None:
    prm = colony.ColonyParams(ls_limit=64)
    assert prm.kernel_params(0.01, 64).ls_every == 2
    assert prm.kernel_params(0.01, 65).ls_every == 0
    assert colony.ColonyParams().kernel_params(0.01, 10**6).ls_every == 2
    assert make_policy("hybrid", {"ls_limit": "64"}).params.ls_limit == 64
    with pytest.raises(ConfigError, match=r"aco ls_limit: must be an integer >= 0, got -1"):
        make_policy("aco", {"ls_limit": -1})
    # iot-small at load 1.0: batches of up to a few dozen tasks
    default = _schedule(7)
    assert np.array_equal(default, _schedule(7, ls_limit=10**6))
    fast = _schedule(7, ls_limit=1)
    assert np.array_equal(fast, _schedule(7, ls_every=0))
    assert not np.array_equal(fast, default)  # the ants' local search moved some task


def test_same_seed_same_schedule() -> None:
    a = _schedule(7, explore=0.0)
    assert np.array_equal(a, _schedule(7, explore=0.0))
    assert not np.array_equal(a, _schedule(8, explore=0.0))


def test_never_worse_than_mct_and_respects_memory_limits() -> None:
    cluster, workload = generate("iot-small", 400, 1.2, seed=2)
    engine = Engine(cluster, workload, decision_interval=0.5, queue="priority")
    pol = make_policy("aco", {"ants": 4, "iterations": 4})
    pol.reset(cluster, np.random.default_rng(0))
    mct = make_policy("mct")
    mct.reset(cluster, np.random.default_rng(0))
    better = 0
    while (batch := engine.next_batch()) is not None:
        tasks, view = batch
        nodes = pol.assign(tasks, view)
        assert np.all(np.asarray(view.feasible)[np.arange(len(tasks)), nodes])
        p = cost.build_problem(tasks, view, pol.colony.weights)
        mct_cost = cost.batch_cost(p, mct.assign(tasks, view))
        assert pol.last.cost == pytest.approx(cost.batch_cost(p, nodes), rel=1e-12)
        assert pol.last.cost <= mct_cost
        better += pol.last.cost < mct_cost * (1 - 1e-9)
        engine.commit(nodes)
    assert better > 10


def test_finds_the_optimum_on_small_loaded_batches() -> None:
    gaps = []
    for i, (cluster, tasks, view, mct_nodes) in enumerate(small_instances(30, seed=21)):
        pol = make_policy("aco")
        pol.reset(cluster, np.random.default_rng(i))
        found = pol.colony.solve(tasks, view)
        p = cost.build_problem(tasks, view, pol.colony.weights)
        best = solve_batch(p, np.asarray(view.feasible)).cost
        assert found.cost <= cost.batch_cost(p, mct_nodes)
        gaps.append((found.cost - best) / best)
    gaps = np.array(gaps)
    assert gaps.min() >= -1e-9  # the oracle is optimal
    assert np.mean(gaps <= 0.01) >= 0.95


def _problem_inputs(
    scenario: str = "iot-small", n_tasks: int = 300, load: float = 1.2, seed: int = 4
):
    """A batch half way through an MCT run (queues not empty)."""
    cluster, workload = generate(scenario, n_tasks, load, seed=seed)
    engine = Engine(cluster, workload, decision_interval=0.5, queue="priority")
    mct = make_policy("mct")
    mct.reset(cluster, np.random.default_rng(0))
    for _ in range(engine.n_batches // 2):
        tasks, view = engine.next_batch()
        engine.commit(mct.assign(tasks, view))
    return cluster, *engine.next_batch()


def test_numpy_and_compiled_construction_agree() -> None:
    cluster, tasks, view = _problem_inputs()
    col = colony.Colony()
    col.reset(cluster, np.random.default_rng(0))
    eta = colony.completion_heuristic(tasks, view)
    cand, ncand = col.candidates(eta, [])
    order = col.construction_order(tasks, view)
    rng = np.random.default_rng(5)
    tau = rng.uniform(0.05, 1.0, cand.shape)
    etab = np.take_along_axis(eta, cand, axis=1) ** 2
    u = rng.random((6, len(tasks)))
    pt = cost.build_problem(tasks, view, cost.CostWeights())
    con = colony.Construction.of_problem(pt, view, order, cand, ncand, etab)
    for dynamic in (True, False):
        prm = colony.ColonyParams(dynamic_eta=dynamic).kernel_params(0.01, len(tasks))
        want = colony.construct_numpy(u, tau, con, prm)
        got = np.empty_like(want)
        scratch = colony.ant_scratch(con)
        for a in range(u.shape[0]):
            colony.construct_ant(u[a], tau, con, prm, scratch, got[a])
        assert np.array_equal(got, want)
        for t in range(len(tasks)):
            assert set(got[:, t]) <= set(cand[t, : ncand[t]])


def test_candidates_keep_the_seeds_and_the_best_nodes() -> None:
    col = colony.Colony(colony.ColonyParams(candidates=2))
    eta = np.array([[0.1, 0.9, 0.5, 0.0], [0.4, 0.3, 0.2, 0.1]])
    seed = np.array([0, 3])
    cand, ncand = col.candidates(eta, [seed])
    assert cand[0, :2].tolist() == [1, 2] and cand[0, 2] == 0 and ncand[0] == 3
    assert cand[1, :2].tolist() == [0, 1] and cand[1, 2] == 3 and ncand[1] == 3


def test_construction_order_is_priority_then_slack() -> None:
    _, tasks, view = _problem_inputs()
    col = colony.Colony()
    order = col.construction_order(tasks, view)
    prio = tasks.priority[order]
    assert np.all(np.diff(prio) >= 0)
    best = np.min(np.where(view.feasible, view.est_finish_s, np.inf), axis=1)
    slack = (tasks.deadline_abs_s - best)[order]
    for p in np.unique(prio):
        assert np.all(np.diff(slack[prio == p]) >= 0)


def test_heuristic_is_pluggable() -> None:
    cluster, tasks, view = _problem_inputs()
    favourite = np.argmax(np.asarray(view.feasible) * np.arange(cluster.n_nodes), axis=1)

    def only_favourite(t, v):
        eta = np.zeros((len(t), v.n_nodes))
        eta[np.arange(len(t)), favourite] = 1.0
        return eta

    pol = ACO(seeds="", local_search=0, iterations=2, ants=3, heuristic=only_favourite)
    pol.reset(cluster, np.random.default_rng(0))
    assert np.array_equal(pol.assign(tasks, view), favourite)
    bad = ACO(heuristic=lambda t, v: np.ones(3))
    bad.reset(cluster, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="must return shape"):
        bad.assign(tasks, view)


def test_listed_heuristic_equals_its_matrix() -> None:
    # a heuristic on listed pairs (Listed) solves as the (B, N) matrix it stands for
    from hybridsched.policies.candidates import Listed

    cluster, tasks, view = _problem_inputs()
    n = cluster.n_nodes

    def dense(t, v):
        # ties (rounded), and a third of the nodes left out of every row
        eta = np.round(colony.completion_heuristic(t, v), 1)
        eta[:, ::3] = 0.0
        return eta

    def listed(t, v):
        nodes = np.tile(np.arange(n)[::-1], (len(t), 1))  # any order
        keep = nodes % 3 != 0
        nodes = nodes[:, keep[0]]
        eta = np.take_along_axis(dense(t, v), nodes, axis=1)
        return Listed(nodes, eta, colony.best_finish(*colony.estimate_inputs(t, v)))

    got = []
    for heuristic in (dense, listed):
        pol = ACO(iterations=3, ants=4, heuristic=heuristic)
        pol.reset(cluster, np.random.default_rng(0))
        got.append(pol.colony.solve(tasks, view))
    assert np.array_equal(got[0].nodes, got[1].nodes)
    assert got[0].cost == got[1].cost


def test_memory_persists_evaporates_and_resets() -> None:
    cluster, tasks, view = _problem_inputs()
    col = colony.Colony(colony.ColonyParams(memory=0.5, memory_rho=0.25, ants=2, iterations=2))
    col.reset(cluster, np.random.default_rng(0))
    assert np.all(col._memory == 1.0)
    res = col.solve(tasks, view)
    cls = col.task_classes(tasks)
    m = col._memory
    chosen = np.zeros_like(m, dtype=bool)
    chosen[cls, res.nodes] = True
    present = np.zeros(m.shape[0], dtype=bool)
    present[cls] = True
    assert np.all(m[chosen] == 1.0)  # 0.75 + 0.25, clamped at 1
    assert np.allclose(m[present][~chosen[present]], 0.75)
    assert np.all(m[~present] == 1.0)  # classes not in the batch keep their trail
    col.reset(cluster, np.random.default_rng(0))
    assert np.all(col._memory == 1.0)
    classes = col.task_classes(tasks)
    assert classes.min() >= 0 and classes.max() < col._memory.shape[0]


def test_warm_up_compiles_once_and_leaves_the_run_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster, wl = generate("iot-default", n_tasks=150, load=0.9, seed=3)
    colony.warm_up()
    assert colony.warm_up() == 0.0  # once per process
    runs = []
    for warm in (True, False):
        # the warm-up itself runs again here (a fresh process), then the run
        monkeypatch.setattr(colony, "_WARM", False)
        col = colony.Colony(colony.ColonyParams(ants=3, iterations=3))
        col.reset(cluster, np.random.default_rng(11), warm=warm)
        assert (col.compile_seconds > 0.0) == warm
        assert colony._WARM == warm
        eng = Engine(cluster, wl, decision_interval=0.5, queue="priority")
        nodes = []
        while (batch := eng.next_batch()) is not None:
            out = col.solve(*batch).nodes
            nodes.append(out)
            eng.commit(out)
        runs.append(np.concatenate(nodes))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert len(runs[0]) == 150
    pol = make_policy("aco")  # the last loop left the kernels "cold"
    res = Engine(cluster, wl, decision_interval=0.5, queue="priority").run(pol, 0)
    assert pol.compile_seconds > 0.0
    assert res.summary["tasks"] == 150
    pol.reset(cluster, np.random.default_rng(0))
    assert pol.compile_seconds == 0.0
