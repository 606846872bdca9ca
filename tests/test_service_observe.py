"""What the live service observes (docs/SERVICE.md "Observations"): finish reports
give each node the simulator's decayed mean of realized / nominal execution time,
running tasks its running ratio; they survive a restart, reach the view with
``--estimates observed`` and are shown by GET /v1/nodes."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from builders import make_cluster
from hybridsched.model import Cluster
from hybridsched.policies import make_policy
from hybridsched.service import ops
from hybridsched.service.decider import decide_batch
from hybridsched.service.state import LiveState, Writer
from hybridsched.service.store import Store
from hybridsched.sim import ClusterView, TaskBatch, simulate
from hybridsched.sim.conditions import Conditions
from hybridsched.sim.observations import OBS_PRIOR_WEIGHT, OBS_TAU_S, NodeObservations
from hybridsched.sim.options import SimOptions
from hybridsched.workload import generate
from service_support import ADMIN, NODE_ALL, Server, pg_database, wait_for, write_inputs

# n0 runs at nominal speed 2 (a task of 4 GI: 2 s nominal), n1 at 1.5 (4 GI: 2.667 s)
CLUSTER = make_cluster([{"speed": 2.0}, {"speed": 1.5}])
EXEC_FIELDS = ("exec_ratio", "exec_weight", "exec_time_s", "exec_count")


def _task(i: int, work_gi: float = 4.0) -> dict:
    return {"task_id": i, "region": 0, "data_mb": 0.0, "work_gi": work_gi, "memory_mb": 0.0,
            "arrival_s": 0.0}  # fmt: skip


def _report(i: int, kind: str, t: float, **kw: float) -> dict:
    return {"task_id": i, "node": "n0", "attempt": 1, "kind": kind, "time_s": t, **kw}


@contextmanager
def _live(url: str, cluster: Cluster = CLUSTER) -> Iterator[tuple[LiveState, Writer]]:
    store = Store(url)
    store.open()
    st = LiveState(cluster, store, max_retries=1, heartbeat_timeout_s=5)
    st.load()
    w = Writer(st)
    w.start()
    try:
        yield st, w
    finally:
        w.stop()
        store.close()


def _arrays(obs: NodeObservations) -> dict[str, np.ndarray]:
    return {k: getattr(obs, k) for k in EXEC_FIELDS}


@contextmanager
def _db(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'obs.db'}"
    else:
        with pg_database() as url:
            yield url


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_node_twice_as_slow_is_observed_and_kept_across_a_restart(
    tmp_path: Path, kind: str
) -> None:
    # Tasks of 4 GI on n0 (nominal 2 s each), reported by its agent:
    #   1 runs [0, 4): ratio 4 / 2 = 2 -> mean 2, weight 1, at 4
    #   2 runs [4, 8): ratio 2 -> weight w2 = exp(-4 / tau) + 1, mean 2, at 8
    #   3 runs [8, 10): ratio 1 -> weight w3 = w2 exp(-2 / tau) + 1, mean 2 - 1 / w3, at 10
    #   4 starts at 10 and runs: at 12 it ran 2 s of a nominal 2 s, running ratio 1.
    w2 = math.exp(-4.0 / OBS_TAU_S) + 1.0
    w3 = w2 * math.exp(-2.0 / OBS_TAU_S) + 1.0
    m3 = 2.0 - 1.0 / w3
    with _db(kind, tmp_path) as url:
        with _live(url) as (st, w):
            w.call(ops.submit([_task(i) for i in (1, 2, 3, 4)], now=0.0))
            w.call(ops.assign([(i, 0, 0.0, 0.0) for i in (1, 2, 3, 4)], now=0.0))
            w.call(ops.report(None, [_report(1, "start", 0.0), _report(1, "finish", 4.0)]))
            obs = st.snapshot(4.0).observations
            assert (obs.exec_ratio[0], obs.exec_weight[0], obs.exec_time_s[0]) == (2.0, 1.0, 4.0)
            assert obs.exec_count.tolist() == [1, 0] and np.isnan(obs.exec_ratio[1])
            w.call(ops.report(None, [
                _report(2, "finish", 8.0, start_s=4.0),
                _report(3, "finish", 10.0, start_s=8.0, observed_s=2.0),
                _report(4, "start", 10.0),
            ]))  # fmt: skip
            # the nodes' agents are up (this state has none attached)
            snap = dataclasses.replace(st.snapshot(12.0), up=np.ones(2, dtype=bool))
            obs = snap.observations
            assert obs.exec_count.tolist() == [3, 0]
            assert obs.exec_ratio[0] == pytest.approx(m3, rel=1e-15)
            assert obs.exec_weight[0] == pytest.approx(w3, rel=1e-15)
            assert (obs.exec_time_s[0], obs.running_ratio.tolist()) == (10.0, [1.0, 0.0])
            assert obs.transfer_count.tolist() == [0, 0]  # agents report no data arrival
            before = _arrays(obs)
        # the restart: the same numbers from the store
        with _live(url) as (st2, _):
            after = _arrays(st2.snapshot(12.0).observations)
            for k in EXEC_FIELDS:
                assert np.array_equal(after[k], before[k], equal_nan=True), k
            assert st2.snapshot(12.0).observations.running_ratio.tolist() == [1.0, 0.0]

    # the estimate at 12: the mean shrunk towards 1, its weight decayed from 10 to 12
    big_w = w3 * math.exp(-2.0 / OBS_TAU_S)
    f = (big_w * m3 + OBS_PRIOR_WEIGHT) / (big_w + OBS_PRIOR_WEIGHT)  # 1.4588..
    assert obs.exec_factor(12.0) == pytest.approx([f, 1.0], rel=1e-15)
    # a task of 4 GI decided at 12: n0's core frees at 12 (task 4's nominal finish).
    # nominal: n0 finishes at 12 + 2 = 14 < n1's 12 + 2.667 -> MCT picks n0;
    # observed: n0 at 12 + 2 f = 14.92 > 14.667 -> MCT picks n1.
    cols = {k: np.array([v]) for k, v in {
        "task_id": 5, "arrival_s": 12.0, "region": 0, "data_mb": 0.0, "work_gi": 4.0,
        "memory_mb": 0.0, "deadline_abs_s": np.inf, "priority": 0}.items()}  # fmt: skip
    chosen = {}
    for estimates in ("nominal", "observed"):
        pol = make_policy("mct")
        pol.reset(CLUSTER, np.random.default_rng(0))
        nodes, _ = decide_batch(pol, CLUSTER, cols, snap, "fifo", estimates)
        chosen[estimates] = int(nodes[0])
        view = ClusterView.from_snapshot(
            CLUSTER, TaskBatch.from_columns(**cols), snap, estimates=estimates
        )
        scale = f if estimates == "observed" else 1.0
        assert view.exec_s[0].tolist() == pytest.approx([2.0 * scale, 4.0 / 1.5], rel=1e-12)
    assert chosen == {"nominal": 0, "observed": 1}


class Spy:
    """MCT that keeps the observations of the view at its last decision."""

    name = "spy"

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        self.mct = make_policy("mct")
        self.mct.reset(cluster, rng)
        self.last: tuple[float, NodeObservations] | None = None

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        self.last = (view.time, view.observations)
        return self.mct.assign(tasks, view)


def test_the_service_records_what_the_simulator_records(tmp_path: Path) -> None:
    # a simulated run with two nodes slowed to 0.4 and 0.7 of their speed; the tasks'
    # start and finish times, reported to the service in finish order, give the
    # observations the simulator's view held at its last decision
    c, wl = generate("iot-small", 300, 0.8, seed=5)
    cond = Conditions.from_frame(
        pd.DataFrame({"node": [c.node_names[4], c.node_names[5]], "start_s": 0.0,
                      "end_s": np.inf, "speed": [0.4, 0.7]}), c)  # fmt: skip
    spy = Spy()
    res = simulate(c, wl, spy, options=SimOptions(conditions=cond, estimates="observed"))
    t_last, sim_obs = spy.last
    tk = res.tasks
    assert np.array_equal(tk["task_id"], wl.task_id)
    done = np.flatnonzero(tk["finish_s"] < t_last)
    done = done[np.argsort(tk["finish_s"][done], kind="stable")]
    running = np.flatnonzero((tk["start_s"] <= t_last) & (tk["finish_s"] > t_last))
    assert done.size > 100 and running.size > 0
    with _live(f"sqlite:///{tmp_path / 'sim.db'}", c) as (st, w):
        w.call(ops.submit([{
            "task_id": int(wl.task_id[i]), "region": int(wl.region[i]),
            "data_mb": float(wl.data_mb[i]), "work_gi": float(wl.work_gi[i]),
            "memory_mb": 0.0, "arrival_s": float(wl.arrival_s[i]),
        } for i in range(wl.n_tasks)], now=0.0))  # fmt: skip
        w.call(ops.assign([
            (int(wl.task_id[i]), int(tk["node_index"][i]), float(tk["decision_s"][i]),
             float(tk["ready_s"][i])) for i in range(wl.n_tasks)
        ], now=0.0))  # fmt: skip
        reports = [
            {"task_id": int(wl.task_id[i]), "node": c.node_names[tk["node_index"][i]],
             "attempt": 1, "kind": "finish", "time_s": float(tk["finish_s"][i]),
             "start_s": float(tk["start_s"][i])} for i in done
        ] + [
            {"task_id": int(wl.task_id[i]), "node": c.node_names[tk["node_index"][i]],
             "attempt": 1, "kind": "start", "time_s": float(tk["start_s"][i])} for i in running
        ]  # fmt: skip
        assert all(o == "ok" for _, o, _ in w.call(ops.report(None, reports)))
        obs = st.snapshot(t_last).observations
    assert obs.exec_count.tolist() == sim_obs.exec_count.tolist()
    assert sim_obs.exec_count[[4, 5]].min() > 0  # the slowed nodes were observed, slow
    assert obs.exec_ratio[[4, 5]] == pytest.approx([1 / 0.4, 1 / 0.7], rel=1e-9)
    seen = obs.exec_count > 0
    for k in ("exec_ratio", "exec_weight", "exec_time_s"):
        assert getattr(obs, k)[seen] == pytest.approx(getattr(sim_obs, k)[seen], rel=1e-9), k
    assert obs.running_ratio == pytest.approx(sim_obs.running_ratio, rel=1e-9)
    assert obs.exec_factor(t_last) == pytest.approx(sim_obs.exec_factor(t_last), rel=1e-9)


def test_reports_of_a_slow_node_over_http_are_shown_and_kept_by_a_restart(
    tmp_path: Path,
) -> None:
    # a test agent for n0 that reports every task twice as long as nominal (4 model s
    # for 4 GI at speed 2, nominal 2 s): after 3 tasks n0's exec_ratio is 2, n1 has none
    write_inputs(tmp_path, CLUSTER)
    srv = Server(tmp_path, f"sqlite:///{tmp_path / 'http.db'}", "--estimates", "observed")
    node = {"Authorization": f"Bearer {NODE_ALL}"}
    srv.start()
    try:
        tasks = [{k: v for k, v in _task(i).items() if k != "arrival_s"} for i in (1, 2, 3)]
        r = httpx.post(srv.url + "/v1/tasks", json=tasks, headers=ADMIN, timeout=30)
        r.raise_for_status()
        leased: list[dict] = []

        def lease() -> bool:
            r = httpx.post(srv.url + "/v1/agent/lease", json={"nodes": ["n0"]}, headers=node,
                           timeout=30)  # fmt: skip
            leased.extend(r.json()["tasks"])
            return len(leased) == 3

        # only n0 has an agent: every task goes there
        wait_for(lease, "3 tasks leased on n0")
        now = httpx.get(srv.url + "/v1/clock", headers=ADMIN, timeout=30).json()["time_s"]
        reports = []
        for k, t in enumerate(sorted(leased, key=lambda t: t["task_id"])):
            start = now - 12.0 + 4.0 * k
            reports.append({"task_id": t["task_id"], "node": "n0", "attempt": t["attempt"],
                            "kind": "finish", "time_s": start + 4.0, "start_s": start,
                            "observed_s": 4.0})  # fmt: skip
        r = httpx.post(srv.url + "/v1/agent/reports", json={"reports": reports}, headers=node,
                       timeout=30)  # fmt: skip
        assert [o["outcome"] for o in r.json()["results"]] == ["ok"] * 3

        def nodes() -> list[dict]:
            return httpx.get(srv.url + "/v1/nodes", headers=ADMIN, timeout=30).json()

        info = httpx.get(srv.url + "/v1/cluster", headers=ADMIN, timeout=30).json()
        assert info["estimates"] == "observed"
        before = nodes()
        assert [(n["exec_ratio"], n["exec_count"]) for n in before] == [(2.0, 3), (None, 0)]
        assert before[0]["exec_estimate"] > 1.0 and before[1]["exec_estimate"] == 1.0
        srv.kill()
        srv.start()
        after = nodes()
        assert [(n["exec_ratio"], n["exec_count"]) for n in after] == [(2.0, 3), (None, 0)]
    finally:
        srv.stop()
