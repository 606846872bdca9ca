"""The head-to-head runner, its statistics, report and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from hybridsched.cli import app
from hybridsched.cli.app import _register
from hybridsched.errors import ConfigError, ValidationError
from hybridsched.experiments.compare import CompareConfig, run_compare
from hybridsched.experiments.report import headroom, load_results, save_results, write_report
from hybridsched.experiments.stats import mean_ci, paired_diff
from hybridsched.io import write_cluster, write_workload
from hybridsched.workload import generate

_register()
runner = CliRunner()

SMALL = {"scenario": "iot-small", "tasks": 300, "loads": (0.8,), "seeds": 3}


def test_mean_ci_by_hand() -> None:
    m, h = mean_ci([1.0, 2.0, 3.0, 4.0])
    # sd = sqrt(5/3); t(0.975, 3) = 3.182446305...
    assert m == 2.5
    assert h == pytest.approx(stats.t.ppf(0.975, 3) * np.sqrt(5 / 3) / 2, rel=1e-12)
    assert h == pytest.approx(2.05426, abs=1e-5)
    m1, h1 = mean_ci([7.0])
    assert m1 == 7.0 and np.isnan(h1)


def test_paired_diff_by_hand() -> None:
    d = paired_diff([1.0, 2.0, 3.0], [2.0, 2.9, 4.1], "mean_response_s", "mct")
    # differences -1, -0.9, -1.1: mean -1, sd 0.1, half = t(0.975, 2) * 0.1 / sqrt(3) = 0.248
    assert d.mean == pytest.approx(-1.0)
    assert d.half_ci == pytest.approx(stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3))
    assert d.half_ci == pytest.approx(0.24841, abs=1e-5)
    assert d.relative == pytest.approx(-1.0 / 3.0)
    assert d.relative_half_ci == pytest.approx(0.24841 / 3.0, abs=1e-5)
    assert d.percent() == "-33.33 % (±8.28)"
    assert d.significant
    assert d.n == 3 and d.other == "mct"
    wide = paired_diff([1.0, 2.0, 3.0], [2.0, 2.5, 4.5], "mean_response_s", "mct")
    # differences -1, -0.5, -1.5: half = 4.303 * 0.5 / sqrt(3) = 1.242 > 1
    assert not wide.significant


def test_results_do_not_depend_on_workers() -> None:
    pols = ("mct", "random", "least-loaded")
    one = run_compare(CompareConfig(**SMALL, policies=pols, workers=1))
    two = run_compare(CompareConfig(**SMALL, policies=pols, workers=2))
    assert len(one) == 3 * 3
    for a, b in zip(one, two, strict=True):
        assert a["policy"] == b["policy"] and a["seed"] == b["seed"]
        assert a["mean_response_s"] == b["mean_response_s"]
        assert a["energy_j"] == b["energy_j"]
    # identical workloads: the same seed gives the same task count for every policy
    assert {r["tasks"] for r in one} == {300}


def test_report_files_and_regeneration(tmp_path: Path) -> None:
    cfg = CompareConfig(**SMALL, policies=("mct", "random"), focus="mct", workers=1)
    rows = run_compare(cfg)
    save_results(rows, cfg, tmp_path)
    report = write_report(tmp_path)
    text = report.read_text()
    assert "| mct |" in text and "**mct** against the best other" in text
    plots = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert "cdf_load0.8.png" in plots and "energy_vs_response_load0.8.png" in plots
    assert len(plots) == 10
    df, cfg2 = load_results(tmp_path)
    assert cfg2 == cfg
    assert len(df) == 6
    conf = json.loads((tmp_path / "config.json").read_text())
    assert conf["version"] and conf["seeds_used"] == [0, 1, 2]
    (tmp_path / "report.md").unlink()
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report.md").read_text() == text


def test_headroom_bound_is_below_every_policy_and_reported(tmp_path: Path) -> None:
    cfg = CompareConfig(**SMALL, policies=("mct", "least-loaded"), focus="mct", workers=1)
    rows = run_compare(cfg)
    for r in rows:
        # same workload (load, seed): same bound whatever the policy
        same = [q["bound_mean_response_s"] for q in rows if q["seed"] == r["seed"]]
        assert len(set(same)) == 1
        assert 0 < r["bound_mean_response_s"] <= r["mean_response_s"]
    save_results(rows, cfg, tmp_path)
    df, _ = load_results(tmp_path)
    h = headroom(df, cfg, 0.8)
    assert h is not None and h["best"] == "least-loaded"
    ll = [r["mean_response_s"] for r in rows if r["policy"] == "least-loaded"]
    bound = np.mean([r["bound_mean_response_s"] for r in rows if r["policy"] == "mct"])
    assert h["max_reduction"] == pytest.approx(1 - bound / np.mean(ll))
    assert "No-waiting lower bound" in write_report(tmp_path).read_text()


def test_capacity_bound_is_recorded_once_per_workload_and_reported(tmp_path: Path) -> None:
    from hybridsched.sim.bounds import capacity_lower_bound

    cfg = CompareConfig(
        **SMALL, policies=("mct", "least-loaded"), focus="mct", workers=2, capacity_bound=True
    )
    rows = run_compare(cfg)
    assert len(rows) == 2 * 3  # the bound jobs add no rows
    for seed in range(3):
        mine = [r for r in rows if r["seed"] == seed]
        cluster, workload = generate("iot-small", 300, 0.8, seed)
        want = capacity_lower_bound(cluster, workload, cfg.decision_interval)
        for r in mine:
            assert r["capacity_bound_mean_response_s"] == want
            assert r["bound_mean_response_s"] <= want <= r["mean_response_s"]
    save_results(rows, cfg, tmp_path)
    df, cfg2 = load_results(tmp_path)
    assert cfg2.capacity_bound
    h = headroom(df, cfg, 0.8)
    assert h is not None
    ll = np.mean([r["mean_response_s"] for r in rows if r["policy"] == "least-loaded"])
    cap = np.mean([r["capacity_bound_mean_response_s"] for r in rows if r["policy"] == "mct"])
    assert h["capacity_max_reduction"] == pytest.approx(1 - cap / ll)
    assert h["capacity_max_reduction"] <= h["max_reduction"]
    assert "Capacity lower bound" in write_report(tmp_path).read_text()
    # without the option: no column, and the report says nothing of it
    plain = run_compare(CompareConfig(**SMALL, policies=("mct",), workers=1))
    assert all("capacity_bound_mean_response_s" not in r for r in plain)


def test_report_refuses_a_folder_without_results(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"config\.json"):
        write_report(tmp_path)
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2
    assert "config.json" in res.output and "Traceback" not in res.output


def test_compare_cli_on_files_and_bad_options(tmp_path: Path) -> None:
    cluster, workload = generate("iot-small", 200, 0.8, 1)
    write_cluster(cluster, tmp_path / "c.yaml")
    write_workload(workload, tmp_path / "w.parquet")
    out = tmp_path / "cmp"
    res = runner.invoke(
        app,
        [
            "compare", "--cluster", str(tmp_path / "c.yaml"), "--workload",
            str(tmp_path / "w.parquet"), "--policies", "mct,round-robin", "--seeds", "2",
            "--workers", "1", "--out", str(out),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    df, cfg = load_results(out)
    assert cfg.from_files and len(df) == 4
    # a deterministic policy on a fixed workload: both seeds agree exactly
    mct = df[df["policy"] == "mct"]["mean_response_s"].to_numpy()
    assert mct[0] == mct[1]
    # one section and one row per policy (the loads are NaN: never one per run)
    report = (out / "report.md").read_text()
    assert report.count("## given workload") == 1
    assert report.count("| mct |") == 1 and report.count("| round-robin |") == 1
    assert res.output.count("given workload") == 1
    capped = runner.invoke(
        app,
        [
            "compare", "--cluster", str(tmp_path / "c.yaml"), "--workload",
            str(tmp_path / "w.parquet"), "--policies", "mct", "--seeds", "1",
            "--workers", "1", "--capacity-bound", "--out", str(tmp_path / "cap"),
        ],
    )  # fmt: skip
    assert capped.exit_code == 0, capped.output
    assert "Capacity lower bound" in capped.output
    assert "Capacity lower bound" in (tmp_path / "cap" / "report.md").read_text()
    bad = runner.invoke(app, ["compare", "--policies", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "known policies" in bad.output
    assert not (tmp_path / "x").exists()
    half = runner.invoke(app, ["compare", "--cluster", str(tmp_path / "c.yaml")])
    assert half.exit_code == 2 and "go together" in half.output


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="seeds"):
        CompareConfig(seeds=0)
    with pytest.raises(ConfigError, match="focus"):
        CompareConfig(policies=("mct",), focus="aco")
    with pytest.raises(ConfigError, match="load"):
        CompareConfig(loads=(0.0,))
