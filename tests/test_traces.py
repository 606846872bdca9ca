"""Trace importers: hand-checked fixtures per format, strict mode, detection, rescaling.

The fixtures in tests/data/traces are a few rows each, written by hand to hit
every mapping rule and skip reason; the expected numbers below are worked out
from the rows (see the comment above each test).
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hybridsched.errors import ConfigError, ValidationError
from hybridsched.io import read_workload
from hybridsched.model import Cluster
from hybridsched.workload.traces import (
    FORMATS,
    ImportOptions,
    ImportReport,
    detect_format,
    fnv1a64,
    get_format,
    import_trace,
)
from hybridsched.workload.traces.common import hash_ints, hash_strings
from hybridsched.workload.traces.reader import convert

DATA = Path(__file__).parent / "data" / "traces"
REPO = Path(__file__).resolve().parents[1]
SHARED_TRACES = REPO / ".." / "shared" / "traces"
GENAI = DATA / "alibaba_genai.csv"
AZURE = DATA / "azure_llm.csv"
GOOGLE = DATA / "google_task_events.csv"
ALI2018 = DATA / "alibaba2018_batch_task.csv"
GENERIC = DATA / "generic.csv"
GENERIC_MAP = {
    "arrival": "submit",
    "duration": "runtime",
    "data": "input_mb",
    "group": "user",
    "status": "state",
    "priority": "prio",
}
GENERIC_PARAMS = {"keep_status": "done"}


def region(group: str, n: int) -> int:
    return fnv1a64(group) % n


def assert_balanced(report: ImportReport) -> None:
    assert report.read == report.kept + report.merged + sum(report.skipped.values())


def cluster(regions: int = 3, memory: float = 8192.0) -> Cluster:
    node = {
        "cores": 4,
        "speed": 2.0,
        "memory_mb": memory,
        "bandwidth_mb_s": 50.0,
        "power_idle_w": 10.0,
        "power_max_w": 50.0,
        "latency_s": [0.01] * regions,
    }
    return Cluster.build(
        {
            "regions": regions,
            "nodes": [
                {"name": "a", **node},
                {"name": "b", **node, "cores": 2, "speed": 1.5},
            ],
        }
    )


# ----------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        (GENAI, "alibaba-genai-2026"),
        (AZURE, "azure-llm-2023"),
        (GOOGLE, "google-2011"),
        (ALI2018, "alibaba-2018"),
        (GENERIC, "generic"),
    ],
)
def test_detect_format(path: Path, fmt: str) -> None:
    assert detect_format(path) == fmt


@pytest.mark.parametrize(
    ("fmt", "path", "looks_like"),
    [
        ("alibaba-genai-2026", AZURE, "azure-llm-2023"),
        ("azure-llm-2023", GENAI, "alibaba-genai-2026"),
        ("alibaba-2018", GOOGLE, "google-2011"),
        ("google-2011", ALI2018, "alibaba-2018"),
        ("generic", GOOGLE, "google-2011"),
    ],
)
def test_wrong_format_says_what_it_looks_like(fmt: str, path: Path, looks_like: str) -> None:
    options = ImportOptions(mapping=GENERIC_MAP, params=GENERIC_PARAMS if fmt == "generic" else {})
    with pytest.raises(ValidationError) as err:
        import_trace(fmt, [path], options=options)
    msg = str(err.value)
    assert str(path) in msg
    assert f"does not match format {fmt}" in msg
    assert f"it looks like format {looks_like}: use --format {looks_like}" in msg


def test_unknown_file_content_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "numbers.csv"
    f.write_text("1,2\n3,4\n")
    assert detect_format(f) is None
    with pytest.raises(ValidationError, match="looks like no known trace format"):
        import_trace("azure-llm-2023", [f])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValidationError, match="is empty"):
        import_trace("azure-llm-2023", [empty])
    with pytest.raises(ValidationError, match="no such file"):
        import_trace("azure-llm-2023", [tmp_path / "missing.csv"])


def test_unknown_format_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        get_format("borg-2019")
    for name in FORMATS:
        assert name in str(err.value)


# ----------------------------------------------------------------------------- per format


def test_alibaba_genai_fixture() -> None:
    # Rows: 1 kept (t0), 2 kept (+5 s, IMG_2_IMG: 1 image), 3 FAILED, 4 kept (+20 s,
    # INPAINTING: image + mask, empty prompt lengths = 0), 5 PENDING, 6 exec 'abc',
    # 7 type UPSCALE, 8 PROCESSING, 9 exec 0.
    wl, rep = import_trace(
        "alibaba-genai-2026", [GENAI], options=ImportOptions(regions=3, deadline_factor=3.0)
    )
    assert rep.read == 9 and rep.kept == 3 and rep.merged == 0
    assert rep.skipped == {
        "failed": 1,
        "incomplete": 2,
        "bad_exec_time_seconds": 1,
        "bad_predict_type": 1,
        "zero_duration": 1,
    }
    assert_balanced(rep)
    assert wl.task_id.tolist() == [0, 1, 2]
    assert wl.arrival_s.tolist() == [0.0, 5.0, 20.0]
    assert wl.work_gi.tolist() == [32.0, 40.0, 10.5]
    np.testing.assert_allclose(wl.data_mb, [(63 + 26) / 1e6, 100 / 1e6 + 1.0, 2.0], rtol=1e-15)
    assert wl.priority.tolist() == [0, 1, 2]
    assert wl.deadline_s.tolist() == [96.0, 120.0, 31.5]
    assert wl.memory_mb.tolist() == [0.0, 0.0, 0.0]
    assert wl.region.tolist() == [region(g, 3) for g in ("G0000", "G0001", "G0002")]
    assert rep.span_s == 20.0 and rep.total_work_gi == 82.5


def test_alibaba_genai_params_and_reference_speed() -> None:
    options = ImportOptions(
        reference_speed=2.0,
        deadline_factor=2.0,
        params={"image_mb": "0.5", "prompt_bytes": 0, "priority": "3", "memory_mb": 100},
    )
    wl, _ = import_trace("alibaba-genai-2026", [GENAI], options=options)
    assert wl.work_gi.tolist() == [64.0, 80.0, 21.0]
    # deadline = factor x service time on the reference node = 2 x work / 2
    assert wl.deadline_s.tolist() == [64.0, 80.0, 21.0]
    assert wl.data_mb.tolist() == [0.0, 0.5, 1.0]
    assert wl.priority.tolist() == [3, 3, 3]
    assert wl.memory_mb.tolist() == [100.0] * 3
    assert np.all(wl.region == 0)  # one region by default


def test_azure_fixture() -> None:
    # Kept rows 1-3: arrivals 0, 04.0000000 - 03.9799600 = 0.02004, 04.4863 - 03.97996 = 0.50634;
    # work = ctx x 0.0005 + gen x 0.02; data = ctx x 4 B. Row 4: 0 tokens; rows 5-6: bad
    # ContextTokens (-5, 2.5); row 7: bad TIMESTAMP; row 8: GeneratedTokens empty.
    wl, rep = import_trace(
        "azure-llm-2023", [AZURE], options=ImportOptions(regions=3, deadline_factor=3.0)
    )
    assert (rep.read, rep.kept) == (8, 3)
    assert rep.skipped == {
        "zero_work": 1,
        "bad_ContextTokens": 2,
        "bad_TIMESTAMP": 1,
        "bad_GeneratedTokens": 1,
    }
    assert_balanced(rep)
    np.testing.assert_allclose(wl.arrival_s, [0.0, 0.02004, 0.50634], rtol=1e-12, atol=0)
    np.testing.assert_allclose(wl.work_gi, [2.604, 1.75, 0.595], rtol=1e-12)
    np.testing.assert_allclose(wl.data_mb, [0.019232, 0.01272, 0.00044], rtol=1e-12)
    np.testing.assert_allclose(wl.deadline_s, 3.0 * wl.work_gi, rtol=1e-15)
    assert wl.priority.tolist() == [0, 0, 0]
    # No group field: the region hashes the arrival time (ns since the epoch).
    t_ns = np.array(
        ["2023-11-16T18:17:03.9799600", "2023-11-16T18:17:04", "2023-11-16T18:17:04.4863"],
        dtype="datetime64[ns]",
    ).astype(np.int64)
    assert wl.region.tolist() == (hash_ints(t_ns) % np.uint64(3)).astype(int).tolist()


def test_google_fixture() -> None:
    # Task (100,0): SUBMIT 1 s, UPDATE, SCHEDULE 2 s, FINISH 12 s -> work 10, prio 9 -> 0,
    #   memory 0.25 x 65536, data 0.001 x 100000.
    # Task (100,1): attempt 1 EVICTED; attempt 2 SUBMIT 5 s, SCHEDULE 6 s, FINISH 9 s -> work 3,
    #   arrival 4 s, prio 2 -> 1, memory 0.5 x 65536, data 0.
    # (200,0) FAIL; (300,0) SCHEDULE/FINISH without SUBMIT (2 rows); (400,0) never ends;
    # (500,0) FINISH without SCHEDULE; one event type 12; one row of 4 fields.
    wl, rep = import_trace(
        "google-2011", [GOOGLE], options=ImportOptions(regions=3, deadline_factor=2.0)
    )
    assert (rep.read, rep.kept, rep.merged) == (21, 2, 11)
    assert rep.skipped == {
        "evicted": 1,
        "failed": 1,
        "no_submit": 2,
        "unfinished": 1,
        "never_scheduled": 1,
        "bad_event_type": 1,
        "malformed_row": 1,
    }
    assert_balanced(rep)
    assert wl.arrival_s.tolist() == [0.0, 4.0]
    assert wl.work_gi.tolist() == [10.0, 3.0]
    assert wl.memory_mb.tolist() == [16384.0, 32768.0]
    assert wl.data_mb.tolist() == [100.0, 0.0]
    assert wl.priority.tolist() == [0, 1]
    assert wl.deadline_s.tolist() == [20.0, 6.0]
    expected = int(hash_ints(np.array([100]))[0] % np.uint64(3))
    assert wl.region.tolist() == [expected, expected]  # same job, same region


def test_google_state_crosses_chunks_and_files(tmp_path: Path) -> None:
    whole, rep = import_trace("google-2011", [GOOGLE])
    # Tiny blocks: attempts stay open across many chunks.
    small, rep_small = import_trace("google-2011", [GOOGLE], options=ImportOptions(block_size=256))
    # Split into part files, and gzip one of them.
    lines = GOOGLE.read_text().splitlines(keepends=True)
    part1, part2 = tmp_path / "part-00000.csv.gz", tmp_path / "part-00001.csv"
    with gzip.open(part1, "wt") as f:
        f.writelines(lines[:9])
    part2.write_text("".join(lines[9:]))
    parts, rep_parts = import_trace("google-2011", [part1, part2])
    for wl, r in ((small, rep_small), (parts, rep_parts)):
        assert r.skipped == rep.skipped and (r.read, r.kept, r.merged) == (21, 2, 11)
        for c, v in whole.columns().items():
            np.testing.assert_array_equal(wl.columns()[c], v)


def test_alibaba_2018_fixture() -> None:
    # Terminated rows: start 100 (60 s, type 1, mem 0.5 %), start 170 (30 s, type 2, 1.0 %),
    # start 110 (40 s, type 5, mem empty). Others: Failed, Running, zero duration,
    # end < start, Waiting, task_type 'x', Cancelled. The file is not in time order.
    wl, rep = import_trace(
        "alibaba-2018", [ALI2018], options=ImportOptions(regions=4, deadline_factor=1.5)
    )
    assert (rep.read, rep.kept) == (10, 3)
    assert rep.skipped == {
        "failed": 1,
        "incomplete": 2,
        "cancelled": 1,
        "zero_duration": 1,
        "bad_end_time": 1,
        "bad_task_type": 1,
    }
    assert_balanced(rep)
    assert wl.arrival_s.tolist() == [0.0, 10.0, 70.0]
    assert wl.work_gi.tolist() == [60.0, 40.0, 30.0]
    np.testing.assert_allclose(wl.memory_mb, [0.5 / 100 * 65536, 0.0, 1.0 / 100 * 65536])
    assert wl.priority.tolist() == [0, 4, 1]
    assert wl.deadline_s.tolist() == [90.0, 60.0, 45.0]
    assert wl.region.tolist() == [region(j, 4) for j in ("j_1", "j_7", "j_1")]


def test_generic_csv_and_parquet(tmp_path: Path) -> None:
    # Kept: b (10.0 s, 4 s, no data), a (10.5, 2 s, 5 MB, prio 1), e (13.0, 3 s, 2 MB, prio 2);
    # c is 'failed' (not in keep_status), d has runtime -1.
    options = ImportOptions(regions=3, mapping=GENERIC_MAP, params=GENERIC_PARAMS)
    wl, rep = import_trace("generic", [GENERIC], options=options)
    assert (rep.read, rep.kept) == (5, 3)
    assert rep.skipped == {"excluded_status": 1, "bad_runtime": 1}
    assert wl.arrival_s.tolist() == [0.0, 0.5, 3.0]
    assert wl.work_gi.tolist() == [4.0, 2.0, 3.0]
    assert wl.data_mb.tolist() == [0.0, 5.0, 2.0]
    assert wl.priority.tolist() == [0, 1, 2]
    assert np.all(np.isinf(wl.deadline_s))
    assert wl.region.tolist() == [region(u, 3) for u in ("bob", "alice", "bob")]
    table = pacsv.read_csv(GENERIC)
    pq.write_table(table, tmp_path / "generic.parquet")
    wl2, rep2 = import_trace("generic", [tmp_path / "generic.parquet"], options=options)
    assert rep2.skipped == rep.skipped
    for c, v in wl.columns().items():
        np.testing.assert_array_equal(wl2.columns()[c], v)


def test_generic_datetimes_end_column_and_explicit_deadlines(tmp_path: Path) -> None:
    f = tmp_path / "jobs.csv"
    f.write_text(
        "start,stop,region,deadline\n"
        "2024-01-01 00:00:10,2024-01-01 00:00:15.5,1,\n"
        "2024-01-01 00:00:00,2024-01-01 00:00:04,0,30\n"
        "2024-01-01 00:00:10,2024-01-01 00:00:11,2,\n"
        "2024-01-01 00:00:20,2024-01-01 00:00:19,0,\n"
    )
    options = ImportOptions(
        regions=3,
        deadline_factor=2.0,
        mapping={"arrival": "start", "end": "stop", "region": "region", "deadline": "deadline"},
        params={"time_unit": "datetime"},
    )
    wl, rep = import_trace("generic", [f], options=options)
    assert rep.skipped == {"bad_stop": 1}
    # Ties (the two tasks at 10 s) keep file order.
    assert wl.arrival_s.tolist() == [0.0, 10.0, 10.0]
    assert wl.work_gi.tolist() == [4.0, 5.5, 1.0]
    assert wl.region.tolist() == [0, 1, 2]
    assert wl.deadline_s.tolist() == [30.0, 11.0, 2.0]


def test_generic_parquet_column_types(tmp_path: Path) -> None:
    t = np.array(["2024-01-01T00:00:00", "2024-01-01T00:00:02.5"], dtype="datetime64[ms]")
    f = tmp_path / "x.parquet"
    pq.write_table(pa.table({"t": t, "n": [7, 9], "dur": [1.0, 2.0]}), f)

    def run(arrival: str, unit: str) -> np.ndarray:
        options = ImportOptions(
            mapping={"arrival": arrival, "duration": "dur"}, params={"time_unit": unit}
        )
        return import_trace("generic", [f], options=options)[0].arrival_s

    assert run("t", "datetime").tolist() == [0.0, 2.5]
    assert run("n", "ms").tolist() == [0.0, 0.002]
    with pytest.raises(ValidationError, match="holds int64, not date-times"):
        run("n", "datetime")
    with pytest.raises(ValidationError, match=r"column t: .* cannot be read as double"):
        run("t", "s")


def test_generic_mapping_errors() -> None:
    def run(mapping: dict[str, str], params: dict[str, str] | None = None) -> None:
        import_trace(
            "generic", [GENERIC], options=ImportOptions(mapping=mapping, params=params or {})
        )

    with pytest.raises(ConfigError, match="unknown field"):
        run({"arrival": "submit", "duration": "runtime", "colour": "user"})
    with pytest.raises(ConfigError, match="needs arrival"):
        run({"duration": "runtime"})
    with pytest.raises(ConfigError, match="exactly one of"):
        run({"arrival": "submit"})
    with pytest.raises(ConfigError, match="keep_status"):
        run({"arrival": "submit", "duration": "runtime", "status": "state"})
    with pytest.raises(ValidationError, match=r"no column\(s\) nope"):
        run({"arrival": "submit", "duration": "nope"})
    with pytest.raises(ConfigError, match="time_unit"):
        run({"arrival": "submit", "duration": "runtime"}, {"time_unit": "fortnights"})


# ----------------------------------------------------------------------------- strict mode


@pytest.mark.parametrize(
    ("fmt", "path", "where", "field", "value"),
    [
        ("alibaba-genai-2026", GENAI, "row 6 (line 7)", "exec_time_seconds", "'abc'"),
        ("azure-llm-2023", AZURE, "row 5 (line 6)", "ContextTokens", "'-5'"),
        ("google-2011", GOOGLE, "row 12 (line 12)", "event_type", "'12'"),
        ("alibaba-2018", ALI2018, "row 6 (line 6)", "end_time", "'120'"),
        ("generic", GENERIC, "row 4 (line 5)", "runtime", "'-1'"),
    ],
)
def test_strict_refuses_first_bad_row(
    fmt: str, path: Path, where: str, field: str, value: str
) -> None:
    options = ImportOptions(
        strict=True,
        mapping=GENERIC_MAP if fmt == "generic" else {},
        params=GENERIC_PARAMS if fmt == "generic" else {},
    )
    with pytest.raises(ValidationError) as err:
        import_trace(fmt, [path], options=options)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {where}, field {field}: ")
    assert f"got {value}" in msg
    assert "strict" in msg


def test_strict_reports_a_malformed_row_by_line(tmp_path: Path) -> None:
    f = tmp_path / "events.csv"
    lines = GOOGLE.read_text().splitlines(keepends=True)
    f.write_text(lines[0] + "5600000,,700,0\n" + "".join(lines[1:]))
    with pytest.raises(ValidationError, match=r"row 2 \(line 2\): expected 13 fields, got 4"):
        import_trace("google-2011", [f], options=ImportOptions(strict=True))


def test_malformed_last_row_is_counted_or_refused(tmp_path: Path) -> None:
    f = tmp_path / "azure.csv"
    f.write_text(
        AZURE.read_text().splitlines(keepends=True)[0] + "2023-11-16 18:17:03,1,1\n1,2,3,4\n"
    )
    _, rep = import_trace("azure-llm-2023", [f])
    assert (rep.read, rep.kept, rep.skipped) == (2, 1, {"malformed_row": 1})
    with pytest.raises(ValidationError, match=r"row 2 \(line 3\): expected 3 fields, got 4"):
        import_trace("azure-llm-2023", [f], options=ImportOptions(strict=True))


def test_strict_accepts_a_clean_file_and_filters_failed_records(tmp_path: Path) -> None:
    f = tmp_path / "clean.csv"
    rows = GENAI.read_text().splitlines(keepends=True)
    f.write_text("".join(rows[:6]))  # header, 3 kept, 1 FAILED, 1 PENDING
    wl, rep = import_trace("alibaba-genai-2026", [f], options=ImportOptions(strict=True))
    assert len(wl) == 3 and rep.skipped == {"failed": 1, "incomplete": 1}


def test_line_numbers_count_blank_lines_and_text_fallback(tmp_path: Path) -> None:
    # 300 clean rows then a bad one: the first blocks are read typed, then the
    # file is re-read as text from the first row not yet imported.
    f = tmp_path / "azure.csv"
    body = "".join(
        f"2023-11-16 18:{i // 60:02d}:{i % 60:02d}.5000000,{100 + i},{i % 7}\n" for i in range(300)
    )
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + body + "\n" + "oops,1,1\n")
    options = ImportOptions(block_size=1024)
    wl, rep = import_trace("azure-llm-2023", [f], options=options)
    assert rep.read == 301 and rep.kept == 300 and rep.skipped == {"bad_TIMESTAMP": 1}
    np.testing.assert_allclose(wl.arrival_s, np.arange(300.0))
    np.testing.assert_allclose(
        wl.work_gi, (100 + np.arange(300)) * 0.0005 + np.arange(300) % 7 * 0.02
    )
    with pytest.raises(ValidationError, match=r"row 302 \(line 303\), field TIMESTAMP"):
        import_trace("azure-llm-2023", [f], options=ImportOptions(block_size=1024, strict=True))


# ----------------------------------------------------------------------------- scaling


def test_target_load_rescale_is_exact() -> None:
    c = cluster()
    for rho in (0.3, 0.7, 1.25):
        wl, rep = import_trace(
            "alibaba-genai-2026", [GENAI], options=ImportOptions(cluster=c, target_load=rho)
        )
        load = wl.work_gi.sum() / wl.arrival_s.max() / c.capacity_gi_s
        assert load == pytest.approx(rho, rel=1e-12)
        assert rep.offered_load == pytest.approx(rho, rel=1e-12)
        # capacity 4 x 2 + 2 x 1.5 = 11 GI/s; raw load 82.5 / 20 / 11
        assert rep.time_scale == pytest.approx(82.5 / 20 / 11 / rho, rel=1e-15)
        np.testing.assert_allclose(wl.arrival_s, np.array([0.0, 5.0, 20.0]) * rep.time_scale)
        assert np.all(wl.region < 3)  # regions default to the cluster's


def test_time_scale_multiplies_arrivals() -> None:
    wl, rep = import_trace("alibaba-2018", [ALI2018], options=ImportOptions(time_scale=0.25))
    assert wl.arrival_s.tolist() == [0.0, 2.5, 17.5]
    assert rep.time_scale == 0.25 and rep.span_s == 17.5


def test_option_errors() -> None:
    with pytest.raises(ConfigError, match="needs a cluster"):
        ImportOptions(target_load=0.5)
    with pytest.raises(ConfigError, match="not both"):
        ImportOptions(cluster=cluster(), target_load=0.5, time_scale=2.0)
    with pytest.raises(ConfigError, match="regions"):
        ImportOptions(cluster=cluster(regions=3), regions=2)
    for bad in (0, -1.0, math.inf, math.nan):
        with pytest.raises(ConfigError):
            ImportOptions(deadline_factor=bad)
    with pytest.raises(ConfigError, match="known params"):
        import_trace("azure-llm-2023", [AZURE], options=ImportOptions(params={"speed": 1}))
    with pytest.raises(ConfigError, match="must be a number"):
        import_trace(
            "azure-llm-2023", [AZURE], options=ImportOptions(params={"bytes_per_token": "x"})
        )


def test_target_load_needs_a_time_span(tmp_path: Path) -> None:
    f = tmp_path / "one.csv"
    f.write_text(AZURE.read_text().splitlines(keepends=True)[0] + "2023-11-16 18:17:03,10,10\n")
    with pytest.raises(ConfigError, match="same instant"):
        import_trace("azure-llm-2023", [f], options=ImportOptions(cluster=cluster(), target_load=1))


def test_cluster_skips_tasks_that_fit_no_node() -> None:
    # memory = plan_mem / 100 x 1e6: 5000, 0 and 10000 MB; nodes have 8192.
    options = ImportOptions(cluster=cluster(), params={"machine_memory_mb": 1e6})
    wl, rep = import_trace("alibaba-2018", [ALI2018], options=options)
    assert rep.skipped["fits_no_node"] == 1
    assert wl.work_gi.tolist() == [60.0, 40.0]
    assert_balanced(rep)


def test_limit_keeps_the_first_tasks_and_counts_what_was_read() -> None:
    wl, rep = import_trace("alibaba-genai-2026", [GENAI], options=ImportOptions(limit=2))
    assert (rep.read, rep.kept, rep.skipped) == (2, 2, {})
    wl, rep = import_trace("alibaba-genai-2026", [GENAI], options=ImportOptions(limit=3))
    assert (rep.read, rep.kept, rep.skipped) == (4, 3, {"failed": 1})
    wl, rep = import_trace("google-2011", [GOOGLE], options=ImportOptions(limit=1))
    assert rep.kept == 1 and wl.work_gi.tolist() == [3.0]  # (100,1) finishes first
    assert_balanced(rep)


def test_nothing_to_import_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "failed.csv"
    rows = GENAI.read_text().splitlines(keepends=True)
    f.write_text(rows[0] + rows[3])
    with pytest.raises(ValidationError, match=r"no task to import .*failed: 1"):
        import_trace("alibaba-genai-2026", [f])


def test_output_round_trips_through_the_workload_reader(tmp_path: Path) -> None:
    from hybridsched.io import write_workload

    c = cluster(memory=65536.0)
    wl, _ = import_trace("google-2011", [GOOGLE], options=ImportOptions(cluster=c))
    assert len(wl) == 2
    write_workload(wl, tmp_path / "w.parquet")
    back = read_workload(tmp_path / "w.parquet", cluster=c)
    for col, v in wl.columns().items():
        np.testing.assert_array_equal(back.columns()[col], v)


# ----------------------------------------------------------------------------- helpers


def test_fnv1a64_known_vectors() -> None:
    # Published FNV-1a 64-bit test vectors.
    assert fnv1a64("") == 0xCBF29CE484222325
    assert fnv1a64("a") == 0xAF63DC4C8601EC8C
    assert fnv1a64("foobar") == 0x85944171F73967E8


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=80)), max_size=40))
def test_hash_strings_matches_the_reference(values: list[str | None]) -> None:
    got = hash_strings(pa.array(values, pa.string()))
    assert got.tolist() == [fnv1a64(v or "") for v in values]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.integers(-(10**6), 10**6).map(str),
            st.floats(allow_nan=False, allow_infinity=False).map(repr),
            st.sampled_from(["abc", "1e", "--1", "1.2.3", " "]),
        ),
        max_size=60,
    )
)
def test_convert_flags_exactly_the_cells_that_do_not_parse(values: list[str | None]) -> None:
    arr = pa.array(values, pa.string())
    typed, bad = convert(arr, "float")
    bad = np.zeros(len(values), bool) if bad is None else bad
    for i, v in enumerate(values):
        try:
            expected = None if v is None else float(pa.scalar(v).cast(pa.float64()).as_py())
            ok = True
        except (pa.ArrowInvalid, ValueError):
            ok, expected = False, None
        assert bad[i] == (not ok)
        assert typed[i].as_py() == (expected if ok else None)


# ----------------------------------------------------------------------------- real trace


REAL_GENAI = SHARED_TRACES / "alibaba_lora_request_trace.csv"


@pytest.mark.skipif(not REAL_GENAI.exists(), reason="../shared/traces is absent")
def test_real_alibaba_genai_trace() -> None:
    import pandas as pd

    df = pd.read_csv(REAL_GENAI)
    ok = df[df.predict_status == "SUCCEED"]
    wl, rep = import_trace(
        "alibaba-genai-2026", [REAL_GENAI], options=ImportOptions(regions=5, deadline_factor=4.0)
    )
    assert rep.read == len(df) == 26_823
    assert rep.kept == len(ok)
    assert rep.skipped == {
        "failed": int((df.predict_status == "FAILED").sum()),
        "incomplete": int(df.predict_status.isin(["PENDING", "PROCESSING"]).sum()),
    }
    assert_balanced(rep)
    t = pd.to_datetime(ok.gmt_create)
    np.testing.assert_array_equal(wl.arrival_s, (t - t.min()).dt.total_seconds().to_numpy())
    np.testing.assert_array_equal(wl.work_gi, ok.exec_time_seconds.to_numpy())
    assert np.median(wl.work_gi) == 23.0
    np.testing.assert_array_equal(wl.deadline_s, 4.0 * ok.exec_time_seconds.to_numpy())
    expected_region = [fnv1a64(g) % 5 for g in ok.groupId]
    assert wl.region.tolist() == expected_region
    kind = ok.predict_type.map({"TXT_2_IMG": 0, "IMG_2_IMG": 1, "INPAINTING": 2})
    assert wl.priority.tolist() == kind.tolist()
    c = cluster(regions=5)
    wl2, _ = import_trace(
        "alibaba-genai-2026", [REAL_GENAI], options=ImportOptions(cluster=c, target_load=0.8)
    )
    assert wl2.work_gi.sum() / wl2.arrival_s.max() / c.capacity_gi_s == pytest.approx(0.8)


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def cli() -> CliRunner:
    import hybridsched.cli.trace  # noqa: F401  (registers the command group)

    return CliRunner()


def test_cli_import_writes_the_workload(cli: CliRunner, tmp_path: Path) -> None:
    from hybridsched.cli.app import app
    from hybridsched.io import write_cluster

    write_cluster(cluster(), tmp_path / "c.yaml")
    out = tmp_path / "w.parquet"
    res = cli.invoke(
        app,
        [
            "trace",
            "import",
            "--format",
            "alibaba-genai-2026",
            str(GENAI),
            "--out",
            str(out),
            "--cluster",
            str(tmp_path / "c.yaml"),
            "--target-load",
            "0.5",
            "--deadline-factor",
            "3",
            "--param",
            "image_mb=2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "kept" in res.output and "bad_exec_time_seconds" in res.output
    assert "wrote 3 tasks" in res.output
    wl = read_workload(out)
    assert wl.data_mb.tolist()[1:] == pytest.approx([100 / 1e6 + 2.0, 4.0])
    assert wl.work_gi.sum() / wl.arrival_s.max() / 11.0 == pytest.approx(0.5)


def test_cli_generic_mapping(cli: CliRunner, tmp_path: Path) -> None:
    from hybridsched.cli.app import app

    out = tmp_path / "w.csv"
    args = ["trace", "import", "-f", "generic", str(GENERIC), "-o", str(out)]
    for k, v in GENERIC_MAP.items():
        args += ["--map", f"{k}={v}"]
    res = cli.invoke(app, [*args, "--param", "keep_status=done"])
    assert res.exit_code == 0, res.output
    assert read_workload(out).work_gi.tolist() == [4.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "alibaba-genai-2026", str(AZURE)], "looks like format azure-llm-2023"),
        (["-f", "alibaba-2018", str(ALI2018), "--strict"], "row 6 (line 6), field end_time"),
        (["-f", "nope", str(AZURE)], "known formats: alibaba-genai-2026"),
        (["-f", "azure-llm-2023", str(AZURE), "--param", "bogus"], "expected KEY=VALUE"),
        (["-f", "azure-llm-2023", str(AZURE), "--target-load", "1"], "needs a cluster"),
    ],
)
def test_cli_errors_exit_2_and_write_nothing(
    cli: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    from hybridsched.cli.app import app

    out = tmp_path / "w.parquet"
    res = cli.invoke(app, ["trace", "import", *args, "--out", str(out)])
    assert res.exit_code == 2
    assert message in " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_cli_lists_formats(cli: CliRunner) -> None:
    from hybridsched.cli.app import app

    res = cli.invoke(app, ["trace", "formats"])
    assert res.exit_code == 0
    for name in FORMATS:
        assert name in res.output


def test_fixture_files_are_small() -> None:
    # The real traces stay in ../shared; only hand-written fixtures live here.
    for f in DATA.iterdir():
        assert f.stat().st_size < 4096, f


def test_cli_format_names_match_the_registry() -> None:
    from hybridsched.cli.trace import FORMAT_NAMES

    assert tuple(FORMATS) == FORMAT_NAMES
