"""A local process pool that stops at once and never outlives its parent.

:class:`concurrent.futures.ProcessPoolExecutor` is the wrong tool for long
experiment sweeps: on Ctrl-C its shutdown waits for every queued job, and when
the parent is killed its workers keep running (each worker inherits the write
end of the job pipe, so none ever sees end-of-file). This pool differs in three
ways:

* the parent alone handles SIGINT: workers ignore it (the terminal sends it to
  the whole process group), and the parent kills them when it leaves
  :func:`run_jobs` for any reason, an interrupt included;
* a worker dies with its parent: on Linux the kernel sends it SIGKILL when the
  parent exits (``prctl(PR_SET_PDEATHSIG)``), and on every platform a watchdog
  thread ends it within half a second of the parent's death;
* results come back one by one to a callback, so the caller can save each
  finished job durably before the next one ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hybridsched.errors import HybridSchedError

PARENT_POLL_S = 0.5
"""How often a worker checks that its parent is alive, s."""


class WorkerError(HybridSchedError):
    """A worker process ended without returning its job's result (killed, out of memory)."""


@dataclass(frozen=True)
class Job:
    """One call to run in a worker: ``fn(*args)``; ``name`` says what it is in error messages."""

    fn: Callable[..., Any]
    args: tuple
    name: str


def run_jobs(jobs: Sequence[Job], workers: int, on_result: Callable[[int, Any], None]) -> None:
    """Run ``jobs`` on ``workers`` processes; ``on_result(index, value)`` as each one ends.

    Jobs are handed out in order; results arrive in completion order. An error
    in a job is raised here (the library's own errors as they are, others with
    the worker's traceback); the remaining workers are killed first. So are
    they on KeyboardInterrupt or any other exception, including one raised by
    ``on_result``.
    """
    if not jobs:
        return
    ctx = multiprocessing.get_context(_start_method())
    pool: list[_Worker] = []
    try:
        for _ in range(min(workers, len(jobs))):
            pool.append(_Worker.start(ctx))
        todo = iter(range(len(jobs)))
        for w in pool:
            w.give(next(todo), jobs)
        while any(w.job is not None for w in pool):
            busy = [(w, w.job) for w in pool if w.job is not None]
            ready = multiprocessing.connection.wait(
                [w.conn for w, _ in busy] + [w.process.sentinel for w, _ in busy]
            )
            for w, k in busy:
                if w.conn not in ready and w.process.sentinel not in ready:
                    continue
                on_result(k, w.take(k, jobs))
                nxt = next(todo, None)
                if nxt is not None:
                    w.give(nxt, jobs)
    finally:
        _stop(pool)


def _start_method() -> str:
    """``fork`` where it is safe, else ``spawn`` (with both, the worker's parent is this
    process, which the death watch relies on).

    Fork is safe on Linux from a process with one thread only: a thread that holds a
    lock at the fork (Ray's threads once ``ray.init`` ran here, a logging handler's)
    leaves the child waiting on that lock forever (seen: pool workers stuck in SciPy
    after a Ray run in the same process).
    """
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


class _Worker:
    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn
        self.job: int | None = None

    @classmethod
    def start(cls, ctx: Any) -> _Worker:
        parent_end, child_end = ctx.Pipe()
        process = ctx.Process(
            target=_worker_main, args=(child_end, os.getpid()), daemon=True, name="hybridsched"
        )
        process.start()
        child_end.close()
        return cls(process, parent_end)

    def give(self, k: int, jobs: Sequence[Job]) -> None:
        self.job = k
        self.conn.send((jobs[k].fn, jobs[k].args))

    def take(self, k: int, jobs: Sequence[Job]) -> Any:
        self.job = None
        try:
            ok, value = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(timeout=1.0)
            code = self.process.exitcode
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
            raise WorkerError(
                f"a worker process ended ({how}) while running {jobs[k].name}; "
                "out of memory? Try fewer --workers"
            ) from None
        if ok:
            return value
        if isinstance(value, BaseException):
            raise value
        raise WorkerError(f"{jobs[k].name} failed in a worker process:\n{value}")


def _stop(pool: list[_Worker]) -> None:
    # SIGKILL: a worker holds nothing worth saving (the parent writes every file)
    for w in pool:
        if w.process.exitcode is None:
            with contextlib.suppress(OSError):
                w.process.kill()
    for w in pool:
        w.process.join(timeout=5.0)
        w.conn.close()


def _worker_main(conn: Any, parent: int) -> None:
    # the terminal's Ctrl-C reaches every process of the group: only the parent acts on it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        fn, args = msg
        try:
            reply: tuple[bool, Any] = (True, fn(*args))
        except HybridSchedError as exc:
            reply = (False, exc)
        except BaseException:  # the parent reports it with this traceback
            reply = (False, traceback.format_exc())
        try:
            conn.send(reply)
        except Exception:  # an unpicklable result or error: say so in text
            conn.send((False, traceback.format_exc()))


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    # the parent may have died before prctl, and other platforms have no such call
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
