"""``compare`` on a drifting scenario: every run of a (load, seed) applies the conditions
the scenario draws for it, exactly as ``simulate`` with those conditions would."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from hybridsched.errors import ConfigError
from hybridsched.experiments.compare import (
    CompareConfig,
    nominal_bounds_hold,
    read_experiment,
    run_compare,
)
from hybridsched.experiments.report import save_results
from hybridsched.policies import make_policy
from hybridsched.sim import SimConfig, simulate
from hybridsched.sim.bounds import response_lower_bound
from hybridsched.sim.conditions import Conditions
from hybridsched.sim.options import SimOptions
from hybridsched.workload import generate, generate_instance

DRIFT = CompareConfig(
    scenario="iot-drift", tasks=500, loads=(0.85,), seeds=1, policies=("mct",), workers=1
)

TWO_SEEDS = replace(DRIFT, seeds=2, policies=("mct", "min-min"), workers=2, capacity_bound=True)
"""Two seeds, two policies, two workers and the capacity bound (shared inputs)."""


def _cli(*args: str) -> Any:
    from hybridsched.cli.app import _register, app

    _register()
    return CliRunner().invoke(app, list(args))


def _direct(
    scenario: str,
    with_conditions: bool,
    seed: int = 0,
    tasks: int = 500,
    estimates: str = "nominal",
) -> tuple[Any, Any, Any]:
    """mct simulated directly on the scenario's (load 0.85, seed) instance: (summary,
    cluster, workload), with or without the instance's conditions."""
    inst = generate_instance(scenario, tasks, 0.85, seed)
    cond = Conditions.from_frame(inst.conditions, inst.cluster) if with_conditions else None
    options = SimOptions(conditions=cond, estimates=estimates)
    res = simulate(
        inst.cluster,
        inst.workload,
        make_policy("mct"),
        config=SimConfig(decision_interval=0.5, queue="priority"),
        options=options,
        seed=seed,
    )
    return res.summary, inst.cluster, inst.workload


@pytest.fixture(scope="module")
def drift_row() -> dict[str, Any]:
    (row,) = run_compare(DRIFT)
    return row


def test_compare_applies_the_scenario_conditions(drift_row: dict[str, Any]) -> None:
    drifted, cluster, workload = _direct("iot-drift", with_conditions=True)
    nominal, _, _ = _direct("iot-drift", with_conditions=False)
    # exactly the direct run with the conditions, metric by metric
    for key in ("mean_response_s", "p95_response_s", "deadline_miss_rate", "energy_j"):
        assert drift_row[key] == drifted[key], key
    # and not the same scenario with its conditions removed: slowed nodes and degraded
    # links make tasks slower (measured at 500 tasks: 2.836 s against 2.726 s)
    assert drift_row["mean_response_s"] > 1.02 * nominal["mean_response_s"]
    # generated drift only slows things down, so the nominal bound still holds
    bound = float(response_lower_bound(cluster, workload, 0.5).mean())
    assert drift_row["bound_mean_response_s"] == bound
    assert bound < drift_row["mean_response_s"]


def test_observed_estimates_see_the_scenario_conditions(drift_row: dict[str, Any]) -> None:
    (row,) = run_compare(replace(DRIFT, estimates="observed"))
    direct, _, _ = _direct("iot-drift", with_conditions=True, estimates="observed")
    assert row["mean_response_s"] == direct["mean_response_s"]
    # the observations correct the estimates only where conditions differ from nominal
    assert row["mean_response_s"] != drift_row["mean_response_s"]


def test_a_stationary_scenario_has_no_conditions() -> None:
    cfg = CompareConfig(
        scenario="iot-small", tasks=300, loads=(0.8,), seeds=1, policies=("mct",), workers=1
    )
    assert not cfg.scenario_drifts
    (row,) = run_compare(cfg)
    c, w = generate("iot-small", 300, 0.8, 0)
    res = simulate(c, w, make_policy("mct"), config=SimConfig(0.5, "priority"), seed=0)
    assert row["mean_response_s"] == res.summary["mean_response_s"]


def test_two_workers_and_the_capacity_bound_agree_with_one(drift_row: dict[str, Any]) -> None:
    rows = run_compare(TWO_SEEDS)
    assert [(r["seed"], r["policy"]) for r in rows] == [
        (0, "mct"), (0, "min-min"), (1, "mct"), (1, "min-min")
    ]  # fmt: skip
    assert rows[0]["mean_response_s"] == drift_row["mean_response_s"]
    seed1, _, _ = _direct("iot-drift", with_conditions=True, seed=1)
    assert rows[2]["mean_response_s"] == seed1["mean_response_s"]
    for r in rows:
        cap = r["capacity_bound_mean_response_s"]
        assert r["bound_mean_response_s"] <= cap <= r["mean_response_s"]


def test_config_json_records_the_scenario_conditions(tmp_path: Path) -> None:
    rows = run_compare(DRIFT)
    save_results(rows, DRIFT, tmp_path)
    recorded = json.loads((tmp_path / "config.json").read_text())
    assert recorded["conditions_from_scenario"] is True
    assert recorded["conditions"] is None
    # a config.json is an experiment file: the record is accepted and sets nothing
    assert "conditions_from_scenario" not in read_experiment(tmp_path / "config.json")
    stationary = CompareConfig(scenario="iot-default", policies=("mct",))
    save_results(rows, stationary, tmp_path / "s")
    assert "conditions_from_scenario" not in json.loads((tmp_path / "s/config.json").read_text())


def test_the_report_says_which_conditions_and_estimates_the_runs_had(tmp_path: Path) -> None:
    from hybridsched.experiments.report import write_report

    cfg = CompareConfig(
        scenario="iot-drift", tasks=DRIFT.tasks, loads=DRIFT.loads, seeds=1,
        policies=("mct", "hybrid"), workers=1,
    )  # fmt: skip
    save_results(run_compare(cfg), cfg, tmp_path)
    text = " ".join(write_report(tmp_path).read_text().split())
    assert "the conditions the scenario draws for each load and seed, in every run" in text
    assert "estimates observed for hybrid; nominal for the others" in text
    forced = CompareConfig(
        cluster="c.yaml", workload="w.parquet", conditions="cond.csv", policies=("mct",),
        estimates="observed",
    )  # fmt: skip
    from hybridsched.experiments.report import _describe

    described = _describe(forced)
    assert "conditions `cond.csv` in every run" in described
    assert "; observed estimates;" in described


def test_a_conditions_file_with_a_drifting_scenario_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "cond.csv"
    f.write_text("node,start_s,end_s,speed\nedge-0,0,,0.5\n")
    with pytest.raises(ConfigError, match="scenario 'iot-drift' draws its own conditions"):
        CompareConfig(scenario="iot-drift", conditions=str(f))
    out = tmp_path / "cmp"
    res = _cli("compare", "--scenario", "iot-drift", "--conditions", str(f), "--tasks", "100",
               "--seeds", "1", "--policies", "mct", "--out", str(out))  # fmt: skip
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert f"--conditions {f}: scenario 'iot-drift' draws its own conditions" in text
    assert "Traceback" not in res.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("column", "factor", "holds"),
    [
        ("speed", 0.5, True),
        ("speed", 2.0, False),
        ("latency", 3.0, True),
        ("latency", 0.5, False),
        ("bandwidth", 0.25, True),
        ("bandwidth", 1.5, False),
    ],
)
def test_the_nominal_bound_is_nan_where_a_window_speeds_a_node_up(
    tmp_path: Path, column: str, factor: float, holds: bool
) -> None:
    cluster, workload = generate("iot-small", 200, 0.8, 0)
    node = cluster.node_names[1]
    f = tmp_path / "cond.csv"
    f.write_text(f"node,start_s,end_s,{column}\n{node},0,,{factor}\n")
    cond = Conditions.build(
        {"node": np.array([node]), "start_s": np.array([0.0]), "end_s": np.array([np.inf]),
         column: np.array([factor])},
        cluster,
    )  # fmt: skip
    assert nominal_bounds_hold(cond) is holds
    cfg = CompareConfig(
        scenario="iot-small",
        tasks=200,
        loads=(0.8,),
        seeds=1,
        policies=("mct",),
        workers=1,
        conditions=str(f),
        capacity_bound=True,
    )
    (row,) = run_compare(cfg)
    bound = float(response_lower_bound(cluster, workload, 0.5).mean())
    if holds:
        assert row["bound_mean_response_s"] == bound
        assert row["capacity_bound_mean_response_s"] <= row["mean_response_s"]
    else:
        assert math.isnan(row["bound_mean_response_s"])
        assert math.isnan(row["capacity_bound_mean_response_s"])


@pytest.mark.slow
def test_ray_applies_the_same_conditions_as_the_local_pool() -> None:
    import os

    from hybridsched.experiments.backends import RayBackend
    from hybridsched.experiments.compare import WALL_CLOCK_COLUMNS
    from ray_helpers import RAY_INIT, import_ray

    ray = import_ray()
    local = run_compare(TWO_SEEDS)
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    ray.init(
        address="local",  # a Ray of its own, even where another runs on the machine
        num_cpus=2,
        runtime_env={"env_vars": env} if env["PYTHONPATH"] else None,
        **RAY_INIT,
    )
    try:
        remote = run_compare(TWO_SEEDS, backend=RayBackend())
    finally:
        ray.shutdown()

    def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in rows]

    assert strip(remote) == strip(local)
    direct, _, _ = _direct("iot-drift", with_conditions=True, seed=1)
    assert remote[2]["policy"] == "mct" and remote[2]["seed"] == 1
    assert remote[2]["mean_response_s"] == direct["mean_response_s"]
