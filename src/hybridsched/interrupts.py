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


class _Interrupts:
    """SIGINT for one block: raised outside numba's code, re-sent while it lands inside it.

    One re-sender at a time (more presses while it runs merge into it); once
    the interrupt is raised, copies that were already on their way are ignored
    for :attr:`GRACE_S`; at the block's end the re-sender is stopped, and an
    interrupt still waiting is raised there.
    """

    GRACE_S = 0.25

    def __init__(self) -> None:
        self.dirs = package_dirs()
        self.waiting = False
        self.wake = threading.Event()
        self.resender: threading.Thread | None = None
        self.quiet_until = 0.0

    def handle(self, frame: FrameType | None) -> None:
        """The user's interrupt: raise it here, or make it wait until this thread has left
        numba's code."""
        if time.monotonic() < self.quiet_until:
            return  # a copy re-sent before the interrupt was raised
        if in_numba(frame, self.dirs):
            self.waiting = True
            if self.resender is None or not self.resender.is_alive():
                self.wake.clear()
                self.resender = threading.Thread(target=self._resend, daemon=True)
                self.resender.start()
            return
        self.waiting = False
        self.wake.set()
        self.quiet_until = time.monotonic() + self.GRACE_S
        raise KeyboardInterrupt

    def _resend(self) -> None:
        # this thread can only send once the main thread runs Python code again (compiled
        # code holds the GIL), and then the handler runs; later and later while it is in numba
        delay = RESEND_S[0]
        while not self.wake.wait(delay):
            os.kill(os.getpid(), signal.SIGINT)
            delay = min(2 * delay, RESEND_S[1])

    def close(self, raising: bool) -> None:
        """Stop the re-sender; raise an interrupt still waiting, unless ``raising`` (an
        exception is already on its way out of the block)."""
        self.wake.set()
        if self.resender is not None:
            self.resender.join()
        try:
            for _ in range(2):
                pass  # a copy already sent reaches the handler here, while it is still ours
            if self.waiting:
                self.waiting = False
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            if not raising:
                raise


@contextmanager
def sigint_handler(handler: Callable[[int, FrameType | None], None]) -> Iterator[bool]:
    """``handler`` for SIGINT within the block, in the main thread when Python's default
    handler is installed (a process started with SIGINT ignored keeps ignoring it).

    Yields whether it was installed; the previous handler is restored at the end.
    """
    ours = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    previous = signal.signal(signal.SIGINT, handler) if ours else None
    try:
        yield ours
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@contextmanager
def _on_sigint(on_signal: Callable[[FrameType | None, _Interrupts], None]) -> Iterator[None]:
    """``on_signal(frame, interrupts)`` for SIGINT within the block (:func:`sigint_handler`);
    at the end, :meth:`_Interrupts.close` while the handler is still this one."""
    ints = _Interrupts()
    with sigint_handler(lambda signum, frame: on_signal(frame, ints)):
        raising = False
        try:
            yield
        except BaseException:
            raising = True
            raise
        finally:
            ints.close(raising)


@contextmanager
def interrupts_outside_numba() -> Iterator[None]:
    """Within the block, a SIGINT that lands in numba's or llvmlite's Python code waits
    until this thread has left it, and is raised there as ``KeyboardInterrupt``.

    Anywhere else it raises ``KeyboardInterrupt`` at once, as usual. Several
    presses while it waits make one interrupt; one still waiting when the block
    ends is raised at its end. Only the main thread with Python's default
    handler installed changes anything.
    """
    with _on_sigint(lambda frame, ints: ints.handle(frame)):
        yield


class InterruptedAfterCommit(KeyboardInterrupt):
    """A Ctrl-C that came while :func:`held_interrupts` held it: the held work is done
    (the files are in place), and the interrupt is raised after it."""


@contextmanager
def held_interrupts() -> Iterator[None]:
    """Hold SIGINT during a short block that must not stop half-way (renaming several
    files into place); one that came meanwhile is delivered at the end.

    With Python's default handler it is raised as :class:`InterruptedAfterCommit`;
    another handler (a graceful stop, a server's) gets the signal again once it
    is back in place, and does what it does. Only the main thread can hold; a
    handler that Python did not install (``None``) or an ignored SIGINT is left
    alone. An exception raised by the block itself wins over a held interrupt.
    """
    previous = (
        signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    if previous is None or previous == signal.SIG_IGN:
        yield
        return
    came: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if came:
        if previous is signal.default_int_handler:
            raise InterruptedAfterCommit
        signal.raise_signal(signal.SIGINT)  # to the handler that was there


def ignore_further() -> None:
    """Ignore SIGINT from now on: the process is on its way out after an interrupt, and
    another press would only break its exit (a traceback from an ``atexit`` hook)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


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

    def on_signal(frame: FrameType | None, ints: _Interrupts) -> None:
        if stop.requested:
            ints.handle(frame)
            return
        stop.requested = True
        if notice:
            os.write(2, f"\n{notice}\n".encode())

    with _on_sigint(on_signal):
        yield stop
