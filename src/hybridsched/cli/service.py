"""``serve``, ``agent`` and ``replay``: the live scheduler, its agents, a measured replay."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from hybridsched.cli.app import EstimatesOption, app, console, fail
from hybridsched.errors import HybridSchedError


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # one line per HTTP call is noise (and URLs are not logged with tokens anyway)
    logging.getLogger("httpx").setLevel(logging.WARNING)


@app.command()
def serve(
    cluster: Annotated[
        Path, typer.Option(help="Cluster file (.yaml/.json); node names = agents'.")
    ],
    policy: Annotated[str, typer.Option(help="Scheduler name (hybridsched policies).")] = "mct",
    policy_arg: Annotated[
        list[str] | None, typer.Option(help="Policy argument KEY=VALUE (repeatable).")
    ] = None,
    policy_args_file: Annotated[
        Path | None, typer.Option("--policy-args", help="Policy arguments file (tune's).")
    ] = None,
    decision_interval: Annotated[
        float, typer.Option(help="Batching interval, model s; 0 decides as tasks arrive.")
    ] = 0.0,
    queue: Annotated[str, typer.Option(help="Queue discipline at the nodes: fifo or priority.")] = (
        "fifo"
    ),
    estimates: EstimatesOption = "auto",
    db: Annotated[
        str, typer.Option(help="sqlite:///PATH (WAL) or postgresql://USER@HOST/DB.")
    ] = "sqlite:///hybridsched.db",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    tokens: Annotated[
        Path | None,
        typer.Option(help="YAML token -> role (admin, submit, node:NAME[,NAME], node:*)."),
    ] = None,
    mqtt: Annotated[str | None, typer.Option(help="Broker mqtt://HOST:PORT to bridge.")] = None,
    mqtt_topic_root: Annotated[str, typer.Option(help="MQTT topic root.")] = "hybridsched",
    time_scale: Annotated[
        float, typer.Option(help="Model seconds per wall second (emulation, tests).")
    ] = 1.0,
    heartbeat_timeout: Annotated[
        float, typer.Option(help="Wall seconds without a heartbeat before a node is down.")
    ] = 10.0,
    max_retries: Annotated[int, typer.Option(help="Retries before a task is given up.")] = 3,
    max_batch: Annotated[
        int, typer.Option(help="Most tasks per decision (bounds one decision's time).")
    ] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the policy's randomness.")] = 0,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning.")] = "info",
    policy_module: Annotated[
        list[str] | None,
        typer.Option(hidden=True, help="Import this module (registers policies); tests."),
    ] = None,
) -> None:
    """Run the live scheduler: HTTP API under /v1, decision loop, durable store.

    Every /v1 call needs a bearer token from --tokens (or $HYBRIDSCHED_TOKENS).
    """
    import uvicorn

    from hybridsched.io import read_cluster
    from hybridsched.policies import add_policy_module, make_policy, parse_policy_args
    from hybridsched.service import ServiceConfig, create_app
    from hybridsched.service.auth import TokenTable, read_tokens

    if not 0 <= port <= 65535:
        # found otherwise only by the socket's bind, after the store is opened
        fail(f"--port: must be an integer from 0 to 65535, got {port}")
    _logging(log_level)
    try:
        tok_path = tokens or (
            Path(os.environ["HYBRIDSCHED_TOKENS"]) if "HYBRIDSCHED_TOKENS" in os.environ else None
        )
        if tok_path is None:
            fail(
                "serve: --tokens FILE is required (a YAML mapping token -> role); "
                "every /v1 call needs a token"
            )
        modules = tuple(policy_module or ())
        for m in modules:
            add_policy_module(m)
            try:
                importlib.import_module(m)
            except ImportError as exc:
                fail(f"serve: --policy-module {m!r}: {exc}")
        args: dict[str, str] = {}
        if policy_args_file is not None:
            from hybridsched.policies.args import read_policy_args

            args.update(read_policy_args(policy_args_file, policy)[1])
        args.update(parse_policy_args(policy_arg))  # --policy-arg wins over the file
        make_policy(policy, args)  # unknown names and arguments fail here, listed
        c = read_cluster(cluster)
        toks = read_tokens(tok_path)
        TokenTable(toks, c.node_names)  # unknown roles and nodes fail here
        config = ServiceConfig(
            cluster=c,
            policy=policy,
            policy_args=args,
            decision_interval=decision_interval,
            queue=queue,
            estimates=estimates,
            db_url=db,
            tokens=toks,
            time_scale=time_scale,
            heartbeat_timeout_s=heartbeat_timeout,
            max_retries=max_retries,
            max_batch=max_batch,
            mqtt_url=mqtt,
            mqtt_topic_root=mqtt_topic_root,
            seed=seed,
            policy_modules=modules,
        )
        from hybridsched.service.store import Store

        if mqtt is not None:
            from hybridsched.service.mqtt import parse_url

            parse_url(mqtt)  # a bad URL fails here, not in the server's start-up

        _check_tls(ssl_certfile, ssl_keyfile)
        # taken before the store is opened and the decision process spawned: uvicorn
        # finds a busy port only after its start-up (exit 3, a traceback-like log)
        _check_port(host, port)
        # an unreachable or foreign database is a one-line error here, not a
        # traceback from the server's start-up
        probe = Store(db)
        probe.open()
        probe.close()
        application = create_app(config)
    except HybridSchedError as exc:
        fail(str(exc))
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ssl_certfile=None if ssl_certfile is None else str(ssl_certfile),
        ssl_keyfile=None if ssl_keyfile is None else str(ssl_keyfile),
    )


def _check_port(host: str, port: int) -> None:
    """Fail (exit 2) when ``host:port`` cannot be listened on (in use, not an address here).

    Bound and released at once, as uvicorn binds it (``SO_REUSEADDR``): a port another
    process listens on fails; one in TIME_WAIT does not. Port 0 (any) always passes.
    """
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"--host {host}: not an address to listen on: {exc.strerror}")
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if exc.errno == errno.EADDRINUSE:
                fail(f"--port {port}: {where} is already in use (another server listens "
                     "on it); choose another --port or stop that server")  # fmt: skip
            fail(f"--host/--port: cannot listen on {where}: {exc.strerror or exc}")


def _check_tls(certfile: Path | None, keyfile: Path | None) -> None:
    """Fail (exit 2) naming the file when the TLS certificate or key cannot be used."""
    import ssl

    if certfile is None:
        if keyfile is not None:
            fail(f"--ssl-keyfile {keyfile}: needs --ssl-certfile (the certificate)")
        return
    files = [("--ssl-certfile", certfile)] + ([("--ssl-keyfile", keyfile)] if keyfile else [])
    text = {}
    for opt, f in files:
        try:
            text[opt] = f.read_text(errors="replace")
        except OSError as exc:
            fail(f"{opt} {f}: cannot be read: {exc.strerror or exc}")
    if "-----BEGIN CERTIFICATE-----" not in text["--ssl-certfile"]:
        fail(f"--ssl-certfile {certfile}: no PEM certificate in it "
             "(a block -----BEGIN CERTIFICATE-----)")  # fmt: skip
    key_opt, key_path = files[-1]
    if "PRIVATE KEY-----" not in text[key_opt]:
        fail(f"{key_opt} {key_path}: no PEM private key in it "
             "(a block -----BEGIN ... PRIVATE KEY-----)")  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(str(certfile), None if keyfile is None else str(keyfile))
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            fail(f"{key_opt} {key_path}: this private key does not belong to the "
                 f"certificate in --ssl-certfile {certfile}")  # fmt: skip
        # which of the two is broken: the certificate alone must load into a client context
        try:
            ssl.create_default_context(cafile=str(certfile))
        except ssl.SSLError:
            fail(f"--ssl-certfile {certfile}: not a valid PEM certificate ({reason})")
        fail(f"{key_opt} {key_path}: not a valid PEM private key ({reason})")


def _check_server(server: str) -> str:
    """The service URL, checked: an http(s) URL with a host (else exit 2 with the rule)."""
    from urllib.parse import urlsplit

    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"--server {server}: must be an http:// or https:// URL with a host, "
             "e.g. http://127.0.0.1:8080")  # fmt: skip
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        fail(f"--server {server}: {exc}")
    return server.rstrip("/")


@app.command()
def agent(
    server: Annotated[str, typer.Option(help="Service URL, e.g. http://127.0.0.1:8080.")],
    token: Annotated[str, typer.Option(help="A node token (or $HYBRIDSCHED_TOKEN).")] = "",
    all_nodes: Annotated[bool, typer.Option("--all", help="Act for every node.")] = False,
    node: Annotated[list[str] | None, typer.Option(help="Node name (repeatable).")] = None,
    time_scale: Annotated[
        float | None, typer.Option(help="Model s per wall s; default: the service's.")
    ] = None,
    exec_cmd: Annotated[
        str | None,
        typer.Option("--exec", help="Run this shell command per task (HYBRIDSCHED_* env)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning.")] = "info",
) -> None:
    """Run node agents: lease tasks, run them (emulated, or --exec), report back."""
    from hybridsched.service.agent import Agent

    _logging(log_level)
    server = _check_server(server)
    token = token or os.environ.get("HYBRIDSCHED_TOKEN", "")
    if not token:
        fail("agent: --token is required (a node token of the service)")
    if all_nodes == bool(node):
        fail("agent: give either --all or one or more --node NAME")
    a = Agent(
        server,
        token,
        None if all_nodes else list(node or []),
        time_scale=time_scale,
        exec_cmd=exec_cmd,
    )
    try:
        asyncio.run(a.run())
    except KeyboardInterrupt:
        pass
    except ConnectionError as exc:
        fail(f"agent: {exc}")
    except Exception as exc:  # an HTTP refusal (token, node names): one line, no traceback
        fail(f"agent: {exc}")


@app.command()
def replay(
    server: Annotated[str, typer.Option(help="Service URL.")],
    workload: Annotated[Path, typer.Option(help="Workload file (.parquet/.csv).")],
    out: Annotated[Path, typer.Option(help="Output folder: tasks.parquet, summary.json.")],
    token: Annotated[str, typer.Option(help="A submit token (or $HYBRIDSCHED_TOKEN).")] = "",
    time_scale: Annotated[
        float | None, typer.Option(help="Check the service runs at this time scale.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many wall seconds.")] = 3600.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulator's policy (prediction).")] = 0,
    ahead: Annotated[
        float,
        typer.Option(
            help="Submit each task this many wall seconds before its arrival (the service "
            "holds it unseen until then); 0: at its arrival."
        ),
    ] = 0.0,
) -> None:
    """Replay a workload live (each task at its arrival), then compare with the simulator."""
    from rich.table import Table

    from hybridsched.io import read_workload
    from hybridsched.model import Cluster
    from hybridsched.policies import make_policy
    from hybridsched.results import write_result
    from hybridsched.service.replay import Replay, live_result
    from hybridsched.sim import simulate

    server = _check_server(server)
    token = token or os.environ.get("HYBRIDSCHED_TOKEN", "")
    if not token:
        fail("replay: --token is required (a submit token of the service)")
    if not 0 <= ahead < float("inf"):
        fail(f"--ahead: must be a finite number of seconds >= 0, got {ahead:g}")
    try:
        w = read_workload(workload)
        if time_scale is not None:
            import httpx

            try:
                r = httpx.get(server.rstrip("/") + "/v1/cluster", timeout=10,
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                r.raise_for_status()
                scale = r.json()["time_scale"]
            except httpx.HTTPError as exc:
                fail(f"replay: {server}: {exc}")
            if abs(scale - time_scale) > 1e-9:
                fail(f"replay: --time-scale {time_scale:g}, but the service runs at {scale:g}")
        rp = Replay(server, token, w, ahead_s=ahead)
        t = time.perf_counter()
        cols = asyncio.run(rp.run(timeout_s=timeout))
        wall = time.perf_counter() - t
        info = rp.info
        cluster = Cluster.build(info["cluster"], source=f"{server}/v1/cluster")
        live = live_result(cluster, w, cols, info)
        write_result(live, out, extra={"server": server, "workload": str(workload), "wall_s": wall})
        pol = make_policy(info["policy"], info.get("policy_args") or {})
        sim = simulate(
            cluster,
            w,
            pol,
            decision_interval=info["decision_interval_s"],
            queue=info["queue"],
            seed=seed,
        )
    except HybridSchedError as exc:
        fail(str(exc))
    except (ConnectionError, TimeoutError) as exc:
        fail(f"replay: {exc}")
    table = Table(title=f"live vs simulated: {info['policy']} on {workload.name} ({wall:.1f} s)")
    table.add_column("metric")
    table.add_column("live", justify="right")
    table.add_column("simulated", justify="right")
    table.add_column("live / sim", justify="right")
    for key in ("mean_response_s", "p95_response_s", "deadline_miss_rate", "energy_j"):
        a, b = live.summary.get(key, float("nan")), sim.summary[key]
        table.add_row(key, f"{a:.6g}", f"{b:.6g}", f"{a / b:.3f}" if b else "-")
    console.print(table)
    console.print(f"status: {live.summary['status']}")
    console.print(f"wrote {out / 'tasks.parquet'} and {out / 'summary.json'}")
