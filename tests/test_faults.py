"""Failures, estimate noise and network options (hybridsched.sim.options_engine / options).

Hand-computed cases use binary-exact times (halves, quarters) so that schedule times
can be compared with ``==``; the derivations are in the comments. The conservation
property is checked with hypothesis on random outage traces; with every option off
(or nothing happening) the runs are checked bit for bit against the base engine and
against the independent reference simulator (tests/reference_sim.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridsched.errors import ConfigError, PolicyError, ValidationError
from hybridsched.model import Cluster, Workload
from hybridsched.policies import available_policies, make_policy, policy_params
from hybridsched.sim import Engine, SimConfig, simulate
from hybridsched.sim.options import (
    FailureTrace,
    SimOptions,
    lognormal_factors,
    parse_tier_values,
    read_failures,
)
from hybridsched.sim.options_engine import OptionsEngine, OptionsResult
from hybridsched.workload import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import builders
from builders import make_workload
from reference_sim import reference_simulate

INF = float("inf")


def make_cluster(nodes: list[dict[str, Any]], regions: int = 1) -> Cluster:
    """A hand cluster whose nodes are all in tier ``edge`` (for MTBF/MTTR by tier)."""
    return builders.make_cluster(nodes, regions, tier="edge")


def trace(*outages: tuple[str, float, float]) -> FailureTrace:
    return FailureTrace.build(
        {
            "node": [o[0] for o in outages],
            "down_s": [o[1] for o in outages],
            "up_s": [o[2] for o in outages],
        }
    )


def same_tasks(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for k, v in a.items():
        w = b[k]
        if v.dtype.kind == "f":
            assert np.array_equal(v, w, equal_nan=True), k
        else:
            assert np.array_equal(v, w), k


def same_summary(a: dict[str, Any], b: dict[str, Any]) -> None:
    for k, v in a.items():
        if k != "scheduler_seconds":
            assert b[k] == v, k


def by_id(result: Any) -> dict[int, dict[str, Any]]:
    t = result.tasks
    return {int(t["task_id"][k]): {c: t[c][k] for c in t} for k in range(t["task_id"].shape[0])}


@pytest.fixture(scope="module")
def small() -> tuple[Cluster, Workload]:
    return generate("iot-default", 3000, 0.9, 7)


POLICIES = ["mct", "random", "round-robin", "min-min", "edf-mct", "energy-aware", "sufferage"]


# ------------------------------------------------------------------ options off


@pytest.mark.parametrize("seed", [2, 24, 25])
def test_availability_without_failures_is_exactly_one(seed: int) -> None:
    # on these runs the two sums of core-seconds differed in the last bit (1.0000000000000002)
    c, w = generate("iot-small", 100, 0.9, seed)
    r = simulate(c, w, make_policy("mct"), options=SimOptions(latency_jitter=0.1), seed=seed)
    assert r.summary["availability"] == 1.0


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("delta", "queue"), [(0.0, "fifo"), (0.5, "priority")])
def test_options_off_is_the_base_model_bit_for_bit(
    small: tuple[Cluster, Workload], policy: str, delta: float, queue: str
) -> None:
    c, w = small
    cfg = SimConfig(decision_interval=delta, queue=queue)
    base = simulate(c, w, make_policy(policy), config=cfg, seed=3)
    nothing = (
        SimOptions(),
        SimOptions(latency_jitter=0.0, shared_links=False),
        # estimates that follow observations: exact estimates observe ratios of 1
        SimOptions(estimates="observed"),
    )
    for options in nothing:
        res = simulate(c, w, make_policy(policy), config=cfg, options=options, seed=3)
        same_tasks(base.tasks, res.tasks)
        same_summary(base.summary, res.summary)
    # estimates on but exact (cv 0): the base engine, the same numbers
    res = simulate(
        c, w, make_policy(policy), config=cfg, options=SimOptions(estimate_cv=0.0), seed=3
    )
    same_tasks(base.tasks, {k: res.tasks[k] for k in base.tasks})
    same_summary(base.summary, res.summary)
    assert res.summary["retries"] == 0 and res.summary["availability"] == 1.0


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("delta", "queue"), [(0.0, "priority"), (0.5, "fifo")])
def test_fault_engine_with_nothing_happening_is_the_base_model(
    small: tuple[Cluster, Workload], policy: str, delta: float, queue: str
) -> None:
    """The options engine's own event loop, with failures on but no outage in the run."""
    c, w = small
    cfg = SimConfig(decision_interval=delta, queue=queue)
    # the base engine driven through assign, as the options engine drives policies
    eng = Engine(c, w, cfg)
    pol = make_policy(policy)
    pol.reset(c, np.random.default_rng(5))
    while (batch := eng.next_batch()) is not None:
        eng.commit(pol.assign(*batch))
    base = eng.finish(policy_name=pol.name)
    for options in (
        SimOptions(failures=trace()),  # an empty trace
        SimOptions(mtbf_s=1e15, mttr_s=1.0),  # a failure long after the end
    ):
        res = OptionsEngine(c, w, cfg, options, seed=1).run(make_policy(policy), 5)
        same_tasks(base.tasks, {k: res.tasks[k] for k in base.tasks})
        same_summary(base.summary, res.summary)
        assert res.summary["outages"] == 0
        assert (res.tasks["status"] == "finished").all()
    # and the independent oracle agrees on every time of that schedule
    ref = reference_simulate(c, w, res.tasks["node_index"], delta, queue)
    for col in ("decision_s", "ready_s", "start_s", "finish_s"):
        assert np.array_equal(ref[col], res.tasks[col]), col
    for key, value in ref["summary"].items():
        assert res.summary[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


# ------------------------------------------------------------- hand-computed


# Two nodes n0, n1: 1 core, speed 1 GI/s, no latency or data, idle 10 W, max 30 W.
#   A (id 0): arrival 0, work 4;  B (id 1): arrival 1, work 1.  n0 is down on [2, 10).
# MCT, delta = 0:
#   t=0  A: est finish 4 on both nodes, tie -> n0; runs [0, 4).
#   t=1  B: n0 est max(1, 4) + 1 = 5, n1 est 2 -> n1; runs [1, 2).
#   t=2  n0 fails (node events come first): A is killed after 2 s (a retry) and is
#        decided again at 2, before the instant's completions: n1's projection is 2
#        (B), so A -> n1, ready 2. Then B finishes at 2 and A starts: [2, 6).
#   T = 6, t0 = 0. busy: n0 2 s (wasted), n1 1 + 4 = 5 s. n0 up 2 s of [0, 6].
#   energy = 10*2 + 20*2 + 10*6 + 20*5 = 220 J; utilization = 7/12;
#   availability = (2 + 6) / 12 = 2/3; mean response (6 + 1) / 2 = 3.5.
# delta = 1.5: A decided at 0 -> n0; B at 1.5 -> n1 (2.5 < 5), runs [1.5, 2.5);
#   n0 fails at 2, A goes back at the next boundary 3.0 -> n1 (free at 2.5): [3, 7).


def _hand_failure() -> tuple[Cluster, Workload, SimOptions]:
    c = make_cluster([{}, {}])
    w = make_workload(
        [{"task_id": 0, "arrival_s": 0.0, "work_gi": 4.0}, {"task_id": 1, "arrival_s": 1.0}]
    )
    return c, w, SimOptions(failures=trace(("n0", 2.0, 10.0)))


def test_hand_computed_failure() -> None:
    c, w, options = _hand_failure()
    res = simulate(c, w, make_policy("mct"), config=SimConfig(), options=options, seed=0)
    assert isinstance(res, OptionsResult)
    t = by_id(res)
    a, b = t[0], t[1]
    assert (a["node"], a["decision_s"], a["ready_s"], a["start_s"], a["finish_s"]) == (
        "n1",
        2.0,
        2.0,
        2.0,
        6.0,
    )
    assert (b["node"], b["decision_s"], b["start_s"], b["finish_s"]) == ("n1", 1.0, 1.0, 2.0)
    assert (a["retries"], b["retries"]) == (1, 0)
    assert a["status"] == b["status"] == "finished"
    assert res.attempts["task_id"].tolist() == [0]
    assert res.attempts["node"].tolist() == ["n0"]
    assert res.attempts["start_s"].tolist() == [0.0]
    assert res.attempts["end_s"].tolist() == [2.0]
    assert res.outages["down_s"].tolist() == [2.0] and res.outages["up_s"].tolist() == [10.0]
    s = res.summary
    assert s["makespan_s"] == 6.0
    assert s["energy_j"] == 220.0
    assert s["utilization"] == pytest.approx(7 / 12, rel=1e-15)
    assert s["availability"] == pytest.approx(2 / 3, rel=1e-15)
    assert s["mean_response_s"] == 3.5
    assert (s["retries"], s["rejected"], s["finished"], s["wasted_core_s"]) == (1, 0, 2, 2.0)


def test_hand_computed_failure_with_batches() -> None:
    c, w, options = _hand_failure()
    cfg = SimConfig(decision_interval=1.5)
    t = by_id(simulate(c, w, make_policy("mct"), config=cfg, options=options, seed=0))
    assert (t[1]["node"], t[1]["decision_s"], t[1]["start_s"], t[1]["finish_s"]) == (
        "n1",
        1.5,
        1.5,
        2.5,
    )
    assert (t[0]["node"], t[0]["decision_s"], t[0]["start_s"], t[0]["finish_s"]) == (
        "n1",
        3.0,
        3.0,
        7.0,
    )
    assert t[0]["retries"] == 1


def test_retry_limit_rejects_the_task() -> None:
    # the hand failure with max_retries = 0: task 0's one interruption (n0 down at 2)
    # is over the limit, so it is rejected at 2 instead of being decided again
    c, w, options = _hand_failure()
    opts = SimOptions(failures=options.failures, max_retries=0)
    res = simulate(c, w, make_policy("mct"), config=SimConfig(), options=opts, seed=0)
    t = by_id(res)
    assert (t[0]["status"], t[0]["retries"], t[0]["rejected_s"]) == ("rejected", 1, 2.0)
    assert t[0]["reason"].startswith("retry limit: interrupted by failures 1 times")
    assert t[0]["node_index"] == -1
    assert (t[1]["status"], t[1]["finish_s"]) == ("finished", 2.0)
    s = res.summary
    assert (s["finished"], s["rejected"], s["retries"]) == (1, 1, 1)
    # at the default (100) the same run finishes both: one retry is far from the limit
    again = simulate(c, w, make_policy("mct"), config=SimConfig(), options=options, seed=0)
    assert (again.summary["finished"], again.summary["rejected"]) == (2, 0)


@pytest.mark.parametrize(
    ("mtbf", "mttr", "finished", "rejected"),
    [
        # failures much more frequent than tasks are long: once hung (retried forever)
        (1.0, 1e5, 18, 2),
        (0.01, 0.01, 0, 20),
    ],
)
def test_failures_faster_than_tasks_end(
    mtbf: float, mttr: float, finished: int, rejected: int
) -> None:
    c, w = generate("iot-default", 20, 0.8, seed=0)
    opts = SimOptions(mtbf_s=mtbf, mttr_s=mttr)
    res = simulate(c, w, make_policy("mct"), options=opts, seed=0)
    status = res.tasks["status"]
    assert ((status == "finished") | (status == "rejected")).all()
    s = res.summary
    assert (s["finished"], s["rejected"]) == (finished, rejected)
    rej = status == "rejected"
    assert (res.tasks["retries"][rej] == 101).all()
    assert all(r.startswith("retry limit") for r in res.tasks["reason"][rej])
    assert (res.tasks["retries"][~rej] <= 100).all()


# big (1000 MB) and small (100 MB), 1 core each, speed 1.
#   X (id 0, 500 MB) arrives at 1 while big is down on [0, 4): no up node fits, X waits
#     (not a retry) and is decided when big is back, at 4: runs [4, 5).
#   Y (id 1, 500 MB, work 3) arrives at 5 -> big [5, 8); big fails for good at 6: Y is
#     killed (a retry) and, with no node that could ever take it, rejected at 6.
#   Z (id 2, 50 MB) arrives at 7 -> small (big is down), [7, 8).
def test_waiting_for_a_node_and_rejection() -> None:
    c = make_cluster([{"name": "big"}, {"name": "small", "memory_mb": 100.0}])
    w = make_workload(
        [
            {"task_id": 0, "arrival_s": 1.0, "memory_mb": 500.0},
            {"task_id": 1, "arrival_s": 5.0, "memory_mb": 500.0, "work_gi": 3.0},
            {"task_id": 2, "arrival_s": 7.0, "memory_mb": 50.0},
        ]
    )
    options = SimOptions(failures=trace(("big", 0.0, 4.0), ("big", 6.0, INF)))
    res = simulate(c, w, make_policy("mct"), config=SimConfig(), options=options, seed=0)
    t = by_id(res)
    assert (t[0]["node"], t[0]["decision_s"], t[0]["start_s"], t[0]["retries"]) == (
        "big",
        4.0,
        4.0,
        0,
    )
    assert t[1]["status"] == "rejected" and t[1]["retries"] == 1
    assert t[1]["node"] is None and t[1]["node_index"] == -1 and t[1]["rejected_s"] == 6.0
    assert np.isnan(t[1]["finish_s"]) and not t[1]["met_deadline"]
    assert "500 MB" in t[1]["reason"] and "down for good" in t[1]["reason"]
    assert (t[2]["node"], t[2]["start_s"], t[2]["finish_s"]) == ("small", 7.0, 8.0)
    s = res.summary
    assert (s["finished"], s["rejected"], s["retries"]) == (2, 1, 1)
    assert s["deadline_miss_rate"] == pytest.approx(1 / 3)  # a rejected task misses
    assert s["makespan_s"] == 7.0  # t0 = 1, T = 8


# One node, 2 cores, speed 1, ingress 1 MB/s, no latency; P (0 s, 2 MB) and Q (1 s, 2 MB).
# Shared link: P alone for 1 s (1 MB left), then both at 0.5 MB/s: P is done at 3;
# Q has 1 MB left at 3 and the link to itself: done at 4. (Unshared: ready 2 and 3.)
# Three transfers of 1 MB at 0 share the link equally: all ready at 3.
def test_shared_link_hand_case() -> None:
    c = make_cluster([{"cores": 2}])
    w = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.0, "data_mb": 2.0},
            {"task_id": 1, "arrival_s": 1.0, "data_mb": 2.0},
        ]
    )
    on = SimOptions(shared_links=True)
    t = by_id(simulate(c, w, make_policy("mct"), config=SimConfig(), options=on, seed=0))
    assert (t[0]["ready_s"], t[0]["start_s"], t[0]["finish_s"]) == (3.0, 3.0, 4.0)
    assert (t[1]["ready_s"], t[1]["start_s"], t[1]["finish_s"]) == (4.0, 4.0, 5.0)
    off = by_id(simulate(c, w, make_policy("mct")))
    assert (off[0]["ready_s"], off[1]["ready_s"]) == (2.0, 3.0)

    w3 = make_workload([{"task_id": k, "arrival_s": 0.0, "data_mb": 1.0} for k in range(3)])
    t3 = by_id(simulate(c, w3, make_policy("mct"), config=SimConfig(), options=on, seed=0))
    assert [t3[k]["ready_s"] for k in range(3)] == [3.0, 3.0, 3.0]
    assert sorted(t3[k]["start_s"] for k in range(3)) == [3.0, 3.0, 4.0]


def test_shared_link_without_overlap_is_the_base_model() -> None:
    c = make_cluster([{"bandwidth_mb_s": 4.0, "latency_s": [0.125]}, {"speed": 2.0}])
    rows = [
        {"task_id": k, "arrival_s": 3.0 * k, "data_mb": 0.5 + k % 3, "work_gi": 1.0 + k % 2}
        for k in range(12)
    ]
    w = make_workload(rows)
    base = simulate(c, w, make_policy("mct"))
    res = simulate(
        c, w, make_policy("mct"), config=SimConfig(), options=SimOptions(shared_links=True), seed=0
    )
    same_tasks(base.tasks, {k: res.tasks[k] for k in base.tasks})
    same_summary(base.summary, res.summary)


def test_latency_jitter_is_lognormal_with_mean_one_and_seeded() -> None:
    c = make_cluster([{"latency_s": [1.0], "cores": 64}])
    w = make_workload([{"task_id": k, "arrival_s": k * 0.25} for k in range(4000)])
    options = SimOptions(latency_jitter=0.3)
    res = simulate(c, w, make_policy("mct"), config=SimConfig(), options=options, seed=11)
    factor = res.tasks["ready_s"] - res.tasks["decision_s"]  # latency 1, no data
    assert factor.mean() == pytest.approx(1.0, abs=0.03)
    assert factor.std() / factor.mean() == pytest.approx(0.3, abs=0.03)
    again = simulate(c, w, make_policy("mct"), config=SimConfig(), options=options, seed=11)
    assert np.array_equal(again.tasks["ready_s"], res.tasks["ready_s"])
    other = simulate(c, w, make_policy("mct"), config=SimConfig(), options=options, seed=12)
    assert not np.array_equal(other.tasks["ready_s"], res.tasks["ready_s"])
    assert lognormal_factors(np.random.default_rng(0), 0.0, 3).tolist() == [1.0, 1.0, 1.0]


# ------------------------------------------------------------- estimate noise


class Probe:
    """A view-only policy (as the colony and the learned ones are): records what it sees,
    then picks the feasible node with the earliest estimated finish."""

    name = "probe"

    def __init__(self) -> None:
        self.seen_work: list[np.ndarray] = []
        self.seen_arrays: list[np.ndarray] = []
        self.down_seen: list[tuple[float, np.ndarray]] = []

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        self.n = cluster.n_nodes

    def assign(self, tasks: Any, view: Any) -> np.ndarray:
        self.seen_work.append(tasks.work_gi.copy())
        self.seen_arrays.append(view._arr.work[tasks.index].copy())  # what kernels read
        if view.unavailable is not None:
            self.down_seen.append((view.time, view.unavailable.copy()))
            assert not view.feasible[:, view.unavailable].any()
        score = np.where(view.feasible, view.est_finish_s, np.inf)
        return np.argmin(score, axis=1).astype(np.int64)


@pytest.mark.parametrize("network", [False, True])
def test_estimate_noise_changes_decisions_not_true_durations(
    small: tuple[Cluster, Workload], network: bool
) -> None:
    c, w = small
    exact = simulate(c, w, make_policy("mct"), seed=0)
    options = SimOptions(estimate_cv=0.5, shared_links=network)
    res = simulate(c, w, make_policy("mct"), config=SimConfig(), options=options, seed=0)
    assert res.summary["estimates"] == "lognormal cv=0.5"
    est = res.tasks["work_est_gi"]
    assert not np.allclose(est, w.work_gi)
    assert np.mean(est / w.work_gi) == pytest.approx(1.0, abs=0.05)
    assert (res.tasks["node_index"] != exact.tasks["node_index"]).mean() > 0.05
    speed = c.speed[res.tasks["node_index"]]
    assert np.array_equal(res.tasks["finish_s"], res.tasks["start_s"] + w.work_gi / speed)
    # the schedulers saw the estimates only, also through the view's arrays
    probe = Probe()
    simulate(c, w.subset(np.arange(300)), probe, config=SimConfig(), options=options, seed=0)
    seen = np.concatenate(probe.seen_work)
    assert np.array_equal(seen, np.concatenate(probe.seen_arrays))
    sub = w.subset(np.arange(300))
    order = np.lexsort((sub.task_id, sub.arrival_s))  # decision order
    assert seen.size == 300
    assert np.array_equal(seen, est[:300][order])


def test_work_est_column_is_what_schedulers_see() -> None:
    c = make_cluster([{}, {"speed": 2.0}])
    rows = [{"task_id": k, "arrival_s": 0.5 * k, "work_gi": 2.0} for k in range(6)]
    est = [8.0, 0.5, 8.0, 0.5, 8.0, 0.5]
    w = make_workload(rows, work_est_gi=est)
    res = simulate(
        c, w, make_policy("mct"), config=SimConfig(), options=SimOptions(estimate_cv=0.0), seed=0
    )
    assert res.summary["estimates"] == "column work_est_gi"
    assert res.tasks["work_est_gi"].tolist() == est
    assert np.array_equal(
        res.tasks["finish_s"] - res.tasks["start_s"], 2.0 / c.speed[res.tasks["node_index"]]
    )
    bad = make_workload(rows, work_est_gi=[1.0, 1.0, -1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValidationError, match="row 3, column work_est_gi"):
        simulate(c, bad, make_policy("mct"), config=None, options=SimOptions(estimate_cv=0.0))


# ------------------------------------------------------------- conservation


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n_nodes = draw(st.integers(1, 3))
    nodes = []
    for j in range(n_nodes):
        nodes.append(
            {
                "cores": draw(st.integers(1, 2)),
                "speed": draw(st.sampled_from([0.5, 1.0, 2.0])),
                "memory_mb": 1000.0 if j == 0 else draw(st.sampled_from([100.0, 1000.0])),
                "bandwidth_mb_s": draw(st.sampled_from([1.0, 4.0])),
                "latency_s": [draw(st.sampled_from([0.0, 0.25]))],
            }
        )
    quarter = st.integers(0, 40).map(lambda q: q / 4)
    rows = [
        {
            "task_id": k,
            "arrival_s": draw(quarter),
            "work_gi": draw(st.sampled_from([0.5, 1.0, 2.0, 3.0])),
            "data_mb": draw(st.sampled_from([0.0, 0.5, 2.0])),
            "memory_mb": draw(st.sampled_from([0.0, 500.0])),
            "priority": draw(st.integers(0, 1)),
            "deadline_s": draw(st.sampled_from([INF, 2.0, 6.0])),
        }
        for k in range(draw(st.integers(1, 16)))
    ]
    outages = []
    for j in range(n_nodes):
        t = 0.0
        for _ in range(draw(st.integers(0, 3))):
            t += draw(quarter)
            length = draw(st.sampled_from([0.25, 1.0, 3.0, 7.5, INF]))
            outages.append((f"n{j}", t, t + length))
            if length == INF:
                break
            t += length
    return {
        "nodes": nodes,
        "rows": rows,
        "outages": outages,
        "delta": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "queue": draw(st.sampled_from(["fifo", "priority"])),
        "policy": draw(st.sampled_from(["mct", "random", "round-robin", "min-min", "probe"])),
        "shared": draw(st.booleans()),
        "jitter": draw(st.sampled_from([0.0, 0.5])),
    }


def check_conservation(c: Cluster, w: Workload, tr: FailureTrace, res: OptionsResult) -> None:
    t = res.tasks
    n = len(w)
    # every task exactly once, finished xor rejected
    assert sorted(t["task_id"].tolist()) == sorted(w.task_id.tolist())
    assert t["task_id"].shape[0] == n
    fin = t["status"] == "finished"
    rej = t["status"] == "rejected"
    assert np.all(fin ^ rej)
    s = res.summary
    assert s["finished"] + s["rejected"] == s["tasks"] == n
    assert s["retries"] == int(t["retries"].sum()) == res.attempts["task_id"].shape[0]
    attempts_per_task = {int(i): 0 for i in t["task_id"]}
    for i in res.attempts["task_id"]:
        attempts_per_task[int(i)] += 1
    assert [attempts_per_task[int(i)] for i in t["task_id"]] == t["retries"].tolist()
    node_of = {nm: j for j, nm in enumerate(c.node_names)}
    outages = [(node_of[nm], d, u) for nm, d, u in zip(tr.node, tr.down_s, tr.up_s, strict=True)]
    # finished tasks: true durations, ordered times, never on a down node
    j = t["node_index"]
    assert np.all(j[fin] >= 0) and np.all(j[rej] == -1)
    f = np.flatnonzero(fin)
    assert np.array_equal(t["finish_s"][f], t["start_s"][f] + w.work_gi[f] / c.speed[j[f]])
    assert np.all(t["arrival_s"][f] <= t["decision_s"][f])
    assert np.all(t["decision_s"][f] <= t["ready_s"][f])
    assert np.all(t["ready_s"][f] <= t["start_s"][f])
    assert np.all(w.memory_mb[f] <= c.memory_mb[j[f]])
    runs = [(int(j[k]), t["start_s"][k], t["finish_s"][k]) for k in f]
    for node, start, end in runs:
        for on, down, up in outages:
            assert not (on == node and start < up and end > down), (node, start, end, down, up)
    for k in f:
        for on, down, up in outages:
            assert not (on == j[k] and down <= t["decision_s"][k] < up)
    # interrupted attempts end at a failure of their node, after they started
    a = res.attempts
    for node, start, end in zip(a["node_index"], a["start_s"], a["end_s"], strict=True):
        assert any(on == node and down == end for on, down, _ in outages)
        if not np.isnan(start):
            assert start < end
            runs.append((int(node), start, end))
    # never more tasks running on a node than it has cores
    for node in range(c.n_nodes):
        ev = sorted(
            [(e, -1) for n_, _, e in runs if n_ == node]
            + [(b, 1) for n_, b, _ in runs if n_ == node]
        )
        assert max(np.cumsum([x for _, x in ev]), default=0) <= c.cores[node]
    # rejected tasks: no node that could take them was ever coming back
    for k in np.flatnonzero(rej):
        assert t["reason"][k]
        when = t["rejected_s"][k]
        for node in range(c.n_nodes):
            if c.memory_mb[node] >= w.memory_mb[k]:
                assert any(on == node and d <= when and u == INF for on, d, u in outages)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(scenarios())
def test_conservation_under_random_failures(sc: dict[str, Any]) -> None:
    c = make_cluster(sc["nodes"])
    w = make_workload(sc["rows"])
    tr = trace(*sc["outages"])
    options = SimOptions(failures=tr, shared_links=sc["shared"], latency_jitter=sc["jitter"])
    cfg = SimConfig(decision_interval=sc["delta"], queue=sc["queue"])

    def policy() -> Any:
        return Probe() if sc["policy"] == "probe" else make_policy(sc["policy"])

    res = simulate(c, w, policy(), config=cfg, options=options, seed=4)
    check_conservation(c, w, tr, res)
    again = simulate(c, w, policy(), config=cfg, options=options, seed=4)
    same_tasks(
        {k: v for k, v in res.tasks.items() if v.dtype.kind != "O"},
        {k: v for k, v in again.tasks.items() if v.dtype.kind != "O"},
    )


def test_generated_failures_are_seeded_and_conserve(small: tuple[Cluster, Workload]) -> None:
    c, w = small
    options = SimOptions(mtbf_s={"edge": 20.0, "fog": 40.0}, mttr_s={"edge": 5.0, "fog": 5.0})
    runs = [
        simulate(c, w, make_policy("mct"), config=SimConfig(), options=options, seed=s)
        for s in (1, 1, 2)
    ]
    assert np.array_equal(runs[0].outages["down_s"], runs[1].outages["down_s"])
    assert np.array_equal(runs[0].tasks["finish_s"], runs[1].tasks["finish_s"])
    assert not np.array_equal(runs[0].outages["down_s"], runs[2].outages["down_s"])
    res = runs[0]
    assert res.summary["outages"] > 10 and res.summary["retries"] > 0
    assert res.summary["rejected"] == 0  # every node comes back
    assert set(res.outages["node"].tolist()) <= {n for n in c.node_names if "cloud" not in n}
    assert 0.5 < res.summary["availability"] < 1.0
    tr = FailureTrace.build(
        {
            "node": res.outages["node"].tolist(),
            "down_s": res.outages["down_s"],
            "up_s": res.outages["up_s"],
        }
    )
    check_conservation(c, w, tr, res)


# ------------------------------------------------------------- view and policies


def test_down_nodes_are_masked_and_refused() -> None:
    c, w, options = _hand_failure()
    probe = Probe()
    simulate(c, w, probe, config=SimConfig(), options=options, seed=0)
    assert [(tm, m.tolist()) for tm, m in probe.down_seen] == [
        (0.0, [False, False]),
        (1.0, [False, False]),
        (2.0, [True, False]),
    ]

    class Stubborn(Probe):
        def assign(self, tasks: Any, view: Any) -> np.ndarray:
            return np.zeros(len(tasks), dtype=np.int64)

    with pytest.raises(PolicyError, match="node 'n0' is down at 2"):
        simulate(c, w, Stubborn(), config=SimConfig(), options=options, seed=0)


def _build(name: str, tmp_path: Path) -> Any:
    """The policy ``name``; a learned one without a shipped checkpoint gets an untrained one."""
    cheap = {"ants": 4, "iterations": 3}  # the colony's size: this checks semantics, not quality
    args = {k: v for k, v in cheap.items() if k in policy_params(name)}
    try:
        return make_policy(name, args)
    except ConfigError:
        if "checkpoint" not in policy_params(name):
            raise
    from hybridsched.learn.network import PairScorer, save_checkpoint

    path = save_checkpoint(tmp_path / "untrained.pt", PairScorer(), {"note": "untrained"})
    return make_policy(name, {**args, "checkpoint": str(path)})


@pytest.mark.parametrize("name", ["aco", "rl", "hybrid"])
def test_colony_and_learned_policies_run_under_every_option(name: str, tmp_path: Path) -> None:
    if name not in available_policies():
        pytest.skip(f"policy {name!r} is not in this tree")
    c, w = generate("iot-default", 300, 0.9, 3)
    options = SimOptions(
        mtbf_s=30.0, mttr_s=5.0, estimate_cv=0.3, latency_jitter=0.3, shared_links=True
    )
    for delta in (0.0, 0.5):
        cfg = SimConfig(decision_interval=delta)
        res = simulate(c, w, _build(name, tmp_path), config=cfg, options=options, seed=0)
        assert res.summary["outages"] > 0 and res.summary["retries"] > 0
        outages = {k: res.outages[k] for k in ("down_s", "up_s")}
        tr = FailureTrace.build({"node": res.outages["node"].tolist(), **outages})
        check_conservation(c, w, tr, res)


# ------------------------------------------------------------- validation and I/O


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"options\.latency_jitter: .*>= 0.*-1"):
        SimOptions(latency_jitter=-1.0)
    with pytest.raises(ConfigError, match=r"options\.estimate_cv: .*nan"):
        SimOptions(estimate_cv=float("nan"))
    with pytest.raises(ConfigError, match=r"options\.mttr_s: must be given with"):
        SimOptions(mtbf_s=10.0)
    with pytest.raises(ConfigError, match=r"options\.mtbf_s\['edge'\]: .*> 0.*0"):
        SimOptions(mtbf_s={"edge": 0.0}, mttr_s={"edge": 1.0})
    with pytest.raises(ConfigError, match=r"same tiers"):
        SimOptions(mtbf_s={"edge": 5.0}, mttr_s={"fog": 1.0})
    with pytest.raises(ConfigError, match=r"either a failures trace or mtbf"):
        SimOptions(failures=trace(), mtbf_s=5.0, mttr_s=1.0)
    with pytest.raises(ConfigError, match=r"tier 'gpu' is not in cluster"):
        SimOptions(mtbf_s={"gpu": 5.0}, mttr_s={"gpu": 1.0}).tier_rates(make_cluster([{}]))
    assert parse_tier_values("3600", "--mtbf") == {"*": 3600.0}
    assert parse_tier_values("edge=1, fog=2", "--mtbf") == {"edge": 1.0, "fog": 2.0}
    with pytest.raises(ConfigError, match=r"--mttr: cannot read 'edge=x'"):
        parse_tier_values("edge=x", "--mttr")
    c = make_cluster([{"tier": "edge"}, {"tier": "cloud"}])
    opts = SimOptions(mtbf_s={"*": 9.0, "cloud": 99.0}, mttr_s={"*": 1.0, "cloud": 2.0})
    assert opts.tier_rates(c)[0].tolist() == [9.0, 99.0]
    assert opts.tier_rates(c)[1].tolist() == [1.0, 2.0]
    assert not SimOptions().active and SimOptions(estimate_cv=0.0).active
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match=r"options\.max_retries: must be an integer >= 0"):
            SimOptions(max_retries=bad)
    assert not SimOptions(max_retries=3).active


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("node,down_s\nn0,1\n", r"missing column\(s\) up_s"),
        ("node,down_s,up_s\nn0,1,2\nn9,1,2\n", r"row 2, column node: unknown node 'n9'"),
        ("node,down_s,up_s\nn0,x,2\n", r"row 1, column down_s: must be a number, got 'x'"),
        ("node,down_s,up_s\nn0,1,2\nn1,-1,2\n", r"row 2, column down_s: .*>= 0"),
        ("node,down_s,up_s\nn0,3,2\n", r"row 1, column up_s: must be > down_s"),
        ("node,down_s,up_s\nn0,1,5\nn0,4,6\n", r"row 2: .*overlaps the one at row 1"),
        # "nan" is not the empty up_s that means "never back"
        ("node,down_s,up_s\nn0,1,5\nn1,1,nan\n", r"row 2, column up_s: must be a number, got nan"),
        ("node,down_s,up_s,up_s\nn0,1,5,6\n", r"column\(s\) up_s given more than once"),
    ],
)
def test_failures_file_errors_name_the_row(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "f.csv"
    p.write_text(text)
    with pytest.raises(ValidationError, match=message) as err:
        read_failures(p, cluster=make_cluster([{}, {}]))
    assert str(p) in str(err.value)


def test_failures_file_merges_touching_outages(tmp_path: Path) -> None:
    p = tmp_path / "f.csv"
    p.write_text("node,down_s,up_s\nn1,4,\nn0,1,2\nn0,2,3\n")
    tr = read_failures(p, cluster=make_cluster([{}, {}]))
    assert list(tr.node) == ["n0", "n1"]
    assert tr.down_s.tolist() == [1.0, 4.0] and tr.up_s.tolist() == [3.0, INF]


def test_cli_simulate_with_options(tmp_path: Path) -> None:
    import pandas as pd
    from typer.testing import CliRunner

    import hybridsched.cli.core  # noqa: F401  (registers the commands)
    from hybridsched.cli.app import app
    from hybridsched.io import read_table, write_cluster, write_workload

    c = make_cluster([{"name": "big"}, {"name": "small", "memory_mb": 100.0}])
    w = make_workload(
        [
            {"task_id": 0, "arrival_s": 1.0, "memory_mb": 500.0},
            {"task_id": 1, "arrival_s": 5.0, "memory_mb": 500.0, "work_gi": 3.0},
            {"task_id": 2, "arrival_s": 7.0, "memory_mb": 50.0},
        ]
    )
    write_cluster(c, tmp_path / "c.yaml")
    write_workload(w, tmp_path / "w.csv")
    (tmp_path / "f.csv").write_text("node,down_s,up_s\nbig,0,4\nbig,6,\n")
    args = ["simulate", "--cluster", str(tmp_path / "c.yaml"), "--workload"]
    args += [str(tmp_path / "w.csv"), "--failures", str(tmp_path / "f.csv")]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--shared-links"])
    assert res.exit_code == 0, res.output
    tasks = pd.read_parquet(tmp_path / "o" / "tasks.parquet")
    assert tasks.status.tolist() == ["finished", "rejected", "finished"]
    assert tasks.retries.tolist() == [0, 1, 0]
    assert tasks.node.tolist()[0] == "big" and tasks.node.isna().tolist() == [False, True, False]
    import json

    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert (summary["retries"], summary["rejected"]) == (1, 1)
    assert 0 < summary["availability"] < 1
    assert summary["run"]["options"]["shared_links"] is True
    assert summary["run"]["options"]["max_retries"] == 100
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o4"), "--max-retries", "-1"])
    assert res.exit_code == 2 and "--max-retries" in res.output, res.output
    assert not (tmp_path / "o4").exists()
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o2"), "--csv"])
    assert res.exit_code == 0, res.output
    assert read_table(tmp_path / "o2" / "tasks.csv")["status"].tolist()[1] == "rejected"
    (tmp_path / "bad.csv").write_text("node,down_s,up_s\nbig,5,1\n")
    args[-1] = str(tmp_path / "bad.csv")
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o3")])
    assert res.exit_code == 2
    assert "row 1, column up_s" in res.output
    res = CliRunner().invoke(app, [*args[:-2], "--mtbf", "edge=5", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "mttr_s" in res.output
