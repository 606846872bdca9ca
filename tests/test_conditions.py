"""Conditions that change (hybridsched.sim.conditions; docs/MODEL.md section 12).

Hand-computed schedules use binary-exact times so that they compare with ``==``
(derivations in the comments); random conditions are checked bit for bit
against the independent reference (tests/reference_sim.py), and all-ones
conditions against the run without them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hybridsched.errors import ConfigError, ValidationError
from hybridsched.model import Cluster, Workload
from hybridsched.policies import make_policy
from hybridsched.sim import SimConfig, simulate
from hybridsched.sim.conditions import CONDITION_COLUMNS, Conditions, read_conditions
from hybridsched.sim.options import FailureTrace, SimOptions
from hybridsched.workload import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from builders import make_cluster, make_workload
from reference_sim import reference_simulate

INF = float("inf")
BASE_COLUMNS = ("node_index", "decision_s", "ready_s", "start_s", "finish_s", "response_s")


def windows(cluster: Cluster, *rows: tuple[Any, ...], **columns: list[float]) -> Conditions:
    """Conditions from rows ``(node, start_s, end_s[, speed, latency, bandwidth])``."""
    names = CONDITION_COLUMNS[: max(len(r) for r in rows)] if rows else CONDITION_COLUMNS[:3]
    df = pd.DataFrame([dict(zip(names, r, strict=False)) for r in rows], columns=list(names))
    for k, v in columns.items():
        df[k] = v
    return Conditions.from_frame(df, cluster)


def run(c: Cluster, w: Workload, cond: Conditions | None, policy: str = "mct", **kw: Any) -> Any:
    cfg = SimConfig(decision_interval=kw.pop("delta", 0.0), queue=kw.pop("queue", "fifo"))
    options = SimOptions(conditions=cond, **kw)
    return simulate(c, w, make_policy(policy), config=cfg, options=options, seed=0)


def as_windows(cond: Conditions) -> list[tuple[int, float, float, float, float, float]]:
    cols = (cond.node, cond.start_s, cond.end_s, cond.speed, cond.latency, cond.bandwidth)
    return [(int(j), *map(float, rest)) for j, *rest in zip(*cols, strict=True)]


# ------------------------------------------------------------- hand-computed


def test_speed_halves_while_a_task_runs() -> None:
    # One node, speed 1. A: arrival 0, work 10; B: arrival 1, work 2.
    # Window [5, 17) at speed x0.5.
    #   A runs from 0; at 5 it has 5 GI left, at 0.5 GI/s: finish 5 + 5 * 1 / 0.5 = 15.
    #   B waits, starts at 15 at 0.5 GI/s (finish 19 booked); at 17 the window ends:
    #   1 GI done, 1 left at speed 1: finish 17 + (19 - 17) * 0.5 / 1 = 18.
    #   busy 15 + 3 = 18 core-s, T = 18: energy 10 * 18 + 20 * 18 = 540 J.
    c = make_cluster([{}])
    w = make_workload(
        [
            {"task_id": 0, "arrival_s": 0.0, "work_gi": 10.0},
            {"task_id": 1, "arrival_s": 1.0, "work_gi": 2.0},
        ]
    )
    res = run(c, w, windows(c, ("n0", 5.0, 17.0, 0.5)))
    assert res.tasks["start_s"].tolist() == [0.0, 15.0]
    assert res.tasks["finish_s"].tolist() == [15.0, 18.0]
    s = res.summary
    assert (s["makespan_s"], s["energy_j"], s["utilization"]) == (18.0, 540.0, 1.0)
    assert (s["condition_windows"], s["condition_changes"], s["retimed_tasks"]) == (1, 2, 2)
    ref = reference_simulate(
        c, w, res.tasks["node_index"], 0.0, "fifo", as_windows(windows(c, ("n0", 5.0, 17.0, 0.5)))
    )
    assert ref["finish_s"].tolist() == [15.0, 18.0]


def test_a_task_finishing_at_the_change_is_not_retimed_and_one_starting_runs_at_the_new_speed() -> (
    None
):
    # A: work 4 on [0, 4); B: arrival 1, work 4, waits and starts at 4. Speed x2 from 4 on:
    # A finishes at 4 (not re-timed), B runs 4 / 2 = 2 s: [4, 6).
    c = make_cluster([{}])
    w = make_workload(
        [{"task_id": 0, "arrival_s": 0.0, "work_gi": 4.0},
         {"task_id": 1, "arrival_s": 1.0, "work_gi": 4.0}]
    )  # fmt: skip
    res = run(c, w, windows(c, ("n0", 4.0, INF, 2.0)))
    assert res.tasks["finish_s"].tolist() == [4.0, 6.0]
    assert res.summary["retimed_tasks"] == 0


def test_a_transfer_takes_the_latency_and_bandwidth_of_its_decision() -> None:
    # Node: latency 1 s, 2 MB/s. Window [0, 10): latency x3, bandwidth x0.5.
    #   A (4 MB) decided at 1: ready (1 + 3) + 4 / 1 = 8.
    #   B (4 MB) decided at 9: (9 + 3) + 4 / 1 = 16 (the window closes at 10, mid-transfer:
    #   B keeps the values of its decision). C (4 MB) decided at 12: (12 + 1) + 4 / 2 = 15.
    c = make_cluster([{"latency_s": [1.0], "bandwidth_mb_s": 2.0}])
    w = make_workload(
        [{"task_id": k, "arrival_s": a, "data_mb": 4.0, "work_gi": 0.5}
         for k, a in enumerate([1.0, 9.0, 12.0])]
    )  # fmt: skip
    res = run(c, w, windows(c, ("n0", 0.0, 10.0, 1.0, 3.0, 0.5)))
    assert res.tasks["ready_s"].tolist() == [8.0, 16.0, 15.0]
    # C is ready before B and starts first (fifo by ready time)
    assert res.tasks["start_s"].tolist() == [8.0, 16.0, 15.0]


def test_shared_link_follows_the_bandwidth_in_force() -> None:
    # Node 1 MB/s, shared links. A and B (4 MB each) decided at 0: 0.5 MB/s each.
    # At 2 the bandwidth halves: 3 MB left each at 0.25 MB/s: ready 2 + 12 = 14.
    # Without shared links the transfers keep their decision's bandwidth: ready 4.
    c = make_cluster([{"cores": 2}])
    w = make_workload(
        [{"task_id": k, "arrival_s": 0.0, "data_mb": 4.0, "work_gi": 1.0} for k in range(2)]
    )
    cond = windows(c, ("n0", 2.0, INF, 1.0, 1.0, 0.5))
    assert run(c, w, cond, shared_links=True).tasks["ready_s"].tolist() == [14.0, 14.0]
    assert run(c, w, cond).tasks["ready_s"].tolist() == [4.0, 4.0]


def test_conditions_and_a_failure_together() -> None:
    # n0 at speed x0.5 on [0, inf); n1 nominal. A (work 4) decided at 0: MCT sees 4 on
    # both (nominal), tie -> n0, runs at 0.5 GI/s: finish 8. n0 fails at 2: A is killed
    # (2 core-s wasted) and decided again at 2 -> n1 (n0 is down): [2, 6).
    c = make_cluster([{}, {}])
    w = make_workload([{"task_id": 0, "arrival_s": 0.0, "work_gi": 4.0}])
    fail = FailureTrace.build({"node": ["n0"], "down_s": [2.0], "up_s": [5.0]})
    res = run(c, w, windows(c, ("n0", 0.0, INF, 0.5)), failures=fail)
    assert res.tasks["node"].tolist() == ["n1"]
    assert (res.tasks["start_s"][0], res.tasks["finish_s"][0]) == (2.0, 6.0)
    assert res.summary["wasted_core_s"] == 2.0


# ------------------------------------------------------------- invariants


@pytest.fixture(scope="module")
def small() -> tuple[Cluster, Workload]:
    return generate("iot-default", 800, 0.9, 5)


def examples(n: int) -> Any:
    """Hypothesis settings: ``n`` examples, no deadline, a module fixture."""
    return settings(
        max_examples=n, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


def random_conditions(cluster: Cluster, horizon: float, seed: int) -> Conditions:
    """Up to 3 windows per node, some open-ended, factors in [0.2, 3]."""
    rng = np.random.default_rng(seed)
    rows = []
    for name in cluster.node_names:
        t = 0.0
        for _ in range(int(rng.integers(1, 4))):
            start = t + rng.uniform(0, horizon / 3)
            end = start + rng.uniform(0.05, horizon / 3) if rng.random() < 0.85 else INF
            rows.append((name, start, end, *rng.uniform(0.2, 3.0, 3)))
            if end == INF:
                break
            # sometimes the next window opens exactly when this one closes
            t = end if rng.random() < 0.3 else end + rng.uniform(0, 1)
    return windows(cluster, *rows)


@examples(16)
@given(
    seed=st.integers(0, 10_000),
    delta=st.sampled_from([0.0, 0.5]),
    queue=st.sampled_from(["fifo", "priority"]),
    policy=st.sampled_from(["mct", "min-min", "sufferage", "random", "round-robin"]),
    shared=st.booleans(),
)
def test_random_conditions_match_the_reference_and_ones_change_nothing(
    small: tuple[Cluster, Workload], seed: int, delta: float, queue: str, policy: str, shared: bool
) -> None:
    c, w = small
    cond = random_conditions(c, float(w.arrival_s.max()), seed)
    res = run(c, w, cond, policy, delta=delta, queue=queue)
    ref = reference_simulate(c, w, res.tasks["node_index"], delta, queue, as_windows(cond))
    for col in ("decision_s", "ready_s", "start_s", "finish_s"):
        assert np.array_equal(ref[col], res.tasks[col]), col
    for key in ("mean_response_s", "p95_response_s", "makespan_s", "energy_j", "utilization"):
        assert res.summary[key] == pytest.approx(ref["summary"][key], rel=1e-12), key

    # the same windows with every multiplier 1: the run without conditions, bit for bit
    ones = Conditions.from_frame(cond.to_frame(c)[["node", "start_s", "end_s"]], c)
    base = run(c, w, None, policy, delta=delta, queue=queue, shared_links=shared)
    res = run(c, w, ones, policy, delta=delta, queue=queue, shared_links=shared)
    for col, v in base.tasks.items():
        assert np.array_equal(v, res.tasks[col], equal_nan=v.dtype.kind == "f"), col
    for key, value in base.summary.items():
        if key != "scheduler_seconds":
            assert res.summary[key] == value, key
    assert res.summary["retimed_tasks"] == 0


@pytest.mark.parametrize("factor", [0.5, 2.0, 4.0])
def test_a_uniform_speed_factor_scales_execution_times(
    small: tuple[Cluster, Workload], factor: float
) -> None:
    c, w = small
    cond = windows(c, *[(n, 0.0, INF, factor) for n in c.node_names])
    res = run(c, w, cond)
    node = res.tasks["node_index"]
    # a power-of-two factor scales exactly: work / (speed * f) == (work / speed) / f
    expected = res.tasks["start_s"] + (w.work_gi / c.speed[node]) / factor
    assert np.array_equal(res.tasks["finish_s"], expected)


def test_schedulers_do_not_see_conditions(small: tuple[Cluster, Workload]) -> None:
    """MCT reads only the belief (nominal speed, latency, bandwidth, the projection):
    with conditions on, it picks the same nodes; the view shows nominal values."""
    c, w = small
    cond = random_conditions(c, float(w.arrival_s.max()), 3)
    base = run(c, w, None)
    res = run(c, w, cond)
    assert np.array_equal(base.tasks["node_index"], res.tasks["node_index"])
    assert not np.array_equal(base.tasks["finish_s"], res.tasks["finish_s"])

    seen = []

    class Spy:
        name = "spy"

        def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
            self.mct = make_policy("mct")
            self.mct.reset(cluster, rng)

        def assign(self, tasks: Any, view: Any) -> np.ndarray:
            nominal = tasks.work_gi[:, None] / c.speed[None, :]
            seen.append(np.array_equal(view.exec_s, nominal))
            return self.mct.assign(tasks, view)

    simulate(c, w, Spy(), options=SimOptions(conditions=cond))
    assert seen and all(seen)


# ------------------------------------------------------------- the file


def test_file_round_trip_and_sorting(tmp_path: Path) -> None:
    c = make_cluster([{}, {}])
    p = tmp_path / "c.csv"
    p.write_text("node,start_s,end_s,speed\nn1,5,,0.5\nn0,1,inf,2\nn0,0,1,\n")
    cond = read_conditions(p, c)
    df = cond.to_frame(c)
    assert list(df.columns) == list(CONDITION_COLUMNS)
    assert df["node"].tolist() == ["n0", "n0", "n1"]
    assert df["start_s"].tolist() == [0.0, 1.0, 5.0]
    assert df["end_s"].tolist() == [1.0, INF, INF]
    assert df["speed"].tolist() == [1.0, 2.0, 0.5]  # an empty cell is 1
    assert df["latency"].tolist() == df["bandwidth"].tolist() == [1.0] * 3
    again = Conditions.from_frame(df, c)
    for f in ("node", "start_s", "end_s", "speed", "latency", "bandwidth"):
        assert np.array_equal(getattr(again, f), getattr(cond, f))
    # the window ending at 1 touches the next: one change point at 1, not a reset to 1
    t, node, fac = cond.change_points()
    assert t.tolist() == [0.0, 1.0, 5.0] and node.tolist() == [0, 0, 1]
    assert fac[:, 0].tolist() == [1.0, 2.0, 0.5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "node,start_s,end_s\nn0,0,10\nn0,5,20\n",
            "c.csv: row 2: the window of node 'n0' on [5, 20) overlaps the one at row 1 on "
            "[0, 10); windows of one node must not overlap",
        ),
        ("node,start_s,end_s\nn9,0,10\n", "c.csv: row 1, column node: unknown node 'n9'"),
        (
            "node,start_s,end_s,speed\nn0,0,10,1\nn1,0,10,-2\n",
            "c.csv: row 2, column speed: must be a multiplier > 0",
        ),
        ("node,start_s,end_s,latency\nn0,0,10,abc\n", "c.csv: row 1, column latency: must be a "
         "number, got 'abc'"),
        ("start_s,end_s,speed\n0,10,1\n", "c.csv: missing column(s) node"),
        ("node,start_s,end_s\nn0,5,5\n", "c.csv: row 1, column end_s: must be > start_s (5.0)"),
        ("node,start_s,end_s\nn0,,5\n", "c.csv: row 1, column start_s: must be a number, got an "
         "empty value"),
        ("node,start_s,end_s,bandwith\nn0,0,5,2\n", "c.csv: unknown column(s) bandwith"),
        ("node,start_s,end_s,speed\nn0,0,5,0\n", "c.csv: row 1, column speed: must be a "
         "multiplier > 0"),
        # "nan" is not the empty cell that means 1 (or, for end_s, until the end)
        ("node,start_s,end_s,speed\nn0,0,5,2\nn1,0,5,nan\n", "c.csv: row 2, column speed: must "
         "be a number, got nan"),
        ("node,start_s,end_s\nn0,0,NaN\n", "c.csv: row 1, column end_s: must be a number, got nan"),
        ("node,start_s,end_s,speed,speed\nn0,0,5,2,3\n", "c.csv: column(s) speed given more "
         "than once"),
        # Python's float() takes digit separators; a number in a CSV file has none
        ("node,start_s,end_s,speed\nn0,0,5,1_0\n", "c.csv: row 1, column speed: must be a "
         "number, got '1_0'"),
    ],
)  # fmt: skip
def test_bad_files_name_file_row_field(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "c.csv"
    p.write_text(text)
    with pytest.raises(ValidationError) as info:
        read_conditions(p, make_cluster([{}, {}]))
    assert message in str(info.value)
    assert str(info.value).startswith(f"{p}: ")


def test_conditions_for_another_cluster_are_refused(small: tuple[Cluster, Workload]) -> None:
    c, w = small
    other = make_cluster([{}])
    cond = windows(other, ("n0", 0.0, 1.0, 2.0))
    with pytest.raises(ConfigError, match=r"not for cluster"):
        run(c, w, cond)
    with pytest.raises(ConfigError, match=r"options.conditions: must be a Conditions"):
        SimOptions(conditions="c.csv")


# ------------------------------------------------------------- the CLI


def _cli(*args: str) -> Any:
    from hybridsched.cli.app import _register, app

    _register()
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cond")
    c, w = folder / "c.yaml", folder / "w.parquet"
    res = _cli("generate", "--scenario", "iot-small", "--tasks", "200", "--load", "0.8",
               "--out", str(w), "--cluster-out", str(c))  # fmt: skip
    assert res.exit_code == 0, res.output
    return c, w


def _simulate(files: tuple[Path, Path], out: Path, conditions: Path) -> Any:
    c, w = files
    return _cli("simulate", "--cluster", str(c), "--workload", str(w), "--out", str(out),
                "--conditions", str(conditions))  # fmt: skip


def test_simulate_with_conditions(files: tuple[Path, Path], tmp_path: Path) -> None:
    from hybridsched.io import read_cluster

    names = read_cluster(files[0]).node_names
    f = tmp_path / "cond.csv"
    f.write_text(f"node,start_s,end_s,speed\n{names[0]},0,,0.25\n{names[1]},1,3,0.5\n")
    out = tmp_path / "o"
    res = _simulate(files, out, f)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["condition_windows"] == 2
    assert summary["run"]["options"]["conditions"] == str(f)
    assert summary["run"]["options"]["condition_windows"] == 2


def test_simulate_refuses_a_bad_conditions_file(files: tuple[Path, Path], tmp_path: Path) -> None:
    f = tmp_path / "cond.csv"
    f.write_text("node,start_s,end_s\nnope,0,1\n")
    out = tmp_path / "o"
    res = _simulate(files, out, f)
    assert res.exit_code == 2
    assert "row 1, column node: unknown node 'nope'" in " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert not out.exists() or not any(out.iterdir())


def test_compare_with_conditions_records_the_file(files: tuple[Path, Path], tmp_path: Path) -> None:
    from hybridsched.io import read_cluster

    c, w = files
    names = read_cluster(c).node_names
    f = tmp_path / "cond.csv"
    f.write_text(f"node,start_s,end_s,speed\n{names[0]},0,,0.25\n")
    out = tmp_path / "cmp"
    common = ("compare", "--cluster", str(c), "--workload", str(w), "--policies", "mct",
              "--seeds", "1", "--workers", "1")  # fmt: skip
    res = _cli(*common, "--conditions", str(f), "--out", str(out))
    assert res.exit_code == 0, res.output
    config = json.loads((out / "config.json").read_text())
    assert config["conditions"] == str(f)
    bad = tmp_path / "bad.csv"
    bad.write_text("node,start_s,end_s\nnope,0,1\n")
    out2 = tmp_path / "cmp2"
    res = _cli(*common, "--conditions", str(bad), "--out", str(out2))
    assert res.exit_code == 2, res.output
    assert "unknown node 'nope'" in " ".join(res.output.split())
    assert not out2.exists() or not any(out2.iterdir())


def test_conditions_with_noise_jitter_and_failures_are_deterministic(
    small: tuple[Cluster, Workload],
) -> None:
    c, w = small
    cond = random_conditions(c, float(w.arrival_s.max()), 11)
    kw = dict(estimate_cv=0.5, latency_jitter=0.3, shared_links=True, mtbf_s=60.0, mttr_s=5.0)
    a = run(c, w, cond, "mct", delta=0.5, **kw)
    b = run(c, w, cond, "mct", delta=0.5, **kw)
    for col, v in a.tasks.items():
        assert np.array_equal(v, b.tasks[col], equal_nan=v.dtype.kind == "f"), col
    s = a.summary
    assert s["finished"] + s["rejected"] == len(w)
    assert s["outages"] > 0 and s["retimed_tasks"] > 0
    done = a.tasks["status"] == "finished"
    assert np.all(a.tasks["finish_s"][done] >= a.tasks["start_s"][done])
    assert np.all(a.tasks["start_s"][done] >= a.tasks["ready_s"][done])


@examples(6)
@given(seed=st.integers(0, 10_000), shared=st.booleans())
def test_generated_drift_runs_and_matches_the_reference(
    small: tuple[Cluster, Workload], seed: int, shared: bool
) -> None:
    """Frames of the drift generator (hybridsched.workload.drift) are conditions as they are."""
    from hybridsched.workload.drift import sample_drift

    c, w = small
    frame = sample_drift(c, float(w.arrival_s.max()), seed)
    cond = Conditions.from_frame(frame, c, source="sample_drift")
    assert len(cond) == len(frame)
    res = run(c, w, cond, "mct", delta=0.5, shared_links=shared)
    assert res.summary["condition_windows"] == len(frame)
    if not shared:
        ref = reference_simulate(c, w, res.tasks["node_index"], 0.5, "fifo", as_windows(cond))
        for col in ("ready_s", "start_s", "finish_s"):
            assert np.array_equal(ref[col], res.tasks[col]), col
