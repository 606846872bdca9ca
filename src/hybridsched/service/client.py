"""What the service's clients (agent, replay) share: a request that rides out outages."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import httpx


async def request_through_outages(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    body: Any = None,
    outage_s: float,
    log: logging.Logger,
    retry_body: Any = None,
    stop: asyncio.Event | threading.Event | None = None,
) -> Any:
    """Send one request, retrying through outages (no answer, or a 5xx) for ``outage_s``.

    The first failed try is logged once; a retry sends ``retry_body`` when given (a
    lease whose answer was lost asks for a resync). A 4xx is the server's word and is
    raised at once.

    Raises:
        httpx.HTTPStatusError: a 4xx answer.
        ConnectionError: no answer for ``outage_s`` wall seconds (or ``stop`` was set).
    """
    t0 = time.monotonic()
    delay = 0.05
    while True:
        try:
            r = await client.request(method, url, json=body, headers=headers)
            if r.status_code < 500:
                r.raise_for_status()
                return r.json()
        except httpx.HTTPStatusError:
            raise
        except httpx.HTTPError:
            pass
        server = url.split("/v1/", 1)[0]
        if delay == 0.05:  # the first failed try: say so once, then keep trying
            log.warning("%s: unreachable; retrying for up to %g s", server, outage_s)
        if time.monotonic() - t0 > outage_s or (stop is not None and stop.is_set()):
            raise ConnectionError(f"{server}: unreachable for {outage_s:g} s")
        await asyncio.sleep(delay)
        delay = min(2 * delay, 1.0)
        if retry_body is not None:
            body = retry_body


class ServiceClient:
    """A client of one service: its base URL, a bearer token and the outage budget.

    Args:
        server: base URL of the service.
        token: the bearer token of every request.
        outage_s: how long (wall s) to keep retrying an unreachable service.
        log: where the first failed try of a request is logged.
    """

    def __init__(self, server: str, token: str, outage_s: float, log: logging.Logger) -> None:
        self.server = server.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self.outage_s = outage_s
        self._log = log

    async def _request(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        body: Any = None,
        *,
        retry_body: Any = None,
        stop: asyncio.Event | threading.Event | None = None,
    ) -> Any:
        """:func:`request_through_outages` of ``method path`` on this service."""
        return await request_through_outages(
            client,
            method,
            self.server + path,
            headers=self._headers,
            body=body,
            outage_s=self.outage_s,
            log=self._log,
            retry_body=retry_body,
            stop=stop,
        )
