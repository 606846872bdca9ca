"""``--estimates auto`` (the default of ``simulate``, ``compare`` and ``serve``): each
policy runs with its own ``preferred_estimates`` (``observed`` for the hybrid and
``rl``, ``nominal`` for the others), an explicit mode is forced on every policy, and the
mode each run used is recorded (docs/MODEL.md 12.1)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from builders import make_cluster
from hybridsched.errors import ConfigError
from hybridsched.experiments.compare import (
    CompareConfig,
    experiment_values,
    resolved_config,
    run_compare,
)
from hybridsched.experiments.store import config_differences
from hybridsched.io import write_cluster, write_workload
from hybridsched.policies import base, make_policy, preferred_estimates, resolve_estimates
from hybridsched.service import ServiceConfig
from hybridsched.sim import SimConfig, simulate
from hybridsched.sim.conditions import Conditions
from hybridsched.sim.options import SimOptions
from hybridsched.workload import generate, generate_instance


def _cli(*args: str) -> Any:
    from hybridsched.cli.app import _register, app

    _register()
    return CliRunner().invoke(app, list(args))


# ------------------------------------------------------------------ the resolution


@pytest.mark.parametrize(
    ("policy", "mode"),
    [("hybrid", "observed"), ("rl", "observed"), ("aco", "nominal"), ("mct", "nominal")],
)
def test_auto_is_each_policys_preference(policy: str, mode: str) -> None:
    assert preferred_estimates(policy) == mode
    assert resolve_estimates("auto", policy) == mode
    # an explicit mode is forced on every policy
    assert resolve_estimates("nominal", policy) == "nominal"
    assert resolve_estimates("observed", policy) == "observed"


def test_every_policy_but_the_learned_ones_prefers_nominal() -> None:
    prefs = {n: preferred_estimates(n) for n in base.available_policies()}
    assert {n for n, m in prefs.items() if m == "observed"} == {"hybrid", "rl"}


def test_a_class_without_a_preference_is_nominal_and_a_bad_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @dataclass
    class Plain:
        name: ClassVar[str] = "plain-test"

    @dataclass
    class Psychic:
        name: ClassVar[str] = "psychic-test"
        preferred_estimates: ClassVar[str] = "clairvoyant"

    monkeypatch.setitem(base._REGISTRY, "plain-test", Plain)
    monkeypatch.setitem(base._REGISTRY, "psychic-test", Psychic)
    assert resolve_estimates("auto", "plain-test") == "nominal"
    with pytest.raises(ConfigError, match="policy 'psychic-test': preferred_estimates must be"):
        resolve_estimates("auto", "psychic-test")
    # a forced mode does not ask the policy
    assert resolve_estimates("observed", "psychic-test") == "observed"


def test_a_bad_mode_names_the_option_the_value_and_the_choices() -> None:
    with pytest.raises(ConfigError) as exc:
        resolve_estimates("exact", "mct", "--estimates")
    assert str(exc.value) == "--estimates: must be one of auto, nominal, observed, got 'exact'"
    with pytest.raises(ConfigError, match="unknown name 'nope'"):
        resolve_estimates("auto", "nope")


# ------------------------------------------------------------------ simulate


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("auto")
    c, w = generate("iot-small", 300, 0.85, 2)
    write_cluster(c, d / "c.yaml")
    write_workload(w, d / "w.parquet")
    return d


def _simulate(files: Path, out: str, *extra: str) -> dict[str, Any]:
    res = _cli(
        "simulate", "--cluster", str(files / "c.yaml"), "--workload", str(files / "w.parquet"),
        "--decision-interval", "0.5", "--out", str(files / out), "--no-progress", *extra,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return json.loads((files / out / "summary.json").read_text())


def test_simulate_records_the_resolved_mode(files: Path) -> None:
    auto = _simulate(files, "hybrid-auto", "--policy", "hybrid")
    nominal = _simulate(files, "hybrid-nominal", "--policy", "hybrid", "--estimates", "nominal")
    mct = _simulate(files, "mct-auto", "--policy", "mct")
    forced = _simulate(files, "mct-observed", "--policy", "mct", "--estimates", "observed")
    assert auto["run"]["estimates"] == "observed"
    assert auto["run"]["options"]["estimates"] == "observed"
    assert nominal["run"]["estimates"] == "nominal" and "options" not in nominal["run"]
    assert mct["run"]["estimates"] == "nominal" and "options" not in mct["run"]
    assert forced["run"]["estimates"] == "observed"
    # no conditions, exact estimates: every observed ratio is 1, so the schedules and
    # every metric are the nominal ones (the hybrid's and mct's)
    for a, b in ((auto, nominal), (forced, mct)):
        for key in ("mean_response_s", "p95_response_s", "deadline_miss_rate", "energy_j"):
            assert a[key] == b[key], key
    ta = pd.read_parquet(files / "hybrid-auto" / "tasks.parquet")
    tn = pd.read_parquet(files / "hybrid-nominal" / "tasks.parquet")
    assert np.array_equal(ta["node"], tn["node"])
    assert np.array_equal(ta["finish_s"], tn["finish_s"])


def test_auto_is_nominal_for_every_policy_with_noisy_estimates(files: Path) -> None:
    from hybridsched.policies import resolve_estimates

    assert resolve_estimates("auto", "hybrid", noisy=True) == "nominal"
    assert resolve_estimates("observed", "mct", noisy=True) == "observed"
    noisy = ("--policy", "hybrid", "--estimate-cv", "0.3", "--seed", "3")
    auto = _simulate(files, "noisy-auto", *noisy)
    nominal = _simulate(files, "noisy-nominal", *noisy, "--estimates", "nominal")
    observed = _simulate(files, "noisy-observed", *noisy, "--estimates", "observed")
    assert auto["run"]["estimates"] == nominal["run"]["estimates"] == "nominal"
    assert observed["run"]["estimates"] == "observed"
    for key in ("mean_response_s", "p95_response_s", "energy_j"):
        assert auto[key] == nominal[key], key
    # the noise does reach the observations: forcing them changes the schedule
    assert observed["mean_response_s"] != nominal["mean_response_s"]


def test_simulate_refuses_a_bad_mode(files: Path) -> None:
    res = _cli(
        "simulate", "--cluster", str(files / "c.yaml"), "--workload", str(files / "w.parquet"),
        "--estimates", "psychic", "--out", str(files / "bad"),
    )  # fmt: skip
    assert res.exit_code == 2
    assert "--estimates: must be one of auto, nominal, observed, got 'psychic'" in res.output
    assert "Traceback" not in res.output
    assert not (files / "bad").exists()


# ------------------------------------------------------------------ compare

DRIFT = CompareConfig(
    scenario="iot-drift",
    tasks=400,
    loads=(0.85,),
    seeds=1,
    policies=("mct", "hybrid"),
    workers=1,
)


def _direct(policy: str, estimates: str) -> dict[str, Any]:
    inst = generate_instance("iot-drift", 400, 0.85, 0)
    cond = Conditions.from_frame(inst.conditions, inst.cluster)
    res = simulate(
        inst.cluster,
        inst.workload,
        make_policy(policy),
        config=SimConfig(decision_interval=0.5, queue="priority"),
        options=SimOptions(conditions=cond, estimates=estimates),
        seed=0,
    )
    return res.summary


@pytest.fixture(scope="module")
def drift_rows() -> list[dict[str, Any]]:
    assert DRIFT.estimates == "auto"  # the default
    return run_compare(DRIFT)


def test_compare_runs_each_policy_in_its_mode(drift_rows: list[dict[str, Any]]) -> None:
    mct, hybrid = drift_rows
    assert (mct["policy"], mct["estimates"]) == ("mct", "nominal")
    assert (hybrid["policy"], hybrid["estimates"]) == ("hybrid", "observed")
    assert mct["mean_response_s"] == _direct("mct", "nominal")["mean_response_s"]
    assert hybrid["mean_response_s"] == _direct("hybrid", "observed")["mean_response_s"]
    cfg = resolved_config(DRIFT)
    assert cfg["estimates"] == "auto"
    assert cfg["estimates_by_policy"] == {"mct": "nominal", "hybrid": "observed"}


def test_compare_with_an_explicit_mode_forces_it(drift_rows: list[dict[str, Any]]) -> None:
    rows = run_compare(replace(DRIFT, estimates="nominal", policies=("hybrid",)))
    (hybrid,) = rows
    assert hybrid["estimates"] == "nominal"
    assert hybrid["mean_response_s"] == _direct("hybrid", "nominal")["mean_response_s"]
    # under drift the observations change the hybrid's schedule
    assert hybrid["mean_response_s"] != drift_rows[1]["mean_response_s"]
    forced = resolved_config(replace(DRIFT, estimates="observed"))
    assert forced["estimates_by_policy"] == {"mct": "observed", "hybrid": "observed"}


def test_compare_config_refuses_a_bad_mode() -> None:
    with pytest.raises(ConfigError, match="estimates: must be one of auto, nominal, observed"):
        replace(DRIFT, estimates="psychic")


def test_a_recorded_config_is_an_experiment_file_and_resumes() -> None:
    recorded = json.loads(json.dumps(resolved_config(DRIFT)))
    assert experiment_values(recorded, "config.json")["estimates"] == "auto"
    assert config_differences(recorded, DRIFT) == []
    # a folder from before auto estimates (no estimates_by_policy) resumes with its mode
    old = {k: v for k, v in recorded.items() if k != "estimates_by_policy"}
    old["estimates"] = "nominal"
    assert config_differences(old, replace(DRIFT, estimates="nominal")) == []
    assert config_differences(old, DRIFT) == [("estimates", "nominal", "auto")]


def test_compare_cli_records_the_modes(tmp_path: Path) -> None:
    res = _cli(
        "compare", "--scenario", "iot-small", "--tasks", "200", "--seeds", "1",
        "--load", "0.8", "--policies", "mct,hybrid", "--workers", "1",
        "--out", str(tmp_path / "c"),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    conf = json.loads((tmp_path / "c" / "config.json").read_text())
    assert conf["estimates"] == "auto"
    assert conf["estimates_by_policy"] == {"mct": "nominal", "hybrid": "observed"}
    rows = pd.read_csv(tmp_path / "c" / "results.csv")
    assert dict(zip(rows["policy"], rows["estimates"], strict=True)) == {
        "mct": "nominal",
        "hybrid": "observed",
    }
    bad = _cli("compare", "--estimates", "psychic", "--out", str(tmp_path / "bad"))
    assert bad.exit_code == 2
    assert "estimates: must be one of auto, nominal, observed, got 'psychic'" in bad.output


# ------------------------------------------------------------------ the service


def test_service_config_resolves_auto_to_the_policys_mode() -> None:
    c = make_cluster([{"cores": 2}, {"cores": 1, "speed": 2.0}])
    assert ServiceConfig(cluster=c, policy="hybrid").estimates == "observed"
    assert ServiceConfig(cluster=c, policy="mct").estimates == "nominal"
    assert ServiceConfig(cluster=c, policy="hybrid", estimates="nominal").estimates == "nominal"
    assert ServiceConfig(cluster=c, policy="mct", estimates="observed").estimates == "observed"
    with pytest.raises(ConfigError) as exc:
        ServiceConfig(cluster=c, estimates="clairvoyant")
    assert str(exc.value) == (
        "--estimates: must be one of auto, nominal, observed, got 'clairvoyant'"
    )


def test_serve_shows_the_resolved_mode(tmp_path: Path) -> None:
    from service_support import ADMIN, Server, write_inputs

    write_inputs(tmp_path, make_cluster([{"cores": 2}, {"cores": 1, "speed": 2.0}]))
    for policy, mode in (("hybrid", "observed"), ("mct", "nominal")):
        srv = Server(tmp_path, f"sqlite:///{tmp_path / (policy + '.db')}", "--policy", policy)
        srv.start(timeout=120.0)
        try:
            info = httpx.get(srv.url + "/v1/cluster", headers=ADMIN, timeout=30).json()
        finally:
            srv.stop()
        assert (info["policy"], info["estimates"]) == (policy, mode)
