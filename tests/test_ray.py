"""The ray backend on a local Ray of 2 CPUs: the results of the local one (sweeps, tune, train)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hybridsched.cli import app
from hybridsched.cli.app import _register
from hybridsched.errors import ConfigError
from hybridsched.experiments.backends import RayBackend
from hybridsched.experiments.compare import WALL_CLOCK_COLUMNS, CompareConfig, run_compare
from hybridsched.experiments.tune import TuneConfig, run_tune
from hybridsched.train.hybrid_trainer import HybridTrainer
from hybridsched.train.trainer import Trainer
from ray_helpers import RAY_INIT, import_ray
from test_train_scaffold import HYBRID_TINY, RL_TINY, _assert_same_weights

ray = import_ray()
_register()
runner = CliRunner()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # one Ray for the module (ray.init takes seconds); the workers find the package
    # under test as this process does
    env = {"PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"),) if p)}
    ray.init(
        address="local",  # a Ray of its own, even where another runs on the machine
        num_cpus=2,
        runtime_env={"env_vars": env} if env["PYTHONPATH"] else None,
        **RAY_INIT,
    )
    yield
    ray.shutdown()


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in rows]


CFG = CompareConfig(
    scenario="iot-small",
    tasks=150,
    seeds=2,
    loads=(0.5, 0.9),
    policies=("mct", "random", "aco"),
    workers=2,
    capacity_bound=True,
)


def test_ray_rows_equal_local_rows() -> None:
    local = run_compare(CFG)
    seen: list[tuple[int, int]] = []
    backend = RayBackend()
    assert backend.start() == 1  # the running Ray is used, not a new one
    remote = run_compare(CFG, progress=lambda k, n: seen.append((k, n)), backend=backend)
    assert len(remote) == 2 * 2 * 3
    assert strip(remote) == strip(local)
    assert seen[0] == (0, 16) and seen[-1] == (16, 16)  # 12 runs and 4 capacity bounds
    assert sum(backend.placements.values()) == 16
    backend.close()
    assert ray.is_initialized()  # not ours: left running


def test_a_failing_run_raises_the_library_error() -> None:
    from hybridsched.experiments.backends import Shared
    from hybridsched.experiments.pool import Job

    def bad(x):
        raise ConfigError(f"bad value {x}")

    with pytest.raises(ConfigError, match="bad value 9"):
        RayBackend().run([Job(bad, (Shared("k", int, ("9",)),), "the bad job")], lambda k, v: None)


def test_cli_records_the_backend_and_resumes_across_backends(tmp_path: Path) -> None:
    out = tmp_path / "o"
    common = ["--scenario", "iot-small", "--tasks", "150", "--seeds", "2", "--workers", "2"]
    common += ["--policies", "mct,random", "--out", str(out)]
    res = runner.invoke(app, ["compare", *common, "--backend", "ray"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["backend"] == "ray"
    assert cfg["ray_nodes"] == 1
    first = sorted(p.name for p in (out / "runs").glob("*.json"))
    assert len(first) == 4
    rows = {p.name: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
    # two runs lost, then resumed on the local pool: the same rows
    for name in first[:2]:
        (out / "runs" / name).unlink()
    res = runner.invoke(app, ["compare", "--resume", "--out", str(out), "--backend", "local"])
    assert res.exit_code == 0, res.output
    again = {p.name: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
    assert strip(list(again.values())) == strip([rows[k] for k in again])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["backend"] == "local" and "ray_nodes" not in cfg


def test_tune_on_ray_equals_tune_on_the_local_pool(tmp_path: Path) -> None:
    kw = dict(policy="aco", scenario="iot-small", tasks=100, trials=2, train_seeds=1)
    kw |= dict(test_seeds=2, batch=2, workers=2)
    local = run_tune(TuneConfig(**kw), tmp_path / "local")
    remote = run_tune(TuneConfig(**kw, backend="ray"), tmp_path / "ray", backend=RayBackend())
    assert remote["best_args"] == local["best_args"]
    assert remote["held_out"] == local["held_out"]
    assert remote["tuned_minus_defaults"] == local["tuned_minus_defaults"]


# ---------------------------------------------------------------- training on Ray

RL_SHARDED = replace(RL_TINY, shards=2)


def test_rl_on_two_ray_workers_reaches_the_weights_of_one_local_worker(tmp_path: Path) -> None:
    # 3 updates in this process; 2 on two Ray actors (one shard each), then 1 more here
    whole = Trainer(replace(RL_SHARDED, max_updates=3), tmp_path / "whole")
    whole.run(minutes=5.0)
    split = Trainer(replace(RL_SHARDED, max_updates=2, backend="ray", workers=2), tmp_path / "r")
    split.run(minutes=5.0)
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (cfg["backend"], cfg["workers"], cfg["shards"], cfg["ray_nodes"]) == ("ray", 2, 2, 1)
    resumed = Trainer.resume(tmp_path / "r")
    assert resumed.config.backend == "ray" and resumed.progress.updates == 2
    resumed.config = replace(resumed.config, backend="local", workers=1, max_updates=3)
    resumed.run(minutes=5.0)
    assert resumed.progress.decisions == whole.progress.decisions == 3 * 4 * 8
    assert resumed.progress.train == whole.progress.train
    _assert_same_weights(resumed.model, whole.model)
    # the shards, not the workers, decide: one shard gives other weights (the check can fail)
    one = Trainer(replace(RL_SHARDED, max_updates=3, shards=1), tmp_path / "one")
    one.run(minutes=5.0)
    assert not torch.equal(one.model.trunk[0].weight, whole.model.trunk[0].weight)


def test_hybrid_on_two_ray_workers_reaches_the_weights_of_one_local_worker(
    tmp_path: Path,
) -> None:
    # two runs with 2 + 1 snapshots: both workers hold some
    cfg = replace(HYBRID_TINY, collect_runs=2, keep=1.0, max_updates=2)
    local = HybridTrainer(cfg, tmp_path / "local").run(minutes=5.0)
    remote = HybridTrainer(replace(cfg, backend="ray", workers=2), tmp_path / "ray")
    remote.run(minutes=5.0)
    assert {w for w, _ in remote._owner} == {0, 1}  # each actor collected one run
    assert len(remote.snaps) == len(local.snaps)
    assert remote.train_cost == local.train_cost
    _assert_same_weights(remote.model, local.model)
    saved = json.loads((tmp_path / "ray" / "config.json").read_text())
    assert (saved["backend"], saved["workers"], saved["ray_nodes"]) == ("ray", 2, 1)
