"""Ctrl-C while compiled code runs: an interrupt that never breaks numba's machinery.

Python runs a signal handler in whatever Python code runs next. Some of that
code is numba's and llvmlite's own, and a ``KeyboardInterrupt`` raised there
can break more than the run:

* compiled code calls back into Python to unpickle its constants
  (``numba.core.serialize._numba_unpickle``); an exception raised in the
  callback makes the compiled caller return with it set
  (``SystemError: ... returned a result with an exception set``), clear it (the
  run goes on as if nothing happened) or crash;
* numba loads each cached kernel on its first call, through llvmlite; an
  interrupt there leaves half-built objects whose finalizers fail at exit
  (``AttributeError: 'ValueRef' object has no attribute '_as_parameter_'``),
  and once in 90 runs here the process crashed with a segmentation fault.

:func:`interrupts_outside_numba` moves such an interrupt to the next Python
code outside numba and llvmlite: the user's Ctrl-C still stops the run, as a
plain ``KeyboardInterrupt``, a moment later (after a compilation, if one is
under way). :func:`in_numba` is the test, for the handlers that record an
interrupt instead (``experiments.backends``). :func:`stop_on_interrupt` lets
long work (training) stop at a point where it can save itself.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

PACKAGES = ("numba", "llvmlite")
"""The packages whose Python code an interrupt must not land in."""

RESEND_S = (0.002, 0.1)
"""First and longest delay before a deferred interrupt is sent again, s (doubling)."""


def package_dirs() -> tuple[str, ...]:
    """The folders of the :data:`PACKAGES` that are installed, each ending in a separator."""
    dirs = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            dirs.append(os.path.dirname(spec.origin) + os.sep)
    return tuple(dirs)


def in_numba(frame: FrameType | None, dirs: tuple[str, ...]) -> bool:
    """Whether ``frame`` or one of its callers runs code from one of ``dirs``."""
    while frame is not None:
        if frame.f_code.co_filename.startswith(dirs):
            return True
        frame = frame.f_back
    return False


def _resend(delay: float) -> None:
    time.sleep(delay)
    os.kill(os.getpid(), signal.SIGINT)


def _raise_outside_numba(
    frame: FrameType | None, dirs: tuple[str, ...], delay: list[float]
) -> None:
    """Raise ``KeyboardInterrupt`` here, or, in numba's code, send the signal again."""
    if in_numba(frame, dirs):
        # sent again from another thread, which can only run once this one is back in
        # Python code (compiled code holds the GIL); later and later while it is not
        threading.Thread(target=_resend, args=(delay[0],), daemon=True).start()
        delay[0] = min(2 * delay[0], RESEND_S[1])
        return
    raise KeyboardInterrupt


@contextmanager
def _on_sigint(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """``handler`` for SIGINT within the block, in the main thread when Python's default
    handler is installed (a process started with SIGINT ignored keeps ignoring it)."""
    ours = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    previous = signal.signal(signal.SIGINT, handler) if ours else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@contextmanager
def interrupts_outside_numba() -> Iterator[None]:
    """Within the block, a SIGINT that lands in numba's or llvmlite's Python code is
    sent again until it lands elsewhere, where it raises ``KeyboardInterrupt``.

    Anywhere else it raises ``KeyboardInterrupt`` at once, as usual. Only the
    main thread with Python's default handler installed changes anything; the
    previous handler is restored on exit.
    """
    dirs = package_dirs()
    delay = [RESEND_S[0]]
    with _on_sigint(lambda signum, frame: _raise_outside_numba(frame, dirs, delay)):
        yield


@dataclass
class StopRequest:
    """What :func:`stop_on_interrupt` hands its block."""

    requested: bool = False
    """Set by the first Ctrl-C: stop at the next point where the work can be saved."""


@contextmanager
def stop_on_interrupt(notice: str = "") -> Iterator[StopRequest]:
    """Within the block, the first Ctrl-C only asks the work to stop; a second one stops it.

    The first sets ``requested`` on the :class:`StopRequest` the block gets (and
    writes ``notice``, if any, to stderr): the work stops at its next safe point
    and saves what it has. A second raises ``KeyboardInterrupt``, as
    :func:`interrupts_outside_numba` does. Only the main thread with Python's
    default handler installed changes anything.
    """
    stop = StopRequest()
    dirs = package_dirs()
    delay = [RESEND_S[0]]

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            _raise_outside_numba(frame, dirs, delay)
            return
        stop.requested = True
        if notice:
            os.write(2, f"\n{notice}\n".encode())

    with _on_sigint(handler):
        yield stop
