"""User-facing CLI behaviour: bad options and inputs, outputs, help, plugins, timeline."""

from __future__ import annotations

import errno
import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from hybridsched.cli.app import _register, app
from hybridsched.errors import ValidationError
from hybridsched.io import read_cluster, read_workload, write_table
from hybridsched.model import MAX_TIME_S, Cluster, Workload
from hybridsched.policies import LISTING_NOTES, make_policy
from hybridsched.results import node_totals, timeline
from hybridsched.sim import simulate

_register()


@pytest.fixture(autouse=True)
def _no_plugin_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    # --plugin names its modules in the environment for worker processes; undo it after
    # each test, whose temporary plugin files are gone by then
    monkeypatch.setenv("HYBRIDSCHED_PLUGINS", "")
    # and the plugins' policies leave the registry, so that later tests see the built-ins
    import hybridsched.policies.base as pbase

    pbase.available_policies()  # every built-in module registered before the snapshot
    monkeypatch.setattr(pbase, "_REGISTRY", dict(pbase._REGISTRY))


def _run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def _refused(res, *needles: str) -> None:
    """Exit 2, a message, no traceback."""
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in res.output, res.output


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("user")
    c, w = folder / "c.yaml", folder / "w.parquet"
    res = _run(
        "generate", "--scenario", "iot-small", "--tasks", "200", "--seed", "3",
        "--out", str(w), "--cluster-out", str(c),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return c, w


def _sim(c: Path, w: Path, out: Path, *extra: str):
    return _run("simulate", "--cluster", str(c), "--workload", str(w), "--out", str(out), *extra)


# ----------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--seed", "-1"), "--seed: must be an integer >= 0, got -1"),
        (("--timeline-step", "-1"), "--timeline-step"),
        (("--timeline-step", "nan"), "--timeline-step"),
        (("--decision-interval", "inf"), "decision interval"),
        (("--decision-interval", "1e300"), "--decision-interval: must be a finite number >= 0"),
        (("--latency-jitter", "1e300"), "latency_jitter: must be at most 100"),
        (("--estimate-cv", "1e300"), "estimate_cv: must be at most 100"),
        (("--estimate-cv", "nan"), "estimate_cv"),
        (("--mtbf", "1e400", "--mttr", "5"), "mtbf"),
        (("--plugin", "no_such_plugin_module_xyz"), "no_such_plugin_module_xyz"),
    ],
)
def test_simulate_refuses_bad_numbers(files, tmp_path, extra, needle) -> None:
    c, w = files
    res = _sim(c, w, tmp_path / "o", *extra)
    _refused(res, needle)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--seed", "-1"), "seed: must be an integer >= 0"),
        (("--tasks", "100000000000"), "n_tasks: must be at most 50,000,000"),
        (("--load", "1e-300"), "load: must be from 1e-06 to 1e+06"),
        (("--load", "1e300"), "load: must be from 1e-06 to 1e+06"),
        (("--load", "nan"), "load: must be a finite number > 0"),
    ],
)
def test_generate_refuses_bad_numbers(tmp_path, extra, needle) -> None:
    res = _run(
        "generate", "--scenario", "iot-small", "--out", str(tmp_path / "w.parquet"),
        "--cluster-out", str(tmp_path / "c.yaml"), *extra,
    )  # fmt: skip
    _refused(res, needle)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- outputs


def test_unwritable_out_is_refused_before_the_run(files, tmp_path, monkeypatch) -> None:
    import hybridsched.io as hio

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(hio.tempfile, "mkstemp", read_only)
    c, w = files
    res = _sim(c, w, tmp_path / "ro")
    _refused(res, "--out", "cannot write here: Read-only file system")
    assert not (tmp_path / "ro").exists()


def test_a_failed_write_leaves_nothing_half_written(files, tmp_path, monkeypatch) -> None:
    import hybridsched.results as results

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    c, w = files
    out = tmp_path / "o"
    assert _sim(c, w, out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(results, "plot_timeline", full_disk)  # the last file written
    res = _sim(c, w, out, "--timeline", "--seed", "5")
    _refused(res, "No space left on device")
    # the earlier run's files are untouched, no new file and no temporary file is left
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.fixture
def _sigint_restored():
    """The CLI ignores further Ctrl-C once interrupted (it is on its way out); in this
    process the next tests need Python's own handler back."""
    import signal

    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.mark.usefixtures("_sigint_restored")
def test_ctrl_c_while_the_files_go_into_place_leaves_them_all(files, tmp_path, monkeypatch):
    import signal

    import hybridsched.io as hio

    c, w = files
    out = tmp_path / "o"
    assert _sim(c, w, out, "--policy", "met", "--csv").exit_code == 0
    old = json.loads((out / "summary.json").read_text())
    assert (out / "tasks.csv").exists()
    renames: list[str] = []
    real_replace = os.replace

    def replace_and_press(src, dst):
        # Ctrl-C right after the first of the run's files went into place (os.replace
        # is the os module's: other writers, such as the kernel cache, pass here too)
        real_replace(src, dst)
        if Path(dst).parent != out:
            return
        renames.append(Path(dst).name)
        if len(renames) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(hio.os, "replace", replace_and_press)
    res = _sim(c, w, out, "--policy", "mct")
    assert res.exit_code == 130, res.output
    assert "interrupted: the run had finished; its results are written to" in res.output
    assert renames == ["tasks.parquet", "summary.json"]  # both, though the press came first
    new = json.loads((out / "summary.json").read_text())
    assert new["policy"] == "mct" and old["policy"] == "met"
    tasks = pq.read_table(out / "tasks.parquet").to_pydict()
    # the tasks file is the same run's as the summary, and the earlier run's csv is gone
    assert np.mean(tasks["response_s"]) == pytest.approx(new["mean_response_s"], rel=1e-12)
    assert sorted(q.name for q in out.iterdir()) == ["summary.json", "tasks.parquet"]


@pytest.mark.usefixtures("_sigint_restored")
def test_ctrl_c_while_generate_files_go_into_place(tmp_path, monkeypatch) -> None:
    import signal

    import hybridsched.io as hio

    real_replace = os.replace
    renames: list[str] = []

    def replace_and_press(src, dst):
        real_replace(src, dst)
        if Path(dst).parent != tmp_path or Path(dst).name.startswith("."):
            return  # another writer's file (the kernel cache), or a temporary one
        renames.append(Path(dst).name)
        if len(renames) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(hio.os, "replace", replace_and_press)
    w, c = tmp_path / "w.parquet", tmp_path / "c.yaml"
    res = _run("generate", "--scenario", "iot-small", "--tasks", "50", "--out", str(w),
               "--cluster-out", str(c))  # fmt: skip
    assert res.exit_code == 130, res.output
    assert "interrupted: the files were already written" in res.output
    assert renames == ["c.yaml", "w.parquet"]
    assert read_workload(w, cluster=read_cluster(c)).n_tasks == 50


def test_a_press_just_after_the_renames_still_says_they_are_done(tmp_path, monkeypatch):
    # a KeyboardInterrupt raised after the renames (here: in the clean-up that follows)
    # is the caller's to know about: the files are in place
    from hybridsched.interrupts import InterruptedAfterCommit
    from hybridsched.io import atomic_paths

    real_unlink = Path.unlink

    def unlink_and_press(self, missing_ok=False):
        real_unlink(self, missing_ok=missing_ok)
        raise KeyboardInterrupt

    targets = [tmp_path / "a.json", tmp_path / "b.json"]
    with pytest.raises(KeyboardInterrupt) as raised:  # (a plain one would stop pytest)
        with atomic_paths(targets) as tmps:
            for t in tmps:
                t.write_text("new")
            monkeypatch.setattr(Path, "unlink", unlink_and_press)
    monkeypatch.undo()
    assert isinstance(raised.value, InterruptedAfterCommit)
    assert [t.read_text() for t in targets] == ["new", "new"]
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_held_interrupts_come_after_the_block_and_restore_the_handler() -> None:
    import signal

    from hybridsched.interrupts import InterruptedAfterCommit, held_interrupts

    done = []
    with pytest.raises(KeyboardInterrupt) as raised:  # (a plain one would stop pytest)
        with held_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # two presses, one interrupt
            done.append("block")
    assert isinstance(raised.value, InterruptedAfterCommit)
    assert done == ["block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with held_interrupts():  # no press: nothing raised
        done.append("quiet")
    assert done == ["block", "quiet"]
    # another handler (a graceful stop) gets the press once it is back, and decides
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        with held_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            assert seen == []
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_failed_write_removes_the_folders_it_made(tmp_path) -> None:
    from hybridsched.io import atomic_path, atomic_paths

    (tmp_path / "kept").mkdir()
    target = tmp_path / "kept" / "new" / "deeper" / "out"
    with pytest.raises(RuntimeError):
        with atomic_paths([target / "a.json", target / "b.json"]) as tmps:
            tmps[0].write_text("{}")
            raise RuntimeError("the run failed")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target / "a.json"):
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]
    with atomic_paths([target / "a.json"]) as tmps:
        tmps[0].write_text("{}")
    assert (target / "a.json").read_text() == "{}"


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_output_files_honour_the_umask(files, tmp_path, mask) -> None:
    c, w = files
    old = os.umask(mask)
    try:
        res = _run(
            "generate", "--scenario", "iot-small", "--tasks", "50",
            "--out", str(tmp_path / "w.parquet"), "--cluster-out", str(tmp_path / "c.yaml"),
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        assert _sim(c, w, tmp_path / "o", "--timeline").exit_code == 0
    finally:
        os.umask(old)
    written = [tmp_path / "w.parquet", tmp_path / "c.yaml", *(tmp_path / "o").iterdir()]
    assert len(written) == 6
    for p in written:
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p


def test_reused_out_keeps_only_this_runs_files(files, tmp_path) -> None:
    c, w = files
    out = tmp_path / "o"
    assert _sim(c, w, out, "--timeline").exit_code == 0
    assert {p.name for p in out.iterdir()} == {
        "tasks.parquet", "summary.json", "timeline.parquet", "timeline.png",
    }  # fmt: skip
    res = _sim(c, w, out, "--csv")
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"tasks.csv", "summary.json"}
    (out / "mine.txt").write_text("not the run's")  # a file the run does not own stays
    assert _sim(c, w, out).exit_code == 0
    assert {p.name for p in out.iterdir()} == {
        "tasks.parquet", "summary.json", "mine.txt",
    }  # fmt: skip


# ----------------------------------------------------------------- input rules


def _cluster_doc(**node_overrides: object) -> dict:
    node = {
        "name": "n0", "cores": 1, "speed": 1.0, "memory_mb": 1000.0, "bandwidth_mb_s": 100.0,
        "power_idle_w": 10.0, "power_max_w": 20.0, "latency_s": [0.0],
    }  # fmt: skip
    node.update(node_overrides)
    return {"name": "t", "regions": 1, "nodes": [node]}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("speed", float("inf")),
        ("bandwidth_mb_s", float("inf")),
        ("memory_mb", float("inf")),
        ("power_idle_w", float("inf")),
        ("power_max_w", float("inf")),
        ("speed", 1e-300),
        ("cores", 10**9),
        ("latency_s", [float("inf")]),
        ("latency_s", [1e300]),
    ],
)
def test_cluster_refuses_non_finite_and_huge_values(tmp_path, field, value) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(_cluster_doc(**{field: value})))
    with pytest.raises(ValidationError) as info:
        read_cluster(p)
    msg = str(info.value)
    assert str(p) in msg and "node 'n0'" in msg and field in msg
    assert "np." not in msg


def test_speed_inf_trace_import_is_refused(tmp_path) -> None:
    c = tmp_path / "c.yaml"
    c.write_text("name: t\nregions: 1\nnodes:\n  - {name: n0, cores: 1, speed: .inf, "
                 "memory_mb: 100, bandwidth_mb_s: 10, power_idle_w: 1, power_max_w: 2, "
                 "latency_s: [0]}\n")  # fmt: skip
    g = tmp_path / "g.csv"
    g.write_text("t,w\n0,1\n5,2\n")
    res = _run(
        "trace", "import", str(g), "-f", "generic", "-m", "arrival=t", "-m", "work=w",
        "--cluster", str(c), "-o", str(tmp_path / "out.parquet"),
    )  # fmt: skip
    _refused(res, "node 'n0'", "speed", "inf")
    assert not (tmp_path / "out.parquet").exists()


def _workload_columns(**over: object) -> dict:
    cols = {
        "task_id": [1, 2], "arrival_s": [0.0, 1.0], "region": [0, 0], "data_mb": [1.0, 1.0],
        "work_gi": [1.0, 1.0], "memory_mb": [10.0, 10.0], "deadline_s": [np.inf, 5.0],
        "priority": [0, 1],
    }  # fmt: skip
    cols.update(over)
    return {k: np.asarray(v) for k, v in cols.items()}


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("arrival_s", [0.0, 1e300]),
        ("arrival_s", [0.0, MAX_TIME_S * 1.01]),
        ("work_gi", [1.0, 1e300]),
        ("data_mb", [1.0, 1e300]),
        ("memory_mb", [1.0, 1e300]),
        ("deadline_s", [1.0, 1e300]),
    ],
)
def test_workload_refuses_magnitudes_that_break_the_arithmetic(column, values) -> None:
    with pytest.raises(ValidationError, match=f"row 2, column {column}: must be") as info:
        Workload.build(_workload_columns(**{column: values}), source="w.csv")
    assert "np." not in str(info.value)


def test_arrival_1e300_is_refused_by_simulate(files, tmp_path) -> None:
    c, _ = files
    w = tmp_path / "w.parquet"
    write_table(_workload_columns(arrival_s=[0.0, 1e300]), w)
    res = _sim(c, w, tmp_path / "o")
    _refused(res, str(w), "arrival_s", "1e+09", "1e+300")


def test_parquet_string_column_is_refused_naming_file_column_type(tmp_path) -> None:
    cols = _workload_columns()
    table = pa.table({k: (v.astype(str) if k == "work_gi" else v) for k, v in cols.items()})
    p = tmp_path / "w.parquet"
    pq.write_table(table, p)
    with pytest.raises(ValidationError) as info:
        read_workload(p)
    assert str(info.value) == (
        f"{p}: row 1, column work_gi: has type string, got '1.0'; a Parquet file must store "
        "this column as numbers (integer or floating point)"
    )


def test_header_only_csv_names_the_file(files, tmp_path) -> None:
    c, _ = files
    p = tmp_path / "h.csv"
    p.write_text("task_id,arrival_s,region,data_mb,work_gi,memory_mb,deadline_s,priority\n")
    _refused(_sim(c, p, tmp_path / "o"), f"{p}: has no task rows (only a header)")


def test_failure_messages_show_plain_numbers(files, tmp_path) -> None:
    c, w = files
    f = tmp_path / "f.parquet"
    pq.write_table(pa.table({"node": ["edge-0"], "down_s": [5.0], "up_s": [3.0]}), f)
    name = read_cluster(c).node_names[0]
    pq.write_table(pa.table({"node": [name], "down_s": [5.0], "up_s": [3.0]}), f)
    res = _sim(c, w, tmp_path / "o", "--failures", str(f))
    _refused(res, "must be > down_s (5.0)", "got 3.0")
    assert "np.float64" not in res.output


def test_every_node_down_for_good_has_availability_zero(files, tmp_path) -> None:
    c, w = files
    cluster = read_cluster(c)
    f = tmp_path / "f.csv"
    f.write_text("node,down_s,up_s\n" + "".join(f"{n},0,\n" for n in cluster.node_names))
    out = tmp_path / "o"
    res = _sim(c, w, out, "--failures", str(f))
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] == 0
    assert summary["availability"] == 0.0
    # half the cores down for good from the start: availability is the other half's share
    down = cluster.node_names[::2]
    f.write_text("node,down_s,up_s\n" + "".join(f"{n},0,\n" for n in down))
    assert _sim(c, w, out, "--failures", str(f)).exit_code == 0
    summary = json.loads((out / "summary.json").read_text())
    up_cores = cluster.cores[1::2].sum()
    assert summary["availability"] == pytest.approx(up_cores / cluster.cores.sum(), rel=1e-12)


# ----------------------------------------------------------------- help


@pytest.mark.parametrize(
    "command",
    [["generate"], ["simulate"], ["policies"], ["trace", "import"], ["trace", "formats"]],
)
def test_help_has_examples_defaults_and_no_type_tags(command) -> None:
    res = _run(*command, "--help")
    assert res.exit_code == 0, res.output
    assert "Example" in res.output
    assert "hybridsched " + " ".join(command) in res.output
    for tag in ("<bool>", "<int>", "<float>", "<str>", "<path>", "<list["):
        assert tag not in res.output.lower(), tag
    if command == ["simulate"]:
        assert "[default: mct]" in res.output


def test_version() -> None:
    from hybridsched import __version__

    res = _run("--version")
    assert res.exit_code == 0
    assert res.output.strip() == f"hybridsched {__version__}"


# ----------------------------------------------------------------- plugins


PLUGIN = textwrap.dedent(
    '''
    """An example plugin: the last feasible node."""
    import numpy as np

    from hybridsched.policies import register


    @register
    class LastFeasible:
        """Each task on the last node with memory for it (a plugin example)."""

        name = "last-feasible-{tag}"

        def reset(self, cluster, rng):
            pass

        def assign(self, tasks, view):
            feasible = view.feasible
            return feasible.shape[1] - 1 - np.argmax(feasible[:, ::-1], axis=1)
    '''
)


def test_plugin_from_a_temp_folder(files, tmp_path, monkeypatch) -> None:
    (tmp_path / "my_scheds_cli.py").write_text(PLUGIN.format(tag="cli"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    res = _run("policies", "--plugin", "my_scheds_cli")
    assert res.exit_code == 0, res.output
    assert "last-feasible-cli" in res.output and "a plugin example" in res.output
    c, w = files
    out = tmp_path / "o"
    res = _sim(c, w, out, "--plugin", "my_scheds_cli", "--policy", "last-feasible-cli")
    assert res.exit_code == 0, res.output
    nodes = json.loads((out / "summary.json").read_text())["nodes"]
    cluster = read_cluster(c)
    workload = read_workload(w)
    # every task fits the last node of iot-small (a cloud node): it takes them all
    assert [n["node"] for n in nodes] == list(cluster.node_names)
    assert [n["tasks"] for n in nodes] == [0] * (cluster.n_nodes - 1) + [len(workload)]
    assert os.environ["HYBRIDSCHED_PLUGINS"] == "my_scheds_cli"  # worker processes see it


def test_plugin_file_path_and_errors(files, tmp_path) -> None:
    p = tmp_path / "scheds_file.py"
    p.write_text(PLUGIN.format(tag="file"))
    c, w = files
    res = _sim(c, w, tmp_path / "o", "--plugin", str(p), "--policy", "last-feasible-file")
    assert res.exit_code == 0, res.output
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('boom')\n")
    _refused(_sim(c, w, tmp_path / "o", "--plugin", str(bad)), "RuntimeError: boom")
    _refused(_sim(c, w, tmp_path / "o", "--plugin", str(tmp_path / "nope.py")), "no such file")


def test_entry_point_plugins_are_loaded(tmp_path, monkeypatch) -> None:
    import importlib.metadata

    import hybridsched.policies.plugins as plugins

    (tmp_path / "ep_scheds.py").write_text(PLUGIN.format(tag="ep"))
    monkeypatch.syspath_prepend(str(tmp_path))

    class EP:
        value = "ep_scheds:LastFeasible"

    def fake(group: str):
        return [EP()] if group == plugins.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    assert plugins.entry_point_modules() == ["ep_scheds"]
    plugins.load_installed()
    assert make_policy("last-feasible-ep").name == "last-feasible-ep"


# ----------------------------------------------------------------- timeline, nodes, progress


def _tiny() -> tuple[Cluster, Workload]:
    node = {
        "cores": 1, "speed": 1.0, "memory_mb": 1000.0, "bandwidth_mb_s": 1e6,
        "power_idle_w": 10.0, "power_max_w": 20.0, "latency_s": [0.0],
    }  # fmt: skip
    cluster = Cluster.build(
        {"regions": 1, "nodes": [{"name": "a", **node}, {"name": "b", **node, "speed": 0.1}]}
    )
    cols = _workload_columns(
        task_id=[1, 2], arrival_s=[0.0, 1.0], data_mb=[0.0, 0.0], work_gi=[2.0, 1.0],
        deadline_s=[np.inf, np.inf],
    )  # fmt: skip
    return cluster, Workload.build(cols, cluster=cluster)


def test_timeline_and_node_totals_hand_computed() -> None:
    # mct: task 1 on a over [0, 2); task 2 (decided at 1) waits for a (done at 3 < 1 + 10 on b)
    cluster, workload = _tiny()
    result = simulate(cluster, workload, make_policy("mct"))
    np.testing.assert_array_equal(result.tasks["start_s"], [0.0, 2.0])
    np.testing.assert_array_equal(result.tasks["finish_s"], [2.0, 3.0])
    tl = timeline(result, cluster, 0.5)
    times = np.arange(7) * 0.5
    np.testing.assert_array_equal(tl["time_s"], np.repeat(times, 2))
    a = slice(0, None, 2)
    np.testing.assert_array_equal(tl["running"][a], [1, 1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(tl["queue"][a], [0, 0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(tl["power_w"][a], [20, 20, 20, 20, 20, 20, 10])
    np.testing.assert_array_equal(tl["running"][1::2], 0)
    np.testing.assert_array_equal(tl["power_w"][1::2], 10.0)
    assert list(tl["node"][:2]) == ["a", "b"]
    totals = node_totals(result, cluster)
    np.testing.assert_array_equal(totals["tasks"], [2, 0])
    np.testing.assert_array_equal(totals["busy_core_s"], [3.0, 0.0])
    np.testing.assert_array_equal(totals["energy_j"], [10 * 3 + 10 * 3, 10 * 3])
    np.testing.assert_array_equal(totals["utilization"], [1.0, 0.0])
    assert totals["energy_j"].sum() == pytest.approx(result.summary["energy_j"], rel=1e-12)
    # the default step: the makespan / 200 samples, 201 of them (both ends)
    assert timeline(result, cluster)["time_s"].shape == (201 * 2,)


def test_node_energy_sums_to_the_summary(files) -> None:
    c, w = files
    cluster, workload = read_cluster(c), read_workload(w)
    result = simulate(cluster, workload, make_policy("min-min"), decision_interval=0.5)
    totals = node_totals(result, cluster)
    assert totals["energy_j"].sum() == pytest.approx(result.summary["energy_j"], rel=1e-9)
    assert totals["tasks"].sum() == len(workload)
    assert totals["busy_core_s"].sum() / (
        cluster.cores.sum() * result.summary["makespan_s"]
    ) == pytest.approx(result.summary["utilization"], rel=1e-9)


def test_progress_callback_counts_every_decision(files) -> None:
    from hybridsched.cli.core import with_progress

    c, w = files
    cluster, workload = read_cluster(c), read_workload(w)
    seen: list[int] = []
    policy = make_policy("random")
    policy.run_compiled = None  # force the per-decision loop, as a Python policy runs
    got = simulate(cluster, workload, with_progress(policy, seen.append), decision_interval=0.5)
    ref = simulate(cluster, workload, make_policy("random"), decision_interval=0.5)
    assert seen[-1] == len(workload)
    assert seen == sorted(seen) and len(seen) > 1
    np.testing.assert_array_equal(got.tasks["node_index"], ref.tasks["node_index"])


def test_simulate_progress_bar_on_request(files, tmp_path) -> None:
    c, w = files
    (tmp_path / "slow_scheds.py").write_text(PLUGIN.format(tag="bar"))
    res = _sim(c, w, tmp_path / "o", "--plugin", str(tmp_path / "slow_scheds.py"),
               "--policy", "last-feasible-bar", "--progress")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "200/200" in res.output  # the bar's final state (stderr is mixed in)


# ----------------------------------------------------------------- rl note


def test_rl_listing_note_matches_behaviour(files) -> None:
    """The listing says rl places tasks as mct does; keep that true or drop the note."""
    pytest.importorskip("torch")
    c, w = files
    cluster, workload = read_cluster(c), read_workload(w)
    for interval in (0.0, 0.5):
        a = simulate(cluster, workload, make_policy("mct"), decision_interval=interval)
        b = simulate(cluster, workload, make_policy("rl"), decision_interval=interval)
        identical = np.array_equal(a.tasks["node_index"], b.tasks["node_index"])
        assert identical == ("rl" in LISTING_NOTES)
    res = _run("policies")
    listing = " ".join(res.output.replace("│", " ").split())
    assert ("places tasks as mct does" in listing) == ("rl" in LISTING_NOTES)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert ("same as `mct`" in readme) == ("rl" in LISTING_NOTES)


def test_plugins_doc_example_runs(files, tmp_path, monkeypatch) -> None:
    """The example of docs/PLUGINS.md, as written there."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "PLUGINS.md").read_text()
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "my_scheds.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    c, w = files
    out = tmp_path / "mm"
    res = _sim(c, w, out, "--plugin", "my_scheds", "--policy", "most-memory",
               "--policy-arg", "jitter=0.1")  # fmt: skip
    assert res.exit_code == 0, res.output
    cluster = read_cluster(c)
    nodes = json.loads((out / "summary.json").read_text())["nodes"]
    # the largest-memory node takes every task (all fit there; jitter < 1 MB never reorders)
    biggest = int(np.argmax(cluster.memory_mb))
    assert nodes[biggest]["tasks"] == 200


def test_compare_loads_plugins_in_its_workers(tmp_path) -> None:
    p = tmp_path / "cmp_scheds.py"
    p.write_text(PLUGIN.format(tag="cmp"))
    out = tmp_path / "cmp"
    res = _run(
        "compare", "--plugin", str(p), "--policies", "mct,last-feasible-cmp",
        "--scenario", "iot-small", "--tasks", "100", "--seeds", "2", "--load", "0.5",
        "--workers", "2", "--out", str(out),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = pq.read_table(out / "results.parquet").to_pydict()
    assert sorted(set(rows["policy"])) == ["last-feasible-cmp", "mct"]
    assert len(rows["policy"]) == 4


def test_generate_writes_both_files_or_neither(tmp_path, monkeypatch) -> None:
    import hybridsched.io as hio

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hio, "write_table", full_disk)  # the workload, written second
    res = _run(
        "generate", "--scenario", "iot-small", "--tasks", "50",
        "--out", str(tmp_path / "w.parquet"), "--cluster-out", str(tmp_path / "c.yaml"),
    )  # fmt: skip
    _refused(res, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_main_turns_an_os_error_into_a_message(monkeypatch, capsys) -> None:
    import hybridsched.policies
    from hybridsched.cli.app import main

    def broken() -> dict:
        raise OSError(errno.EIO, "Input/output error", "/some/file")

    monkeypatch.setattr(hybridsched.policies, "available_policies", broken)
    monkeypatch.setattr(sys, "argv", ["hybridsched", "policies"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error: /some/file: Input/output error" in err
    assert "Traceback" not in err
