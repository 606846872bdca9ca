"""The batch cost of the colony: its predictions are the simulator's own numbers.

* the predicted finish times equal ``ClusterView.predict_finish`` on every batch;
* on the last batch of a run (no later arrivals) they equal the simulated
  finish times, for the batch and for the tasks it displaces, and the predicted
  energy increase equals the energy of the run minus that of the run without
  the batch;
* the allocation-free per-node simulation equals ``core.simulate_node``;
* the cost is the documented weighted sum of those predictions.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridsched.errors import ConfigError
from hybridsched.policies import cost, make_policy
from hybridsched.sim import Engine, simulate
from hybridsched.sim import core as simcore
from hybridsched.workload import generate

W = cost.CostWeights()


def _random_assignment(view, rng: np.random.Generator) -> np.ndarray:
    feas = np.asarray(view.feasible)
    return np.array([rng.choice(np.flatnonzero(row)) for row in feas], dtype=np.int64)


@pytest.mark.parametrize("queue", ["fifo", "priority"])
def test_prediction_equals_predict_finish_on_every_batch(queue: str) -> None:
    cluster, workload = generate("iot-small", 400, 1.1, seed=3)
    engine = Engine(cluster, workload, decision_interval=0.5, queue=queue)
    mct = make_policy("mct")
    mct.reset(cluster, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    checked = 0
    while (batch := engine.next_batch()) is not None:
        tasks, view = batch
        p = cost.build_problem(tasks, view, W)
        for nodes in (mct.assign(tasks, view), _random_assignment(view, rng)):
            got = cost.predict(p, nodes)["finish_s"]
            assert np.array_equal(got, view.predict_finish(nodes))
            checked += 1
        engine.commit(mct.assign(tasks, view))
    assert checked > 20


def _run_all_but_last(cluster, workload, queue: str):
    engine = Engine(cluster, workload, decision_interval=0.5, queue=queue)
    mct = make_policy("mct")
    mct.reset(cluster, np.random.default_rng(0))
    last = engine.n_batches - 1
    for _ in range(last):
        tasks, view = engine.next_batch()
        engine.commit(mct.assign(tasks, view))
    tasks, view = engine.next_batch()
    return engine, tasks, view


@pytest.mark.parametrize("queue", ["fifo", "priority"])
def test_prediction_equals_simulation_on_the_last_batch(queue: str) -> None:
    cluster, workload = generate("iot-small", 300, 1.3, seed=5)
    engine, tasks, view = _run_all_but_last(cluster, workload, queue)
    p = cost.build_problem(tasks, view, W)
    assert p.q_index.shape[0] > 0, "the instance should have queued tasks to displace"
    assert p.h0 > view.time, "the cluster should be busy at the last decision"
    # send the whole batch to the two busiest nodes it fits on, to displace queued tasks
    busy = np.argsort(-(np.asarray(view.queued_tasks) + np.asarray(view.busy_cores)))
    feas = np.asarray(view.feasible)
    nodes = np.array([next(j for j in busy if feas[i, j]) for i in range(len(tasks))])
    nodes[1::2] = [next(j for j in busy[1:] if feas[i, j]) for i in range(1, len(tasks), 2)]
    pred = cost.predict(p, nodes)
    engine.commit(nodes)
    result = engine.finish(policy_name="mct")

    st = engine.state
    assert np.array_equal(st.finish[tasks.index], pred["finish_s"])
    assert np.array_equal(st.finish[p.q_index], pred["queued_finish_s"])
    if queue == "priority":
        assert pred["displaced_s"] > 0  # urgent tasks overtake queued ones
    resp = st.finish[tasks.index] - st.arrival[tasks.index]
    assert pred["response_s"] == pytest.approx(float(resp.mean()), rel=1e-12)
    assert pred["missed"] == int(np.sum(st.finish[tasks.index] > st.abs_deadline[tasks.index]))

    # energy increase: the run minus the same run without the batch's tasks
    keep = np.ones(len(workload), dtype=bool)
    keep[engine.order[tasks.index]] = False
    without = simulate(
        cluster, workload.subset(np.flatnonzero(keep)), make_policy("mct"),
        decision_interval=0.5, queue=queue,
    )  # fmt: skip
    gained = result.summary["energy_j"] - without.summary["energy_j"]
    assert pred["energy_j"] == pytest.approx(gained, rel=1e-9)
    assert pred["horizon_s"] == pytest.approx(float(np.max(st.finish)), rel=1e-12)


def test_cost_is_the_documented_weighted_sum() -> None:
    cluster, workload = generate("iot-small", 300, 1.3, seed=5)
    weights = cost.CostWeights(
        response=1.5, miss=3.0, miss_decay=0.25, energy=0.01, displaced=0.5, wait=0.7
    )
    engine, tasks, view = _run_all_but_last(cluster, workload, "priority")
    p = cost.build_problem(tasks, view, weights)
    rng = np.random.default_rng(2)
    for _ in range(5):
        nodes = _random_assignment(view, rng)
        pr = cost.predict(p, nodes)
        b = len(tasks)
        f = pr["finish_s"]
        dur = np.asarray(view.exec_s)[np.arange(b), nodes]
        ready = np.asarray(view.ready_s)[np.arange(b), nodes]
        dl = tasks.deadline_abs_s
        miss_w = 3.0 * 0.25 ** tasks.priority.astype(float)
        per_task = (
            1.5 * (f - tasks.arrival_s)
            + miss_w * (f > dl)
            + 0.7 * (1 + tasks.priority) * (f - dur - ready)
        )
        q_f, q0, q_dl = pr["queued_finish_s"], p.q_f0, p.q_dl
        q_mw = 3.0 * 0.25 ** engine.state.priority[p.q_index].astype(float)
        displaced = 0.5 * np.sum(1.5 * (q_f - q0) + q_mw * ((q_f > q_dl) & ~(q0 > q_dl)))
        expected = (per_task.sum() + displaced + 0.01 * pr["energy_j"]) / b
        assert pr["cost"] == pytest.approx(expected, rel=1e-9)


def test_memoised_evaluation_equals_fresh_evaluation() -> None:
    cluster, workload = generate("iot-small", 300, 1.3, seed=7)
    _, tasks, view = _run_all_but_last(cluster, workload, "priority")
    p = cost.build_problem(tasks, view, W)
    rng = np.random.default_rng(3)
    base = _random_assignment(view, rng)
    rows = np.array([base] * 20)
    for r in rows[1:]:  # neighbours share most (node, task set) pairs: memo hits
        k = rng.integers(len(tasks))
        r[k] = _random_assignment(view, rng)[k]
    many = cost.batch_cost(p, rows)
    one_by_one = [cost.batch_cost(p, r) for r in rows]
    assert np.array_equal(many, one_by_one)


def test_bad_assignment_and_weights_are_refused() -> None:
    cluster, workload = generate("iot-small", 100, 1.0, seed=1)
    _, tasks, view = _run_all_but_last(cluster, workload, "fifo")
    p = cost.build_problem(tasks, view, W)
    with pytest.raises(ConfigError, match="node indices"):
        cost.batch_cost(p, np.full(len(tasks), cluster.n_nodes))
    with pytest.raises(ConfigError, match="energy"):
        cost.CostWeights(energy=-1.0)
    with pytest.raises(ConfigError, match="miss_decay"):
        cost.CostWeights(miss_decay=2.0)
    assert np.allclose(cost.CostWeights(miss=4, miss_decay=0.5).miss_cost([0, 1, 2]), [4, 2, 1])


@settings(max_examples=200, deadline=None)
@given(
    m=st.integers(1, 12),
    ncore=st.integers(1, 5),
    data=st.data(),
)
def test_small_simulation_equals_core_simulate_node(m: int, ncore: int, data) -> None:
    grid = st.integers(0, 6).map(lambda k: k * 0.25)  # ties on purpose
    ready = np.array(data.draw(st.lists(grid, min_size=m, max_size=m))) + 1.0
    dur = np.array(data.draw(st.lists(st.integers(1, 4), min_size=m, max_size=m))) * 0.5
    key0 = np.array(data.draw(st.lists(st.integers(0, 2), min_size=m, max_size=m)), float)
    key1 = np.array(data.draw(st.lists(grid, min_size=m, max_size=m)))
    tid = np.array(data.draw(st.permutations(list(range(m)))), dtype=np.int64)
    cf = np.sort(np.array(data.draw(st.lists(grid, min_size=ncore, max_size=ncore)))) + 0.5
    t0 = 1.0
    want = simcore.simulate_node(t0, cf, ready, key0, key1, tid, dur)
    got = np.empty(m)
    scratch = (np.empty(m, np.int64), np.empty(m, np.int64), np.empty(ncore))
    cost.simulate_small(t0, cf, ready, key0, key1, tid, dur, got, *scratch)
    assert np.array_equal(got, want)
    # only the m earliest cores matter (what node_schedule relies on)
    short = simcore.simulate_node(t0, cf[: min(m, ncore)], ready, key0, key1, tid, dur)
    assert np.array_equal(short, want)


def _one_node_problem(t0, cf, queued, batch):
    """A batch problem on one node: ``queued`` and ``batch`` are (ready, key0, key1, tid, dur)."""
    qr, qk0, qk1, qt, qd = (np.asarray(x) for x in queued)
    br, bk0, bk1, bt, bd = (np.asarray(x) for x in batch)
    ncore = cf.shape[0]
    nq, b = qr.shape[0], br.shape[0]
    q_off = np.array([0, nq], dtype=np.int64)
    cf2 = cf[None, :].copy()
    cores = np.array([ncore], dtype=np.int64)
    run_last = np.array([max(t0, float(cf.max()))])
    q_f0 = simcore.simulate_node(t0, cf, qr, qk0, qk1, qt, qd) + qd if nq else np.empty(0)
    plan = cost.queue_plan(t0, cf2, cores, run_last, q_off, qr, qk0, qk1, qt, qd)
    fields = dict(
        d=t0, h0=float(max(run_last[0], q_f0.max(initial=t0))), idle_w=1.0, w_response=1.0,
        w_energy=0.0, w_displaced=1.0, inv_b=1.0 / b, cores=cores, cf=cf2,
        n_idle=np.array([int(np.sum(cf <= t0))]), run_last=run_last, q_off=q_off, q_ready=qr,
        q_key0=qk0, q_key1=qk1, q_tid=qt, q_dur=qd, q_dl=np.full(nq, np.inf),
        q_mw=np.zeros(nq), q_f0=q_f0, q_index=np.arange(nq, dtype=np.int64),
        ready=br[:, None].copy(), dur=bd[:, None].copy(), dyn_j=np.zeros((b, 1)), key0=bk0,
        key1=bk1, tid=bt, arrival=np.zeros(b), dl=np.full(b, np.inf), mw=np.zeros(b),
        ww=np.zeros(b),
    )  # fmt: skip
    fields.update(zip(("qp_q", "qp_t", "qp_last", "qs_off", "snap", "qp_max"), plan, strict=True))
    return cost.Problem(**fields)


@settings(max_examples=300, deadline=None)
@given(nq=st.integers(0, 60), b=st.integers(1, 6), ncore=st.integers(1, 4), data=st.data())
def test_resumed_schedule_equals_core_simulate_node(nq: int, b: int, ncore: int, data) -> None:
    """Resuming each node's queue plan gives simulate_node's finish times, to the bit.

    (A queue longer than twice the node's batch tasks plus 16 is resumed; a shorter
    one is simulated whole.)
    """
    grid = st.integers(0, 12).map(lambda k: k * 0.25)  # ties on purpose

    def tasks(m: int, first_tid: int) -> tuple:
        ready = np.array(data.draw(st.lists(grid, min_size=m, max_size=m))) + 1.0
        key0 = np.array(data.draw(st.lists(st.integers(0, 2), min_size=m, max_size=m)), float)
        key1 = np.array(data.draw(st.lists(grid, min_size=m, max_size=m)))
        dur = np.array(data.draw(st.lists(st.integers(1, 6), min_size=m, max_size=m))) * 0.5
        return ready, key0, key1, np.arange(first_tid, first_tid + m, dtype=np.int64), dur

    queued = tasks(nq, 0)
    batch = tasks(b, nq)
    cf = np.sort(np.array(data.draw(st.lists(grid, min_size=ncore, max_size=ncore)))) + 0.5
    t0 = 1.0
    p = _one_node_problem(t0, cf, queued, batch)
    h = cost.compile_problem(p)
    ws = cost.make_scratch(h)
    members = np.array(sorted(data.draw(st.sets(st.integers(0, b - 1), min_size=1))))
    nm = members.shape[0]
    buf = np.zeros(b, dtype=np.int64)
    buf[:nm] = members
    cost.node_schedule(h, 0, buf, nm, ws)
    every = [np.concatenate([q, x[members]]) for q, x in zip(queued, batch, strict=True)]
    want = simcore.simulate_node(t0, cf, *every) + every[4]
    assert np.array_equal(ws[5][:nq], want[:nq])
    assert np.array_equal(ws[4][members], want[nq:])
    # the node's cost from the resumed schedule: the queued tasks' delays, each once
    c, last = cost.node_cost(h, 0, buf, nm, ws)
    delay = float(np.sum(want[:nq] - p.q_f0)) if nq else 0.0
    own = float(np.sum(want[nq:]))
    assert c == pytest.approx((own + delay) / b, rel=1e-12, abs=1e-12)
    assert last == max(float(want.max()), float(p.run_last[0]))
