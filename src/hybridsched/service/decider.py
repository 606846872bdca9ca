"""The decision subprocess: the policy runs outside the server's interpreter.

Compiled policy code (numba) holds the interpreter lock while it runs, so a
policy run in a thread of the server would stop the event loop, the writer and
heartbeats for as long as it decides (``hybrid`` on 4,096 tasks: 12 s). The
policy therefore lives in a child process, spawned once with the cluster and
the policy's name, arguments and seed; it keeps the policy and its state
(pheromone, counters) across batches. Per batch the server sends the batch's
columns and the :class:`NodeSnapshot` (plain arrays, pickled through a pipe)
and gets back the chosen nodes and their data-ready times; while it waits, the
decision thread sits in a blocking read that releases the lock.

A child that dies (killed, out of memory) is replaced by a fresh one on the next
batch; the batch it held stays pending. The fresh child starts from the seed
again, so the policy's learned state is lost (logged as
``event=decider_restarted``). The child exits when the server's end of the pipe
closes, so it does not outlive the server, even one killed with SIGKILL.

The child is a fresh interpreter (``python -c``, not a fork: the server's threads
and locks stay behind, and not multiprocessing's spawn, which would re-run the
parent's main script), with the parent's ``sys.path``; the two ends talk over a
socket pair wrapped in :class:`multiprocessing.connection.Connection`.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from hybridsched.errors import HybridSchedError
from hybridsched.model import Cluster
from hybridsched.service.view_adapter import NodeSnapshot, build_view

log = logging.getLogger("hybridsched.service")


class DeciderError(HybridSchedError):
    """The policy raised, or the decision subprocess died, during one batch."""


def _warm_up(
    cluster: Cluster, policy: str, args: dict[str, Any], queue: str, estimates: str
) -> None:
    # the first call compiles kernels (or loads them from numba's cache); a throwaway
    # policy keeps the real one's state (pheromone, counters) untouched
    from hybridsched.policies import make_policy

    c = cluster
    j = int(np.argmax(c.memory_mb))
    pol = make_policy(policy, args)
    pol.reset(c, np.random.default_rng(0))
    snap = NodeSnapshot.empty(c.n_nodes, 0.0)
    cols = {
        "task_id": np.array([0], dtype=np.int64),
        "arrival_s": np.array([0.0]),
        "region": np.array([0], dtype=np.int64),
        "data_mb": np.array([1.0]),
        "work_gi": np.array([float(c.speed[j])]),
        "memory_mb": np.array([0.0]),
        "deadline_abs_s": np.array([np.inf]),
        "priority": np.array([0], dtype=np.int64),
    }
    tasks, view = build_view(c, cols, snap, queue=queue, estimates=estimates)
    pol.assign(tasks, view)


def decide_batch(
    policy: Any,
    cluster: Cluster,
    cols: dict[str, np.ndarray],
    snap: NodeSnapshot,
    queue: str,
    estimates: str = "nominal",
) -> tuple[np.ndarray, np.ndarray]:
    """One batch: the chosen node per task and its data-ready time at that node.

    A node outside ``[0, n_nodes)`` is returned as it is (the caller keeps that
    task pending); its ready time is then the one at node 0.
    """
    tasks, view = build_view(cluster, cols, snap, queue=queue, estimates=estimates)
    nodes = np.asarray(policy.assign(tasks, view), dtype=np.int64)
    safe = np.where((nodes >= 0) & (nodes < cluster.n_nodes), nodes, 0)
    ready = np.asarray(view.ready_s[np.arange(len(nodes)), safe], dtype=np.float64)
    return nodes, ready


def _child(
    conn: Any,
    cluster: Cluster,
    policy: str,
    args: dict[str, Any],
    modules: Sequence[str],
    seed: int,
    queue: str,
    estimates: str,
) -> None:
    # runs in the spawned process: messages are ("decide", cols, snap) or None (stop)
    from hybridsched.policies import add_policy_module, make_policy

    try:
        for m in modules:
            add_policy_module(m)
            importlib.import_module(m)
        pol = make_policy(policy, args)
        pol.reset(cluster, np.random.default_rng(seed))
        _warm_up(cluster, policy, args, queue, estimates)
        conn.send(("ready", None))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the server is gone
        if msg is None:
            return
        _, cols, snap = msg
        try:
            t0 = time.perf_counter()
            nodes, ready = decide_batch(pol, cluster, cols, snap, queue, estimates)
            out: tuple[str, Any] = ("ok", (nodes, ready, time.perf_counter() - t0))
        except Exception:
            out = ("error", traceback.format_exc())
        try:
            conn.send(out)
        except (BrokenPipeError, OSError):
            return


def main(fd: int) -> None:
    """Entry point of the child: serve decisions on the connection at file descriptor ``fd``."""
    conn = Connection(fd)
    try:
        init = conn.recv()
    except (EOFError, OSError):
        return
    _child(conn, *init)


_CHILD = "import sys; from hybridsched.service.decider import main; main(int(sys.argv[1]))"


class Decider:
    """The policy in a child process (see the module's doc); one batch at a time.

    Args:
        cluster: the cluster served.
        policy: registered policy name.
        args: the policy's arguments.
        seed: seed of the policy's generator (same seed, same batches: same nodes).
        queue: the nodes' queue discipline.
        modules: extra modules that register policies, imported by the child first.
        estimates: the view's estimates, ``nominal`` or ``observed`` (docs/SERVICE.md).
    """

    def __init__(
        self,
        cluster: Cluster,
        policy: str,
        args: dict[str, Any],
        seed: int,
        queue: str,
        modules: Sequence[str] = (),
        estimates: str = "nominal",
    ) -> None:
        self.cluster = cluster
        self.policy = policy
        self.args = dict(args)
        self.seed = seed
        self.queue = queue
        self.estimates = estimates
        self.modules = tuple(modules)
        self.restarts = 0
        self.last_policy_s = 0.0
        """Seconds the child spent in view + assign for the last batch (no IPC)."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self._ready = False

    @property
    def ready(self) -> bool:
        """The child is up with its policy built and compiled."""
        proc = self._proc
        return self._ready and proc is not None and proc.poll() is None and not self._closed

    @property
    def pid(self) -> int | None:
        """The child's process id (None before the first start)."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Spawn the child and wait until its policy is built and compiled."""
        with self._lock:
            self._spawn()

    def _spawn(self) -> None:
        if self._closed:
            raise DeciderError("the decider is closed")
        ours, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env=env,
            )
        finally:
            theirs.close()  # only the child holds it now: its death closes our end
        self._conn = Connection(ours.detach())
        self._proc = proc
        try:
            init = (self.cluster, self.policy, self.args, self.modules, self.seed, self.queue)
            self._conn.send((*init, self.estimates))
        except OSError as exc:
            self._kill()
            raise DeciderError(f"the decision process died while starting ({exc})") from None
        try:
            kind, detail = self._conn.recv()
        except (EOFError, OSError) as exc:
            kind, detail = "error", f"it died while starting ({exc or 'pipe closed'})"
        if kind != "ready":
            self._kill()
            raise DeciderError(f"policy {self.policy!r} failed to start: {detail}")
        self._ready = True
        log.info(
            "event=decider_ready pid=%d policy=%s seconds=%.3f",
            proc.pid,
            self.policy,
            time.perf_counter() - t0,
        )

    def _recv(self) -> tuple[str, Any]:
        try:
            return self._conn.recv()  # type: ignore[no-any-return]
        except (EOFError, OSError) as exc:
            self._kill()
            raise DeciderError(f"the decision process died ({exc or 'pipe closed'})") from None

    def _kill(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self._ready = False
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=5)

    def decide(
        self, cols: dict[str, np.ndarray], snap: NodeSnapshot
    ) -> tuple[np.ndarray, np.ndarray]:
        """The chosen node and data-ready time per task of ``cols`` in state ``snap``.

        Raises:
            DeciderError: the policy raised (its traceback in the message), or the
                child died; a dead child is replaced on the next call.
        """
        with self._lock:
            if self._closed:
                raise DeciderError("the decider is closed")
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    self._kill()
                    self.restarts += 1
                    log.warning(
                        "event=decider_restarted policy=%s restarts=%d (policy state reset)",
                        self.policy,
                        self.restarts,
                    )
                self._spawn()
            try:
                self._conn.send(("decide", cols, snap))
            except (BrokenPipeError, OSError) as exc:
                self._kill()
                raise DeciderError(f"the decision process died ({exc})") from None
            kind, detail = self._recv()
            if kind != "ok":
                raise DeciderError(f"policy {self.policy!r} failed: {detail}")
            nodes, ready, self.last_policy_s = detail
            return nodes, ready

    def close(self) -> None:
        """Stop the child (politely, then by force)."""
        self._closed = True
        # a child still deciding a batch (the lock is held) is killed, not waited for;
        # the decision thread's read then fails and the batch stays pending
        if self._lock.acquire(timeout=0.1):
            try:
                if self._conn is not None:
                    try:
                        self._conn.send(None)
                    except (BrokenPipeError, OSError):
                        pass
                if self._proc is not None:
                    try:
                        self._proc.wait(timeout=2)
                    except subprocess.TimeoutExpired:
                        pass
                self._kill()
            finally:
                self._lock.release()
        else:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.kill()
