"""Adversarial CLI inputs: each one is refused with exit 2 and a one-paragraph message.

These run the real entry point (``python -m hybridsched.cli``) in a subprocess, as a
user would, so that the error boundary of ``main()`` is part of what is tested.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hybridsched.errors import ValidationError
from hybridsched.io import read_workload
from hybridsched.model import Workload

SRC = Path(__file__).resolve().parents[1] / "src"

HEADER = "task_id,arrival_s,region,data_mb,work_gi,memory_mb,deadline_s,priority"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(SRC), COLUMNS="200", HYBRIDSCHED_PLUGINS="")
    return subprocess.run(
        [sys.executable, "-m", "hybridsched.cli", *args],
        capture_output=True,
        text=True,
        errors="replace",
        env=env,
        cwd=cwd,
        timeout=120,
    )


def _refused(res: subprocess.CompletedProcess[str], *needles: str) -> None:
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "Traceback" not in out, out
    assert "error:" in out, out
    for needle in needles:
        assert needle in out, out


def _cluster(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(
        "regions: 1\n"
        "nodes:\n"
        "- {name: n0, tier: edge, cores: 2, speed: 1.0, memory_mb: 1024.0,\n"
        "   bandwidth_mb_s: 10.0, power_idle_w: 1.0, power_max_w: 2.0, latency_s: [0.01]}\n"
    )
    return path


def _simulate_refused(
    tmp_path: Path, workload: Path, *needles: str
) -> subprocess.CompletedProcess[str]:
    """``simulate`` of ``workload`` is refused (``_refused``) and writes no output folder."""
    res = _cli(
        "simulate", "--workload", str(workload), "--cluster", str(_cluster(tmp_path)),
        "--out", str(tmp_path / "out"), "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    _refused(res, *needles)
    assert not (tmp_path / "out").exists()
    return res


def _csv(tmp_path: Path, rows: list[str], name: str = "w.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize(
    ("column", "value"),
    [("task_id", "1e30"), ("task_id", "1180591620717411303424"), ("priority", "1e308")],
)
def test_integer_column_beyond_int64_is_refused(tmp_path: Path, column: str, value: str) -> None:
    # before: the cast to int64 wrapped silently (a garbage id, or a message showing
    # -9223372036854775808 instead of the value in the file)
    row = {"task_id": "1", "priority": "0"}
    row[column] = value
    rows = ["0,0,0,1,1,1,,0", f"{row['task_id']},0.5,0,1,1,1,,{row['priority']}"]
    path = _csv(tmp_path, rows)
    with pytest.raises(ValidationError, match=rf"row 2, column {column}: must be an integer from"):
        read_workload(path)
    res = _simulate_refused(tmp_path, path, "w.csv", f"column {column}", "must be an integer from")
    assert "-9223372036854775808" not in res.stderr


@pytest.mark.parametrize(
    ("column", "rule"),
    [("work_gi", "must be a number"), ("task_id", "must be an integer"),
     ("priority", "must be an integer")],
)  # fmt: skip
def test_digit_separator_is_refused(tmp_path: Path, column: str, rule: str) -> None:
    # before: Python's float() and NumPy's casts read "1_0" as 10, so a typo became a number
    cells = {"task_id": "1", "work_gi": "1", "priority": "0"}
    cells[column] = "1_0"
    row = f"{cells['task_id']},0.5,0,1,{cells['work_gi']},1,,{cells['priority']}"
    path = _csv(tmp_path, ["0,0,0,1,1,1,,0", row])
    with pytest.raises(ValidationError, match=rf"row 2, column {column}: {rule}, got '1_0'"):
        read_workload(path)
    _simulate_refused(tmp_path, path, "w.csv", f"row 2, column {column}: {rule}, got '1_0'")


def test_non_utf8_header_is_refused(tmp_path: Path) -> None:
    # before: UnicodeDecodeError traceback from Arrow's lazy header decoding
    path = tmp_path / "w.csv"
    path.write_bytes((HEADER + ",kind\xe9\n0,0,0,1,1,1,,0,1\n").encode("latin-1"))
    with pytest.raises(ValidationError, match="cannot be read as CSV"):
        read_workload(path)
    res = _cli(
        "simulate", "--workload", str(path), "--cluster", str(_cluster(tmp_path)),
        "--out", str(tmp_path / "out"), "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    _refused(res, "w.csv", "cannot be read as CSV", "utf-8")
    assert not (tmp_path / "out").exists()


def test_valid_integers_still_read(tmp_path: Path) -> None:
    # the range check must not refuse the largest ids int64 holds
    path = _csv(tmp_path, ["0,0,0,1,1,1,,0", "4611686018427387904,0.5,0,1,1,1,,2"])
    w = read_workload(path)
    assert isinstance(w, Workload)
    assert w.task_id.tolist() == [0, 2**62]
    assert np.all(w.priority == [0, 2])


JUNK = b"\xff\xfe\x00name: x\n\x80\x81"


def test_policy_args_file_not_utf8_is_refused(tmp_path: Path) -> None:
    # before: UnicodeDecodeError traceback (only OSError and YAMLError were caught)
    junk = tmp_path / "args.yaml"
    junk.write_bytes(JUNK)
    w = _csv(tmp_path, ["0,0,0,1,1,1,,0"])
    res = _cli(
        "simulate", "--workload", str(w), "--cluster", str(_cluster(tmp_path)),
        "--policy", "aco", "--policy-args", str(junk), "--out", str(tmp_path / "out"),
        "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    _refused(res, "--policy-args", "args.yaml", "not UTF-8 text")
    assert not (tmp_path / "out").exists()


def test_compare_config_not_utf8_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "exp.yaml"
    junk.write_bytes(JUNK)
    res = _cli("compare", "--config", str(junk), "--out", str(tmp_path / "out"), cwd=tmp_path)
    _refused(res, "exp.yaml", "not UTF-8 text")
    assert not (tmp_path / "out").exists()


def test_serve_tokens_not_utf8_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "tokens.yaml"
    junk.write_bytes(JUNK)
    res = _cli(
        "serve", "--cluster", str(_cluster(tmp_path)), "--tokens", str(junk),
        "--db", f"sqlite:///{tmp_path / 'x.db'}", "--port", "0", cwd=tmp_path,
    )  # fmt: skip
    _refused(res, "--tokens", "tokens.yaml", "not UTF-8 text")


def test_serve_tokens_given_twice_are_refused_without_showing_them(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "first-token-0001: admin\nother-token-0002: reader\nfirst-token-0001: reader\n"
    )
    res = _cli(
        "serve", "--cluster", str(_cluster(tmp_path)), "--tokens", str(tokens),
        "--db", f"sqlite:///{tmp_path / 'x.db'}", "--port", "0", cwd=tmp_path,
    )  # fmt: skip
    _refused(res, "--tokens", "tokens.yaml", "line 3: a token is given twice")
    assert "first-token" not in res.stdout + res.stderr


def test_compare_unreachable_ray_address_fails_fast(tmp_path: Path) -> None:
    # before: ray.init retried the dead address for minutes (the CLI hung past 60 s)
    pytest.importorskip("ray")
    res = _cli(
        "compare", "--scenario", "iot-small", "--tasks", "50", "--seeds", "1",
        "--policies", "mct", "--workers", "1", "--out", str(tmp_path / "out"),
        "--backend", "ray", "--ray-address", "127.0.0.1:1", cwd=tmp_path,
    )  # fmt: skip
    _refused(res, "--backend ray", "cannot reach the Ray cluster at 127.0.0.1:1")
    assert not (tmp_path / "out").exists()


def test_ray_address_check_leaves_other_forms_to_ray() -> None:
    from hybridsched.errors import ConfigError
    from hybridsched.experiments.backends import _check_reachable

    for address in ("auto", "local", "ray://"):
        _check_reachable(address)  # not host:port: Ray decides
    with pytest.raises(ConfigError, match=r"ray://127\.0\.0\.1:1"):
        _check_reachable("ray://127.0.0.1:1")


def test_suite_without_scenarios_is_refused(tmp_path: Path) -> None:
    # before: exit 0 and a page of no results
    res = _cli(
        "suite", "--scenarios", " , ", "--seeds", "1", "--tasks", "50",
        "--out", str(tmp_path / "out"), "--page", str(tmp_path / "p.md"), cwd=tmp_path,
    )  # fmt: skip
    _refused(res, "--scenarios", "give at least one scenario")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "p.md").exists()


def test_suite_page_that_is_a_folder_is_refused_before_running(tmp_path: Path) -> None:
    # before: the whole suite ran, then writing the page failed (results left behind)
    (tmp_path / "adir").mkdir()
    res = _cli(
        "suite", "--scenarios", "iot-small", "--seeds", "1", "--tasks", "50",
        "--out", str(tmp_path / "out"), "--page", str(tmp_path / "adir"), cwd=tmp_path,
    )  # fmt: skip
    _refused(res, "--page", "adir", "is a folder")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--mtbf", "100"], "--mttr: options.mttr_s: must be given with"),
        (["--mtbf", "-5", "--mttr", "1"], "--mtbf: options.mtbf_s['*']: must be a finite number"),
        (["--mtbf", "edge=100", "--mttr", "fog=5"], "--mttr: options.mttr_s: must name the same"),
        (["--estimate-cv", "-1"], "--estimate-cv: options.estimate_cv: must be a finite number"),
    ],
)
def test_fault_and_noise_options_are_named_as_typed(
    tmp_path: Path, options: list[str], needle: str
) -> None:
    # before: the messages named only the library's fields (options.mttr_s), not the option
    w = _csv(tmp_path, ["0,0,0,1,1,1,,0"])
    res = _cli(
        "simulate", "--workload", str(w), "--cluster", str(_cluster(tmp_path)),
        "--out", str(tmp_path / "out"), "--no-progress", *options, cwd=tmp_path,
    )  # fmt: skip
    _refused(res, needle)
    assert not (tmp_path / "out").exists()


def test_train_resume_with_corrupt_state_is_refused(tmp_path: Path) -> None:
    # before: a KeyError traceback from torch.load's unpickler
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.pt").write_bytes(b"junk\n")
    res = _cli("train", "rl", "--resume", str(run), cwd=tmp_path)
    _refused(res, "--resume", "state.pt", "is not a training state")


def test_serve_port_out_of_range_is_refused(tmp_path: Path) -> None:
    # before: an OverflowError traceback from bind()
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("admintoken123: admin\n")
    res = _cli(
        "serve", "--cluster", str(_cluster(tmp_path)), "--tokens", str(tokens),
        "--db", f"sqlite:///{tmp_path / 'x.db'}", "--port", "70000", cwd=tmp_path,
    )  # fmt: skip
    _refused(res, "--port", "0 to 65535", "70000")


@pytest.mark.parametrize(
    ("mtbf", "mttr", "rule"),
    [("0.001", "0.001", ">= 0.01 s"), ("1e-300", "1", ">= 0.01 s"), ("1", "1e300", "<= 1e+09 s")],
)
def test_failure_means_that_never_end_are_refused(
    tmp_path: Path, mtbf: str, mttr: str, rule: str
) -> None:
    # these ran past 60 s (millions of failure events, or times past float64's resolution)
    w = _csv(tmp_path, ["1,0.0,0,1.0,1.0,1.0,,0", "2,0.5,0,1.0,1.0,1.0,,0"])
    out = tmp_path / "out"
    res = _cli("simulate", "--cluster", str(_cluster(tmp_path)), "--workload", str(w),
               "--policy", "mct", "--mtbf", mtbf, "--mttr", mttr, "--out", str(out),
               cwd=tmp_path)  # fmt: skip
    _refused(res, rule, "--mtbf" if mtbf != "1" else "--mttr")
    assert not out.exists()


@pytest.mark.parametrize("command", ["agent", "replay"])
@pytest.mark.parametrize("url", ["notaurl", "ftp://x:1", "http://:8080", "http://h:99999"])
def test_client_server_url_is_checked(tmp_path: Path, command: str, url: str) -> None:
    # these hung silently (retrying an address that can never answer)
    w = _csv(tmp_path, ["1,0.0,0,1.0,1.0,1.0,,0"])
    extra = ["--all"] if command == "agent" else ["--workload", str(w), "--out", "o"]
    res = _cli(command, "--server", url, "--token", "t", *extra, cwd=tmp_path)
    _refused(res, f"--server {url}")
    assert not (tmp_path / "o").exists()


def test_unreachable_server_is_said_while_retrying(tmp_path: Path) -> None:
    import socket

    from hybridsched.service.replay import Replay

    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w = read_workload(_csv(tmp_path, ["1,0.0,0,1.0,1.0,1.0,,0"]))
    rp = Replay(f"http://127.0.0.1:{port}", "t", w, outage_s=0.3)
    import asyncio
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("hybridsched.replay").addHandler(handler)
    try:
        with pytest.raises(ConnectionError, match=r"unreachable for 0\.3 s"):
            asyncio.run(rp.run(timeout_s=5))
    finally:
        logging.getLogger("hybridsched.replay").removeHandler(handler)
    assert [r.getMessage() for r in records] == [
        f"http://127.0.0.1:{port}: unreachable; retrying for up to 0.3 s"
    ]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--mqtt", "bogus"], "--mqtt: 'bogus' must look like mqtt://HOST:PORT"),
        (["--mqtt", "mqtt://h:99999"], "must look like mqtt://HOST:PORT"),
        (["--db", "sqlite:///notadb.csv"], "cannot open the database"),
    ],
)
def test_serve_bad_broker_or_database_is_refused(
    tmp_path: Path, extra: list[str], needle: str
) -> None:
    # these were tracebacks from the server's start-up
    (tmp_path / "notadb.csv").write_text("task_id,arrival_s\n1,0\n" * 200)
    (tmp_path / "tokens.yaml").write_text("admin-token-0001: admin\n")
    res = _cli("serve", "--cluster", str(_cluster(tmp_path)), "--tokens",
               str(tmp_path / "tokens.yaml"), "--port", "0", *extra, cwd=tmp_path)  # fmt: skip
    _refused(res, needle)
