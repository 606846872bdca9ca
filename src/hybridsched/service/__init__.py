"""The live scheduler: the same policies place real tasks on real nodes, durably.

``create_app(config)`` builds the HTTP API (FastAPI) around a :class:`Service`
(store, live state, decision loop, node monitor, optional MQTT bridge); the
agent and replay clients live in :mod:`hybridsched.service.agent` and
:mod:`hybridsched.service.replay`. See docs/SERVICE.md.
"""

from __future__ import annotations

from hybridsched.service.api import create_app
from hybridsched.service.config import ServiceConfig
from hybridsched.service.runtime import Service

__all__ = ["Service", "ServiceConfig", "create_app"]
