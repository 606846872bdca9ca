"""Schemathesis against the running server's OpenAPI document: generated requests,
good and bad, on every operation, with an admin token; none may get a 5xx answer
(nor leave a traceback in the server's log). Bounded: a few examples per operation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from builders import make_cluster
from service_support import ADMIN, Server, write_inputs

pytest.importorskip("schemathesis")

CLUSTER = make_cluster([{"cores": 2}, {"cores": 1, "speed": 2.0}])


def test_no_server_error_for_generated_requests(tmp_path: Path) -> None:
    write_inputs(tmp_path, CLUSTER)
    srv = Server(tmp_path, f"sqlite:///{tmp_path}/s.db", "--heartbeat-timeout", "600")
    # /readyz rightly answers 503 while the decision process starts: fuzz the steady state
    srv.start(timeout=180)
    try:
        cmd = [
            sys.executable, "-m", "schemathesis.cli", "run", srv.url + "/openapi.json",
            "-H", f"Authorization: {ADMIN['Authorization']}",
            "--checks", "not_a_server_error",
            "--max-examples", "5", "--seed", "1", "--workers", "1",
            "--no-shrink", "--generation-database", "none", "--no-color",
            "--request-timeout", "30", "--phases", "coverage,fuzzing",
        ]  # fmt: skip
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    finally:
        srv.stop()
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    # every operation was exercised, and some requests were generated per operation
    tested = re.search(r"Tested: (\d+)", out)
    assert tested is not None and int(tested.group(1)) >= 13, out[-2000:]
    log = srv.log.read_text()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-4000:]
