"""The learned policies under drift: observed features, VecSim with conditions, training."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from hybridsched.errors import ConfigError
from hybridsched.learn.features import (
    FEATURE_NAMES,
    N_BASE_FEATURES,
    N_FEATURES,
    node_table,
    observe_nodes,
    pair_features,
    pair_features_one,
)
from hybridsched.learn.network import PairScorer, load_checkpoint, save_checkpoint
from hybridsched.policies import make_policy
from hybridsched.sim import simulate
from hybridsched.sim.conditions import Conditions
from hybridsched.sim.options import SimOptions
from hybridsched.sim.options_engine import OptionsEngine
from hybridsched.train.rollout import InstanceSpec, VecSim, run_greedy
from hybridsched.train.trainer import TrainConfig, Trainer, greedy_actor
from hybridsched.workload import generate_instance

OBS = [FEATURE_NAMES.index(n) for n in ("obs_exec", "obs_transfer", "running")]


def _instance(n_tasks: int = 300, seed: int = 3):
    inst = generate_instance("iot-drift", n_tasks, 0.85, seed)
    cond = Conditions.from_frame(inst.conditions, inst.cluster)
    return inst.cluster, inst.workload, cond


def _random_net(seed: int = 0) -> PairScorer:
    """An MCT-prior network with random weights on every feature, observed ones included."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = PairScorer(init="mct")
        torch.nn.init.normal_(model.head.weight, std=0.5)
        with torch.no_grad():
            model.prior.weight[0, OBS] = torch.tensor([-4.0, -2.0, -1.0])
    return model.eval()


@pytest.mark.parametrize("estimates", ["nominal", "observed"])
def test_features_on_drift_equal_reference(estimates):
    """The compiled features equal the NumPy reference at every decision of a drifting run,
    and the observed columns are what the view observes."""
    c, w, cond = _instance(250)
    engine = OptionsEngine(c, w, options=SimOptions(conditions=cond, estimates=estimates))
    table = node_table(c)
    out = np.zeros((c.n_nodes, N_FEATURES), dtype=np.float32)
    mask = np.zeros(c.n_nodes, dtype=np.bool_)
    seen_obs = 0
    while (batch := engine.next_batch()) is not None:
        tasks, view = batch
        ref = pair_features(tasks, view)[0]
        observe_nodes(table, view)
        h = view.compiled
        best = pair_features_one(
            h, int(tasks.index[0]), view.time, view.core_free_min_s, view.queued_work_s,
            view.recent_count, view.recent_time_s, table, out, mask,
        )  # fmt: skip
        np.testing.assert_allclose(out, ref, rtol=2e-6, atol=1e-6)
        np.testing.assert_array_equal(mask, view.feasible[0])
        fe = view.observations.exec_factor(view.time)
        np.testing.assert_allclose(out[mask, OBS[0]], np.log(fe[mask]).astype(np.float32))
        seen_obs += int(np.any(out[:, OBS[0]] != 0))
        engine.commit([best])
    assert seen_obs > 50  # drift moved the observations in most decisions


def test_observed_columns_are_zero_without_observations():
    spec = InstanceSpec("iot-small", 0.8, 200)
    vs = VecSim(spec, 2, iter([1, 2]), restart=False)
    assert not vs.obs[..., OBS].any()
    assert np.all(node_table(vs.copies[0].engine.cluster)[:, 4:] == 0.0)


def test_vecsim_with_conditions_is_the_engine(tmp_path):
    """A VecSim copy with conditions and observed estimates gives exactly the schedule of
    simulate(..., options) with the same choices (the rl policy on both paths)."""
    model = _random_net(1)
    save_checkpoint(tmp_path / "m.pt", model, {"init": "mct"})
    policy = make_policy("rl", {"checkpoint": str(tmp_path / "m.pt")})
    for estimates in ("nominal", "observed"):
        spec = InstanceSpec("iot-drift", 0.85, 300, drift="scenario", estimates=estimates)
        seed = 7
        c, w, cond = _instance(300, seed)
        ref = simulate(c, w, policy, options=SimOptions(conditions=cond, estimates=estimates))
        vs = VecSim(spec, 1, iter([seed]), restart=False)
        act = greedy_actor(model)
        nodes = []
        while vs.active.any():
            a = act(vs.obs, vs.mask, vs.best)
            nodes.append(int(a[0]))
            vs.step(a)
        eng = vs.copies[0].engine
        inv = np.empty_like(eng.order)
        inv[eng.order] = np.arange(eng.order.shape[0])
        np.testing.assert_array_equal(np.array(nodes)[inv], ref.tasks["node_index"])
        np.testing.assert_array_equal(eng.state.finish[inv], ref.tasks["finish_s"])
        assert ref.summary["retimed_tasks"] > 0  # the conditions did something


def test_random_drift_is_seeded_and_varies():
    spec = InstanceSpec("iot-small", 0.8, 200, drift="random")
    a, b, c = spec.build(5), spec.build(5), spec.build(6)
    ca, cb = a.options.conditions, b.options.conditions
    np.testing.assert_array_equal(a.state.arrival, b.state.arrival)
    np.testing.assert_array_equal(ca.start_s, cb.start_s)
    np.testing.assert_array_equal(ca.speed, cb.speed)
    assert not np.array_equal(a.state.work, c.state.work)
    with pytest.raises(ConfigError, match="drift: must be one of"):
        InstanceSpec(drift="sometimes")
    with pytest.raises(ConfigError, match="estimates: must be one of"):
        InstanceSpec(estimates="psychic")


def test_training_with_drift_is_deterministic(tmp_path):
    small = TrainConfig("iot-small", 0.85, 120, n_envs=4, rollout_steps=8, candidates=4)
    config = replace(
        small, eval_seeds=1, eval_tasks=150, eval_every_s=1e9, init="mct", drift="random",
        estimates="observed", gamma=0.99, gae_lambda=0.95, average_reward=True,
        max_updates=3, seed=4,
    )  # fmt: skip
    a = Trainer(config, tmp_path / "a")
    a.run()
    b = Trainer(config, tmp_path / "b")
    b.run()
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(wa[name], wb[name]) for name in wa)
    model, cfg = load_checkpoint(tmp_path / "a" / "best.pt")
    assert model.n_features == N_FEATURES
    assert cfg["drift"] == "random" and cfg["estimates"] == "observed"
    c = Trainer(replace(config, drift="none", estimates="nominal"), tmp_path / "c")
    c.run()
    assert not torch.equal(c.model.trunk[0].weight, a.model.trunk[0].weight)


def test_old_checkpoints_read_the_first_features(tmp_path):
    """A network made for the 18 features before observations loads and ignores the rest."""
    with torch.random.fork_rng():
        torch.manual_seed(2)
        old = PairScorer(N_BASE_FEATURES, hidden=8, init="mct")
        torch.nn.init.normal_(old.head.weight)
    save_checkpoint(tmp_path / "old.pt", old, {})
    loaded, _ = load_checkpoint(tmp_path / "old.pt")
    assert loaded.n_features == N_BASE_FEATURES
    x = torch.randn(2, 5, N_FEATURES)
    y = x.clone()
    y[..., N_BASE_FEATURES:] = torch.randn(2, 5, N_FEATURES - N_BASE_FEATURES)
    with torch.inference_mode():
        np.testing.assert_array_equal(loaded.score(x).numpy(), loaded.score(y).numpy())
        np.testing.assert_array_equal(
            loaded.score(x).numpy(), old.score(x[..., :N_BASE_FEATURES]).numpy()
        )
    odd = PairScorer(5, hidden=4, init="zero")
    save_checkpoint(tmp_path / "odd.pt", odd, {})
    with pytest.raises(ConfigError, match="made for 5 pair features"):
        load_checkpoint(tmp_path / "odd.pt")


def test_greedy_evaluation_on_drift_runs():
    spec = InstanceSpec("iot-small", 0.85, 150, drift="random", estimates="observed")
    res = run_greedy(lambda obs, mask, best: best, spec, [11, 12])
    assert [r["tasks"] for r in res] == [150, 150]
    again = run_greedy(lambda obs, mask, best: best, spec, [11, 12])
    assert [r["mean_response_s"] for r in res] == [r["mean_response_s"] for r in again]


def test_env_with_drift():
    """The Gymnasium environment draws drift per episode, shows the observations, stays
    deterministic, and its rewards still sum to minus the objective."""
    from hybridsched.train.env import IoTCloudEnv

    def play(seed):
        env = IoTCloudEnv("iot-small", 0.85, 150, drift="random", estimates="observed")
        obs, info = env.reset(seed=seed)
        total, seen, trace = 0.0, 0.0, []
        done = False
        while not done:
            seen = max(seen, float(np.abs(obs["nodes"][:, OBS]).max()))
            obs, reward, done, _, step_info = env.step(0)
            total += reward
            trace.append(reward)
        return info, total, seen, trace, step_info

    info, total, seen, trace, last = play(3)
    assert info["condition_windows"] > 0
    assert seen > 0.05  # observed factors moved away from nominal
    assert total == pytest.approx(-last["objective"] / 10.0, rel=1e-9)
    assert play(3)[3] == trace
    with pytest.raises(ConfigError, match="drift: must be one of"):
        IoTCloudEnv("iot-small", drift="often")


def test_hybrid_config_refuses_unknown_drift():
    from hybridsched.train.config import HybridTrainConfig

    with pytest.raises(ConfigError, match="drift: must be one of none, scenario, random"):
        HybridTrainConfig(drift="gradual")
    assert HybridTrainConfig(drift="random", estimates="observed").spec().drift == "random"


def test_hybrid_collection_runs_on_drift():
    """The hybrid trainer's snapshots come from the drifting episode and see its observations."""
    from hybridsched.train.config import HybridTrainConfig
    from hybridsched.train.hybrid_trainer import collect_all

    config = HybridTrainConfig(scenario="iot-small", n_tasks=300, drift="random", load=0.9)
    snaps = collect_all(config, 5)
    assert len(snaps) > 10
    assert max(float(s.x[..., OBS].abs().max()) for s in snaps) > 0.05
    calm = collect_all(replace(config, drift="none"), 5)
    assert max(float(s.x[..., OBS].abs().max()) for s in calm) == 0.0


def test_the_distilled_checkpoint_is_its_own_policy():
    """rl-drift.pt (the hybrid distilled, docs/RL.md) reads the observations and places
    tasks otherwise than MCT, deterministically."""
    from hybridsched.policies.rl import DEFAULT_CHECKPOINT

    path = DEFAULT_CHECKPOINT.with_name("rl-drift.pt")
    model, config = load_checkpoint(path)
    assert model.n_features == 21 and config["method"] == "distill-hybrid"
    assert config["max_regret"] == 0.25
    cluster, workload, cond = _instance(600, 5)
    opts = SimOptions(conditions=cond, estimates="observed")

    def run(name, **args):
        policy = make_policy(name, args)
        return simulate(cluster, workload, policy, options=opts, decision_interval=0.5,
                        queue="priority")  # fmt: skip

    a, b = run("rl", checkpoint=str(path)), run("rl", checkpoint=str(path))
    np.testing.assert_array_equal(a.tasks["node"], b.tasks["node"])
    mct = run("mct")
    moved = np.mean(a.tasks["node"] != mct.tasks["node"])
    assert 0.2 < moved < 0.95  # its own choices, not MCT's, yet not arbitrary


class _TorchRL:
    """The rl policy's decision loop with torch's forward (the compiled one's reference)."""

    name = "rl-torch"

    def __init__(self, model: PairScorer, max_regret: float = np.inf) -> None:
        self.model = model
        self.cut = max_regret / (1 + max_regret) if max_regret < np.inf else np.inf

    def reset(self, cluster, rng) -> None:
        from hybridsched.learn.features import node_table

        self.static = node_table(cluster)

    def assign(self, tasks, view) -> np.ndarray:
        from hybridsched.learn.features import (
            N_FEATURES,
            observe_nodes,
            pair_features_one,
            place_tentative,
        )

        proj, pmin = view.core_free_s.copy(), view.core_free_min_s.copy()
        qw, rc, rt = view.queued_work_s.copy(), view.recent_count.copy(), view.recent_time_s.copy()
        observe_nodes(self.static, view)
        x = np.zeros((1, view.n_nodes, N_FEATURES), dtype=np.float32)
        mask = np.zeros((1, view.n_nodes), dtype=np.bool_)
        nodes = np.empty(len(tasks), dtype=np.int64)
        for k, i in enumerate(tasks.index):
            pair_features_one(
                view.compiled, i, view.time, pmin, qw, rc, rt, self.static, x[0], mask[0]
            )
            if view.unavailable is not None:
                mask[0] &= ~view.unavailable
            near = mask[0] & ((x[0, :, 0] <= self.cut) | (x[0, :, 1] > 0.5))
            if near.any():
                mask[0] = near
            with torch.inference_mode():
                logits = self.model(torch.from_numpy(x), torch.from_numpy(mask))[0].numpy()
            nodes[k] = int(np.argmax(logits))
            place_tentative(view.compiled, i, nodes[k], view.time, proj, pmin, qw, rc, rt)
        return nodes


def test_compiled_forward_places_as_torch():
    """rl's compiled forward chooses every node as torch's forward of the same network."""
    from hybridsched.policies.rl import DEFAULT_CHECKPOINT

    path = DEFAULT_CHECKPOINT.with_name("rl-drift.pt")
    cluster, workload, cond = _instance(800, 8)
    opts = SimOptions(conditions=cond, estimates="observed")

    def run(policy):
        return simulate(cluster, workload, policy, options=opts, decision_interval=0.5,
                        queue="priority").tasks["node_index"]  # fmt: skip

    model, config = load_checkpoint(path)
    compiled = run(make_policy("rl", {"checkpoint": str(path)}))  # its own max_regret
    np.testing.assert_array_equal(compiled, run(_TorchRL(model, config["max_regret"])))
    assert np.mean(compiled != run(make_policy("mct"))) > 0.2  # not a trivial policy
    free = run(make_policy("rl", {"checkpoint": str(path), "max_regret": "inf"}))
    np.testing.assert_array_equal(free, run(_TorchRL(model)))
    assert np.any(free != compiled)


def test_max_regret_zero_is_mct_and_a_limit_keeps_choices_near_the_best(monkeypatch):
    """``max_regret`` masks the nodes whose estimated response is more than ``1 + cap``
    times the best: at 0 only MCT's node is left (MCT's schedule exactly); at 0.25 every
    choice's regret feature is within 0.25 / 1.25, and the network still moves tasks."""
    from hybridsched.policies.rl import DEFAULT_CHECKPOINT, RLPolicy

    path = str(DEFAULT_CHECKPOINT.with_name("rl-drift.pt"))
    cluster, workload, cond = _instance(600, 5)
    opts = SimOptions(conditions=cond, estimates="observed")

    def run(policy):
        return simulate(cluster, workload, policy, options=opts, decision_interval=0.5,
                        queue="priority")  # fmt: skip

    mct = run(make_policy("mct"))
    at0 = run(make_policy("rl", {"checkpoint": path, "max_regret": "0"}))
    np.testing.assert_array_equal(at0.tasks["node"], mct.tasks["node"])
    assert at0.summary["mean_response_s"] == mct.summary["mean_response_s"]

    # every task's features as rl scores them (tentative placements included), and its node
    import hybridsched.policies.rl as rl_module

    seen, chosen = [], []
    scored = rl_module.block_logits

    def watch(xt, net, h1, h2, scores):
        seen.append(xt[0].copy())  # the regret row of this task's pairs
        return scored(xt, net, h1, h2, scores)

    class Watched(RLPolicy):
        def assign(self, tasks, view):
            nodes = super().assign(tasks, view)
            chosen.extend(int(j) for j in nodes)
            return nodes

    monkeypatch.setattr(rl_module, "block_logits", watch)
    capped = run(Watched(checkpoint=path, max_regret=0.25))
    monkeypatch.undo()
    assert len(seen) == len(chosen) == 600
    regret = np.array([row[j] for row, j in zip(seen, chosen, strict=True)])
    assert regret.max() <= np.float32(0.25 / 1.25)
    assert regret.max() > 0.1  # the limit is reached, not idle
    free = run(make_policy("rl", {"checkpoint": path, "max_regret": "inf"}))
    moved = np.mean(capped.tasks["node"] != mct.tasks["node"])
    assert 0.05 < moved and np.any(capped.tasks["node"] != free.tasks["node"])


def test_max_regret_nan_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="rl max_regret: must be a number"):
        make_policy("rl", {"max_regret": "nan"})
    for bad in (-1.0, float("nan"), "x"):
        path = save_checkpoint(tmp_path / "bad.pt", PairScorer(init="mct"), {"max_regret": bad})
        with pytest.raises(ConfigError, match=r"bad.pt: max_regret in its config must be"):
            make_policy("rl", {"checkpoint": str(path)})
    # an argument >= 0 overrides the checkpoint's own
    assert make_policy("rl", {"checkpoint": str(path), "max_regret": "0.5"})._cap == 0.5
