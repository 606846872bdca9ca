"""Backends, policy-argument files and ``tune``: what needs no Ray (tests/test_ray*.py run Ray)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hybridsched.cli import app
from hybridsched.cli.app import _register
from hybridsched.errors import ConfigError
from hybridsched.experiments.backends import LocalBackend, Shared, make_backend
from hybridsched.experiments.compare import (
    WALL_CLOCK_COLUMNS,
    CompareConfig,
    experiment_values,
    run_compare,
)
from hybridsched.experiments.pool import Job
from hybridsched.experiments.tune import TuneConfig, TuneError, run_tune
from hybridsched.policies.args import format_policy_args, read_policy_args

_register()
runner = CliRunner()


def _square(x: int) -> int:
    return x * x


def _add(a: int, b: int) -> int:
    return a + b


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in rows]


@pytest.mark.parametrize("workers", [1, 2])
def test_local_backend_resolves_shared_arguments(workers: int) -> None:
    shared = Shared("three", _square, (3,))
    jobs = [Job(_add, (shared, k), f"job {k}") for k in range(4)]
    got: dict[int, int] = {}
    LocalBackend(workers).run(jobs, lambda k, v: got.__setitem__(k, v))
    assert got == {0: 9, 1: 10, 2: 11, 3: 12}


def test_make_backend_checks_its_options() -> None:
    assert isinstance(make_backend("local", 2), LocalBackend)
    with pytest.raises(ConfigError, match="expected one of local, ray, got 'dask'"):
        make_backend("dask", 2)
    with pytest.raises(ConfigError, match="--ray-address: goes with --backend ray"):
        make_backend("local", 2, "10.0.0.1:6379")


def test_backend_is_a_checked_experiment_key() -> None:
    assert experiment_values({"backend": "ray"}, "exp.yaml") == {"backend": "ray"}
    with pytest.raises(ConfigError, match=r"exp\.yaml: backend: expected local or ray, got 'gpu'"):
        experiment_values({"backend": "gpu"}, "exp.yaml")
    with pytest.raises(ConfigError, match="backend: expected local or ray"):
        CompareConfig(backend="spark")


def test_the_cli_does_not_import_ray() -> None:
    import subprocess

    code = (
        "import sys; from hybridsched.cli.app import _register; _register(); "
        "import hybridsched.experiments.backends, hybridsched.experiments.tune; "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_compare_with_a_given_backend_equals_its_default() -> None:
    cfg = CompareConfig(
        scenario="iot-small", tasks=120, seeds=2, policies=("mct", "random"), workers=1
    )
    a = run_compare(cfg)
    b = run_compare(cfg, backend=LocalBackend(2))
    assert len(a) == 4
    assert strip(a) == strip(b)


# --- policy-argument files -------------------------------------------------------------


def test_policy_args_file_round_trip(tmp_path: Path) -> None:
    f = tmp_path / "best.yaml"
    f.write_text(format_policy_args("aco", {"ants": 4, "alpha": 1.5, "prune": False}, "note"))
    assert f.read_text().startswith("# note\npolicy: aco\n")
    assert read_policy_args(f) == ("aco", {"ants": "4", "alpha": "1.5", "prune": "false"})
    assert read_policy_args(f, "aco")[0] == "aco"


@pytest.mark.parametrize(
    ("text", "policy", "message"),
    [
        ("- 1\n- 2\n", "aco", "expected a mapping of argument names to values, got list"),
        ("ants: 4\n", None, "no `policy` key"),
        ("policy: aco\nants: 4\n", "mct", "arguments are for policy 'aco', not 'mct'"),
        ("policy: aco\nants: [1, 2]\n", None, "ants: expected a number, string or true/false"),
        ("policy: aco\nantz: 4\n", None, "unknown argument(s) 'antz'"),
        ("policy: aco\nants: many\n", None, "ants"),
        ("policy: aco\nants: 4\n  - x: {\n", None, "not valid YAML"),
        ("policy: aco\nants: 4\nants: 8\n", None, "key 'ants' given twice in one mapping"),
    ],
)
def test_policy_args_file_errors(tmp_path: Path, text: str, policy: str | None, message: str):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as exc:
        read_policy_args(f, policy)
    assert str(exc.value).startswith(f"--policy-args {f}: ")
    assert message in str(exc.value)


def test_simulate_takes_a_policy_args_file(tmp_path: Path) -> None:
    from hybridsched.io import write_cluster, write_workload
    from hybridsched.workload import generate

    cluster, workload = generate("iot-small", 80, 0.7, 0)
    write_cluster(cluster, tmp_path / "c.yaml")
    write_workload(workload, tmp_path / "w.csv")
    args = tmp_path / "a.yaml"
    args.write_text("policy: aco\nants: 2\niterations: 2\n")
    base = ["simulate", "--cluster", str(tmp_path / "c.yaml"), "--workload"]
    base += [str(tmp_path / "w.csv"), "--policy", "aco", "--decision-interval", "0.5"]
    by_file = runner.invoke(app, [*base, "--policy-args", str(args), "--out", str(tmp_path / "f")])
    assert by_file.exit_code == 0, by_file.output
    by_opt = runner.invoke(
        app,
        [
            *base,
            "--policy-arg",
            "ants=2",
            "--policy-arg",
            "iterations=2",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert by_opt.exit_code == 0, by_opt.output
    a = json.loads((tmp_path / "f" / "summary.json").read_text())
    b = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert a["mean_response_s"] == b["mean_response_s"]
    bad = runner.invoke(app, [*base, "--policy-args", str(tmp_path / "none.yaml")])
    assert bad.exit_code == 2
    assert "none.yaml: cannot be read" in bad.output


def test_compare_takes_policy_args_files_under_policy_arg(tmp_path: Path) -> None:
    args = tmp_path / "a.yaml"
    args.write_text("policy: aco\nants: 2\niterations: 3\n")
    res = runner.invoke(
        app,
        [
            *("compare", "--scenario", "iot-small", "--tasks", "100", "--seeds", "1"),
            *("--workers", "1", "--policies", "aco", "--policy-args", str(args)),
            *("--policy-arg", "aco.iterations=2", "--out", str(tmp_path / "o")),
        ],
    )
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "o" / "config.json").read_text())
    assert cfg["policy_args"] == {"aco": {"ants": "2", "iterations": "2"}}
    assert cfg["backend"] == "local"
    assert "ray_nodes" not in cfg


# --- tune ------------------------------------------------------------------------------

TINY_TUNE = dict(
    policy="aco",
    scenario="iot-small",
    tasks=100,
    trials=2,
    train_seeds=1,
    test_seeds=2,
    batch=2,
    workers=1,
)


def test_tune_config_checks() -> None:
    with pytest.raises(ConfigError, match="'mct' has no tunable arguments; tunable policies"):
        TuneConfig(policy="mct")
    with pytest.raises(ConfigError, match="--test-seeds: must be >= 2, got 1"):
        TuneConfig(policy="aco", test_seeds=1)
    with pytest.raises(ConfigError, match="--metric: expected one of"):
        TuneConfig(policy="aco", metric="speed")


def test_tune_writes_best_args_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "t"
    first = run_tune(TuneConfig(**TINY_TUNE), out)
    trials = json.loads((out / "evaluation.json").read_text())
    assert trials == json.loads(json.dumps(first))
    assert first["trials"] == 2
    name, args = read_policy_args(out / "best_args.yaml")
    assert name == "aco"
    assert args == first["best_args"]
    assert set(args) == {
        "ants", "iterations", "candidates", "alpha", "beta", "rho", "w_miss", "w_energy", "w_wait"
    }  # fmt: skip
    # the best trial is the one with the lowest objective
    import pandas as pd

    df = pd.read_csv(out / "trials.csv")
    assert len(df) == 2
    before = df["value"].tolist()
    assert first["best_objective"] == pytest.approx(df["value"].min())
    # held-out pairs: one per (load, test seed); both sides ran the same workloads
    diffs = {d["metric"]: d for d in first["tuned_minus_defaults"]}
    assert diffs["mean_response_s"]["n"] == 2
    tuned = first["held_out"]["tuned"]["mean_response_s"]
    default = first["held_out"]["defaults"]["mean_response_s"]
    assert diffs["mean_response_s"]["mean"] == pytest.approx(tuned - default)
    # the same command again, with more trials: the finished ones are kept
    again = run_tune(TuneConfig(**{**TINY_TUNE, "trials": 3}), out)
    assert again["trials"] == 3
    df = pd.read_csv(out / "trials.csv")
    assert list(df["number"])[:2] == [0, 1]
    assert df["value"].iloc[:2].tolist() == before
    assert len(df) == 3
    with pytest.raises(TuneError, match=r"other settings: tasks \(folder: 100, now: 200\)"):
        run_tune(TuneConfig(**{**TINY_TUNE, "tasks": 200}), out)


def test_tune_is_deterministic_and_cli_reports(tmp_path: Path) -> None:
    a = run_tune(TuneConfig(**TINY_TUNE), tmp_path / "a")
    res = runner.invoke(
        app,
        [
            *("tune", "--policy", "aco", "--scenario", "iot-small", "--tasks", "100"),
            *("--trials", "2", "--train-seeds", "1", "--test-seeds", "2", "--batch", "2"),
            *("--workers", "2", "--out", str(tmp_path / "b")),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "tuned minus defaults" in res.output
    b = json.loads((tmp_path / "b" / "evaluation.json").read_text())
    assert b["best_args"] == a["best_args"]
    assert b["held_out"] == a["held_out"]
    bad = runner.invoke(app, ["tune", "--policy", "mct", "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2
    assert "'mct' has no tunable arguments" in bad.output
    assert yaml.safe_load((tmp_path / "b" / "best_args.yaml").read_text())["policy"] == "aco"


def test_tune_reruns_the_trials_of_an_interrupted_batch(tmp_path: Path) -> None:
    import optuna

    from hybridsched.experiments.tune import open_study, sample_args

    cfg = TuneConfig(**TINY_TUNE)
    study = open_study(cfg, tmp_path)
    cut = study.ask()  # asked, never told: the run was interrupted during its batch
    cut_args = sample_args(cut, "aco")
    result = run_tune(cfg, tmp_path)
    trials = open_study(cfg, tmp_path).get_trials()
    assert trials[0].state == optuna.trial.TrialState.FAIL
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == result["trials"] == 2
    assert done[0].params == cut.params
    assert sample_args(optuna.trial.FixedTrial(done[0].params), "aco") == cut_args
