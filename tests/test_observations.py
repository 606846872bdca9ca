"""What schedulers may observe, and estimates that follow it (docs/MODEL.md section 12.1).

Observations are per node: realized over nominal execution and transfer times
(decayed means with their times and counts) and how long running tasks have
run against their nominal estimate. ``estimates="observed"`` corrects the
view's speed, latency and bandwidth with them; with exact estimates and no
conditions every ratio is 1 and nothing changes, bit for bit.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster, Workload
from hybridsched.policies import make_policy
from hybridsched.sim import ClusterView, SimConfig, TaskBatch, simulate
from hybridsched.sim.conditions import Conditions
from hybridsched.sim.observations import OBS_PRIOR_WEIGHT, OBS_TAU_S, NodeObservations
from hybridsched.sim.options import SimOptions
from hybridsched.sim.options_engine import OptionsEngine
from hybridsched.workload import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from builders import make_cluster, make_workload


@pytest.fixture(scope="module")
def small() -> tuple[Cluster, Workload]:
    return generate("iot-default", 2000, 0.9, 4)


def slowed(cluster: Cluster, nodes: list[int], speed: float, latency: float = 1.0) -> Conditions:
    """``nodes`` at ``speed`` x and ``latency`` x for the whole run."""
    names = [cluster.node_names[j] for j in nodes]
    df = pd.DataFrame(
        {"node": names, "start_s": 0.0, "end_s": np.inf, "speed": speed, "latency": latency}
    )
    return Conditions.from_frame(df, cluster)


@pytest.mark.parametrize(("delta", "queue"), [(0.0, "fifo"), (0.5, "priority")])
def test_observed_aco_is_nominal_without_conditions(
    small: tuple[Cluster, Workload], delta: float, queue: str
) -> None:
    """The heuristics are checked in test_faults.py (options that change nothing)."""
    c, w = small
    cfg = SimConfig(decision_interval=delta, queue=queue)
    runs = [
        simulate(c, w, make_policy("aco"), config=cfg, options=SimOptions(estimates=e), seed=2)
        for e in ("nominal", "observed")
    ]
    for col, v in runs[0].tasks.items():
        assert np.array_equal(v, runs[1].tasks[col]), col


class Spy:
    """MCT that records the view's observations and estimates at each decision."""

    name = "spy"

    def __init__(self) -> None:
        self.seen: list[tuple[float, NodeObservations, np.ndarray, np.ndarray]] = []

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        self.mct = make_policy("mct")
        self.mct.reset(cluster, rng)

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        self.seen.append((view.time, view.observations, view.exec_s.copy(), view.transfer_s.copy()))
        return self.mct.assign(tasks, view)


@pytest.mark.parametrize("estimates", ["nominal", "observed"])
def test_a_node_slowed_twice_is_observed_twice_as_slow(estimates: str) -> None:
    # One node, speed 1, latency 1 s; the whole run at speed x0.5 and latency x3.
    #   A (work 1) decided at 0: transfer 3 s (ratio 3 / 1 = 3), runs [3, 5): ratio 2 / 1 = 2.
    #   B (work 1) decided at 6: it sees exec ratio 2 (1 completion, at 5, weight 1),
    #   transfer ratio 3 (at 3); runs [9, 11).
    #   C (work 1) decided at 10: B has run 1 s of a nominal 1 s: running ratio 1;
    #   C is ready at 13, runs [13, 15). Responses 5, 5, 5.
    c = make_cluster([{"latency_s": [1.0]}])
    w = make_workload([{"task_id": k, "arrival_s": a} for k, a in enumerate([0.0, 6.0, 10.0])])
    spy = Spy()
    options = SimOptions(conditions=slowed(c, [0], 0.5, 3.0), estimates=estimates)
    res = simulate(c, w, spy, options=options)
    assert res.tasks["finish_s"].tolist() == [5.0, 11.0, 15.0]
    t, obs, exec_s, transfer_s = spy.seen[1]
    assert t == 6.0
    assert (obs.exec_ratio[0], obs.exec_count[0], obs.exec_time_s[0]) == (2.0, 1, 5.0)
    assert (obs.transfer_ratio[0], obs.transfer_count[0], obs.transfer_time_s[0]) == (3.0, 1, 3.0)
    assert obs.running_ratio[0] == 0.0
    # the estimate: the mean shrunk towards 1 by the prior, with the weight decayed to t
    wx = math.exp(-(6.0 - 5.0) / OBS_TAU_S)
    fe = (wx * 2.0 + OBS_PRIOR_WEIGHT) / (wx + OBS_PRIOR_WEIGHT)
    assert obs.exec_factor(6.0)[0] == pytest.approx(fe, rel=1e-15)
    wt = math.exp(-(6.0 - 3.0) / OBS_TAU_S)
    ft = (wt * 3.0 + OBS_PRIOR_WEIGHT) / (wt + OBS_PRIOR_WEIGHT)
    assert obs.transfer_factor(6.0)[0] == pytest.approx(ft, rel=1e-15)
    if estimates == "observed":
        assert exec_s[0, 0] == pytest.approx(fe, rel=1e-15)
        assert transfer_s[0, 0] == pytest.approx(ft, rel=1e-15)
    else:
        assert (exec_s[0, 0], transfer_s[0, 0]) == (1.0, 1.0)
    t, obs, _, _ = spy.seen[2]
    assert t == 10.0 and obs.running_ratio[0] == 1.0
    assert obs.transfer_ratio[0] == 3.0 and obs.transfer_count[0] == 2
    assert res.summary["mean_response_s"] == 5.0


def test_observed_mct_avoids_a_slowed_node(small: tuple[Cluster, Workload]) -> None:
    c, w = small
    base = simulate(c, w, make_policy("mct"), config=SimConfig(decision_interval=0.5))
    busiest = int(np.bincount(base.tasks["node_index"], minlength=c.n_nodes).argmax())
    cond = slowed(c, [busiest], 0.5)
    counts = {}
    for estimates in ("nominal", "observed"):
        options = SimOptions(conditions=cond, estimates=estimates)
        res = simulate(c, w, make_policy("mct"), config=SimConfig(decision_interval=0.5),
                       options=options)  # fmt: skip
        counts[estimates] = int(np.count_nonzero(res.tasks["node_index"] == busiest))
    assert counts["observed"] < 0.8 * counts["nominal"], counts


def test_snapshot_round_trip_with_observations(small: tuple[Cluster, Workload]) -> None:
    c, w = small
    cond = slowed(c, [0, 3, 5], 0.3, 2.0)
    options = SimOptions(conditions=cond, estimates="observed")
    eng = OptionsEngine(c, w, SimConfig(), options)
    pol = make_policy("mct")
    pol.reset(c, np.random.default_rng(0))
    checked = 0
    for k in range(400):
        tasks, view = eng.next_batch()
        if k % 50 == 49:
            snap = eng.snapshot()
            assert snap.observations is not None
            assert snap.observations.exec_count.sum() > 0
            batch = TaskBatch.from_columns(
                task_id=tasks.task_id, arrival_s=tasks.arrival_s, region=tasks.region,
                data_mb=tasks.data_mb, work_gi=tasks.work_gi, memory_mb=tasks.memory_mb,
                deadline_abs_s=tasks.deadline_abs_s, priority=tasks.priority,
            )  # fmt: skip
            again = ClusterView.from_snapshot(c, batch, snap, queue="fifo", estimates="observed")
            for name in ("exec_ratio", "exec_count", "transfer_ratio", "running_ratio"):
                a, b = getattr(view.observations, name), getattr(again.observations, name)
                assert np.array_equal(a, b, equal_nan=True), name
            assert np.array_equal(again.node_table, view.node_table)
            assert np.array_equal(again.exec_s, view.exec_s)
            assert np.array_equal(again.ready_s, view.ready_s)
            nominal = ClusterView.from_snapshot(c, batch, snap, queue="fifo")
            assert np.array_equal(nominal.exec_s, batch.work_gi[:, None] / c.speed[None, :])
            checked += 1
        eng.commit(pol.assign(tasks, view))
    assert checked == 8


def test_queued_work_stays_consistent_when_estimates_change(
    small: tuple[Cluster, Workload],
) -> None:
    c, w = small
    options = SimOptions(conditions=slowed(c, [0, 1, 2, 6], 0.25), estimates="observed")
    eng = OptionsEngine(c, w, SimConfig(), options)
    eng.run(make_policy("mct"), 0)
    # every task started: nothing is left queued, to rounding of the running sums
    assert np.all(np.abs(eng.state.queued_work) < 1e-9)
    assert np.all(eng.state.n_queued == 0)


def test_no_observations_in_the_base_model_and_bad_ones_are_refused() -> None:
    c = make_cluster([{}, {}])
    w = make_workload([{"task_id": 0, "arrival_s": 0.0}])
    spy = Spy()
    simulate(c, w, spy)
    obs = spy.seen[0][1]
    assert obs.exec_count.tolist() == [0, 0] and np.isnan(obs.exec_ratio).all()
    assert obs.exec_factor(5.0).tolist() == [1.0, 1.0]
    empty = NodeObservations.empty(2)
    bad = NodeObservations(**{**empty.__dict__, "exec_ratio": np.array([1.0, -1.0]),
                              "exec_count": np.array([1, 1])})  # fmt: skip
    with pytest.raises(ConfigError, match=r"observations.exec_ratio: node 1: must be a finite"):
        bad.check(2)
    with pytest.raises(ConfigError, match=r"options.estimates: must be one of nominal, observed"):
        SimOptions(estimates="psychic")


def test_cli_estimates_option(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from hybridsched.cli.app import _register, app
    from hybridsched.io import write_cluster, write_workload

    _register()
    c, w = generate("iot-small", 150, 0.8, 1)
    cp, wp = tmp_path / "c.yaml", tmp_path / "w.parquet"
    write_cluster(c, cp)
    write_workload(w, wp)
    args = ["simulate", "--cluster", str(cp), "--workload", str(wp)]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--estimates", "observed"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["run"]["options"]["estimates"] == "observed"
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "x"), "--estimates", "oracle"])
    assert res.exit_code == 2
    assert "--estimates" in res.output and "nominal, observed" in res.output
    assert not (tmp_path / "x").exists()


def drifting_conditions(
    cluster: Cluster,
    workload: Workload,
    seed: int,
    share: tuple[float, float] = (0.3, 0.4),
    speed: tuple[float, float] = (0.15, 0.6),
    span: tuple[float, float] = (0.1, 0.4),
) -> Conditions:
    """A drifting run: a ``share`` of the nodes slowed to ``speed`` x for ``span`` of the
    arrival horizon, one window each at a random time; half of them with a degraded link
    (latency x 1.5-4, bandwidth x 0.25-0.7)."""
    rng = np.random.default_rng(seed)
    n = cluster.n_nodes
    t0, t1 = float(workload.arrival_s.min()), float(workload.arrival_s.max())
    horizon = t1 - t0
    nodes = rng.choice(n, round(n * rng.uniform(*share)), replace=False)
    rows = []
    for j in sorted(nodes.tolist()):
        length = rng.uniform(*span) * horizon
        start = t0 + rng.uniform(0, horizon - length)
        link = rng.random() < 0.5
        rows.append({
            "node": cluster.node_names[j], "start_s": start, "end_s": start + length,
            "speed": rng.uniform(*speed),
            "latency": rng.uniform(1.5, 4.0) if link else 1.0,
            "bandwidth": rng.uniform(0.25, 0.7) if link else 1.0,
        })  # fmt: skip
    return Conditions.from_frame(pd.DataFrame(rows), cluster, source=f"drift seed {seed}")


def test_drifting_conditions_follow_their_spec(small: tuple[Cluster, Workload]) -> None:
    c, w = small
    cond = drifting_conditions(c, w, 7)
    horizon = float(w.arrival_s.max() - w.arrival_s.min())
    assert 0.3 * c.n_nodes - 0.5 <= len(cond) <= 0.4 * c.n_nodes + 0.5
    assert len(set(cond.node.tolist())) == len(cond)
    assert np.all((cond.speed >= 0.15) & (cond.speed <= 0.6))
    length = (cond.end_s - cond.start_s) / horizon
    assert np.all((length >= 0.1 - 1e-12) & (length <= 0.4 + 1e-12))
    # the drift slows MCT down, and the run is the same for the same seed
    runs = [
        simulate(c, w, make_policy("mct"), options=SimOptions(conditions=cond)) for _ in range(2)
    ]
    base = simulate(c, w, make_policy("mct"))
    assert runs[0].summary["mean_response_s"] == runs[1].summary["mean_response_s"]
    assert runs[0].summary["mean_response_s"] > base.summary["mean_response_s"]
