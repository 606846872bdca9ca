"""``compare`` as a long job: saved run by run, stopped by signals, resumed, no orphans.

The signal tests run the real CLI in a subprocess (its own session, like a
shell job), signal it and count the processes left in its process group from
/proc. Workloads are tiny so that the tests stay short on a loaded 2-core
machine; the time from signal to exit is recorded, and only a generous bound
against a hang is asserted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from hybridsched.experiments.compare import (
    WALL_CLOCK_COLUMNS,
    CompareConfig,
    config_from_dict,
    run_compare,
    run_key,
)
from hybridsched.experiments.report import save_results
from hybridsched.experiments.store import ResultsFolder

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="counts processes through /proc"
)

SRC = Path(__file__).resolve().parents[1] / "src"

# 16 runs: the aco ones take about a second each, so a signal lands mid-sweep
SWEEP = [
    "compare", "--scenario", "iot-small", "--tasks", "1500", "--seeds", "8",
    "--policies", "mct,aco",
]  # fmt: skip
N_RUNS = 16
HANG_GUARD_S = 180.0
"""Bound on anything the tests wait for: only a hang exceeds it."""


def _start(args: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen(
        [sys.executable, "-m", "hybridsched.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell runs a job
    )


def _wait_for_runs(out: Path, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while len(list(out.glob("runs/*.json"))) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no run finished in time"
        time.sleep(0.05)


def _live_in_group(pgid: int) -> list[int]:
    """Processes of a process group that still run (zombies hold no memory: not counted)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            pids.append(int(d))
    return pids


def _wait_group_gone(pgid: int) -> list[int]:
    deadline = time.monotonic() + 10.0
    while (left := _live_in_group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _signal_midway(
    out: Path, sig: int, whole_group: bool, workers: int = 2
) -> tuple[subprocess.Popen[str], float]:
    proc = _start([*SWEEP, "--workers", str(workers), "--out", str(out)])
    _wait_for_runs(out, 2, proc)
    assert len(_live_in_group(proc.pid)) >= 1 + (workers if workers > 1 else 0)
    t0 = time.monotonic()
    if whole_group:
        os.killpg(proc.pid, sig)  # Ctrl-C in a terminal reaches the whole group
    else:
        os.kill(proc.pid, sig)
    proc.wait(timeout=HANG_GUARD_S)
    return proc, time.monotonic() - t0


def _frame(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).drop(columns=list(WALL_CLOCK_COLUMNS))


@pytest.mark.slow
def test_ctrl_c_stops_at_once_keeps_runs_and_resume_matches_uninterrupted(
    tmp_path: Path,
) -> None:
    out = tmp_path / "cmp"
    proc, seconds = _signal_midway(out, signal.SIGINT, whole_group=True)
    stderr = proc.stderr.read() if proc.stderr else ""
    print(f"SIGINT to exit: {seconds:.2f} s")
    assert proc.returncode == 130, stderr
    assert seconds < HANG_GUARD_S
    # one line saying what was kept and how to go on; no traceback
    assert "Traceback" not in stderr
    line = stderr.strip()
    assert "\n" not in line and f"hybridsched compare --resume --out {out}" in line
    # the remaining runs were not run: the folder holds what was finished, no more
    saved = {p.name: p.stat() for p in (out / "runs").glob("*.json")}
    assert 2 <= len(saved) < N_RUNS
    assert f"{len(saved)} of {N_RUNS} runs saved" in line
    assert not (out / "results.parquet").exists()
    assert _wait_group_gone(proc.pid) == []

    resumed = _start(["compare", "--resume", "--out", str(out)])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert len(list((out / "runs").glob("*.json"))) == N_RUNS
    # the saved runs were taken as they were, not run again (a new file is a new inode)
    for name, st in saved.items():
        now = (out / "runs" / name).stat()
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)

    cfg = config_from_dict(json.loads((out / "config.json").read_text()))
    whole = tmp_path / "whole"
    save_results(run_compare(cfg), cfg, whole)
    a, b = _frame(out / "results.parquet"), _frame(whole / "results.parquet")
    assert len(a) == N_RUNS
    pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGKILL, -9), (signal.SIGTERM, 143)])
def test_killing_the_parent_leaves_no_worker(tmp_path: Path, sig: int, code: int) -> None:
    proc, seconds = _signal_midway(tmp_path / "cmp", sig, whole_group=False)
    left = _wait_group_gone(proc.pid)
    print(f"{signal.Signals(sig).name} to exit: {seconds:.2f} s; workers left: {left}")
    assert left == []
    assert proc.returncode == code
    if sig == signal.SIGTERM:
        assert "--resume" in (proc.stderr.read() if proc.stderr else "")


@pytest.mark.slow
def test_ctrl_c_stops_a_serial_run_too(tmp_path: Path) -> None:
    # --workers 1 runs in this process: the interrupt lands inside a simulation
    proc, seconds = _signal_midway(tmp_path / "cmp", signal.SIGINT, whole_group=True, workers=1)
    stderr = proc.stderr.read() if proc.stderr else ""
    print(f"SIGINT to exit (one worker): {seconds:.2f} s")
    assert proc.returncode == 130 and "Traceback" not in stderr
    saved = len(list((tmp_path / "cmp" / "runs").glob("*.json")))
    assert 2 <= saved < N_RUNS and f"{saved} of {N_RUNS} runs saved" in stderr


SMALL = {"scenario": "iot-small", "tasks": 200, "loads": (0.8,), "seeds": 2}


def test_store_saves_each_run_and_resume_runs_only_the_missing(tmp_path: Path) -> None:
    cfg = CompareConfig(**SMALL, policies=("mct", "least-loaded"), workers=1)
    folder = ResultsFolder.start(tmp_path, cfg)
    calls: list[tuple[int, int]] = []
    full = run_compare(cfg, progress=lambda k, n: calls.append((k, n)), store=folder)
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)
    names = sorted(p.stem for p in (tmp_path / "runs").glob("*.json"))
    assert names == sorted(run_key(0.8, s, p) for s in (0, 1) for p in ("mct", "least-loaded"))
    # the saved row is the returned row, number for number
    saved = json.loads((tmp_path / "runs" / f"{run_key(0.8, 1, 'mct')}.json").read_text())
    assert saved == next(r for r in full if r["seed"] == 1 and r["policy"] == "mct")

    (tmp_path / "runs" / f"{run_key(0.8, 0, 'least-loaded')}.json").unlink()
    again: list[tuple[int, int]] = []
    resumed = run_compare(
        cfg,
        progress=lambda k, n: again.append((k, n)),
        store=ResultsFolder.start(tmp_path, cfg, resume=True),
    )
    assert again == [(3, 4), (4, 4)]  # one run missing, one run done
    strip = [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in resumed]
    assert strip == [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in full]


def test_pool_raises_a_jobs_error_and_reports_a_dead_worker() -> None:
    from hybridsched.errors import ConfigError
    from hybridsched.experiments.pool import Job, WorkerError, run_jobs

    got: dict[int, int] = {}
    run_jobs([Job(pow, (k, 2), f"square {k}") for k in range(5)], 2, got.__setitem__)
    assert got == {0: 0, 1: 1, 2: 4, 3: 9, 4: 16}
    with pytest.raises(ConfigError, match="bad value 7"):
        run_jobs([Job(_fail, (7,), "fails")], 2, got.__setitem__)
    with pytest.raises(WorkerError, match=r"killed by signal 9.*dies"):
        run_jobs([Job(_die, (), "dies"), Job(pow, (2, 2), "ok")], 2, got.__setitem__)


def _fail(x: int) -> None:
    from hybridsched.errors import ConfigError

    raise ConfigError(f"bad value {x}")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_pool_spawns_its_workers_when_this_process_has_other_threads() -> None:
    # a fork while another thread holds a lock (Ray's threads after ray.init in the
    # same process) can leave the child waiting forever: such a process spawns instead
    import threading

    from hybridsched.experiments.pool import Job, _start_method, run_jobs

    assert _start_method() == ("fork" if sys.platform.startswith("linux") else "spawn")
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        assert _start_method() == "spawn"
        got: dict[int, int] = {}
        run_jobs([Job(pow, (k, 3), f"cube {k}") for k in range(4)], 2, got.__setitem__)
        assert got == {0: 0, 1: 1, 2: 8, 3: 27}
    finally:
        stop.set()
        t.join()
