"""Bad input (docs/MODEL.md, "Workload file" and "Cluster file") is refused with a message that
names the file, the row or field and the bad value; nothing is run or written.

Every case goes through the library readers (``hybridsched.io``) and through the CLI.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from hybridsched.cli.app import _register, app
from hybridsched.errors import ValidationError
from hybridsched.io import read_cluster, read_workload

_register()

HEADER = "task_id,arrival_s,region,data_mb,work_gi,memory_mb,deadline_s,priority\n"
GOOD_ROW = "1,0,0,1,1,10,,0\n"  # row 1; the bad value is always in row 2

GOOD_CLUSTER: dict[str, Any] = {
    "name": "x",
    "regions": 2,
    "nodes": [
        {
            "name": "a",
            "tier": "edge",
            "cores": 2,
            "speed": 1.0,
            "memory_mb": 100,
            "bandwidth_mb_s": 10,
            "power_idle_w": 1,
            "power_max_w": 2,
            "latency_s": [0.125, 0.25],
        },
        {
            "name": "b",
            "cores": 1,
            "speed": 2.0,
            "memory_mb": 50,
            "bandwidth_mb_s": 10,
            "power_idle_w": 1,
            "power_max_w": 2,
            "latency_s": [0.125, 0.25],
        },
    ],
}


def write_good(folder: Path) -> tuple[Path, Path]:
    c = folder / "good_cluster.yaml"
    c.write_text(yaml.safe_dump(GOOD_CLUSTER))
    w = folder / "good_workload.csv"
    w.write_text(HEADER + GOOD_ROW + "2,1,1,1,1,10,5,1\n")
    return c, w


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def assert_cli_refuses(res: Any, out: Path, needles: list[str]) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "error" in res.output
    for s in needles:
        assert s in res.output, (s, res.output)
    assert not out.exists()


# ------------------------------------------------------------------------------- workloads

# name -> (row 2 of the CSV, or a full text, the expected fragments: field and bad value)
WORKLOAD_CASES: dict[str, tuple[str, list[str]]] = {
    "text_in_float_column": ("2,abc,1,1,1,10,5,1\n", ["row 2", "arrival_s", "abc"]),
    "text_in_int_column": ("xx,1,1,1,1,10,5,1\n", ["row 2", "task_id", "xx"]),
    "text_in_priority": ("2,1,1,1,1,10,5,high\n", ["row 2", "priority", "high"]),
    "text_in_deadline": ("2,1,1,1,1,10,soon,1\n", ["row 2", "deadline_s", "soon"]),
    "negative_arrival": ("2,-1,1,1,1,10,5,1\n", ["row 2", "arrival_s", "-1"]),
    "negative_data": ("2,1,1,-1.5,1,10,5,1\n", ["row 2", "data_mb", "-1.5"]),
    "negative_memory": ("2,1,1,1,1,-10,5,1\n", ["row 2", "memory_mb", "-10"]),
    "negative_deadline": ("2,1,1,1,1,10,-5,1\n", ["row 2", "deadline_s", "-5"]),
    "zero_deadline": ("2,1,1,1,1,10,0,1\n", ["row 2", "deadline_s", "0"]),
    "negative_priority": ("2,1,1,1,1,10,5,-1\n", ["row 2", "priority", "-1"]),
    "fractional_priority": ("2,1,1,1,1,10,5,1.5\n", ["row 2", "priority", "1.5"]),
    "negative_region": ("2,1,-1,1,1,10,5,1\n", ["row 2", "region", "-1"]),
    "zero_work": ("2,1,1,1,0,10,5,1\n", ["row 2", "work_gi", "0"]),
    "negative_work": ("2,1,1,1,-2,10,5,1\n", ["row 2", "work_gi", "-2"]),
    "nan_work": ("2,1,1,1,nan,10,5,1\n", ["row 2", "work_gi", "NaN"]),
    "empty_work": ("2,1,1,1,,10,5,1\n", ["row 2", "work_gi", "NaN"]),
    "nan_arrival": ("2,NaN,1,1,1,10,5,1\n", ["row 2", "arrival_s", "NaN"]),
    "inf_arrival": ("2,inf,1,1,1,10,5,1\n", ["row 2", "arrival_s", "inf"]),
    "empty_priority": ("2,1,1,1,1,10,5,\n", ["row 2", "priority", "nan"]),
    "duplicate_task_id": ("1,1,1,1,1,10,5,1\n", ["row 2", "task_id", "duplicate", "1"]),
    "region_out_of_range": ("2,1,2,1,1,10,5,1\n", ["row 2", "region", "2"]),
    "fits_no_node": ("2,1,1,1,1,1000,5,1\n", ["row 2", "memory_mb", "1000"]),
}


@pytest.mark.parametrize("case", sorted(WORKLOAD_CASES))
def test_bad_workload_csv(tmp_path: Path, case: str) -> None:
    row, needles = WORKLOAD_CASES[case]
    cluster_path, _ = write_good(tmp_path)
    path = tmp_path / f"wl_{case}.csv"
    path.write_text(HEADER + GOOD_ROW + row)
    cluster = read_cluster(cluster_path)
    with pytest.raises(ValidationError) as info:
        read_workload(path, cluster=cluster)
    msg = str(info.value)
    assert path.name in msg
    for s in needles:
        assert s in msg, (s, msg)
    out = tmp_path / "out"
    res = invoke(
        "simulate", "--cluster", str(cluster_path), "--workload", str(path), "--out", str(out)
    )
    assert_cli_refuses(res, out, [path.name, *needles])


def test_missing_column(tmp_path: Path) -> None:
    cluster_path, _ = write_good(tmp_path)
    path = tmp_path / "no_deadline_col.csv"
    path.write_text("task_id,arrival_s,region,data_mb,work_gi,memory_mb,priority\n1,0,0,1,1,10,0\n")
    with pytest.raises(ValidationError, match="deadline_s") as info:
        read_workload(path)
    assert path.name in str(info.value)
    assert "missing" in str(info.value)
    out = tmp_path / "out"
    res = invoke(
        "simulate", "--cluster", str(cluster_path), "--workload", str(path), "--out", str(out)
    )
    assert_cli_refuses(res, out, [path.name, "missing", "deadline_s"])


def _write_parquet(path: Path, **override: Any) -> None:
    cols: dict[str, Any] = {
        "task_id": np.array([1, 2]),
        "arrival_s": np.array([0.0, 1.0]),
        "region": np.array([0, 1]),
        "data_mb": np.array([1.0, 1.0]),
        "work_gi": np.array([1.0, 1.0]),
        "memory_mb": np.array([10.0, 10.0]),
        "deadline_s": pa.array([None, 5.0], type=pa.float64()),
        "priority": np.array([0, 1]),
    }
    cols.update(override)
    pq.write_table(pa.table(cols), path)


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ({"work_gi": np.array([1.0, np.nan])}, ["row 2", "work_gi", "NaN"]),
        ({"data_mb": np.array([1.0, -3.0])}, ["row 2", "data_mb", "-3"]),
        ({"arrival_s": pa.array(["0", "later"])}, ["row 2", "arrival_s", "later"]),
        ({"task_id": np.array([4, 4])}, ["row 2", "task_id", "4"]),
        ({"region": np.array([0, 5])}, ["row 2", "region", "5"]),
        ({"priority": np.array([0.0, 0.5])}, ["row 2", "priority", "0.5"]),
    ],
    ids=["nan", "negative", "text", "duplicate", "region", "fractional_int"],
)
def test_bad_workload_parquet(tmp_path: Path, override: dict[str, Any], needles: list[str]) -> None:
    cluster_path, _ = write_good(tmp_path)
    path = tmp_path / "bad.parquet"
    _write_parquet(path, **override)
    with pytest.raises(ValidationError) as info:
        read_workload(path, cluster=read_cluster(cluster_path))
    msg = str(info.value)
    assert path.name in msg
    for s in needles:
        assert s in msg, (s, msg)
    out = tmp_path / "out"
    res = invoke(
        "simulate", "--cluster", str(cluster_path), "--workload", str(path), "--out", str(out)
    )
    assert_cli_refuses(res, out, [path.name, *needles])


def test_nan_deadline_in_parquet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nan_deadline.parquet"
    _write_parquet(path, deadline_s=pa.array([None, float("nan")], type=pa.float64()))
    with pytest.raises(ValidationError, match="deadline_s"):
        read_workload(path)


def test_empty_deadline_means_no_deadline(tmp_path: Path) -> None:
    cluster_path, _ = write_good(tmp_path)
    csv = tmp_path / "empty_deadlines.csv"
    csv.write_text(HEADER + GOOD_ROW + "2,1,1,1,1,10,,1\n3,2,0,0,1,10,4,0\n")
    wl = read_workload(csv, cluster=read_cluster(cluster_path))
    assert wl.deadline_s.tolist() == [np.inf, np.inf, 4.0]
    # a column with only empty cells
    csv2 = tmp_path / "all_empty.csv"
    csv2.write_text(HEADER + GOOD_ROW + "2,1,1,1,1,10,,1\n")
    assert read_workload(csv2).deadline_s.tolist() == [np.inf, np.inf]
    # Parquet nulls
    pqp = tmp_path / "nulls.parquet"
    _write_parquet(pqp)
    assert read_workload(pqp).deadline_s.tolist() == [np.inf, 5.0]
    # and the run accepts it; tasks without a deadline never miss
    out = tmp_path / "out"
    res = invoke(
        "simulate", "--cluster", str(cluster_path), "--workload", str(csv), "--out", str(out)
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == 3
    tasks = pq.read_table(out / "tasks.parquet").to_pydict()
    assert tasks["met_deadline"][:2] == [True, True]


def test_extra_columns_are_kept_and_ignored(tmp_path: Path) -> None:
    path = tmp_path / "extra.csv"
    path.write_text("note," + HEADER.replace("\n", ",kind\n") + "hi,1,0,0,1,1,10,,0,cam\n")
    wl = read_workload(path)
    assert wl.task_id.tolist() == [1]
    assert set(wl.extra) == {"note", "kind"}


@pytest.mark.parametrize(
    ("name", "content", "needles"),
    [
        ("absent.csv", None, ["no such file"]),
        ("absent.parquet", None, ["no such file"]),
        ("workload.txt", HEADER + GOOD_ROW, [".txt"]),
        ("workload.xlsx", HEADER + GOOD_ROW, [".xlsx"]),
        ("garbage.parquet", "this is not parquet", ["Parquet"]),
    ],
)
def test_unreadable_workload_file(
    tmp_path: Path, name: str, content: str | None, needles: list[str]
) -> None:
    cluster_path, _ = write_good(tmp_path)
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValidationError) as info:
        read_workload(path)
    msg = str(info.value)
    assert name in msg
    for s in needles:
        assert s in msg, (s, msg)
    out = tmp_path / "out"
    res = invoke(
        "simulate", "--cluster", str(cluster_path), "--workload", str(path), "--out", str(out)
    )
    assert_cli_refuses(res, out, [name, *needles])


# -------------------------------------------------------------------------------- clusters


def _mutate(fn: Callable[[dict[str, Any]], None]) -> str:
    d = copy.deepcopy(GOOD_CLUSTER)
    fn(d)
    return yaml.safe_dump(d)


def _set(j: int, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def f(d: dict[str, Any]) -> None:
        d["nodes"][j][key] = value

    return f


def _drop(j: int, key: str) -> Callable[[dict[str, Any]], None]:
    def f(d: dict[str, Any]) -> None:
        del d["nodes"][j][key]

    return f


CLUSTER_CASES: dict[str, tuple[str, str, list[str]]] = {
    "missing_field": ("c.yaml", _mutate(_drop(1, "speed")), ["nodes[1]", "speed", "missing"]),
    "missing_latency": ("c.yaml", _mutate(_drop(0, "latency_s")), ["nodes[0]", "latency_s"]),
    "missing_nodes": ("c.yaml", _mutate(lambda d: d.pop("nodes")), ["nodes"]),
    "missing_regions": ("c.yaml", _mutate(lambda d: d.pop("regions")), ["regions"]),
    "cores_zero": ("c.yaml", _mutate(_set(1, "cores", 0)), ["nodes[1]", "cores", "0"]),
    "cores_fraction": ("c.yaml", _mutate(_set(1, "cores", 1.5)), ["nodes[1]", "cores", "1.5"]),
    "cores_text": ("c.yaml", _mutate(_set(0, "cores", "four")), ["nodes[0]", "cores", "four"]),
    "speed_negative": ("c.yaml", _mutate(_set(1, "speed", -1.0)), ["speed", "-1"]),
    "speed_text": ("c.yaml", _mutate(_set(1, "speed", "fast")), ["speed", "fast"]),
    "speed_nan": ("c.yaml", _mutate(_set(1, "speed", float("nan"))), ["speed", "NaN"]),
    "bandwidth_zero": ("c.yaml", _mutate(_set(0, "bandwidth_mb_s", 0)), ["bandwidth_mb_s", "0"]),
    "idle_negative": ("c.yaml", _mutate(_set(0, "power_idle_w", -3)), ["power_idle_w", "-3"]),
    "max_below_idle": (
        "c.yaml",
        _mutate(_set(1, "power_max_w", 0.5)),
        ["nodes[1]", "power_max_w", "0.5", "power_idle_w"],
    ),
    "latency_short": (
        "c.yaml",
        _mutate(_set(1, "latency_s", [0.1])),
        ["nodes[1]", "latency_s", "[0.1]", "2"],
    ),
    "latency_long": (
        "c.yaml",
        _mutate(_set(0, "latency_s", [0.1, 0.2, 0.3])),
        ["nodes[0]", "latency_s", "[0.1, 0.2, 0.3]"],
    ),
    "latency_negative": (
        "c.yaml",
        _mutate(_set(0, "latency_s", [0.1, -0.2])),
        ["latency_s[1]", "-0.2"],
    ),
    "duplicate_names": ("c.yaml", _mutate(_set(1, "name", "a")), ["nodes[1]", "name", "'a'"]),
    "memory_zero": ("c.yaml", _mutate(_set(0, "memory_mb", 0)), ["memory_mb", "got 0"]),
    "yaml_key_twice": (
        "c.yaml",
        "regions: 1\nregions: 2\nnodes: []\n",
        ["not valid YAML", "key 'regions' given twice", "line 2"],
    ),
    "json_key_twice": (
        "c.json",
        '{"regions": 1, "nodes": [{"name": "a", "cores": 1, "cores": 2}]}',
        ["not valid JSON", "key 'cores' given twice"],
    ),
    "not_yaml": ("c.yaml", "nodes: [unclosed\n  - a: {", ["not valid YAML"]),
    "yaml_not_mapping": ("c.yaml", "just a string\n", ["mapping", "str"]),
    "not_json": ("c.json", "{not json", ["not valid JSON"]),
    "unknown_extension": ("c.txt", _mutate(lambda d: None), [".txt"]),
    "unknown_extension_toml": ("c.toml", "name = 'x'\n", [".toml"]),
}


@pytest.mark.parametrize("case", sorted(CLUSTER_CASES))
def test_bad_cluster(tmp_path: Path, case: str) -> None:
    name, text, needles = CLUSTER_CASES[case]
    _, workload_path = write_good(tmp_path)
    path = tmp_path / f"{case}_{name}"
    path.write_text(text)
    with pytest.raises(ValidationError) as info:
        read_cluster(path)
    msg = str(info.value)
    assert path.name in msg
    for s in needles:
        assert s in msg, (s, msg)
    out = tmp_path / "out"
    res = invoke(
        "simulate", "--cluster", str(path), "--workload", str(workload_path), "--out", str(out)
    )
    assert_cli_refuses(res, out, [path.name, *needles])


def test_cluster_json_is_accepted_and_missing_file_refused(tmp_path: Path) -> None:
    good = tmp_path / "c.json"
    good.write_text(json.dumps(GOOD_CLUSTER))
    c = read_cluster(good)
    assert c.node_names == ("a", "b")
    assert c.latency_s.shape == (2, 2)
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ValidationError, match="no such file") as info:
        read_cluster(missing)
    assert "absent.yaml" in str(info.value)
    _, workload_path = write_good(tmp_path)
    out = tmp_path / "out"
    res = invoke(
        "simulate", "--cluster", str(missing), "--workload", str(workload_path), "--out", str(out)
    )
    assert_cli_refuses(res, out, ["absent.yaml", "no such file"])


# ---------------------------------------------------------------------------- CLI options


def _simulate_args(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    c, w = write_good(tmp_path)
    return ["simulate", "--cluster", str(c), "--workload", str(w), "--out", str(out), *extra]


def test_cli_unknown_policy_lists_names(tmp_path: Path) -> None:
    from hybridsched.policies import available_policies

    out = tmp_path / "out"
    res = invoke(*_simulate_args(tmp_path, out, "--policy", "nope"))
    assert_cli_refuses(res, out, ["nope", *available_policies()])


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (("--queue", "lifo"), ["queue", "lifo", "fifo", "priority"]),
        (("--decision-interval", "-1"), ["decision interval", "-1"]),
        (("--decision-interval", "nan"), ["decision interval", "nan"]),
        (("--policy-arg", "foo"), ["--policy-arg", "KEY=VALUE", "foo"]),
        (("--policy-arg", "foo=1"), ["foo", "mct"]),
    ],
    ids=["queue", "negative_interval", "nan_interval", "policy_arg_format", "policy_arg_unknown"],
)
def test_cli_bad_options(tmp_path: Path, extra: tuple[str, ...], needles: list[str]) -> None:
    out = tmp_path / "out"
    res = invoke(*_simulate_args(tmp_path, out, *extra))
    assert_cli_refuses(res, out, needles)


def test_cli_out_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    res = invoke(*_simulate_args(tmp_path, out))
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "not a folder" in res.output
    assert out.read_text() == "not a folder"


def test_cli_generate_unknown_scenario(tmp_path: Path) -> None:
    w = tmp_path / "gen" / "w.parquet"
    c = tmp_path / "gen" / "c.yaml"
    res = invoke(
        "generate", "--scenario", "nope", "--tasks", "10", "--out", str(w), "--cluster-out", str(c)
    )
    assert_cli_refuses(res, tmp_path / "gen", ["nope", "iot-small", "iot-default"])
    assert not w.exists() and not c.exists()


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (("--tasks", "0"), ["n_tasks", "0"]),
        (("--load", "-1"), ["load", "-1"]),
        (("--seed", "-3"), ["seed", "-3"]),
        (("--out", "w.txt"), ["--out", ".txt"]),
    ],
    ids=["tasks", "load", "seed", "suffix"],
)
def test_cli_generate_bad_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: tuple[str, ...], needles: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    res = invoke("generate", "--scenario", "iot-small", "--cluster-out", "c.yaml", *extra)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    for s in needles:
        assert s in res.output, (s, res.output)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- messages with square brackets

# Messages are printed with rich markup escaped: '[...]' in a file name or a bad value
# must reach the user as written (and '[/...]' must not crash the CLI).


def test_cli_message_keeps_brackets_in_file_name(tmp_path: Path) -> None:
    cluster_path, _ = write_good(tmp_path)
    folder = tmp_path / "run[b]"
    folder.mkdir()
    path = folder / "w.csv"
    path.write_text(HEADER + GOOD_ROW + "1,1,1,1,1,10,5,1\n")
    out = tmp_path / "out"
    res = invoke(
        "simulate", "--cluster", str(cluster_path), "--workload", str(path), "--out", str(out)
    )
    assert_cli_refuses(res, out, ["run[b]", "duplicate"])


def test_cli_message_with_closing_tag_in_bad_value(tmp_path: Path) -> None:
    # a text cell "[/i]" in a numeric column: the library message is fine ...
    cluster_path, _ = write_good(tmp_path)
    path = tmp_path / "w.csv"
    path.write_text(HEADER + GOOD_ROW + "2,[/i],1,1,1,10,5,1\n")
    with pytest.raises(ValidationError, match=r"\[/i\]"):
        read_workload(path)
    # ... but the CLI crashes printing it
    out = tmp_path / "out"
    res = invoke(
        "simulate", "--cluster", str(cluster_path), "--workload", str(path), "--out", str(out)
    )
    assert_cli_refuses(res, out, ["w.csv", "arrival_s", "[/i]"])
