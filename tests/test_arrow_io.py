"""Arrow conversions of the fast I/O path: exact round trips, nulls, chunked files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from builders import make_cluster, make_workload
from hybridsched.io import arrow_array, read_table, read_workload, write_workload
from hybridsched.model import Workload


@pytest.mark.parametrize(
    "values",
    [
        np.array([1.5, -0.0, np.inf, 3.25]),
        np.array([1, -2, 3], dtype=np.int64),
        np.array([7, 8], dtype=np.int32),
        np.array([0, 255], dtype=np.uint8),
        np.array([True, False, True, True, False, False, True, False, True]),
        np.array([], dtype=np.float64),
    ],
)
def test_arrow_array_matches_pa_array(values: np.ndarray) -> None:
    assert arrow_array(values).equals(pa.array(values))


def test_arrow_array_nulls_and_strings() -> None:
    valid = np.array([True, False, True])
    got = arrow_array(np.array([1, 2, 3], dtype=np.int32), valid)
    assert got.to_pylist() == [1, None, 3]
    assert got.null_count == 1
    strings = arrow_array(np.array(["a", "bé", ""], dtype=object))
    assert strings.type == pa.string() and strings.to_pylist() == ["a", "bé", ""]
    assert arrow_array(np.array(["x", "yy"])).equals(pa.array(["x", "yy"]))
    masked = arrow_array(np.array(["x", "y", "z"], dtype=object), np.array([True, False, True]))
    assert masked.to_pylist() == ["x", None, "z"]
    # anything else goes through pa.array
    assert arrow_array(np.array([1, 2], dtype=object)).equals(pa.array([1, 2]))


def test_read_table_chunked_and_narrow_types(tmp_path) -> None:
    # several row groups, int32 and float32 columns: values survive exactly
    table = pa.table(
        {
            "a": pa.array(np.arange(10, dtype=np.int32)),
            "b": pa.array(np.linspace(0, 1, 10, dtype=np.float32)),
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=3)
    out = read_table(path)
    np.testing.assert_array_equal(out["a"], np.arange(10))
    np.testing.assert_array_equal(out["b"], np.linspace(0, 1, 10, dtype=np.float32))
    assert not out["a"].flags.writeable


def test_workload_round_trip_keeps_values_and_does_not_alias_inputs(tmp_path) -> None:
    cluster = make_cluster([{}, {}], regions=2)
    wl = make_workload(
        [
            {"task_id": 3, "arrival_s": 0.0, "region": 1, "deadline_s": 2.0},
            {"task_id": 1, "arrival_s": 0.5, "region": 0},
            {"task_id": 2, "arrival_s": 0.5, "region": 1, "deadline_s": 1.0, "priority": 2},
        ]
    )
    write_workload(wl, tmp_path / "w.parquet")
    back = read_workload(tmp_path / "w.parquet", cluster=cluster)
    for name in ("task_id", "arrival_s", "region", "deadline_s", "priority"):
        np.testing.assert_array_equal(getattr(back, name), getattr(wl, name))
    # a caller's writeable array is copied, never frozen under the caller
    arr = np.array([0.0, 1.0, 2.0])
    cols = {k: getattr(wl, k) for k in ("task_id", "region", "data_mb", "work_gi", "memory_mb")}
    built = Workload.build(
        {**cols, "arrival_s": arr, "deadline_s": wl.deadline_s, "priority": wl.priority}
    )
    assert arr.flags.writeable
    arr[0] = 9.0
    assert built.arrival_s[0] == 0.0


def test_simulate_path_does_not_import_pandas(tmp_path) -> None:
    # Arrow's pa.array imports pandas (half a second of start-up); the simulate path
    # reads and writes without it
    code = f"""
import sys
from hybridsched.io import read_cluster, read_workload, write_cluster, write_workload
from hybridsched.policies import make_policy
from hybridsched.results import write_result
from hybridsched.sim import simulate
from hybridsched.workload import generate
c, w = generate("iot-small", 200, 0.7, 1)
assert "pandas" not in sys.modules, "generate"
write_cluster(c, r"{tmp_path}/c.yaml")
write_workload(w, r"{tmp_path}/w.parquet")
c = read_cluster(r"{tmp_path}/c.yaml")
w = read_workload(r"{tmp_path}/w.parquet", cluster=c)
write_result(simulate(c, w, make_policy("mct")), r"{tmp_path}/out")
print("pandas" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_read_table_refuses_a_column_given_twice(tmp_path) -> None:
    from hybridsched.errors import ValidationError

    p = tmp_path / "w.csv"
    p.write_text("task_id,arrival_s,work_gi,work_gi\n0,0,1,2\n")
    with pytest.raises(ValidationError, match=r"w\.csv: column\(s\) work_gi given more than once"):
        read_table(p)
    q = tmp_path / "w.parquet"
    pq.write_table(pa.table([pa.array([1.0]), pa.array([2.0])], names=["a", "a"]), q)
    with pytest.raises(ValidationError, match=r"column\(s\) a given more than once"):
        read_table(q)


def test_read_table_refuse_nan_tells_nan_from_an_empty_cell(tmp_path) -> None:
    from hybridsched.errors import ValidationError

    p = tmp_path / "c.csv"
    p.write_text("a,b\n1,\n2,3\n")
    got = read_table(p, refuse_nan=True)  # an empty cell is not NaN
    assert np.isnan(got["b"][0]) and got["b"][1] == 3.0
    p.write_text("a,b\n1,\n2,nan\n")
    assert np.isnan(read_table(p)["b"]).all()  # without the flag NaN is read as it is
    with pytest.raises(
        ValidationError, match=r"c\.csv: row 2, column b: must be a number, got nan"
    ):
        read_table(p, refuse_nan=True)


def test_load_yaml_refuses_keys_given_twice_and_unhashable_keys_cleanly() -> None:
    import yaml

    from hybridsched.io import duplicate_key_error, load_yaml

    assert load_yaml("a: 1\nb: {c: 2}\n") == {"a": 1, "b": {"c": 2}}
    assert load_yaml("x: &x {p: 1}\ny:\n  <<: *x\n  q: 2\n")["y"] == {"p": 1, "q": 2}
    with pytest.raises(duplicate_key_error(), match=r"key 'a' given twice") as info:
        load_yaml("b: 0\na: 1\na: 2\n")
    assert info.value.problem_mark.line == 2  # the second 'a', 0-based
    with pytest.raises(duplicate_key_error(), match=r"key True given twice .*\(as 1 before\)"):
        load_yaml("1: a\ntrue: b\n")  # one would replace the other in the dict
    with pytest.raises(yaml.YAMLError, match="unhashable") as other:
        load_yaml("? [a]\n: 1\n")  # PyYAML's own refusal, not a TypeError
    assert not isinstance(other.value, duplicate_key_error())


def test_parquet_text_nan_in_a_conditions_file_is_refused(tmp_path) -> None:
    from hybridsched.errors import ValidationError
    from hybridsched.sim.conditions import read_conditions
    from hybridsched.sim.options import read_failures

    cluster = make_cluster([{}, {}])
    p = tmp_path / "c.parquet"
    pq.write_table(
        pa.table({"node": ["n0"], "start_s": [0.0], "end_s": [5.0], "speed": ["nan"]}), p
    )
    with pytest.raises(ValidationError, match=r"row 1, column speed: must be a number, got nan"):
        read_conditions(p, cluster)
    q = tmp_path / "f.parquet"
    pq.write_table(pa.table({"node": ["n0"], "down_s": [1.0], "up_s": ["nan"]}), q)
    with pytest.raises(ValidationError, match=r"row 1, column up_s: must be a number, got nan"):
        read_failures(q, cluster)
    pq.write_table(pa.table({"node": ["n0"], "down_s": [1.0], "up_s": [None]}), q)
    assert read_failures(q, cluster).up_s.tolist() == [np.inf]  # a null is an empty cell
