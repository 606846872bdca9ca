"""The hybrid scheduler (learned eta + ant colony) and its REINFORCE training.

* it is registered and builds with its defaults (the shipped checkpoint);
* the same seed gives the same schedule;
* deadline rule: by the exact batch prediction of the final assignment, no task
  that misses its deadline could meet it by moving alone to another feasible
  node; no infeasible node; the repair by hand on a two-node case;
* a few REINFORCE steps through the colony's construction lower the ants'
  expected cost on a tiny fixed set of batches by a clear margin;
* checkpoints round-trip (the policy reads what training writes; resume).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from builders import make_cluster, make_workload
from hybridsched.errors import ConfigError
from hybridsched.learn.network import PairScorer, save_checkpoint
from hybridsched.policies import available_policies, cost, make_policy, policy_params
from hybridsched.policies.hybrid import (
    DEFAULT_CHECKPOINT,
    REPAIR_PASSES,
    Hybrid,
    deadline_repair,
    eta_from_logits,
)
from hybridsched.sim import Engine, SimConfig, simulate
from hybridsched.train.hybrid_trainer import (
    HybridTrainConfig,
    HybridTrainer,
    collect,
    expected_cost,
    reinforce_loss,
)
from hybridsched.workload import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_optimal import small_instances

torch.set_num_threads(1)  # small tensors; more threads only contend on shared cores

FAST = {"ants": "4", "iterations": "3", "local_search": "2"}


def test_registered_and_builds_with_defaults() -> None:
    assert "hybrid" in available_policies()
    pol = make_policy("hybrid")
    assert isinstance(pol, Hybrid)
    assert DEFAULT_CHECKPOINT.is_file()
    assert DEFAULT_CHECKPOINT.stat().st_size < 1_000_000
    assert pol.path == DEFAULT_CHECKPOINT
    assert pol.params.order == "priority"
    assert {"checkpoint", "ants", "beta", "candidates", "temperature"} <= set(
        policy_params("hybrid")
    )
    with pytest.raises(ConfigError, match="temperature"):
        make_policy("hybrid", {"temperature": "0"})


def _run(seed: int, **args: str):
    cluster, workload = generate("iot-default", 300, 0.9, seed)
    pol = make_policy("hybrid", {**FAST, **args})
    cfg = SimConfig(decision_interval=0.5, queue="priority")
    return simulate(cluster, workload, pol, config=cfg, seed=seed)


def test_deterministic_with_a_seed() -> None:
    a, b = _run(3), _run(3)
    np.testing.assert_array_equal(a.tasks["node_index"], b.tasks["node_index"])
    np.testing.assert_array_equal(a.tasks["finish_s"], b.tasks["finish_s"])


def test_eta_by_hand() -> None:
    logits = np.array([[0.0, -1.0, 2.0], [1.0, 1.0, 0.0]])
    allowed = np.array([[True, True, False], [False, True, True]])
    eta = eta_from_logits(logits, allowed, 1.0)
    np.testing.assert_allclose(eta, [[1.0, np.exp(-1.0), 0.0], [0.0, 1.0, np.exp(-1.0)]])


def test_compiled_forward_equals_torch() -> None:
    # the shortlist's compiled forward: torch's float32 scores to 2e-5 + 1e-6 relative
    # (float32 rounding on scores up to ~100: it failed once at 2.1e-5 absolute, 4e-7
    # relative), on features well outside their usual [-1, 1] too (tanh saturates) and
    # for both widths; the initial weights seeded, so the check is the same every run
    from hybridsched.learn.forward import _tanh, block_logits, compiled_weights

    x = np.linspace(-20.0, 20.0, 40_001)
    assert np.max(np.abs(np.array([_tanh(v) for v in x]) - np.tanh(x))) < 3e-7
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    for n_features in (18, 21):
        model = PairScorer(n_features, 32, init="mct")
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.from_numpy(rng.normal(0.0, 0.5, tuple(p.shape)).astype(np.float32)))
        feats = rng.normal(0.0, 2.0, (50, 21)).astype(np.float32)
        with torch.inference_mode():
            want = model.score(torch.from_numpy(feats)).numpy()
        got = np.empty(50)
        h = np.empty((32, 50), dtype=np.float32)
        block_logits(np.ascontiguousarray(feats.T), compiled_weights(model), h, h.copy(), got)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=2e-5)


def test_hidden_unit_equals_one_input_per_pass_bit_for_bit() -> None:
    # _unit sums four inputs per pass over the pairs: the same additions in the same order
    # as one input per pass (the form every hybrid figure was measured with), so the same
    # float32 bits, for any input count (remainders) and block width
    from numba import njit

    from hybridsched.learn.forward import _tanh, _unit

    @njit(error_model="numpy")
    def one_per_pass(x, w, bias, o, n, h):
        for q in range(n):
            h[q] = bias
        for f in range(w.shape[0]):
            for q in range(n):
                h[q] += w[f, o] * x[f][q]
        for q in range(n):
            h[q] = _tanh(h[q])

    rng = np.random.default_rng(5)
    for nf in (1, 3, 4, 5, 18, 21, 32):
        for n in (1, 7, 128):
            x = rng.normal(0.0, 2.0, (nf, n)).astype(np.float32)
            w = rng.normal(0.0, 0.5, (nf, 6)).astype(np.float32)
            for o in range(6):
                want = np.empty(n, dtype=np.float32)
                got = np.empty(n, dtype=np.float32)
                one_per_pass(x, w, np.float32(0.1 * o), o, n, want)
                _unit(x, w, np.float32(0.1 * o), o, n, got)
                assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (nf, n, o)


def test_compiled_weights_follow_the_model() -> None:
    # kept between batches, made again when training writes the weights or swaps the model
    pol = make_policy("hybrid")
    first = pol._compiled_weights()
    assert pol._compiled_weights() is first
    with torch.no_grad():
        pol.model.head.bias.add_(1.0)
    again = pol._compiled_weights()
    assert again is not first and again[5][0] == first[5][0] + 1.0
    pol.model = PairScorer(pol.model.n_features, 32)
    assert pol._compiled_weights() is not again


def _misses_it_could_avoid(p, nodes: np.ndarray, feasible: np.ndarray) -> list[int]:
    """Tasks predicted to miss that would meet their deadline moved alone elsewhere."""
    fin = cost.predict(p, nodes)["finish_s"]
    bad = []
    for t in np.flatnonzero(fin > p.dl):
        for j in np.flatnonzero(feasible[t]):
            moved = nodes.copy()
            moved[t] = j
            if cost.predict(p, moved)["finish_s"][t] <= p.dl[t]:
                bad.append(int(t))
                break
    return bad


def test_deadline_repair_by_hand() -> None:
    # two idle 1-core nodes of speed 1; two tasks of 1 GI arriving at 0, both sent
    # to node 0: the second (by task id) finishes at 2, after its deadline 1.5; on
    # node 1 it would finish at 1: it moves there
    cluster = make_cluster([{}, {}])
    wl = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.0, "deadline_s": 1.5},
            {"task_id": 1, "arrival_s": 0.0, "deadline_s": 1.5},
        ],
        cluster=cluster,
    )
    # interval 1: both are decided together at 0
    tasks, view = Engine(cluster, wl, SimConfig(decision_interval=1.0)).next_batch()
    p_tuple = cost.build_problem(tasks, view, cost.CostWeights())
    p = cost.compile_problem(p_tuple)
    nodes = np.array([0, 0], dtype=np.int64)
    feasible = np.ascontiguousarray(view.feasible)
    np.testing.assert_allclose(cost.predict(p_tuple, nodes)["finish_s"], [1.0, 2.0])
    order = np.array([0, 1], dtype=np.int64)
    moves = deadline_repair(p, cost.make_scratch(p), nodes, feasible, order, REPAIR_PASSES)
    assert moves == 1
    np.testing.assert_array_equal(nodes, [0, 1])
    # nothing to repair when both meet: no move
    again = deadline_repair(p, cost.make_scratch(p), nodes, feasible, order, REPAIR_PASSES)
    assert again == 0


def test_deadline_rule_and_feasibility_on_random_instances() -> None:
    checked = 0
    for _cluster, tasks, view, _mct in small_instances(25, seed=7, max_tasks=10, max_nodes=6):
        pol = make_policy("hybrid", FAST)
        pol.reset(view.cluster, np.random.default_rng(1))
        nodes = pol.assign(tasks, view)
        b = len(tasks)
        assert view.feasible[np.arange(b), nodes].all()
        p = cost.build_problem(tasks, view, pol.cost_weights())
        assert _misses_it_could_avoid(p, nodes, view.feasible) == []
        checked += b
    assert checked > 20


def test_deadline_rule_inside_a_run_with_memory_limits() -> None:
    cluster, workload = generate("iot-hetero", 400, 0.9, 2)
    engine = Engine(cluster, workload, SimConfig(decision_interval=0.5, queue="priority"))
    pol = make_policy("hybrid", FAST)
    pol.reset(cluster, np.random.default_rng(0))
    while (batch := engine.next_batch()) is not None:
        tasks, view = batch
        nodes = pol.assign(tasks, view)
        r = np.arange(len(tasks))
        assert view.feasible[r, nodes].all()
        p = cost.build_problem(tasks, view, pol.cost_weights())
        assert _misses_it_could_avoid(p, nodes, view.feasible) == []
        engine.commit(nodes)


def test_repair_overrides_a_colony_that_prefers_a_miss() -> None:
    # node 0: fast, 1 core; node 1: slow and power-hungry. Six 2-GI tasks at 0 with
    # 2.5 s deadlines. With no cost on misses and a high one on energy the colony
    # queues all six on node 0, where the sixth finishes at 3.0; node 1 would finish
    # it at 2.0, so the repair moves it there.
    cluster = make_cluster([{"speed": 4.0}, {"speed": 1.0, "power_max_w": 1000.0}])
    wl = make_workload(
        [{"task_id": k, "arrival_s": 0.0, "work_gi": 2.0, "deadline_s": 2.5} for k in range(6)],
        cluster=cluster,
    )
    args = {**FAST, "w_miss": "0", "w_energy": "10"}
    cfg = SimConfig(decision_interval=0.5)
    off = simulate(
        cluster, wl, make_policy("hybrid", {**args, "deadline_aware": "false"}), config=cfg
    )
    np.testing.assert_array_equal(off.tasks["node_index"], [0] * 6)
    np.testing.assert_allclose(off.tasks["finish_s"], [0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    on = simulate(cluster, wl, make_policy("hybrid", args), config=cfg)
    np.testing.assert_array_equal(on.tasks["node_index"], [0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(on.tasks["finish_s"], [0.5, 1.0, 1.5, 2.0, 2.5, 2.0])
    assert on.summary["deadline_miss_rate"] == 0.0


@pytest.fixture(scope="module")
def tiny_batches():
    cfg = HybridTrainConfig(
        n_tasks=150, load=1.0, decision_interval=0.05, keep=1.0, ants=16, lr=0.05, candidates=4
    )
    snaps = collect(cfg, [1_000_003], np.random.default_rng(0))
    assert len(snaps) >= 2
    return cfg, snaps[:4]


def test_reinforce_lowers_expected_cost(tiny_batches) -> None:
    cfg, snaps = tiny_batches
    torch.manual_seed(0)
    model = PairScorer(init="zero")  # uniform over the candidates: much to learn
    before = expected_cost(model, snaps, cfg, seed=123)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(5)
    for _ in range(25):
        loss, _ = reinforce_loss(model, snaps, cfg, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = expected_cost(model, snaps, cfg, seed=123)
    assert after < 0.95 * before, (before, after)


def test_checkpoint_round_trip(tmp_path: Path, tiny_batches) -> None:
    _, snaps = tiny_batches
    torch.manual_seed(1)
    model = PairScorer(init="mct")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = save_checkpoint(tmp_path / "h.pt", model, {"policy": "hybrid", "temperature": 1.0})
    pol = make_policy("hybrid", {"checkpoint": str(path)})
    assert pol.describe()["policy"] == "hybrid"
    with torch.no_grad():
        want = model.score(snaps[0].x)
        got = pol.model.score(snaps[0].x)
    torch.testing.assert_close(got, want)

    config = HybridTrainConfig(
        n_tasks=150, collect_runs=1, eval_seeds=1, eval_tasks=100, max_updates=2, eval_every_s=1e9
    )
    tr = HybridTrainer(config, tmp_path / "run")
    tr.run(minutes=1.0)
    assert (tmp_path / "run" / "best.pt").is_file()
    assert (tmp_path / "run" / "curve.csv").read_text().count("\n") == 3  # header + 2 evals
    back = HybridTrainer.resume(tmp_path / "run")
    assert back.updates == tr.updates == 2
    for a, b in zip(back.model.parameters(), tr.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_train_command_for_hybrid(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hybridsched.cli.app import _register, app

    _register()
    out = tmp_path / "h"
    args = [
        "train",
        "hybrid",
        "--tasks",
        "150",
        "--eval-seeds",
        "1",
        "--eval-tasks",
        "100",
        "--max-updates",
        "1",
        "--minutes",
        "1",
        "--out",
        str(out),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert {"best.pt", "last.pt", "state.pt", "curve.csv", "curve.png"} <= {
        p.name for p in out.iterdir()
    }
    res = CliRunner().invoke(app, ["train", "hybrid", "--resume", str(out), "--minutes", "0"])
    assert res.exit_code == 0, res.output
    assert HybridTrainer.resume(out).updates == 1
