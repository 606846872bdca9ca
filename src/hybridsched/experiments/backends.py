"""Where the runs of a sweep execute: the local process pool, or a Ray cluster.

A sweep hands a backend a list of :class:`~hybridsched.experiments.pool.Job`
and a callback; the backend calls ``on_result(index, value)`` as each job ends,
in completion order, so that the caller can save each run durably at once.
Arguments of a job may be :class:`Shared` placeholders: a value computed once
per key (a generated workload) and handed to every job that names it.

* :class:`LocalBackend` (the default, needs nothing) runs the jobs on the
  local process pool (:mod:`hybridsched.experiments.pool`), or in this process
  with one worker; each job computes its shared values itself, as before.
* :class:`RayBackend` runs one Ray task per job on a Ray cluster (an existing
  one at ``address``, else the ``RAY_ADDRESS`` environment variable, else a
  local Ray started for the run). Each shared value is computed once, by a Ray
  task, and passed to its jobs through the object store. A task whose worker
  or node dies is retried elsewhere (``max_retries``); its inputs are rebuilt
  from their lineage when they were lost with the node. Ray is imported only
  here, and only when this backend starts.

Every job is deterministic given its arguments, so both backends give the
same results.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hybridsched.errors import ConfigError, HybridSchedError
from hybridsched.experiments.pool import Job, WorkerError, run_jobs
from hybridsched.interrupts import in_numba, package_dirs, sigint_handler

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("local", "ray")
"""Names accepted by ``--backend``."""

RAY_MAX_RETRIES = 3
"""Retries of a Ray task whose worker or node died (not of one that raised)."""

RAY_POLL_S = 0.2
"""How long one wait for finished Ray tasks lasts: an interrupt is seen within it."""


@dataclass(frozen=True)
class Shared:
    """A job argument computed once per ``key`` as ``fn(*args)``, shared by the jobs naming it."""

    key: str
    fn: Callable[..., Any]
    args: tuple


class Backend(Protocol):
    """What a sweep needs of a backend."""

    name: str

    def run(self, jobs: Sequence[Job], on_result: Callable[[int, Any], None]) -> None:
        """Run ``jobs``; ``on_result(index, value)`` as each ends (see :func:`run_jobs`)."""

    def close(self) -> None:
        """Release what the backend started (idempotent)."""


def _resolve(args: tuple) -> tuple:
    return tuple(a.fn(*a.args) if isinstance(a, Shared) else a for a in args)


def _call_resolved(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(*_resolve(args))


def _run_here(jobs: Sequence[Job], on_result: Callable[[int, Any], None]) -> None:
    """Run ``jobs`` one after the other in this process; Ctrl-C stops them for sure.

    A ``KeyboardInterrupt`` raised in numba's or llvmlite's own Python code can
    break the compiled code that called it, or the process
    (:mod:`hybridsched.interrupts`). So an interrupt that lands there is only
    recorded, and the loop stops after the run in progress (which is reported:
    it finished untouched); one that lands anywhere else raises
    ``KeyboardInterrupt`` at once, as usual.
    """
    interrupted = False
    dirs = package_dirs()

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True
        if not in_numba(frame, dirs):
            raise KeyboardInterrupt

    with sigint_handler(on_sigint):
        for k, job in enumerate(jobs):
            value = _call_resolved(job.fn, job.args)
            on_result(k, value)
            if interrupted:
                raise KeyboardInterrupt


class LocalBackend:
    """The local process pool (``workers`` processes; 1: in this process)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, jobs: Sequence[Job], on_result: Callable[[int, Any], None]) -> None:
        """Run ``jobs`` here; see :class:`Backend`."""
        if self.workers == 1 or len(jobs) <= 1:
            _run_here(jobs, on_result)
            return
        plain = [Job(_call_resolved, (j.fn, j.args), j.name) for j in jobs]
        run_jobs(plain, self.workers, on_result)

    def nodes(self) -> int:
        """Always one machine."""
        return 1

    def close(self) -> None:
        """Nothing to release: the pool lives only inside :meth:`run`."""

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Slot:
    index: int


def _ray_call(fn: Callable[..., Any], template: tuple, *values: Any) -> tuple[str, Any]:
    # Ray resolves object references only among a task's own arguments: the shared
    # values come as extra arguments and take the places of their slots here
    import ray

    args = tuple(values[a.index] if isinstance(a, _Slot) else a for a in template)
    return ray.get_runtime_context().get_node_id(), fn(*args)


def _ray_shared(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class RayBackend:
    """One Ray task per job on a Ray cluster.

    Args:
        address: The cluster's address (``ray://...`` or ``host:port``); None:
            the ``RAY_ADDRESS`` environment variable, else a local Ray started
            for the run with ``workers`` CPUs (and stopped by :meth:`close`).
        workers: CPUs of a local Ray started here (None: all of this machine's).
        max_retries: Retries of a task whose worker or node died.

    Attributes:
        placements: How many runs each node (by Ray node id) has returned.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        max_retries: int = RAY_MAX_RETRIES,
    ) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.workers = workers
        self.max_retries = max_retries
        self.placements: Counter[str] = Counter()
        self._started = False
        self._owned = False

    def start(self) -> int:
        """Connect to (or start) Ray; the number of alive nodes.

        Raises:
            ConfigError: Ray is not installed, or the cluster cannot be reached.
        """
        try:
            import ray
        except ImportError:
            raise ConfigError(
                '--backend ray: Ray is not installed; install it with: pip install -e ".[ray]"'
            ) from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
                "configure_logging": False,
            }
            if self.address:
                _check_reachable(self.address)
                kwargs["address"] = self.address
            else:
                # a Ray of its own, even where another is running on this machine (Ray
                # would join that one, which refuses num_cpus)
                kwargs["address"] = "local"
                kwargs["num_cpus"] = self.workers or os.cpu_count() or 1
                # the workers of a local Ray must find this package as this process does
                path = os.environ.get("PYTHONPATH")
                if path:
                    kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or "a local Ray"
                raise ConfigError(f"--backend ray: cannot start or reach {where}: {exc}") from None
            self._owned = True
        self._started = True
        return self.nodes()

    def nodes(self) -> int:
        """Alive nodes of the cluster now."""
        import ray

        return sum(1 for n in ray.nodes() if n.get("Alive"))

    def run(self, jobs: Sequence[Job], on_result: Callable[[int, Any], None]) -> None:
        """Run ``jobs`` as Ray tasks; see :class:`Backend`.

        Every task is submitted at once (Ray queues them on the cluster's CPUs);
        on any exception here, KeyboardInterrupt included, the unfinished ones
        are cancelled.
        """
        if not jobs:
            return
        if not self._started:
            self.start()
        import ray

        call = ray.remote(max_retries=self.max_retries, num_cpus=1)(_ray_call)
        make = ray.remote(max_retries=self.max_retries, num_cpus=1)(_ray_shared)
        shared: dict[str, Any] = {}
        pending: dict[Any, int] = {}
        try:
            for k, job in enumerate(jobs):
                refs: list[Any] = []
                template: list[Any] = []
                for a in job.args:
                    if isinstance(a, Shared):
                        if a.key not in shared:
                            shared[a.key] = make.remote(a.fn, *a.args)
                        template.append(_Slot(len(refs)))
                        refs.append(shared[a.key])
                    else:
                        template.append(a)
                pending[call.remote(job.fn, tuple(template), *refs)] = k
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=RAY_POLL_S)
                for ref in ready:
                    k = pending.pop(ref)
                    node, value = self._get(ref, jobs[k].name)
                    self.placements[node] += 1
                    on_result(k, value)
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)

    @staticmethod
    def _get(ref: Any, name: str) -> Any:
        return ray_get(ref, name)

    def close(self) -> None:
        """Stop the local Ray that :meth:`start` started (an existing one is left alone)."""
        if self._owned:
            import ray

            ray.shutdown()
            self._owned = False
        self._started = False

    def __enter__(self) -> RayBackend:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ray_get(ref: Any, name: str) -> Any:
    """The value of a Ray task or actor call; the library's own error if it raised one.

    Raises:
        HybridSchedError: what the task raised, when it is one (a bad input).
        WorkerError: any other failure, or the task was lost (its worker or node died).
    """
    import ray
    from ray.exceptions import RayError, RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, HybridSchedError):
            raise cause from None
        raise WorkerError(f"{name} failed in a Ray task:\n{exc}") from None
    except RayError as exc:  # worker or node died more often than the retries allow
        raise WorkerError(f"{name}: its Ray task was lost: {exc}") from None


def _check_reachable(address: str) -> None:
    """Refuse a Ray address whose host:port takes no TCP connection.

    ``ray.init`` retries an unreachable address for minutes, logging from C++;
    five seconds of a plain connect tell the user at once. Addresses that are
    not ``host:port`` (``auto``, ``local``) are left to Ray.

    Raises:
        ConfigError: the port refuses, the host is unknown, or it times out.
    """
    import socket

    host, sep, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except (OSError, ValueError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ConfigError(
            f"--backend ray: cannot reach the Ray cluster at {address}: {reason}; "
            "check --ray-address (or RAY_ADDRESS) and that the cluster is running"
        ) from None


def make_backend(name: str, workers: int, address: str | None = None) -> LocalBackend | RayBackend:
    """The backend called ``name`` (``local`` or ``ray``), not started yet.

    Raises:
        ConfigError: an unknown name, or ``address`` with the local backend.
    """
    if name == "local":
        if address:
            raise ConfigError("--ray-address: goes with --backend ray")
        return LocalBackend(workers)
    if name == "ray":
        return RayBackend(address=address, workers=workers)
    raise ConfigError(f"--backend: expected one of {', '.join(BACKENDS)}, got {name!r}")
