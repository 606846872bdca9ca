"""Ctrl-C in a sweep run in this process (``--workers 1``): where the interrupt lands.

An interrupt that lands in numba's own Python code (the callbacks of compiled
code) is recorded and stops the sweep after the run in progress; anywhere else
it raises ``KeyboardInterrupt`` at once.
"""

from __future__ import annotations

import os
import signal

import pytest

from hybridsched.experiments.backends import LocalBackend, _numba_dir
from hybridsched.experiments.pool import Job

# a function whose code says it is numba's: the signal handler runs in its frame
_FAKE = compile(
    "def interrupt_here():\n"
    "    os.kill(os.getpid(), signal.SIGINT)\n"
    "    for _ in range(1000):\n"
    "        pass\n"
    "    return 'finished'\n",
    _numba_dir() + "fake_callback.py",
    "exec",
)
_NS: dict = {"os": os, "signal": signal}
exec(_FAKE, _NS)


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
    assert _sweep(_NS["interrupt_here"]) == [(0, 0), (1, "finished")]  # job 2 never runs
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_an_interrupt_elsewhere_stops_at_once() -> None:
    assert _sweep(_plain_interrupt) == [(0, 0)]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
