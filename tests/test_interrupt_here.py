"""Ctrl-C while compiled code runs: where the interrupt lands.

In a sweep run in this process (``--workers 1``), an interrupt that lands in
numba's own Python code (the callbacks of compiled code) is recorded and stops
the sweep after the run in progress; in one run (``simulate``) it is raised
again once the callback has returned. Anywhere else it raises
``KeyboardInterrupt`` at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybridsched.experiments.backends import LocalBackend
from hybridsched.experiments.pool import Job
from hybridsched.interrupts import in_numba, interrupts_outside_numba, package_dirs
from hybridsched.io import write_cluster, write_workload
from hybridsched.workload import generate

NUMBA_DIR, LLVMLITE_DIR = package_dirs()

# a function that sends SIGINT to this process, then returns 'finished'
_PRESS = (
    "    os.kill(os.getpid(), signal.SIGINT)\n"
    "    for _ in range(1000):\n"
    "        pass\n"
    "    return 'finished'\n"
)


def _fake(where: str, source: str, name: str) -> object:
    """Function ``name`` of ``source``, whose code says it is in ``where`` (numba's or
    llvmlite's folder): the signal handler runs in its frame."""
    ns: dict = {"os": os, "signal": signal, "time": time}
    exec(compile(source, where + "fake.py", "exec"), ns)
    return ns[name]


_INTERRUPT_HERE = _fake(NUMBA_DIR, "def interrupt_here():\n" + _PRESS, "interrupt_here")


def _plain_interrupt() -> str:
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):
        pass
    return "finished"


def _value(x: int) -> int:
    return x


def _sweep(middle) -> list[tuple[int, object]]:
    got: list[tuple[int, object]] = []
    jobs = [Job(_value, (0,), "a"), Job(middle, (), "b"), Job(_value, (2,), "c")]
    with pytest.raises(KeyboardInterrupt):
        LocalBackend(1).run(jobs, lambda k, v: got.append((k, v)))
    return got


def test_an_interrupt_in_numba_code_stops_after_the_run_in_progress() -> None:
    assert _sweep(_INTERRUPT_HERE) == [(0, 0), (1, "finished")]  # job 2 never runs
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_an_interrupt_elsewhere_stops_at_once() -> None:
    assert _sweep(_plain_interrupt) == [(0, 0)]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- one run (simulate): the interrupt is sent again until it lands outside numba ----------

_UNPICKLE = _fake(NUMBA_DIR + "core/", "def _numba_unpickle():\n" + _PRESS, "_numba_unpickle")
_LOAD = _fake(LLVMLITE_DIR + "binding/", "def load_kernel():\n" + _PRESS, "load_kernel")
_CALLER = _fake(NUMBA_DIR, "def caller(f):\n    return f()\n", "caller")


def _called_by_numba() -> str:
    # code that numba's code calls (as the unpickler cloudpickle is): inside numba too
    return _CALLER(_plain_interrupt)


@pytest.mark.parametrize("call", [_UNPICKLE, _LOAD, _called_by_numba])
def test_an_interrupt_in_numba_code_is_raised_after_it(call) -> None:
    got: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_outside_numba():
            got.append(call())  # numba's code returns its value untouched
            for _ in range(10**8):  # ... and the interrupt comes here, in Python code
                pass
            got.append("not interrupted")
    assert got == ["finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


_LOAD_THREE = _fake(
    LLVMLITE_DIR + "binding/",
    "def load_three():\n"
    "    for _ in range(3):\n"
    "        os.kill(os.getpid(), signal.SIGINT)\n"
    "        t = time.monotonic()\n"
    "        while time.monotonic() - t < 0.02:\n"
    "            pass\n"
    "    return 'finished'\n",
    "load_three",
)


def test_presses_in_numba_code_make_one_interrupt_and_none_after_the_block() -> None:
    got: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_outside_numba():
            got.append(_LOAD_THREE())
            for _ in range(10**8):
                pass
    # no copy of the three presses arrives once the block has ended
    t = time.monotonic()
    while time.monotonic() - t < 0.5:
        pass
    assert got == ["finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_interrupt_still_waiting_is_raised_at_the_end_of_the_block() -> None:
    # the press lands in numba's last callback: the block ends before it can be raised
    got: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_outside_numba():
            got.append(_UNPICKLE())
        got.append("after the block")
    assert got == ["finished"]


def test_an_interrupt_outside_numba_is_raised_at_once() -> None:
    with pytest.raises(KeyboardInterrupt):
        with interrupts_outside_numba():
            _plain_interrupt()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_in_numba_looks_at_every_caller() -> None:
    dirs = package_dirs()
    assert not in_numba(sys._getframe(), dirs)
    seen: list[bool] = []

    def probe() -> None:
        seen.append(in_numba(sys._getframe(), dirs))

    _CALLER(probe)  # probe itself is ours, its caller numba's
    probe()
    assert seen == [True, False]


_MARKED = """
import os
from pathlib import Path

from hybridsched.policies import make_policy, register


@register
class MarkedAco:
    \"\"\"aco that touches $MARK when its first batch comes (the run is under way).\"\"\"

    name = "marked-aco"

    def __init__(self):
        self.inner = make_policy("aco", {})

    def reset(self, cluster, rng):
        self.inner.reset(cluster, rng)
        self.marked = False

    def assign(self, tasks, view):
        if not self.marked:
            Path(os.environ["MARK"]).touch()
            self.marked = True
        return self.inner.assign(tasks, view)
"""


def test_simulate_interrupted_exits_130_and_writes_nothing(tmp_path: Path) -> None:
    c, w = generate("iot-default", 40000, 0.9, 0)
    write_cluster(c, tmp_path / "c.yaml")
    write_workload(w, tmp_path / "w.parquet")
    (tmp_path / "marked.py").write_text(_MARKED)
    out, mark = tmp_path / "out", tmp_path / "started"
    cmd = [sys.executable, "-m", "hybridsched.cli", "simulate", "--cluster", "c.yaml"]
    cmd += ["--workload", "w.parquet", "--policy", "marked-aco", "--plugin", "marked.py"]
    cmd += ["--decision-interval", "0.5", "--out", str(out)]
    env = {**os.environ, "MARK": str(mark)}
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mark.exists(), proc.communicate() if proc.poll() is not None else "no batch in 120 s"
    time.sleep(0.5)  # well into the run: 40,000 tasks take several seconds
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    text = err.decode(errors="replace")
    assert proc.returncode == 130, text
    assert f"interrupted: nothing written to {out}" in " ".join(text.split())
    assert "Traceback" not in text and "SystemError" not in text and "Aborted" not in text
    assert not (out / "summary.json").exists() and not (out / "tasks.parquet").exists()
