"""The live service's figures (docs/SERVICE.md): throughput, decision and submit latency,
restart time, memory.

1. ``decision``: decision latency per 64-task batch (live snapshot -> view -> policy),
   p50 / p99, at 100 and 1,000 nodes with ``mct`` and ``hybrid``, with about two tasks
   running or queued per node, as the live loop does it (the policy in the decision
   subprocess: snapshot and batch pickled through a pipe) and in-process for
   comparison; the IPC cost per batch. Goals: p99 < 50 ms (mct), < 250 ms (hybrid) at
   1,000 nodes.
2. ``e2e``: tasks/s end to end (first submission to last finish) with emulated agents
   in a separate process, SQLite and PostgreSQL, 100 and 1,000 nodes, mct and hybrid;
   the server's peak memory. Goal: >= 5,000 tasks/s with mct at 100 nodes (SQLite).
3. ``submit``: latency of single-task submissions (acknowledged after commit), p50 / p99.
4. ``restart``: a SQLite database with 100,000 tasks (5 % unfinished): process start to
   ``/healthz`` ready, the service's own load time, and memory. Goal: ready within 5 s.
5. ``live``: live against simulated, as ``replay`` measures it: iot-small workloads (one
   per seed) replayed at a time scale (default 4) through a real server and a real agent
   process, the mean response live and simulated, and where live time departs from the
   model, stage by stage (model s): arrival -> submission acknowledged -> decision ->
   the agent holds the task -> start -> finish. ``--busy N`` adds N busy loops (a loaded
   machine). Goal: within 15 % at time scale 4.

Usage::

    python benchmarks/bench_service.py                       # everything (minutes)
    python benchmarks/bench_service.py --only decision
    python benchmarks/bench_service.py --only e2e --tasks 20000 --stores sqlite
    python benchmarks/bench_service.py --only live --seeds 1 2 3 4 5 --busy 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from hybridsched.io import write_cluster
from hybridsched.model import Cluster
from hybridsched.policies import make_policy
from hybridsched.service import ops
from hybridsched.service.decider import Decider, decide_batch
from hybridsched.service.state import LiveState, Writer
from hybridsched.service.store import Store
from hybridsched.workload import generate

ROOT = Path(__file__).resolve().parents[1]
console = Console()
TOKENS = {"bench-admin-token": "admin", "bench-node-token": "node:*"}
H = {"Authorization": "Bearer bench-admin-token"}


def cluster_of(n_nodes: int) -> Cluster:
    """iot-default's 100 nodes, tiled to ``n_nodes`` (names made unique)."""
    base, _ = generate("iot-default", n_tasks=10, load=0.5, seed=1)
    d = base.to_dict()
    nodes = []
    for k in range(n_nodes):
        nd = dict(d["nodes"][k % len(d["nodes"])])
        nd["name"] = f"{nd['name']}-{k // len(d['nodes'])}"
        nodes.append(nd)
    return Cluster.build({"name": f"tiled-{n_nodes}", "regions": d["regions"], "nodes": nodes})


def tasks_for(cluster: Cluster, n: int, seed: int, first_id: int = 0) -> list[dict]:
    """``n`` tasks with iot-default's sizes (arrival: when the service receives them)."""
    _, w = generate("iot-default", n_tasks=n, load=0.9, seed=seed)
    nr = cluster.n_regions
    out = []
    for k in range(n):
        dl = float(w.deadline_s[k])
        out.append(
            {
                "task_id": first_id + k,
                "region": int(w.region[k]) % nr,
                "data_mb": float(w.data_mb[k]),
                "work_gi": float(w.work_gi[k]),
                "memory_mb": float(w.memory_mb[k]),
                "deadline_s": None if not np.isfinite(dl) else dl,
                "priority": int(w.priority[k]),
            }
        )
    return out


# --------------------------------------------------------------------- decision


def bench_decision(nodes_list: list[int], policies: list[str], batches: int) -> None:
    table = Table(
        title=f"decision latency per 64-task batch ({batches} batches; "
        "view: ClusterView.from_snapshot)"
    )
    for c in (
        "nodes", "policy", "snapshot p50 ms", "in-process p50 ms", "in-process p99 ms",
        "subprocess p50 ms", "subprocess p99 ms", "IPC p50 ms", "IPC p99 ms", "goal",
    ):  # fmt: skip
        table.add_column(c, justify="right")
    for n_nodes in nodes_list:
        cluster = cluster_of(n_nodes)
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(f"sqlite:///{tmp}/d.db")
            store.open()
            st = LiveState(cluster, store, max_retries=3, heartbeat_timeout_s=1e9)
            w = Writer(st)
            w.start()
            st.attached[:] = True
            # about two tasks per node: one running, one queued
            load = tasks_for(cluster, 2 * n_nodes, seed=2, first_id=10**9)
            w.call(ops.submit(load, now=0.0))
            rng = np.random.default_rng(0)
            dec = [(t["task_id"], int(rng.integers(n_nodes)), 0.0, 0.1) for t in load]
            w.call(ops.assign(dec, now=0.0))
            names = cluster.node_names
            w.call(ops.report(None, [
                {"task_id": t, "node": names[j], "attempt": 1, "kind": "start", "time_s": 0.1}
                for t, j, _, _ in dec[::2]]))  # fmt: skip
            batch = tasks_for(cluster, 64 * batches, seed=3)
            for pol_name in policies:
                pol = make_policy(pol_name)
                pol.reset(cluster, np.random.default_rng(0))
                decider = Decider(cluster, pol_name, {}, 0, "fifo")
                decider.start()
                snap_t, in_t, sub_t, ipc_t = [], [], [], []
                for b in range(batches + 3):
                    rows = batch[64 * (b % batches) : 64 * (b % batches + 1)]
                    t0 = time.perf_counter()
                    with st.lock:
                        snap = st.snapshot(1.0)
                    t1 = time.perf_counter()
                    cols = {
                        "task_id": np.array([r["task_id"] for r in rows], dtype=np.int64),
                        "arrival_s": np.full(64, 1.0),
                        "region": np.array([r["region"] for r in rows], dtype=np.int64),
                        "data_mb": np.array([r["data_mb"] for r in rows]),
                        "work_gi": np.array([r["work_gi"] for r in rows]),
                        "memory_mb": np.array([r["memory_mb"] for r in rows]),
                        "deadline_abs_s": np.array(
                            [1.0 + (r["deadline_s"] or np.inf) for r in rows]
                        ),
                        "priority": np.array([r["priority"] for r in rows], dtype=np.int64),
                    }
                    n_in, _ = decide_batch(pol, cluster, cols, snap, "fifo")
                    t2 = time.perf_counter()
                    n_sub, _ = decider.decide(cols, snap)
                    t3 = time.perf_counter()
                    # same seed, same batches: the subprocess decides as the in-process policy
                    assert np.array_equal(n_in, n_sub), (pol_name, b)
                    if b >= 3:  # the first calls compile
                        snap_t.append(t1 - t0)
                        in_t.append(t2 - t1)
                        sub_t.append(t3 - t2)
                        ipc_t.append(t3 - t2 - decider.last_policy_s)
                decider.close()
                goal = (
                    {"mct": "< 50", "hybrid": "< 250"}.get(pol_name, "") if n_nodes == 1000 else ""
                )

                def ms(x: list[float], q: float) -> str:
                    return f"{1e3 * np.percentile(x, q):.2f}"

                table.add_row(
                    str(n_nodes), pol_name, ms(snap_t, 50),
                    ms(in_t, 50), ms(np.add(snap_t, in_t).tolist(), 99),
                    ms(sub_t, 50), ms(np.add(snap_t, sub_t).tolist(), 99),
                    ms(ipc_t, 50), ms(ipc_t, 99), goal,
                )  # fmt: skip
            w.stop()
            store.close()
    console.print(table)
    console.print(
        "p99 counts the snapshot too (the whole decision of the live loop); the live loop "
        "uses the subprocess. IPC = subprocess time - the child's own view + assign time "
        "(pickling the snapshot and batch, the pipe, the answer)."
    )


# -------------------------------------------------------------------------- e2e


class Proc:
    """A child process with its peak memory."""

    def __init__(self, cmd: list[str], log: Path, cwd: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        self.log = open(log, "ab")
        self.p = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=self.log, cwd=cwd)

    def rss_peak_mb(self) -> float:
        """Peak resident memory of the process plus its children (the decision process)."""
        pids = [self.p.pid]
        # children are listed per thread (the decision thread starts the decider)
        for f in Path(f"/proc/{self.p.pid}/task").glob("*/children"):
            try:
                pids += [int(k) for k in f.read_text().split()]
            except OSError:
                pass
        total = 0.0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) / 1024
            except OSError:
                pass
        return total or float("nan")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
        self.log.close()


def start_server(tmp: Path, cluster: Cluster, db: str, policy: str, port: int,
                 extra: tuple[str, ...] = (),
                 decider: bool = True) -> tuple[Proc, float]:  # fmt: skip
    write_cluster(cluster, tmp / "c.yaml")
    (tmp / "t.yaml").write_text(yaml.safe_dump(TOKENS))
    cmd = [sys.executable, "-m", "hybridsched.cli", "serve", "--cluster", str(tmp / "c.yaml"),
           "--tokens", str(tmp / "t.yaml"), "--db", db, "--port", str(port), "--policy", policy,
           "--log-level", "warning", *extra]  # fmt: skip
    t0 = time.monotonic()
    srv = Proc(cmd, tmp / "serve.log", tmp)
    url = f"http://127.0.0.1:{port}"
    while True:
        if srv.p.poll() is not None:
            raise RuntimeError((tmp / "serve.log").read_text())
        try:
            r = httpx.get(url + "/healthz", timeout=1)
            # with ``decider``: also wait until the decision process has compiled its policy
            if r.status_code == 200 and (not decider or r.json().get("decider") == "ready"):
                return srv, time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.02)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_db() -> tuple[str, str]:
    import psycopg

    name = f"hs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return f"postgresql://postgres@127.0.0.1:5432/{name}", name


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def bench_e2e(n_tasks: int, nodes_list: list[int], policies: list[str], stores: list[str],
              time_scale: float) -> None:  # fmt: skip
    table = Table(title=f"end to end: {n_tasks} tasks submitted as fast as accepted, emulated "
                  f"agents (one process), time scale {time_scale:g}")  # fmt: skip
    for c in ("store", "nodes", "policy", "tasks/s", "submit s", "last finish s",
              "server MB", "goal"):  # fmt: skip
        table.add_column(c, justify="right")
    for store in stores:
        for n_nodes in nodes_list:
            cluster = cluster_of(n_nodes)
            tasks = tasks_for(cluster, n_tasks, seed=5)
            for pol in policies:
                with tempfile.TemporaryDirectory() as tmpd:
                    tmp = Path(tmpd)
                    pg_name = None
                    if store == "sqlite":
                        db = f"sqlite:///{tmp / 'e2e.db'}"
                    else:
                        db, pg_name = pg_db()
                    port = free_port()
                    srv, _ = start_server(tmp, cluster, db, pol, port,
                                          ("--time-scale", str(time_scale),
                                           "--heartbeat-timeout", "60"))  # fmt: skip
                    url = f"http://127.0.0.1:{port}"
                    agent = Proc([sys.executable, "-m", "hybridsched.cli", "agent", "--server",
                                  url, "--token", "bench-node-token", "--all",
                                  "--log-level", "warning"], tmp / "agent.log", tmp)  # fmt: skip
                    try:
                        while (
                            httpx.get(url + "/v1/cluster", headers=H).json()["nodes_up"] < n_nodes
                        ):
                            time.sleep(0.05)
                        t0 = time.monotonic()
                        with httpx.Client(timeout=60) as c:
                            for k in range(0, n_tasks, 1000):
                                r = c.post(url + "/v1/tasks", json=tasks[k : k + 1000], headers=H)
                                r.raise_for_status()
                            t_sub = time.monotonic() - t0
                            while True:
                                counts = c.get(url + "/v1/cluster", headers=H).json()["counts"]
                                if counts["finished"] + counts["rejected"] >= n_tasks:
                                    break
                                time.sleep(0.02)
                        t_end = time.monotonic() - t0
                        mem = srv.rss_peak_mb()
                    finally:
                        agent.stop()
                        srv.stop()
                        if pg_name:
                            drop_pg(pg_name)
                    goal = ">= 5000" if (store, n_nodes, pol) == ("sqlite", 100, "mct") else ""
                    table.add_row(store, str(n_nodes), pol, f"{n_tasks / t_end:,.0f}",
                                  f"{t_sub:.2f}", f"{t_end:.2f}", f"{mem:.0f}", goal)  # fmt: skip
                    console.print(table.rows[-1] if False else f"{store} {n_nodes} {pol}: "
                                  f"{n_tasks / t_end:,.0f} tasks/s")  # fmt: skip
    console.print(table)


# ----------------------------------------------------------------------- submit


def bench_submit(n: int) -> None:
    cluster = cluster_of(100)
    tasks = tasks_for(cluster, n, seed=9)
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        port = free_port()
        srv, _ = start_server(tmp, cluster, f"sqlite:///{tmp / 's.db'}", "mct", port)
        url = f"http://127.0.0.1:{port}"
        lat = []
        try:
            with httpx.Client(timeout=30) as c:
                for t in tasks:
                    t0 = time.perf_counter()
                    c.post(url + "/v1/tasks", json=t, headers=H).raise_for_status()
                    lat.append(time.perf_counter() - t0)
        finally:
            srv.stop()
    lat_ms = 1e3 * np.array(lat[10:])
    table = Table(title=f"single-task submission, acknowledged after commit (SQLite, {n})")
    for c in ("p50 ms", "p99 ms", "max ms"):
        table.add_column(c, justify="right")
    table.add_row(*(f"{v:.2f}" for v in np.percentile(lat_ms, [50, 99, 100])))
    console.print(table)


# ---------------------------------------------------------------------- restart


def bench_restart(n: int) -> None:
    cluster = cluster_of(100)
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        db = f"sqlite:///{tmp / 'r.db'}"
        store = Store(db)
        store.open()
        rows = []
        rng = np.random.default_rng(0)
        for k, t in enumerate(tasks_for(cluster, n, seed=11)):
            done = k < 0.95 * n
            rows.append({
                **t, "arrival_s": float(k) * 0.001, "payload": None,
                "status": "finished" if done else "pending",
                "node": cluster.node_names[int(rng.integers(100))] if done else None,
                "attempt": 1 if done else 0, "retries": 0,
                "decision_s": k * 0.001 if done else None, "ready_s": k * 0.001 if done else None,
                "start_s": k * 0.001 if done else None, "finish_s": k * 0.001 + 1 if done else None,
                "observed_s": 1.0 if done else None, "exit_code": None, "reason": None,
            })  # fmt: skip
        from hybridsched.service.store import TASK_COLUMNS

        conn = store.transaction()
        store.insert_tasks(conn, [tuple(r[c] for c in TASK_COLUMNS) for r in rows])
        conn.commit()
        store.close()
        port = free_port()
        srv, ready_s = start_server(
            tmp, cluster, db, "mct", port, ("--log-level", "info"), decider=False
        )
        mem = srv.rss_peak_mb()
        srv.stop()
        log = (tmp / "serve.log").read_text()
        load = [ln for ln in log.splitlines() if "event=ready" in ln]
        own = load[-1].split("start_s=")[-1] if load else "?"
    table = Table(title=f"restart with {n:,} tasks in SQLite (5 % unfinished)")
    for c in ("process start to ready s", "service load s", "server MB", "goal"):
        table.add_column(c, justify="right")
    table.add_row(f"{ready_s:.2f}", own, f"{mem:.0f}", "ready < 5 s")
    console.print(table)


# ------------------------------------------------------------------------- live


def _busy_loops(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` processes that spin (a loaded machine); the caller kills them."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def bench_live(seeds: list[int], time_scale: float, policy: str, n_tasks: int, load: float,
               busy: int, aheads: list[float]) -> None:  # fmt: skip
    import asyncio

    from hybridsched.service.replay import Replay, live_result
    from hybridsched.sim import simulate

    table = Table(title=f"live vs simulated: iot-small, {n_tasks} tasks, load {load:g}, "
                  f"{policy}, time scale {time_scale:g}, {busy} busy loops; "
                  "means, model s")  # fmt: skip
    cols = ("seed", "ahead s", "live resp", "sim resp", "live/sim", "ack-arr", "dec-arr",
            "held-dec", "start-arr live", "sim", "run live", "sim", "late starts")  # fmt: skip
    for c in cols:
        table.add_column(c, justify="right")
    ratios: dict[float, list[float]] = {a: [] for a in aheads}
    hogs = _busy_loops(busy)
    try:
        for seed, ahead in ((s, a) for s in seeds for a in aheads):
            cluster, w = generate("iot-small", n_tasks=n_tasks, load=load, seed=seed)
            with tempfile.TemporaryDirectory() as tmpd:
                tmp = Path(tmpd)
                port = free_port()
                srv, _ = start_server(tmp, cluster, f"sqlite:///{tmp / 'live.db'}", policy, port,
                                      ("--time-scale", str(time_scale)))  # fmt: skip
                url = f"http://127.0.0.1:{port}"
                agent = Proc([sys.executable, "-m", "hybridsched.cli", "agent", "--server", url,
                              "--token", "bench-node-token", "--all", "--log-level", "debug"],
                             tmp / "agent.log", tmp)  # fmt: skip
                try:
                    while httpx.get(url + "/v1/cluster", headers=H).json()["nodes_up"] < len(
                        cluster.node_names
                    ):
                        time.sleep(0.05)
                    rp = Replay(url, "bench-admin-token", w, ahead_s=ahead)
                    got = asyncio.run(rp.run(timeout_s=600))
                finally:
                    agent.stop()
                    srv.stop()
                held = {}
                for line in (tmp / "agent.log").read_text().splitlines():
                    if "event=leased" in line:
                        kv = dict(x.split("=") for x in line.split() if "=" in x)
                        held[int(kv["task_id"])] = float(kv["received_s"]) - rp.t0
            live = live_result(cluster, w, got, rp.info)
            sim = simulate(cluster, w, make_policy(policy))
            lt, st = live.tasks, sim.tasks
            arr = lt["arrival_s"]
            held_s = np.array([held.get(int(t), np.nan) for t in w.task_id])
            r = live.summary["mean_response_s"] / sim.summary["mean_response_s"]
            ratios[ahead].append(r)
            late = np.mean(lt["start_s"] > np.maximum(lt["ready_s"], held_s) + 1e-9)

            def m(x: np.ndarray) -> str:
                return f"{np.nanmean(x):.3f}"

            table.add_row(
                str(seed), f"{ahead:g}", f"{live.summary['mean_response_s']:.3f}",
                f"{sim.summary['mean_response_s']:.3f}", f"{r:.3f}", m(rp.acked_s - arr),
                m(lt["decision_s"] - arr), m(held_s - lt["decision_s"]),
                m(lt["start_s"] - arr), m(st["start_s"] - st["arrival_s"]),
                m(lt["finish_s"] - lt["start_s"]), m(st["finish_s"] - st["start_s"]),
                f"{late:.0%}",
            )  # fmt: skip
            console.print(f"seed {seed} ahead {ahead:g}: live/sim {r:.3f}")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    console.print(table)
    for a, rs in ratios.items():
        worst = max(abs(x - 1) for x in rs)
        console.print(f"ahead {a:g} s: worst |live/sim - 1| over {len(rs)} runs {worst:.1%}, "
                      f"mean {np.mean(rs) - 1:+.1%} (goal: within 15 %)")  # fmt: skip
    console.print(f"load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["decision", "e2e", "submit", "restart", "live"])
    ap.add_argument("--tasks", type=int, default=20000, help="tasks of each e2e run")
    ap.add_argument("--nodes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--policies", nargs="+", default=["mct", "hybrid"])
    ap.add_argument("--stores", nargs="+", default=["sqlite", "postgresql"])
    ap.add_argument("--time-scale", type=float, default=1000.0)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="live runs")
    ap.add_argument("--live-scale", type=float, default=4.0, help="time scale of live runs")
    ap.add_argument("--live-tasks", type=int, default=250)
    ap.add_argument("--busy", type=int, default=0, help="busy loops beside the live runs")
    ap.add_argument("--ahead", type=float, nargs="+", default=[0.0],
                    help="replay submits tasks this many wall s before their arrival")  # fmt: skip
    args = ap.parse_args()
    run = [args.only] if args.only else ["decision", "submit", "restart", "e2e"]
    if "decision" in run:
        bench_decision(args.nodes, args.policies, args.batches)
    if "submit" in run:
        bench_submit(500)
    if "restart" in run:
        bench_restart(100_000)
    if "e2e" in run:
        bench_e2e(args.tasks, args.nodes, args.policies, args.stores, args.time_scale)
    if "live" in run:
        bench_live(args.seeds, args.live_scale, "mct", args.live_tasks, 0.6, args.busy, args.ahead)


if __name__ == "__main__":
    main()
