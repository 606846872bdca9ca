"""The MQTT bridge against real Mosquitto brokers: tasks in at QoS 1, statuses out, and a
restart of a private broker (started and killed by this test, never the machine's)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from builders import make_cluster
from hybridsched.service.agent import Agent
from service_support import (
    NODE_ALL,
    SUBMIT,
    Server,
    free_port,
    pg_database,
    require,
    wait_all_ended,
    write_inputs,
)

CLUSTER = make_cluster([{"cores": 2}, {"cores": 2}])


class Broker:
    """A private mosquitto on a loopback port of its own."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        import socket

        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private mosquitto did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Listener:
    """Collects status messages (reconnecting and resubscribing by itself)."""

    def __init__(self, port: int, root: str) -> None:
        self.by_task: dict[int, list[dict]] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        c = self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex)
        c.reconnect_delay_set(1, 2)

        def on_connect(client, _u, _f, rc, _p):
            client.subscribe(f"{root}/status/#", qos=1)

        def on_subscribe(*_a):
            self.subscribed.set()

        def on_message(_c, _u, msg):
            body = json.loads(msg.payload)
            with self.lock:
                self.by_task.setdefault(body["task_id"], []).append(body)

        c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
        c.on_disconnect = lambda *_a: self.subscribed.clear()
        c.connect_async("127.0.0.1", port)
        c.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish(port: int, root: str, payloads: list) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(f"{root}/tasks", json.dumps(p), qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(10)
        assert info.is_published()
    c.disconnect()
    c.loop_stop()


def _publish_until_taken(
    port: int, root: str, payloads: list, url: str, probe: list[int], timeout: float = 60.0
) -> None:
    """Publish ``payloads`` until the service has every task of ``probe``.

    The service subscribes asynchronously after each (re)connect, and a message the
    broker gets before that is dropped; so rather than sleeping a guessed delay, the
    messages are sent again until they were taken. Sending again is safe: a known
    task_id is a no-op (the duplicate QoS-1 delivery the bridge must absorb).
    """
    end = time.monotonic() + timeout
    while True:
        _publish(port, root, payloads)
        wait = time.monotonic() + 2.0
        while time.monotonic() < wait:
            r = httpx.post(f"{url}/v1/tasks/query", json={"task_ids": probe}, headers=SUBMIT)
            if len(r.json()["tasks"]) == len(probe):
                return
            time.sleep(0.05)
        assert time.monotonic() < end, f"the service never took tasks {probe} from MQTT"


def _task(i: int) -> dict:
    return {"task_id": i, "region": 0, "data_mb": 0.0, "work_gi": 0.5}


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_mqtt_tasks_statuses_and_broker_restart(tmp_path: Path, store: str) -> None:
    require("127.0.0.1", 1883, "Mosquitto")  # the machine's broker proves mosquitto is there
    if store == "postgresql":
        with pg_database() as url:
            _mqtt_run(tmp_path, url)
    else:
        _mqtt_run(tmp_path, f"sqlite:///{tmp_path / 'mqtt.db'}")


def _mqtt_run(tmp_path: Path, db: str) -> None:
    write_inputs(tmp_path, CLUSTER)
    broker = Broker(tmp_path)
    broker.start()
    root = f"hs{uuid.uuid4().hex[:8]}"
    srv = Server(
        tmp_path,
        db,
        "--time-scale",
        "20",
        "--mqtt",
        f"mqtt://127.0.0.1:{broker.port}",
        "--mqtt-topic-root",
        root,
    )
    srv.start()
    agent = Agent(srv.url, NODE_ALL, poll_s=0.1)
    agent.run_in_thread()
    listener = Listener(broker.port, root)
    try:
        assert listener.subscribed.wait(10)
        # one list message and single objects; one resent (idempotent); one invalid
        _publish_until_taken(
            broker.port,
            root,
            [
                [_task(i) for i in range(20)],
                *map(_task, range(20, 30)),
                _task(5),
                {"task_id": 99, "work_gi": -1},
            ],
            srv.url,
            probe=list(range(30)),
        )
        wait_all_ended(srv.url, list(range(30)))
        # restart the broker: the service reconnects, resubscribes, nothing is lost
        broker.kill()
        time.sleep(0.5)
        broker.start()
        assert listener.subscribed.wait(15)
        _publish_until_taken(
            broker.port,
            root,
            [[_task(i) for i in range(30, 60)], _task(31)],
            srv.url,
            probe=list(range(30, 60)),
        )
        rows = wait_all_ended(srv.url, list(range(60)))

        def all_finished() -> bool:
            with listener.lock:
                got = {t: m[-1]["status"] for t, m in listener.by_task.items()}
            return all(got.get(t) == "finished" for t in range(60))

        # the last status messages are on their way: wait for them, bounded
        end = time.monotonic() + 30
        while not all_finished() and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        agent.stop_thread()
        srv.stop()
        listener.stop()
        broker.kill()
    assert {r["status"] for r in rows.values()} == {"finished"}
    assert {r["attempt"] for r in rows.values()} == {1}
    # every task's transitions arrived, in order, each once, ending with its finish
    with listener.lock:
        seen = dict(listener.by_task)
    assert 99 not in seen
    assert sorted(seen) == list(range(60))
    for tid, msgs in seen.items():
        # "running" is absent when the agent folded a start into its finish report
        statuses = [m["status"] for m in msgs]
        assert statuses in (
            ["pending", "assigned", "running", "finished"],
            ["pending", "assigned", "finished"],
        ), (tid, statuses)
        last = msgs[-1]
        assert last["finish_s"] == pytest.approx(rows[tid]["finish_s"])
        assert {"task_id", "status", "node", "arrival_s", "start_s", "finish_s"} <= set(last)
