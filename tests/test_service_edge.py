"""The request body limit (declared and streamed bodies over it get 413 before the app
parses anything) and the token table (exact matches only)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from hybridsched.service.api import _BodyLimit

LIMIT = 1000


def _app() -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    seen: list[int] = []

    @app.post("/x")
    async def x(body: list[dict]) -> dict:
        seen.append(len(body))
        return {"n": len(body)}

    app.add_middleware(_BodyLimit, limit=LIMIT)
    return app, seen


def _post(app: FastAPI, content: bytes | AsyncIterator[bytes]) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.post("/x", content=content, headers={"content-type": "application/json"})

    return asyncio.run(go())


def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    return gen()


def _body(n: int) -> bytes:
    return b"[" + b",".join([b'{"a":1}'] * n) + b"]"


def test_streamed_body_over_the_limit_is_413_and_never_parsed() -> None:
    app, seen = _app()
    big = _body(200)  # 1,601 bytes
    assert len(big) > LIMIT
    r = _post(app, _chunks(big, 100))  # chunked: no Content-Length
    assert r.status_code == 413
    assert r.json()["detail"] == f"request body: larger than the limit of {LIMIT} bytes"
    assert seen == []


def test_declared_body_over_the_limit_is_413() -> None:
    app, seen = _app()
    r = _post(app, _body(200))
    assert r.status_code == 413 and seen == []


def test_streamed_body_at_the_limit_is_whole_for_the_app() -> None:
    app, seen = _app()
    n = (LIMIT - 1) // 8  # 124 items: 8 n + 1 bytes <= LIMIT
    body = _body(n)
    assert len(body) <= LIMIT
    r = _post(app, _chunks(body, 7))
    assert r.status_code == 200 and r.json() == {"n": n} and seen == [n]


def test_token_lookup_exact_match_only() -> None:
    from hybridsched.service.auth import Principal, TokenTable

    table = TokenTable(
        {"admin-token-0001": "admin", "node-token-n0-001": "node:n0,n1"}, ("n0", "n1", "n2")
    )
    assert table.lookup("admin-token-0001") == Principal("admin")
    p = table.lookup("node-token-n0-001")
    assert p is not None and p.nodes == frozenset({"n0", "n1"})
    assert p.may_act_for("n1") and not p.may_act_for("n2")
    # a prefix, an extension, another case, the empty string: unknown
    for probe in ("admin-token-000", "admin-token-00011", "ADMIN-TOKEN-0001", "", "\udcff"):
        assert table.lookup(probe) is None


def test_agent_lease_retry_after_a_lost_answer_asks_for_a_resync() -> None:
    # the server marks what a lease answers as delivered; if that answer is lost, the
    # retry must ask for everything not started again (resync), or those tasks stay
    # assigned to a live node forever
    from hybridsched.service.agent import Agent

    agent = Agent("http://t", "node-token-all-01", ["n0"], poll_s=0.01)
    sent: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content)
        sent.append(body)
        if len(sent) == 2:
            raise httpx.ReadTimeout("answer lost", request=request)
        if len(sent) >= 4:
            agent._stop.set()
        return httpx.Response(200, json={"time_s": 0.0, "tasks": []})

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            await asyncio.wait_for(agent._lease_loop(client), 10)

    asyncio.run(go())
    # first lease resyncs; the second's answer is lost; its retry resyncs; then plain
    assert [b["resync"] for b in sent[:4]] == [True, False, True, False]


def test_mqtt_message_whose_commit_fails_is_reported_not_raised() -> None:
    # an exception out of on_message ends paho's network thread: the bridge would be
    # dead with nobody told; instead the failure goes to <root>/errors
    import json
    from types import SimpleNamespace

    from hybridsched.service.mqtt import MqttBridge

    class Writer:
        def call(self, op: object) -> None:
            raise RuntimeError("database is locked")

    svc = SimpleNamespace(
        writer=Writer(),
        check_submission=lambda t: None,
        clock=SimpleNamespace(now=lambda: 0.0),
    )
    bridge = MqttBridge(svc, "mqtt://127.0.0.1:1", "root")  # never connected
    published: list[tuple[str, dict]] = []
    client = SimpleNamespace(publish=lambda topic, body, qos: published.append((topic, body)))
    task = {"task_id": 7, "region": 0, "data_mb": 0.0, "work_gi": 1.0}
    msg = SimpleNamespace(payload=json.dumps(task).encode())
    bridge._on_message(client, None, msg)  # does not raise
    assert [t for t, _ in published] == ["root/errors"]
    detail = json.loads(published[0][1])["detail"]
    assert detail == [{"task_id": 7, "msg": "not stored: database is locked"}]
