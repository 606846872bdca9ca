"""What the service's clients (agent, replay) share: a request that rides out outages,
and the service's model clock estimated from short round trips."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
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


class ServerClock:
    """The service's model clock, followed from the answers of short requests.

    The server stamps an answer's ``time_s`` while the request is in flight, so the
    stamp fell between sending and receiving: its best estimate is the midpoint, off
    by at most half the round trip. Of the recent samples the one with the shortest
    round trip is used (NTP's filter), so a slow answer (a busy machine) does not set
    the clock late. Long-polls are no samples: their stamp is at their end.

    Args:
        time_scale: model seconds per wall second.
        window: how many recent samples are compared.
    """

    def __init__(self, time_scale: float = 1.0, window: int = 32) -> None:
        self.time_scale = float(time_scale)
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)
        self._offset = 0.0  # model time at monotonic() == 0
        self.rtt_s = math.inf
        """Round trip of the sample in use, wall s."""

    def sample(self, sent: float, received: float, server_time_s: float) -> None:
        """A request sent at ``sent`` (``time.monotonic()``) was answered at ``received``
        with the server's model time ``server_time_s``."""
        mid = 0.5 * (sent + received)
        self._samples.append((received - sent, server_time_s - mid * self.time_scale))
        self.rtt_s, self._offset = min(self._samples)

    def now(self) -> float:
        """Model time, s."""
        return self._offset + time.monotonic() * self.time_scale

    async def sync(self, fetch: Callable[[], Awaitable[Any]], n: int = 5) -> None:
        """Take ``n`` samples; ``fetch()`` asks ``GET /v1/clock`` (JSON with ``time_s``)."""
        for _ in range(n):
            sent = time.monotonic()
            out = await fetch()
            self.sample(sent, time.monotonic(), float(out["time_s"]))


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
