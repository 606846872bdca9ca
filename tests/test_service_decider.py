"""The decision subprocess: a policy that holds the interpreter lock does not stop the
server; a dead decision process is replaced; it does not outlive the server. Ordering
of events decides, never wall-clock thresholds."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from builders import make_cluster
from service_support import ADMIN, NODE_ALL, SUBMIT, Server, wait_for, write_inputs

PLUGINS = Path(__file__).resolve().parent / "service_plugins"
CLUSTER = make_cluster([{"cores": 2}, {"cores": 2}])
NODE = {"Authorization": f"Bearer {NODE_ALL}"}


def _task(i: int) -> dict:
    return {"task_id": i, "region": 0, "data_mb": 0.0, "work_gi": 0.5}


def _status(url: str, tid: int) -> str:
    r = httpx.get(f"{url}/v1/tasks/{tid}", headers=ADMIN, timeout=30)
    r.raise_for_status()
    return str(r.json()["status"])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _decider_pids(log: Path) -> list[int]:
    return [int(p) for p in re.findall(r"event=decider_ready pid=(\d+)", log.read_text())]


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    write_inputs(tmp_path, CLUSTER)
    return tmp_path


def test_policy_holding_the_gil_does_not_block_the_server(tmp: Path) -> None:
    flag = tmp / "flag"
    np.zeros(1, np.uint8).tofile(flag)
    started = Path(str(flag) + ".started")
    srv = Server(
        tmp, f"sqlite:///{tmp}/s.db",
        "--policy", "hold_gil", "--policy-module", "gil_policy",
        "--policy-arg", "hold_task=7", "--policy-arg", f"flag={flag}",
        "--heartbeat-timeout", "600",
        pythonpath=(PLUGINS,),
    )  # fmt: skip
    srv.start()
    try:
        names = list(CLUSTER.node_names)
        r = httpx.post(srv.url + "/v1/agent/heartbeat", json={"nodes": names}, headers=NODE)
        assert r.status_code == 200, r.text
        r = httpx.post(srv.url + "/v1/tasks", json=_task(7), headers=SUBMIT, timeout=30)
        assert r.status_code == 200, r.text
        # the decision process has entered the spin that holds its interpreter lock
        wait_for(started.exists, "the policy started deciding task 7")
        answered = []
        # while it spins (it cannot stop before we write the flag), the server answers
        r = httpx.get(srv.url + "/healthz", timeout=60)
        assert r.status_code == 200
        answered.append("healthz")
        r = httpx.post(
            srv.url + "/v1/agent/heartbeat", json={"nodes": names}, headers=NODE, timeout=60
        )
        assert r.status_code == 200, r.text
        answered.append("heartbeat")
        r = httpx.post(srv.url + "/v1/tasks", json=_task(8), headers=SUBMIT, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["duplicate"] is False
        answered.append("submit")
        # ... and the decision has not completed: task 7 is still pending
        assert _status(srv.url, 7) == "pending"
        assert answered == ["healthz", "heartbeat", "submit"]
        m = np.memmap(flag, dtype=np.uint8, mode="r+", shape=(1,))
        m[0] = 1
        m.flush()
        del m
        wait_for(lambda: _status(srv.url, 7) == "assigned", "task 7 assigned after the release")
        wait_for(lambda: _status(srv.url, 8) == "assigned", "task 8 assigned")
        r = httpx.get(f"{srv.url}/v1/tasks/7", headers=ADMIN)
        assert r.json()["node"] == names[0]
    finally:
        srv.stop()


def test_decider_restarted_when_it_dies_and_killed_with_the_server(tmp: Path) -> None:
    srv = Server(tmp, f"sqlite:///{tmp}/s.db", "--heartbeat-timeout", "600")
    srv.start()
    try:
        names = list(CLUSTER.node_names)
        httpx.post(srv.url + "/v1/agent/heartbeat", json={"nodes": names}, headers=NODE)
        httpx.post(srv.url + "/v1/tasks", json=_task(1), headers=SUBMIT, timeout=30)
        wait_for(lambda: _status(srv.url, 1) == "assigned", "task 1 assigned")
        (first,) = _decider_pids(srv.log)
        assert first != srv.proc.pid and _pid_alive(first)
        os.kill(first, 9)
        wait_for(lambda: not _pid_alive(first), "the decision process gone")
        httpx.post(srv.url + "/v1/tasks", json=_task(2), headers=SUBMIT, timeout=30)
        wait_for(lambda: _status(srv.url, 2) == "assigned", "task 2 assigned by a new decider")
        pids = _decider_pids(srv.log)
        assert len(pids) == 2 and pids[1] != first
        assert "event=decider_restarted" in srv.log.read_text()
        second = pids[1]
        assert _pid_alive(second)
    finally:
        srv.kill()  # SIGKILL: the server cannot clean up; the child sees its pipe close
    wait_for(lambda: not _pid_alive(second), "the decision process exits with the server", 30)


def test_decider_decides_as_the_policy_in_process_for_a_fixed_seed() -> None:
    from hybridsched.policies import make_policy
    from hybridsched.service.decider import Decider, DeciderError, decide_batch
    from hybridsched.service.view_adapter import NodeSnapshot

    cluster = make_cluster([{"cores": 2}, {"cores": 1, "speed": 2.0}, {"cores": 4}])
    rng = np.random.default_rng(11)
    # a stochastic policy: the same seed must give the same draws in the child
    dec = Decider(cluster, "random", {}, seed=3, queue="fifo")
    dec.start()
    try:
        pol = make_policy("random")
        pol.reset(cluster, np.random.default_rng(3))
        seen = []
        for b in range(4):
            n = 5 + b
            cols = {
                "task_id": np.arange(10 * b, 10 * b + n, dtype=np.int64),
                "arrival_s": np.full(n, float(b)),
                "region": np.zeros(n, dtype=np.int64),
                "data_mb": rng.uniform(0, 5, n),
                "work_gi": rng.uniform(0.1, 2, n),
                "memory_mb": np.zeros(n),
                "deadline_abs_s": np.full(n, np.inf),
                "priority": np.zeros(n, dtype=np.int64),
            }
            snap = NodeSnapshot.empty(cluster.n_nodes, float(b))
            want_nodes, want_ready = decide_batch(pol, cluster, cols, snap, "fifo")
            nodes, ready = dec.decide(cols, snap)
            assert nodes.tolist() == want_nodes.tolist()
            assert ready.tolist() == want_ready.tolist()
            seen.extend(nodes.tolist())
        assert len(set(seen)) > 1  # the draws did vary: the comparison was not trivial
        # a bad batch is the policy's error, reported with its cause; the child lives on
        bad = dict(cols, region=np.array([0, 0], dtype=np.int64))
        with pytest.raises(DeciderError, match="failed"):
            dec.decide(bad, NodeSnapshot.empty(cluster.n_nodes, 9.0))
        pid = dec.pid
        nodes, _ = dec.decide(cols, snap)
        assert dec.pid == pid and len(nodes) == len(cols["task_id"])
    finally:
        dec.close()
    assert not _pid_alive(pid)
