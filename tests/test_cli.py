"""The command line end to end: generate, simulate, policies (through typer's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hybridsched.cli.app import _register, app
from hybridsched.io import read_cluster, read_workload
from hybridsched.policies import available_policies, make_policy
from hybridsched.sim import SUMMARY_KEYS, simulate

_register()

N_TASKS = 250
TASK_COLUMNS = (
    "task_id",
    "node",
    "decision_s",
    "ready_s",
    "start_s",
    "finish_s",
    "response_s",
    "met_deadline",
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("gen")
    w = folder / "workload.parquet"
    c = folder / "cluster.yaml"
    res = CliRunner().invoke(
        app,
        [
            "generate",
            "--scenario",
            "iot-small",
            "--tasks",
            str(N_TASKS),
            "--load",
            "0.8",
            "--seed",
            "1",
            "--out",
            str(w),
            "--cluster-out",
            str(c),
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"{N_TASKS}" in res.output
    return c, w


def _simulate(c: Path, w: Path, out: Path, *extra: str) -> None:
    res = CliRunner().invoke(
        app, ["simulate", "--cluster", str(c), "--workload", str(w), "--out", str(out), *extra]
    )
    assert res.exit_code == 0, res.output
    assert "summary.json" in res.output


def test_generate_writes_valid_files(generated: tuple[Path, Path]) -> None:
    c, w = generated
    cluster = read_cluster(c)
    wl = read_workload(w, cluster=cluster)
    assert len(wl) == N_TASKS
    assert cluster.name == "iot-small"
    assert cluster.n_nodes == 8


@pytest.mark.parametrize(
    ("policy", "delta", "queue", "seed"),
    [("mct", 0.0, "fifo", 0), ("sufferage", 0.5, "priority", 0), ("random", 0.0, "fifo", 3)],
)
def test_simulate_writes_tasks_and_summary(
    generated: tuple[Path, Path], tmp_path: Path, policy: str, delta: float, queue: str, seed: int
) -> None:
    c, w = generated
    out = tmp_path / "run"
    extra = ("--decision-interval", str(delta), "--queue", queue, "--seed", str(seed))
    _simulate(c, w, out, "--policy", policy, *extra)
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "tasks.parquet"]
    table = pq.read_table(out / "tasks.parquet")
    assert table.num_rows == N_TASKS
    assert set(TASK_COLUMNS) <= set(table.column_names)
    tasks = table.to_pydict()
    cluster = read_cluster(c)
    wl = read_workload(w, cluster=cluster)
    # one row per task, in workload row order; node names from the cluster
    assert tasks["task_id"] == wl.task_id.tolist()
    assert set(tasks["node"]) <= set(cluster.node_names)
    summary = json.loads((out / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert summary["tasks"] == N_TASKS
    assert summary["policy"] == policy
    # the files hold what the library computes for the same inputs
    res = simulate(
        cluster, wl, make_policy(policy), decision_interval=delta, queue=queue, seed=seed
    )
    np.testing.assert_array_equal(np.asarray(tasks["finish_s"]), res.tasks["finish_s"])
    assert tasks["node"] == res.tasks["node"].tolist()
    for key in SUMMARY_KEYS:
        if key != "scheduler_seconds":
            assert summary[key] == res.summary[key], key
    finish = np.asarray(tasks["finish_s"])
    assert summary["makespan_s"] == pytest.approx(finish.max() - wl.arrival_s.min(), rel=1e-12)


def test_simulate_csv(generated: tuple[Path, Path], tmp_path: Path) -> None:
    c, w = generated
    out = tmp_path / "csv"
    _simulate(c, w, out, "--csv")
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "tasks.csv"]
    table = pacsv.read_csv(out / "tasks.csv")
    assert table.num_rows == N_TASKS
    assert set(TASK_COLUMNS) <= set(table.column_names)
    cluster = read_cluster(c)
    assert set(table.column("node").to_pylist()) <= set(cluster.node_names)
    assert table.column("task_id").to_pylist() == read_workload(w).task_id.tolist()
    summary = json.loads((out / "summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(summary)


def test_simulate_from_csv_workload(generated: tuple[Path, Path], tmp_path: Path) -> None:
    # generate can write CSV too; the simulation reads either
    w = tmp_path / "w.csv"
    res = CliRunner().invoke(
        app,
        [
            "generate",
            "--scenario",
            "iot-small",
            "--tasks",
            "40",
            "--out",
            str(w),
            "--cluster-out",
            str(tmp_path / "c.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    out = tmp_path / "run"
    _simulate(tmp_path / "c.json", w, out)
    assert pq.read_table(out / "tasks.parquet").num_rows == 40


def test_policies_lists_every_registered_name() -> None:
    res = CliRunner().invoke(app, ["policies"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    names = available_policies()
    assert len(names) >= 11
    for name, line in names.items():
        assert name in res.output, name
        assert line in res.output, line


def test_no_arguments_shows_help() -> None:
    res = CliRunner().invoke(app, [])
    assert "simulate" in res.output and "generate" in res.output
