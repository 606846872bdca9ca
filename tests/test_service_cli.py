"""``serve``'s start-up checks and readiness: a policy-argument file, a port in use, bad
TLS files (one line naming the file, exit 2, nothing started), ``/readyz`` before and
after the decision process answers; the clients' clock estimate; a task submitted
ahead of its arrival is decided at its arrival, not before."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from builders import make_cluster
from service_support import ADMIN, NODE_ALL, Server, free_port, wait_for, write_inputs

PLUGINS = Path(__file__).resolve().parent / "service_plugins"
CLUSTER = make_cluster([{"cores": 2}, {"cores": 1, "speed": 2.0}])


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    write_inputs(tmp_path, CLUSTER)
    return tmp_path


def _serve(tmp: Path, *extra: str) -> tuple[int, str]:
    """``serve`` in this process (for options refused before anything starts)."""
    from hybridsched.cli import app
    from hybridsched.cli.app import _register

    _register()
    res = CliRunner().invoke(app, [
        "serve", "--cluster", str(tmp / "cluster.yaml"), "--tokens", str(tmp / "tokens.yaml"),
        "--db", f"sqlite:///{tmp / 'never.db'}", *extra])  # fmt: skip
    return res.exit_code, " ".join(res.output.split())


def _refused(tmp: Path, *extra: str) -> str:
    code, out = _serve(tmp, *extra)
    assert code == 2, out
    assert "Traceback" not in out
    assert not (tmp / "never.db").exists()  # refused before the store was opened
    return out


# ------------------------------------------------------------------ --policy-args


def test_policy_args_file_and_policy_arg_which_wins(tmp: Path) -> None:
    (tmp / "args.yaml").write_text("policy: hold_gil\nhold_task: 3\nflag: ''\n")
    srv = Server(
        tmp, f"sqlite:///{tmp}/s.db", "--policy", "hold_gil", "--policy-module", "gil_policy",
        "--policy-args", str(tmp / "args.yaml"), "--policy-arg", "hold_task=5",
        pythonpath=(PLUGINS,),
    )  # fmt: skip
    srv.start(decider=False)
    try:
        info = httpx.get(srv.url + "/v1/cluster", headers=ADMIN, timeout=30).json()
    finally:
        srv.stop()
    # the file gives both; --policy-arg overrides its hold_task
    assert info["policy"] == "hold_gil"
    assert info["policy_args"] == {"hold_task": "5", "flag": ""}


def test_bad_policy_args_file_is_one_line_naming_it(tmp: Path) -> None:
    f = tmp / "args.yaml"
    f.write_text("policy: aco\nants: 4\n")
    out = _refused(tmp, "--policy-args", str(f))  # --policy is mct
    assert f"--policy-args {f}: the file's arguments are for policy 'aco', not 'mct'" in out
    f.write_text("nonsense: 1\n")
    out = _refused(tmp, "--policy-args", str(f))
    assert f"--policy-args {f}:" in out and "nonsense" in out
    out = _refused(tmp, "--policy-args", str(tmp / "absent.yaml"))
    assert f"--policy-args {tmp / 'absent.yaml'}: cannot be read" in out
    f.write_text("- a list\n")
    out = _refused(tmp, "--policy-args", str(f))
    assert f"--policy-args {f}: expected a mapping" in out


def test_bad_estimates_is_one_line_naming_the_choices(tmp: Path) -> None:
    out = _refused(tmp, "--estimates", "clairvoyant")
    assert "--estimates: must be one of auto, nominal, observed, got 'clairvoyant'" in out


# --------------------------------------------------------------------- port in use


def test_port_in_use_is_one_line_naming_host_and_port(tmp: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = _refused(tmp, "--port", str(port))
    assert f"--port {port}: 127.0.0.1:{port} is already in use" in out


def test_host_that_is_not_an_address_here_is_refused(tmp: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine
    out = _refused(tmp, "--host", "192.0.2.1", "--port", str(free_port()))
    assert "--host/--port: cannot listen on 192.0.2.1:" in out


# ------------------------------------------------------------------------------ TLS


def _pem(tmp: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate and its key for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    c, k = tmp / f"{name}.crt", tmp / f"{name}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return c, k


def test_bad_tls_files_are_named(tmp: Path) -> None:
    pytest.importorskip("cryptography")
    cert, key = _pem(tmp, "a")
    _, other_key = _pem(tmp, "b")
    junk = tmp / "junk.pem"
    junk.write_text("not a certificate\n")
    broken = tmp / "broken.crt"
    broken.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    cases = [
        (["--ssl-certfile", str(tmp / "absent.crt"), "--ssl-keyfile", str(key)],
         f"--ssl-certfile {tmp / 'absent.crt'}: cannot be read"),
        (["--ssl-certfile", str(junk), "--ssl-keyfile", str(key)],
         f"--ssl-certfile {junk}: no PEM certificate in it"),
        (["--ssl-certfile", str(broken), "--ssl-keyfile", str(key)],
         f"--ssl-certfile {broken}: not a valid PEM certificate"),
        (["--ssl-certfile", str(cert), "--ssl-keyfile", str(junk)],
         f"--ssl-keyfile {junk}: no PEM private key in it"),
        (["--ssl-certfile", str(cert), "--ssl-keyfile", str(other_key)],
         f"--ssl-keyfile {other_key}: this private key does not belong to the certificate "
         f"in --ssl-certfile {cert}"),
        (["--ssl-certfile", str(cert)], f"--ssl-certfile {cert}: no PEM private key in it"),
        (["--ssl-keyfile", str(key)], f"--ssl-keyfile {key}: needs --ssl-certfile"),
    ]  # fmt: skip
    for extra, msg in cases:
        out = _refused(tmp, *extra)
        assert msg in out, (extra, out)


def test_good_tls_files_serve_https(tmp: Path) -> None:
    pytest.importorskip("cryptography")
    cert, key = _pem(tmp, "a")
    srv = Server(tmp, f"sqlite:///{tmp}/s.db", "--ssl-certfile", str(cert),
                 "--ssl-keyfile", str(key))  # fmt: skip
    srv.start(decider=False)
    try:
        trust = ssl.create_default_context(cafile=str(cert))  # verified against it
        r = httpx.get(srv.url + "/v1/clock", headers=ADMIN, verify=trust, timeout=30)
    finally:
        srv.stop()
    assert srv.url.startswith("https://") and r.status_code == 200
    assert r.json()["time_scale"] == 1.0


# ------------------------------------------------------------------------ readiness


def test_readyz_is_503_until_the_decision_process_answered(tmp: Path) -> None:
    # hold_gil with hold_task=0 spins in its warm-up batch (task 0) until the flag is set:
    # the decision process cannot answer before the test lets it
    flag = tmp / "flag"
    np.zeros(1, np.uint8).tofile(flag)
    started = Path(str(flag) + ".started")
    srv = Server(
        tmp, f"sqlite:///{tmp}/s.db", "--policy", "hold_gil", "--policy-module", "gil_policy",
        "--policy-arg", "hold_task=0", "--policy-arg", f"flag={flag}",
        pythonpath=(PLUGINS,),
    )  # fmt: skip
    srv.start(decider=False)
    try:
        wait_for(started.exists, "the decision process's warm-up began")
        h = httpx.get(srv.url + "/healthz", timeout=30)
        r = httpx.get(srv.url + "/readyz", timeout=30)
        assert (h.status_code, h.json()) == (200, {"status": "ready", "decider": "starting"})
        assert (r.status_code, r.json()) == (503, {"status": "starting", "decider": "starting"})
        # let the warm-up finish: the byte is written in place (tofile would truncate the
        # file first, and the child's memory map would die of SIGBUS reading it then)
        m = np.memmap(flag, dtype=np.uint8, mode="r+", shape=(1,))
        m[0] = 1
        m.flush()
        del m
        wait_for(lambda: httpx.get(srv.url + "/readyz", timeout=30).status_code == 200,
              "/readyz 200 after the release")  # fmt: skip
        r = httpx.get(srv.url + "/readyz", timeout=30)
        assert r.json() == {"status": "ready", "decider": "ready"}
    finally:
        srv.stop()


# ---------------------------------------------------------------- clock, ahead


def test_replay_refuses_a_negative_ahead(tmp: Path) -> None:
    from hybridsched.cli import app
    from hybridsched.cli.app import _register

    _register()
    res = CliRunner().invoke(app, [
        "replay", "--server", "http://127.0.0.1:1", "--token", "t", "--workload",
        str(tmp / "absent.parquet"), "--out", str(tmp / "out"), "--ahead", "-0.5"])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "--ahead: must be a finite number of seconds >= 0, got -0.5" in res.output
    assert not (tmp / "out").exists()


def test_server_clock_takes_the_midpoint_of_the_shortest_round_trip() -> None:
    from hybridsched.service.client import ServerClock

    c = ServerClock(time_scale=4.0, window=3)
    # sent, received (wall), the server's model time stamped in between
    c.sample(10.0, 10.2, 100.0)  # rtt 0.2: model 100 at wall 10.1
    c.sample(20.0, 20.02, 141.0)  # rtt 0.02: model 141 at wall 20.01 (the best)
    c.sample(30.0, 30.5, 190.0)  # rtt 0.5: slow, not used
    assert c.rtt_s == pytest.approx(0.02)
    assert c._offset == pytest.approx(141.0 - 20.01 * 4.0)
    c.sample(40.0, 40.3, 0.0)  # the best sample leaves the window of 3: next best wins
    c.sample(50.0, 50.3, 0.0)
    assert c.rtt_s == pytest.approx(0.3)


def test_task_submitted_ahead_is_decided_at_its_arrival(tmp: Path) -> None:
    from hybridsched.service.agent import Agent

    srv = Server(tmp, f"sqlite:///{tmp}/s.db", "--time-scale", "10")
    srv.start()
    agent = Agent(srv.url, NODE_ALL, poll_s=0.05)
    agent.run_in_thread()
    try:
        wait_for(lambda: httpx.get(srv.url + "/v1/cluster", headers=ADMIN, timeout=30)
              .json()["nodes_up"] == 2, "both nodes up")  # fmt: skip
        now = httpx.get(srv.url + "/v1/clock", headers=ADMIN, timeout=30).json()["time_s"]
        arrival = now + 20.0  # model s: 2 wall s ahead
        task = {"task_id": 1, "region": 0, "data_mb": 0.0, "work_gi": 0.5, "arrival_s": arrival}
        httpx.post(srv.url + "/v1/tasks", json=task, headers=ADMIN, timeout=30).raise_for_status()
        seen_pending_before = False
        end = time.monotonic() + 90
        while time.monotonic() < end:
            clock = httpx.get(srv.url + "/v1/clock", headers=ADMIN, timeout=30).json()["time_s"]
            t = httpx.get(srv.url + "/v1/tasks/1", headers=ADMIN, timeout=30).json()
            if t["status"] == "finished":
                break
            if clock < arrival - 1e-9:
                # asked after the clock read: still before the arrival, so still pending
                # unless the arrival passed in between (then it may be decided)
                seen_pending_before |= t["status"] == "pending"
            time.sleep(0.05)
    finally:
        agent.stop_thread()
        srv.stop()
    assert t["status"] == "finished", t
    assert seen_pending_before
    assert t["decision_s"] >= arrival
    speed = float(CLUSTER.speed[list(CLUSTER.node_names).index(t["node"])])
    assert t["start_s"] >= t["decision_s"]
    assert t["finish_s"] == pytest.approx(t["start_s"] + 0.5 / speed)
