"""The training scaffold: resume reaches the same weights; the train commands refuse what
does not apply; the colony's parameters are declared once."""

from __future__ import annotations

import dataclasses
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hybridsched.policies import make_policy, policy_params
from hybridsched.policies.colony import ColonyParams, colony_args
from hybridsched.train.hybrid_trainer import HybridTrainConfig, HybridTrainer
from hybridsched.train.trainer import TrainConfig, Trainer

# episodes of 12 tasks and 8 decisions per copy per update: copies finish and restart
# episodes between the stop and the resume
RL_TINY = TrainConfig(
    scenario="iot-small",
    load=0.8,
    n_tasks=12,
    n_envs=4,
    rollout_steps=8,
    candidates=4,
    minibatch=16,
    eval_seeds=1,
    eval_tasks=50,
    eval_every_s=1e9,
    seed=3,
)
HYBRID_TINY = HybridTrainConfig(
    n_tasks=150,
    collect_runs=1,
    eval_seeds=1,
    eval_tasks=100,
    eval_every_s=1e9,
    ants=4,
    seed=4,
)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_rl_resume_reaches_the_weights_of_an_uninterrupted_run(tmp_path: Path) -> None:
    whole = Trainer(replace(RL_TINY, max_updates=4), tmp_path / "whole")
    whole.run(minutes=5.0)
    Trainer(replace(RL_TINY, max_updates=2), tmp_path / "split").run(minutes=5.0)
    resumed = Trainer.resume(tmp_path / "split")
    assert resumed.progress.updates == 2
    resumed.config = replace(resumed.config, max_updates=4)
    resumed.run(minutes=5.0)
    assert resumed.progress.updates == whole.progress.updates == 4
    assert resumed.progress.decisions == whole.progress.decisions == 4 * 4 * 8
    _assert_same_weights(resumed.model, whole.model)
    # the optimiser's moments too: the next update would agree as well
    ma = whole.optim.state_dict()["state"]
    mb = resumed.optim.state_dict()["state"]
    for k in ma:
        assert torch.equal(ma[k]["exp_avg"], mb[k]["exp_avg"])
    # and a different seed gives different weights (the check can fail)
    other = Trainer(replace(RL_TINY, max_updates=4, seed=9), tmp_path / "other")
    other.run(minutes=5.0)
    assert not torch.equal(other.model.trunk[0].weight, whole.model.trunk[0].weight)


class _Presses:
    """A trainer with Ctrl-C pressed during the listed updates (1-based)."""

    presses: tuple[int, ...] = ()

    def update(self) -> None:
        super().update()  # type: ignore[misc]
        for _ in range(self.presses.count(self.progress.updates + 1)):  # type: ignore[attr-defined]
            os.kill(os.getpid(), signal.SIGINT)


class _RlPresses(_Presses, Trainer):
    pass


class _HybridPresses(_Presses, HybridTrainer):
    pass


@pytest.mark.parametrize(
    ("trainer", "pressed", "config", "n"),
    [(Trainer, _RlPresses, RL_TINY, 4), (HybridTrainer, _HybridPresses, HYBRID_TINY, 3)],
)
def test_ctrl_c_stops_after_the_update_and_resumes_as_if_never_stopped(
    tmp_path: Path, trainer, pressed, config, n: int
) -> None:
    whole = trainer(replace(config, max_updates=n), tmp_path / "whole")
    whole.run(minutes=5.0, graceful=True)
    assert not whole.interrupted
    stopped = pressed(replace(config, max_updates=n), tmp_path / "split")
    stopped.presses = (2,)
    stopped.run(minutes=5.0, graceful=True)  # returns: the first Ctrl-C only asks to stop
    assert stopped.interrupted and stopped.progress.updates == stopped.saved_at == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # one validation, at the start: the stop saved the state without another
    assert len((tmp_path / "split" / "curve.csv").read_text().splitlines()) == 1 + 1
    resumed = trainer.resume(tmp_path / "split")
    assert resumed.progress.updates == resumed.saved_at == 2
    resumed.run(minutes=5.0, graceful=True)
    assert not resumed.interrupted and resumed.progress.updates == n
    _assert_same_weights(resumed.model, whole.model)


def test_a_second_ctrl_c_stops_at_once(tmp_path: Path) -> None:
    run = _RlPresses(replace(RL_TINY, max_updates=4), tmp_path / "run")
    run.presses = (2, 2)
    with pytest.raises(KeyboardInterrupt):
        run.run(minutes=5.0, graceful=True)
    assert run.progress.updates == 1  # raised inside update 2, before it was counted
    assert run.saved_at == 0  # what the CLI reports: the state saved at the start
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_graceful_ctrl_c_raises_at_once(tmp_path: Path) -> None:
    # library callers (benchmark loops) keep Python's usual Ctrl-C
    run = _RlPresses(replace(RL_TINY, max_updates=4), tmp_path / "run")
    run.presses = (2,)
    with pytest.raises(KeyboardInterrupt):
        run.run(minutes=5.0)
    assert run.progress.updates == 1 and not run.interrupted


def test_hybrid_resume_reaches_the_weights_of_an_uninterrupted_run(tmp_path: Path) -> None:
    whole = HybridTrainer(replace(HYBRID_TINY, max_updates=3), tmp_path / "whole")
    whole.run(minutes=5.0)
    HybridTrainer(replace(HYBRID_TINY, max_updates=1), tmp_path / "split").run(minutes=5.0)
    resumed = HybridTrainer.resume(tmp_path / "split")
    assert resumed.updates == 1
    resumed.config = replace(resumed.config, max_updates=3)
    resumed.run(minutes=5.0)
    assert resumed.updates == whole.updates == 3
    assert resumed.train_cost == whole.train_cost
    _assert_same_weights(resumed.model, whole.model)


def test_progress_restores_the_field_names_of_older_states() -> None:
    from hybridsched.train.hybrid_trainer import HybridProgress
    from hybridsched.train.trainer import Progress

    old_rl = {"updates": 7, "val_objective": 1.5, "best_objective": 1.25, "mct_objective": 2.0}
    rl = Progress.restore({**old_rl, "train_objective": 3.0, "decisions": 56})
    assert (rl.updates, rl.val, rl.best, rl.mct, rl.train, rl.decisions) == (
        7,
        1.5,
        1.25,
        2.0,
        3.0,
        56,
    )
    hy = HybridProgress.restore({"updates": 2, "last_val": 0.9, "best": 0.8, "train_cost": 4.5})
    assert (hy.val, hy.best, hy.train) == (0.9, 0.8, 4.5)
    assert HybridProgress.restore(dataclasses.asdict(hy)) == hy
    with pytest.raises(TypeError):
        Progress.restore({"no_such_field": 1})


def test_hybrid_config_refuses_a_zero_interval() -> None:
    from hybridsched.errors import ConfigError

    with pytest.raises(ConfigError, match="decision_interval must be > 0"):
        HybridTrainConfig(decision_interval=0.0)


@pytest.mark.parametrize("config_class", [TrainConfig, HybridTrainConfig])
@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("seed", -1, "seed must be an integer >= 0, got -1"),
        ("seed", 1.5, "seed must be an integer >= 0, got 1.5"),
        ("minutes", -2.0, "minutes must be a number >= 0, got -2.0"),
        ("minutes", float("inf"), "minutes must be a number >= 0, got inf"),
        ("workers", 2, "the local backend trains in this process"),
    ],
)
def test_both_configs_check_the_run_fields_alike(config_class, field, value, needle) -> None:
    from hybridsched.errors import ConfigError

    with pytest.raises(ConfigError, match=needle) as err:
        config_class(**{field: value})
    assert str(err.value).startswith("--workers 2:" if field == "workers" else config_class.what)


def test_trainers_spawn_their_streams_from_the_root_seed(tmp_path: Path) -> None:
    import numpy as np

    rl = Trainer(RL_TINY, tmp_path / "rl")
    streams = np.random.SeedSequence(RL_TINY.seed).spawn(4)  # init, sample, order, episode
    assert rl.order_rng.random() == np.random.default_rng(streams[2]).random()
    hy = HybridTrainer(HYBRID_TINY, tmp_path / "hy")
    streams = np.random.SeedSequence(HYBRID_TINY.seed).spawn(3)  # collect, sample, pick
    assert hy.sample_rng.random() == np.random.default_rng(streams[1]).random()
    assert hy.pick_rng.random() == np.random.default_rng(streams[2]).random()


def test_config_from_dict_lists_the_known_keys_and_round_trips() -> None:
    from hybridsched.errors import ConfigError

    for config in (RL_TINY, HYBRID_TINY):
        assert type(config).from_dict(config.to_dict()) == config
        with pytest.raises(ConfigError, match=r"unknown key\(s\) sed; known: .*seed"):
            type(config).from_dict({**config.to_dict(), "sed": 3})


def test_curve_log_takes_its_columns_from_the_rows(tmp_path: Path) -> None:
    from hybridsched.train.scaffold import CurveLog

    log = CurveLog(tmp_path / "curve.csv")
    log.append({"elapsed_s": 1.5, "updates": 1})
    log.append({"elapsed_s": 3.0, "updates": 2})
    assert (tmp_path / "curve.csv").read_text().splitlines() == [
        "elapsed_s,updates",
        "1.5,1",
        "3.0,2",
    ]
    with pytest.raises(ValueError, match="columns \\['elapsed_s', 'updates'\\]"):
        log.append({"updates": 3, "elapsed_s": 4.5})
    assert len(log.rows()) == 2
    empty = tmp_path / "empty.csv"
    empty.touch()  # an empty file is a new one: the header comes with the first row
    CurveLog(empty).append({"elapsed_s": 0.5})
    assert empty.read_text().splitlines() == ["elapsed_s", "0.5"]


@pytest.fixture(scope="module")
def cli():
    from hybridsched.cli.app import _register, app

    _register()
    runner = CliRunner()
    return lambda args: runner.invoke(app, args)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        # options of the other trainer are not options of this one
        (["train", "hybrid", "--envs", "8"], "No such option"),
        (["train", "hybrid", "--steps", "8"], "No such option"),
        (["train", "hybrid", "--w-miss", "5,2,1"], "No such option"),
        (["train", "hybrid", "--w-response", "1"], "No such option"),
        # the hybrid decides batches: 0 is refused, not turned into 0.5
        (["train", "hybrid", "--decision-interval", "0"], "decision_interval must be > 0"),
        (["train", "rl", "--w-miss", "5,2"], "--w-miss: expected one number or 3"),
        # the old spelling names the new one
        (["train", "--policy", "rl", "--minutes", "0"], "`hybridsched train rl ...`"),
        (["train", "--policy=hybrid"], "`hybridsched train hybrid ...`"),
        (["train", "--policy", "mct"], "not trainable"),
        (["train", "sufferage"], "not trainable"),
        # where the work runs: a worker count the backend cannot use is refused up front
        *[
            (["train", cmd, "--backend", "ray", "--workers", bad], msg)
            for cmd in ("rl", "hybrid")
            for bad, msg in (
                ("0", "--workers: must be an integer >= 1, got 0"),
                ("-1", "--workers: must be an integer >= 1, got -1"),
                ("two", "Invalid value for '--workers'"),
                ("1.5", "Invalid value for '--workers'"),
            )
        ],
        (["train", "rl", "--workers", "2"], "--workers 2: the local backend trains in this"),
        (["train", "hybrid", "--workers", "2"], "use --backend ray for more workers"),
        (["train", "rl", "--backend", "spark"], "--backend: expected one of local, ray, got"),
        (["train", "rl", "--ray-address", "h:1"], "--ray-address: goes with --backend ray"),
        (
            ["train", "rl", "--backend", "ray", "--workers", "3", "--shards", "2"],
            "--workers 3: the run has 2 shard(s)",
        ),
        (["train", "rl", "--envs", "4", "--shards", "5"], "more shards than simulator copies"),
        # drift, estimates and the return are validated before anything is written
        (["train", "rl", "--drift", "sideways"], "drift: must be one of none, scenario, random"),
        (["train", "hybrid", "--estimates", "exact"], "estimates: must be one of"),
        (["train", "rl", "--gamma", "1.5"], "gamma: must be in [0, 1], got 1.5"),
        (["train", "rl", "--gae-lambda", "-0.1"], "gae_lambda: must be in [0, 1], got -0.1"),
    ],
)
def test_train_refuses_what_does_not_apply(cli, tmp_path: Path, args, needle) -> None:
    res = cli([*args, "--out", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_resume_refuses_options_that_would_change_the_run(cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    Trainer(replace(RL_TINY, max_updates=1), run).run(minutes=5.0)
    before = (run / "state.pt").read_bytes()
    for extra in (["--scenario", "iot-default"], ["--envs", "8"], ["--seed", "1"]):
        res = cli(["train", "rl", "--resume", str(run), "--minutes", "0", *extra])
        assert res.exit_code == 2, res.output
        assert extra[0] in res.output and "--resume" in res.output
    assert (run / "state.pt").read_bytes() == before
    # one shard: more than one worker cannot apply, and --shards is the run's
    res = cli(["train", "rl", "--resume", str(run), "--backend", "ray", "--workers", "2"])
    assert res.exit_code == 2, res.output
    assert "the run has 1 shard(s)" in res.output
    res = cli(["train", "rl", "--resume", str(run), "--shards", "2"])
    assert res.exit_code == 2 and "--shards" in res.output, res.output
    assert (run / "state.pt").read_bytes() == before
    res = cli(["train", "rl", "--resume", str(run), "--max-updates", "2", "--backend", "local"])
    assert res.exit_code == 0, res.output
    assert Trainer.resume(run).progress.updates == 2


def test_colony_parameters_are_declared_once() -> None:
    """aco's and hybrid's arguments take their type, default and help from ColonyParams
    (the hybrid's one default of its own: prune_alone on)."""
    aco = policy_params("aco")
    hybrid = policy_params("hybrid")
    own = {"prune_alone": True}
    for f in dataclasses.fields(ColonyParams):
        default = ",".join(f.default) if f.name == "seeds" else f.default
        assert aco[f.name][1:] == (default, f.metadata["help"]), f.name
        if f.name in hybrid:
            typ, dflt, help_ = aco[f.name]
            assert hybrid[f.name] == (typ, own.get(f.name, dflt), help_), f.name
    assert set(hybrid) & {f.name for f in dataclasses.fields(ColonyParams)} == {
        "ants", "iterations", "alpha", "beta", "rho", "candidates", "local_search",
        "memory", "memory_rho", "seeds", "ant_limit", "ls_limit", "ls_gap", "prune_alone",
    }  # fmt: skip
    assert make_policy("hybrid").params.prune_alone and not make_policy("aco").params.prune_alone
    with pytest.raises(ValueError, match="not exposed: \\['rho'\\]"):
        colony_args("ants", defaults={"rho": 0.1})
    with pytest.raises(ValueError, match="unknown parameter"):
        colony_args(defaults={"nope": 1})


def test_train_rl_options_reach_the_saved_config(cli, tmp_path: Path) -> None:
    # drift drawn per episode, observed estimates and differential returns, from the CLI
    run = tmp_path / "run"
    res = cli(
        ["train", "rl", "--scenario", "iot-small", "--tasks", "12", "--envs", "4",
         "--steps", "8", "--eval-seeds", "1", "--eval-tasks", "50", "--max-updates", "1",
         "--drift", "random", "--estimates", "observed", "--gamma", "0.99",
         "--gae-lambda", "0.95", "--average-reward", "--out", str(run)]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    c = Trainer.resume(run).config
    assert (c.drift, c.estimates, c.gamma, c.gae_lambda, c.average_reward) == (
        "random", "observed", 0.99, 0.95, True,
    )  # fmt: skip
