"""The HTTP API: ``create_app(config)`` builds a FastAPI app around one :class:`Service`.

Everything under ``/v1`` needs a bearer token; ``/healthz`` and ``/metrics`` do
not. A submission is answered only after its transaction commits.
"""

# no "from __future__ import annotations": FastAPI must see the closures in Annotated

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hybridsched.service import ops
from hybridsched.service.auth import Principal, TokenTable
from hybridsched.service.config import ServiceConfig
from hybridsched.service.models import (
    ClockOut,
    ClusterOut,
    DrainIn,
    LeaseIn,
    LeaseOut,
    NodeOut,
    NodesIn,
    Problem,
    ReportsIn,
    ReportsOut,
    SubmitResponse,
    TaskIn,
    TaskList,
    TaskOut,
    TaskQuery,
)
from hybridsched.service.runtime import Service
from hybridsched.service.state import TaskRec
from hybridsched.sim.observations import NodeObservations

log = logging.getLogger("hybridsched.service.api")

_bearer = HTTPBearer(auto_error=False)


def _task_out(rec: TaskRec) -> TaskOut:
    return TaskOut.model_validate(rec, from_attributes=True)


class _BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 (declared or streamed)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length" and v.isdigit() and int(v) > self.limit:
                await _send_413(send, self.limit)
                return
        # Read the whole body here, counting, before the app sees any of it: an
        # exception raised from inside the app's receive() would reach FastAPI's body
        # parser, which turns it into 400 "error parsing the body" (a streamed body
        # without Content-Length got 400, not 413).
        chunks: list[bytes] = []
        seen = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                # the client went away before the body ended: let the app see that
                await self.app(scope, _replay([msg], receive), send)
                return
            chunk = msg.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await _send_413(send, self.limit)
                return
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


def _replay(first: list[dict], receive: Callable) -> Callable[[], Awaitable[dict]]:
    """A receive() that gives ``first`` and then what the server gives (a disconnect)."""
    pending = list(first)

    async def again() -> dict:
        if pending:
            return pending.pop(0)
        return await receive()

    return again


async def _send_413(send: Callable, limit: int) -> None:
    body = json.dumps({"detail": f"request body: larger than the limit of {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(config: ServiceConfig, service: Service | None = None) -> FastAPI:
    """The API for ``config`` (a lifespan starts and stops the service and the MQTT bridge)."""
    svc = service if service is not None else Service(config)
    tokens = TokenTable(config.tokens, config.cluster.node_names)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        app.state.assigned = asyncio.Event()

        def wake() -> None:
            ev = app.state.assigned
            app.state.assigned = asyncio.Event()
            ev.set()

        svc.assigned_event = lambda: loop.call_soon_threadsafe(wake)
        await asyncio.to_thread(svc.start)
        bridge = None
        if config.mqtt_url:
            from hybridsched.service.mqtt import MqttBridge

            bridge = MqttBridge(svc, config.mqtt_url, config.mqtt_topic_root)
            bridge.start()
        try:
            yield
        finally:
            if bridge is not None:
                bridge.stop()
            await asyncio.to_thread(svc.stop)

    app = FastAPI(
        title="hybridsched",
        version="1",
        summary="Live placement of IoT tasks on edge/fog/cloud nodes",
        lifespan=lifespan,
    )
    app.state.service = svc

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # each error names the field (loc), the value (input) and the rule (msg)
        errs = []
        for e in exc.errors():
            errs.append(
                {
                    "loc": [str(p) for p in e.get("loc", ())],
                    "msg": e.get("msg"),
                    "input": _jsonable(e.get("input")),
                    "type": e.get("type"),
                }
            )
        return JSONResponse(status_code=422, content={"detail": errs})

    @app.exception_handler(ops.OpError)
    async def _op_error(_: Request, exc: ops.OpError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": exc.message})

    def role(*allowed: str) -> Callable[..., Awaitable[Principal]]:
        async def dep(
            cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> Principal:
            if cred is None or cred.scheme.lower() != "bearer":
                raise HTTPException(401, "missing bearer token", {"WWW-Authenticate": "Bearer"})
            p = tokens.lookup(cred.credentials)
            if p is None:
                raise HTTPException(401, "unknown token", {"WWW-Authenticate": "Bearer"})
            if p.role != "admin" and p.role not in allowed:
                raise HTTPException(403, f"role {p.role!r} may not do this")
            return p

        return dep

    def commit(op: ops.Op) -> Awaitable[Any]:
        return asyncio.wrap_future(svc.writer.submit(op))

    def check_nodes(p: Principal, names: list[str]) -> None:
        for name in names:
            if name not in svc.state.node_index:
                raise HTTPException(404, f"node {name!r}: no such node in the cluster")
            if not p.may_act_for(name):
                raise HTTPException(403, f"node {name!r}: this token does not act for it")

    err = {401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}}

    # ---------------------------------------------------------------- open

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> Response:
        """Liveness: 200 once the service is up (state loaded, loops running), else 503.

        Work is accepted from then on. ``decider`` says whether the decision process
        has its policy compiled (``ready``) or is still starting (``starting``);
        ``/readyz`` turns 200 only when it is ready.
        """
        dec = "ready" if svc.decider.ready else "starting"
        if svc.ready:
            return JSONResponse({"status": "ready", "decider": dec})
        return JSONResponse({"status": "starting", "decider": dec}, status_code=503)

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> Response:
        """Readiness: 200 once the service is up *and* its decision process has answered
        (policy built and compiled), so tasks submitted now are decided without waiting
        for a compilation; 503 ``{"status": "starting", "decider": ...}`` before, and
        while a dead decision process is being replaced."""
        dec = "ready" if svc.decider.ready else "starting"
        if svc.ready and dec == "ready":
            return JSONResponse({"status": "ready", "decider": dec})
        return JSONResponse({"status": "starting", "decider": dec}, status_code=503)

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        """Prometheus text exposition."""
        return Response(svc.metrics.render(), media_type="text/plain; version=0.0.4")

    # --------------------------------------------------------------- tasks

    @app.post("/v1/tasks", response_model=SubmitResponse, tags=["tasks"], responses=err)
    async def submit(
        body: TaskIn | list[TaskIn],
        _p: Annotated[Principal, Depends(role("submit"))],
    ) -> Response:
        """Submit one task or a list; acknowledged once committed; idempotent on task_id."""
        t0 = time.perf_counter()
        items = body if isinstance(body, list) else [body]
        if len(items) > 10_000:
            raise HTTPException(422, f"body: {len(items)} tasks; at most 10000 per request")
        rows = [t.model_dump() for t in items]
        for i, t in enumerate(rows):
            why = svc.check_submission(t)
            if why is not None:
                loc = ["body", str(i)] if isinstance(body, list) else ["body"]
                raise HTTPException(
                    422, [{"loc": [*loc, why.split(":")[0]], "msg": why, "input": t["task_id"]}]
                )
        _now = svc.clock.now()
        res = await commit(ops.submit(rows, svc.clock.now()))
        svc.metrics.submitted.inc(sum(1 for r in res if not r[2]))
        svc.metrics.submit_seconds.observe(time.perf_counter() - t0)
        # plain ints, strings and bools: encoded directly rather than built as models and
        # validated again by FastAPI (the document still shows SubmitResponse)
        return _json_response(
            {"results": [{"task_id": t, "status": s, "duplicate": d} for t, s, d in res]}
        )

    async def find(ids: list[int]) -> list[TaskOut]:
        # tasks in flight from memory, ended ones from the database (off the event loop)
        st = svc.state
        out: dict[int, TaskOut] = {}
        ended: list[int] = []
        with st.lock:
            for t in ids:
                rec = st.tasks.get(t)
                if rec is not None:
                    out[t] = _task_out(rec)
                elif t in st.done:
                    ended.append(t)
        if ended:
            for row in await asyncio.to_thread(svc.store.read_tasks, ended):
                out[row["task_id"]] = TaskOut(**{k: row[k] for k in TaskOut.model_fields})
        return [out[t] for t in ids if t in out]

    @app.get("/v1/tasks/{task_id}", response_model=TaskOut, tags=["tasks"], responses=err)
    async def get_task(
        task_id: int, _p: Annotated[Principal, Depends(role("submit", "node"))]
    ) -> TaskOut:
        """A task's state."""
        found = await find([task_id])
        if not found:
            raise HTTPException(404, f"task_id {task_id}: no such task")
        return found[0]

    @app.post("/v1/tasks/query", response_model=TaskList, tags=["tasks"], responses=err)
    async def query_tasks(
        body: TaskQuery, _p: Annotated[Principal, Depends(role("submit"))]
    ) -> TaskList:
        """Several tasks at once (unknown ids left out)."""
        return TaskList(tasks=await find(body.task_ids))

    @app.post("/v1/tasks/{task_id}/cancel", response_model=TaskOut, tags=["tasks"], responses=err)
    async def cancel(task_id: int, _p: Annotated[Principal, Depends(role("submit"))]) -> TaskOut:
        """Cancel a pending or assigned (not started) task; 409 once it runs or ended."""
        await commit(ops.cancel(task_id))
        return (await find([task_id]))[0]

    # --------------------------------------------------------------- nodes

    def node_out(j: int, seen: NodeObservations, model_now: float) -> NodeOut:
        # ``seen``: the nodes' observations at model time ``model_now`` (under the lock)
        st = svc.state
        c = svc.cluster
        name = c.node_names[j]
        obs = st.observed.get(name)
        now = time.time()
        ratio = float(seen.exec_ratio[j])
        return NodeOut(
            name=name,
            index=j,
            tier=c.tiers[j],
            cores=int(c.cores[j]),
            speed=float(c.speed[j]),
            up=bool(st.node_up(now)[j]),
            attached=bool(st.attached[j]),
            drained=bool(st.drained[j]),
            queued=len(st.queued[j]),
            running=len(st.running[j]),
            last_seen_s_ago=float(now - st.last_seen[j]),
            observed_mean_s=(sum(obs) / len(obs)) if obs else None,
            exec_ratio=None if math.isnan(ratio) else ratio,
            exec_count=int(seen.exec_count[j]),
            exec_estimate=float(seen.exec_factor(model_now)[j]),
            running_ratio=float(seen.running_ratio[j]),
        )

    @app.get("/v1/nodes", response_model=list[NodeOut], tags=["nodes"], responses=err)
    async def list_nodes(
        _p: Annotated[Principal, Depends(role("submit", "node"))],
    ) -> list[NodeOut]:
        """Every node's state."""
        with svc.state.lock:
            now = svc.clock.now()
            seen = svc.state.observations(now)
            return [node_out(j, seen, now) for j in range(svc.cluster.n_nodes)]

    @app.get("/v1/nodes/{name}", response_model=NodeOut, tags=["nodes"], responses=err)
    async def get_node(
        name: str, _p: Annotated[Principal, Depends(role("submit", "node"))]
    ) -> NodeOut:
        """One node's state."""
        j = svc.state.node_index.get(name)
        if j is None:
            raise HTTPException(404, f"node {name!r}: no such node in the cluster")
        with svc.state.lock:
            now = svc.clock.now()
            return node_out(j, svc.state.observations(now), now)

    @app.post("/v1/nodes/{name}/drain", response_model=NodeOut, tags=["nodes"], responses=err)
    async def drain(
        name: str, body: DrainIn, _p: Annotated[Principal, Depends(role("admin"))]
    ) -> NodeOut:
        """Drain a node (takes no new tasks; what it holds runs out) or undo it (admin)."""
        j = svc.state.node_index.get(name)
        if j is None:
            raise HTTPException(404, f"node {name!r}: no such node in the cluster")
        await commit(ops.drain(j, body.drained))
        with svc.state.lock:
            now = svc.clock.now()
            return node_out(j, svc.state.observations(now), now)

    @app.post("/v1/agent/heartbeat", tags=["agents"], responses=err)
    async def heartbeat(
        body: NodesIn, p: Annotated[Principal, Depends(role("node"))]
    ) -> dict[str, Any]:
        """The agent of these nodes is alive."""
        check_nodes(p, body.nodes)
        svc.heartbeat(body.nodes)
        return {"time_s": svc.clock.now()}

    @app.post("/v1/agent/lease", response_model=LeaseOut, tags=["agents"], responses=err)
    async def lease(body: LeaseIn, p: Annotated[Principal, Depends(role("node"))]) -> Response:
        """Tasks assigned to these nodes and not yet delivered (long-polls up to wait_s)."""
        check_nodes(p, body.nodes)
        svc.heartbeat(body.nodes)
        deadline = time.monotonic() + body.wait_s
        while True:
            ev = app.state.assigned
            got = svc.lease(body.nodes, body.max_tasks, body.resync)
            left = deadline - time.monotonic()
            if got or left <= 0:
                break
            try:
                await asyncio.wait_for(ev.wait(), timeout=left)
            except asyncio.TimeoutError:
                pass
        # plain JSON types: encoded directly (the answer waits on the critical path from a
        # decision to the agent; the document still shows LeaseOut)
        for t in got:
            if t["deadline_abs_s"] == math.inf:
                t["deadline_abs_s"] = None
        return _json_response(
            {"time_s": svc.clock.now(), "time_scale": svc.clock.time_scale,
             "queue": config.queue, "tasks": got}
        )  # fmt: skip

    @app.post("/v1/agent/reports", response_model=ReportsOut, tags=["agents"], responses=err)
    async def reports(body: ReportsIn, p: Annotated[Principal, Depends(role("node"))]) -> Response:
        """Start, finish and failure reports, applied in one transaction.

        Each result says ``ok``, ``duplicate`` (already recorded; nothing changed) or
        ``refused`` (a report from an expired lease, or for a node the token does
        not act for).
        """
        allowed = None if p.nodes is None or p.role == "admin" else set(p.nodes)
        for r in body.reports:
            if r.node not in svc.state.node_index:
                raise HTTPException(404, f"node {r.node!r}: no such node in the cluster")
        rows = [r.model_dump() for r in body.reports]
        res = await commit(ops.report(allowed, rows))
        return _json_response(
            {"results": [{"task_id": t, "outcome": o, "detail": d} for t, o, d in res]}
        )

    # ------------------------------------------------------------- cluster

    @app.get("/v1/cluster", response_model=ClusterOut, tags=["cluster"], responses=err)
    async def cluster(
        _p: Annotated[Principal, Depends(role("submit", "node"))],
    ) -> ClusterOut:
        """The cluster, the clock and task counts by status."""
        with svc.state.lock:
            counts = dict(svc.state.counts)
            up = int(svc.state.node_up().sum())
        return ClusterOut(
            time_s=svc.clock.now(),
            time_scale=svc.clock.time_scale,
            policy=config.policy,
            policy_args={k: str(v) for k, v in config.policy_args.items()},
            decision_interval_s=config.decision_interval,
            queue=config.queue,
            estimates=config.estimates,
            counts=counts,
            nodes_up=up,
            nodes=svc.cluster.n_nodes,
            cluster=svc.cluster.to_dict(),
        )

    @app.get("/v1/clock", response_model=ClockOut, tags=["cluster"], responses=err)
    async def clock(_p: Annotated[Principal, Depends(role("submit", "node"))]) -> Response:
        """The model clock now: a short answer that agents and replays set their clocks by."""
        return _json_response({"time_s": svc.clock.now(), "time_scale": svc.clock.time_scale})

    app.add_middleware(_BodyLimit, limit=config.max_body_bytes)
    return app


def _json_response(content: dict[str, Any]) -> Response:
    # what JSONResponse writes, for content of plain JSON types only
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body.encode(), media_type="application/json")


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except (TypeError, ValueError):
        return repr(v)
