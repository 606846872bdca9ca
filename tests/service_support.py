"""Helpers of the live-service tests: a real server process, real databases, real brokers.

The server runs as ``python -m hybridsched.cli serve`` on a loopback port;
PostgreSQL and Mosquitto are the machine's (127.0.0.1:5432 / :1883). When one
is not reachable the test is skipped, except under CI (``CI=true``), where a
missing service is a failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from hybridsched.io import write_cluster
from hybridsched.model import Cluster

ROOT = Path(__file__).resolve().parents[1]
TOKENS = {
    "admin-token-0001": "admin",
    "submit-token-0001": "submit",
    "node-token-all-01": "node:*",
}
ADMIN = {"Authorization": "Bearer admin-token-0001"}
SUBMIT = {"Authorization": "Bearer submit-token-0001"}
NODE_ALL = "node-token-all-01"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def reachable(host: str, port: int) -> bool:
    """True when a TCP connection to host:port opens."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require(host: str, port: int, what: str) -> None:
    """Skip (or fail under CI) when ``what`` is not listening."""
    if reachable(host, port):
        return
    msg = f"{what} is not reachable on {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + " (CI: .ci/run starts it)")
    pytest.skip(msg)


def free_port() -> int:
    """An unused loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test; dropped afterwards."""
    require("127.0.0.1", 5432, "PostgreSQL")
    import psycopg

    name = f"hs_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def write_inputs(tmp: Path, cluster: Cluster, tokens: dict[str, str] | None = None) -> None:
    """cluster.yaml and tokens.yaml in ``tmp``."""
    import yaml

    write_cluster(cluster, tmp / "cluster.yaml")
    (tmp / "tokens.yaml").write_text(yaml.safe_dump(tokens or TOKENS))


class Server:
    """``hybridsched serve`` in a child process (SIGKILL-able)."""

    def __init__(
        self,
        tmp: Path,
        db: str,
        *args: str,
        port: int | None = None,
        pythonpath: tuple[Path, ...] = (),
    ) -> None:
        self.tmp = tmp
        self.pythonpath = pythonpath
        self.db = db
        self.args = args
        self.port = port or free_port()
        self.tls = "--ssl-certfile" in args
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / f"serve-{self.port}.log"

    def start(self, timeout: float = 60.0, decider: bool = True) -> float:
        """Start and wait until /healthz answers 200 (with ``decider``: /readyz, the
        decision process is ready too); returns the seconds it took."""
        path = os.pathsep.join(str(p) for p in (ROOT / "src", *self.pythonpath))
        env = dict(os.environ, PYTHONPATH=path)
        cmd = [
            sys.executable, "-m", "hybridsched.cli", "serve",
            "--cluster", str(self.tmp / "cluster.yaml"),
            "--tokens", str(self.tmp / "tokens.yaml"),
            "--db", self.db, "--port", str(self.port), *self.args,
        ]  # fmt: skip
        t0 = time.monotonic()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=self.tmp)
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                # a self-signed test certificate: not verified
                r = httpx.get(self.url + ("/readyz" if decider else "/healthz"), timeout=1.0,
                              verify=not self.tls)  # fmt: skip
                if r.status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"serve not ready in {timeout} s: {self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM and wait (clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(pred: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """Poll ``pred`` until it holds; fail naming ``what`` after ``timeout`` wall s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached in {timeout} s: {what}")


def wait_all_ended(url: str, ids: list[int], timeout: float = 90.0) -> dict[int, dict]:
    """Poll until every task of ``ids`` is finished/failed/rejected/cancelled."""
    end = time.monotonic() + timeout
    rows: dict[int, dict] = {}
    while time.monotonic() < end:
        rows = {}
        for k in range(0, len(ids), 5000):
            r = httpx.post(
                url + "/v1/tasks/query",
                json={"task_ids": ids[k : k + 5000]},
                headers=ADMIN,
                timeout=10,
            )
            r.raise_for_status()
            rows.update({t["task_id"]: t for t in r.json()["tasks"]})
        terminal = ("finished", "failed", "rejected", "cancelled")
        if len(rows) == len(ids) and all(t["status"] in terminal for t in rows.values()):
            return rows
        time.sleep(0.2)
    left = {t: r["status"] for t, r in rows.items() if r["status"] != "finished"}
    raise AssertionError(
        f"tasks not ended after {timeout} s: {len(ids) - len(rows)} unknown, "
        f"{dict(list(left.items())[:10])}"
    )
