"""MQTT bridge: tasks in from ``<root>/tasks``, every transition out to ``<root>/status/<id>``.

Devices publish a task (a JSON object, or a list of them) at QoS 1. The bridge
commits it before the broker gets the acknowledgement (the callback returns
after the commit), with the same validation and idempotency as HTTP. Status
messages go out at QoS 1. The client reconnects by itself after a broker
restart and subscribes again; status messages published meanwhile wait in
the client's queue.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from pydantic import TypeAdapter, ValidationError

from hybridsched.errors import ConfigError
from hybridsched.service import ops
from hybridsched.service.models import TaskIn
from hybridsched.service.state import Transition

if TYPE_CHECKING:
    from hybridsched.service.runtime import Service

log = logging.getLogger("hybridsched.service.mqtt")

_TASKS = TypeAdapter(TaskIn | list[TaskIn])


def parse_url(url: str) -> tuple[str, int]:
    """``mqtt://HOST:PORT`` as (host, port).

    Raises:
        ConfigError: another scheme or no host.
    """
    u = urlparse(url)
    try:
        port = u.port
    except ValueError:  # a port out of range or not a number
        port = -1
    if u.scheme != "mqtt" or not u.hostname or port == -1:
        raise ConfigError(f"--mqtt: {url!r} must look like mqtt://HOST:PORT")
    return u.hostname, port or 1883


class MqttBridge:
    """Connects one service to a broker (a paho network thread of its own)."""

    def __init__(self, service: Service, url: str, root: str = "hybridsched") -> None:
        self.service = service
        self.host, self.port = parse_url(url)
        self.root = root.rstrip("/")
        self.connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"hybridsched-{root}",
            clean_session=False,
        )
        self.client.max_queued_messages_set(0)  # unbounded: nothing is dropped
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        """Connect (asynchronously: a broker down now is retried) and start publishing."""
        self.service.writer.listeners.append(self.publish)
        self.client.connect_async(self.host, self.port, keepalive=10)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        try:
            self.service.writer.listeners.remove(self.publish)
        except ValueError:
            pass
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("event=mqtt_connect_failed reason=%s", rc)
            return
        client.subscribe(f"{self.root}/tasks", qos=1)
        self.connected.set()
        log.info("event=mqtt_connected host=%s port=%d", self.host, self.port)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connected.clear()
        log.warning("event=mqtt_disconnected reason=%s", rc)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = _TASKS.validate_json(msg.payload)
        except ValidationError as exc:
            errs = [
                {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "input": repr(e.get("input"))}
                for e in exc.errors()
            ]
            log.warning("event=mqtt_bad_task errors=%d", len(errs))
            client.publish(f"{self.root}/errors", json.dumps({"detail": errs}), qos=1)
            return
        items = body if isinstance(body, list) else [body]
        rows = [t.model_dump() for t in items]
        bad = [(t["task_id"], w) for t in rows if (w := self.service.check_submission(t))]
        if bad:
            client.publish(
                f"{self.root}/errors",
                json.dumps({"detail": [{"task_id": t, "msg": w} for t, w in bad]}),
                qos=1,
            )
            rows = [t for t in rows if not self.service.check_submission(t)]
        if rows:
            # commit before returning: paho acknowledges (PUBACK) after this callback
            try:
                res = self.service.writer.call(ops.submit(rows, self.service.clock.now()))
            except Exception as exc:
                # an exception out of this callback would end paho's network thread
                # (the bridge dead, silently); the transaction rolled back, so say so
                log.error("event=mqtt_submit_failed tasks=%d error=%s", len(rows), exc)
                detail = [{"task_id": t["task_id"], "msg": f"not stored: {exc}"} for t in rows]
                client.publish(f"{self.root}/errors", json.dumps({"detail": detail}), qos=1)
                return
            self.service.metrics.submitted.inc(sum(1 for r in res if not r[2]))

    def publish(self, transitions: list[Transition]) -> None:
        """Publish committed transitions (a writer listener)."""
        for tr in transitions:
            self.client.publish(f"{self.root}/status/{tr.task_id}", json.dumps(tr.to_dict()), qos=1)
