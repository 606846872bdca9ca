"""Generated drift: conditions frames (DriftSpec, make_conditions, sample_drift), the
shifting task mix (MixShift), the iot-drift preset and `generate --drift/--conditions-out`."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hybridsched.cli.app import _register, app
from hybridsched.errors import ConfigError
from hybridsched.io import read_workload
from hybridsched.model import Cluster
from hybridsched.workload import (
    CONDITIONS_COLUMNS,
    SCENARIOS,
    ClusterParams,
    DriftSpec,
    KindProfile,
    MixShift,
    Scenario,
    WorkloadParams,
    generate,
    generate_cluster,
    generate_instance,
    generate_workload,
    get_scenario,
    make_conditions,
    sample_drift,
    sample_drift_spec,
    sample_mix_shift,
    with_drift,
)
from hybridsched.workload.drift import _flatten, empty_conditions, home_regions

_register()

STATIONARY = ("iot-small", "iot-default", "iot-bursty", "iot-hetero", "iot-large")


def _cluster(seed: int = 0, **sizes: int) -> Cluster:
    params = ClusterParams(**{"n_edge": 12, "n_fog": 6, "n_cloud": 3, "n_regions": 4, **sizes})
    return generate_cluster(params, rng=seed)


def _fixed(**values: float) -> DriftSpec:
    """A spec with these fields fixed: ``x`` stands for the range ``(x, x)``."""
    return DriftSpec(**{k: (v, v) for k, v in values.items()})  # type: ignore[arg-type]


def _within(x: np.ndarray, bounds: tuple[float, float], tol: float = 1e-12) -> bool:
    return bool(np.all((x >= bounds[0] - tol) & (x <= bounds[1] + tol)))


def check_frame(frame: pd.DataFrame, cluster: Cluster, horizon: float) -> None:
    """The format's rules: exactly the columns and dtypes, known nodes in cluster order,
    windows inside [0, horizon], no overlap per node, multipliers > 0."""
    assert tuple(frame.columns) == CONDITIONS_COLUMNS
    assert pd.api.types.is_string_dtype(frame["node"])
    for col in CONDITIONS_COLUMNS[1:]:
        assert frame[col].dtype == np.float64, col
    index = {name: j for j, name in enumerate(cluster.node_names)}
    assert set(frame["node"]) <= set(index)
    j = frame["node"].map(index).to_numpy()
    start, end = frame["start_s"].to_numpy(), frame["end_s"].to_numpy()
    assert np.all(np.diff(j) >= 0)  # cluster order
    assert np.all((start >= 0) & (start < end) & (end <= horizon))
    same = j[1:] == j[:-1]
    assert np.all(end[:-1][same] <= start[1:][same])  # sorted by start, no overlap
    for col in ("speed", "latency", "bandwidth"):
        assert np.all(frame[col].to_numpy() > 0) and np.all(np.isfinite(frame[col]))
    # every row changes something
    changed = (frame[["speed", "latency", "bandwidth"]].to_numpy() != 1.0).any(axis=1)
    assert changed.all()


def _time_by_node(frame: pd.DataFrame, mask: np.ndarray) -> pd.Series:
    length = frame["end_s"] - frame["start_s"]
    return length[mask].groupby(frame["node"][mask]).sum()


# --- hand-computed cases ---------------------------------------------------------------------


def test_flatten_splits_at_every_boundary_and_merges_equal_neighbours() -> None:
    slow = (0.1, 0.5, 0.5, 1.0, 1.0)
    link = (0.3, 0.7, 1.0, 2.0, 0.25)
    assert _flatten([slow, link]) == [
        (0.1, 0.3, (0.5, 1.0, 1.0)),
        (0.3, 0.5, (0.5, 2.0, 0.25)),
        (0.5, 0.7, (1.0, 2.0, 0.25)),
    ]
    # two touching windows with the same multipliers are one; a gap keeps them apart
    assert _flatten([(0.0, 0.2, 0.5, 1.0, 1.0), (0.2, 0.4, 0.5, 1.0, 1.0)]) == [
        (0.0, 0.4, (0.5, 1.0, 1.0))
    ]
    assert _flatten([(0.0, 0.2, 0.5, 1.0, 1.0), (0.3, 0.4, 0.5, 1.0, 1.0)]) == [
        (0.0, 0.2, (0.5, 1.0, 1.0)),
        (0.3, 0.4, (0.5, 1.0, 1.0)),
    ]
    assert _flatten([]) == []


def test_every_node_slowed_for_half_the_run() -> None:
    cluster = _cluster()
    spec = _fixed(node_share=1, slowdown=0.5, window_share=0.5, windows_per_node=1, region_share=0)
    frame = make_conditions(cluster, 200.0, spec, rng=3)
    check_frame(frame, cluster, 200.0)
    assert list(frame["node"]) == list(cluster.node_names)  # one row per node, in order
    np.testing.assert_allclose(frame["end_s"] - frame["start_s"], 100.0, rtol=1e-12)
    assert (frame["speed"] == 0.5).all()
    assert (frame["latency"] == 1.0).all() and (frame["bandwidth"] == 1.0).all()


def test_degraded_region_maps_onto_the_nodes_homed_there() -> None:
    cluster = _cluster(n_regions=2)
    home = home_regions(cluster)
    tiers = np.asarray(cluster.tiers)
    # edge and fog are homed at their nearest region, cloud has no home
    assert np.all(home[tiers == "cloud"] == -1)
    np.testing.assert_array_equal(
        home[tiers != "cloud"], np.argmin(cluster.latency_s[tiers != "cloud"], axis=1)
    )
    # one region of two, degraded a quarter of the run
    spec = _fixed(node_share=0, region_share=0.5, link_window_share=0.25, link_windows=1)
    spec = replace(spec, latency_factor=(3.0, 3.0), bandwidth_factor=(0.5, 0.5))
    frame = make_conditions(cluster, 40.0, spec, rng=1)
    check_frame(frame, cluster, 40.0)
    index = {n: j for j, n in enumerate(cluster.node_names)}
    hit = {home[index[n]] for n in frame["node"]}
    assert len(hit) == 1
    (region,) = hit
    assert set(frame["node"]) == {cluster.node_names[j] for j in np.flatnonzero(home == region)}
    # one window, the same for every node of the region
    assert frame[["start_s", "end_s"]].drop_duplicates().shape[0] == 1
    np.testing.assert_allclose(frame["end_s"] - frame["start_s"], 10.0, rtol=1e-12)
    assert (frame["speed"] == 1.0).all()
    assert (frame["latency"] == 3.0).all() and (frame["bandwidth"] == 0.5).all()


def test_link_tiers_choose_who_has_a_home() -> None:
    cluster = _cluster()
    assert np.all(home_regions(cluster, ()) == -1)
    spec = DriftSpec(node_share=(0.0, 0.0), region_share=(1.0, 1.0), link_tiers=("edge",))
    frame = make_conditions(cluster, 10.0, spec, rng=0)
    edge = [n for n, t in zip(cluster.node_names, cluster.tiers, strict=True) if t == "edge"]
    assert set(frame["node"]) == set(edge)


def test_zero_horizon_or_no_share_gives_no_window() -> None:
    cluster = _cluster()
    frame = make_conditions(cluster, 0.0, DriftSpec(), rng=0)
    check_frame(frame, cluster, 0.0)
    assert len(frame) == 0
    calm = DriftSpec(node_share=(0.0, 0.0), region_share=(0.0, 0.0))
    assert len(make_conditions(cluster, 100.0, calm, rng=0)) == 0
    pd.testing.assert_frame_equal(make_conditions(cluster, 100.0, calm, rng=0), empty_conditions())


def test_edge_nodes_slow_more_often_with_a_heavier_tier_weight() -> None:
    cluster = _cluster(n_edge=20, n_fog=20, n_cloud=20, n_regions=4)
    base = DriftSpec(node_share=(0.25, 0.25), region_share=(0.0, 0.0))

    def edge_share(spec: DriftSpec) -> float:
        frames = [make_conditions(cluster, 1.0, spec, rng=s) for s in range(40)]
        nodes = pd.concat([f["node"].drop_duplicates() for f in frames])
        return float(nodes.str.startswith("edge").mean())

    uniform = edge_share(replace(base, tier_weights=()))
    heavy = edge_share(replace(base, tier_weights=(("edge", 4.0),)))
    assert uniform == pytest.approx(1 / 3, abs=0.06)
    assert heavy > 0.55  # 4 x 20 against 20 + 20: expected well above 1/2


# --- invariants ------------------------------------------------------------------------------


@st.composite
def specs(draw: st.DrawFn) -> DriftSpec:
    def pair(lo: float, hi: float) -> tuple[float, float]:
        a = draw(st.floats(lo, hi))
        b = draw(st.floats(lo, hi))
        return (min(a, b), max(a, b))

    def ints() -> tuple[int, int]:
        a, b = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        return (min(a, b), max(a, b))

    return DriftSpec(
        node_share=pair(0.0, 1.0),
        slowdown=pair(0.05, 0.95),  # strictly below 1: every slowed node shows
        window_share=pair(0.01, 1.0),
        windows_per_node=ints(),
        tier_weights=(("edge", draw(st.floats(0.1, 10.0))), ("cloud", draw(st.floats(0.1, 10.0)))),
        region_share=pair(0.0, 1.0),
        link_window_share=pair(0.01, 1.0),
        link_windows=ints(),
        latency_factor=pair(1.01, 5.0),  # strictly above 1: every degraded node shows
        bandwidth_factor=pair(0.05, 1.0),
    )


@settings(max_examples=60, deadline=None)
@given(
    spec=specs(),
    n_edge=st.integers(0, 12),
    n_fog=st.integers(0, 6),
    n_cloud=st.integers(1, 3),
    n_regions=st.integers(1, 5),
    horizon=st.floats(1e-3, 1e7),
    seed=st.integers(0, 2**32),
)
def test_conditions_invariants(
    spec: DriftSpec,
    n_edge: int,
    n_fog: int,
    n_cloud: int,
    n_regions: int,
    horizon: float,
    seed: int,
) -> None:
    cluster = _cluster(seed % 7, n_edge=n_edge, n_fog=n_fog, n_cloud=n_cloud, n_regions=n_regions)
    frame = make_conditions(cluster, horizon, spec, rng=seed)
    check_frame(frame, cluster, horizon)
    n, r = cluster.n_nodes, cluster.n_regions
    # shares respected to rounding (a count rounded half up)
    slow = frame["speed"].to_numpy() != 1.0
    k = frame["node"][slow].nunique()
    assert math.floor(spec.node_share[0] * n + 0.5) <= k <= math.floor(spec.node_share[1] * n + 0.5)
    # factors in range, each slowed node slow for a share of the run in range
    assert _within(frame["speed"][slow].to_numpy(), spec.slowdown)
    share = _time_by_node(frame, slow).to_numpy() / horizon
    assert _within(share, spec.window_share, tol=1e-9)
    link = frame["latency"].to_numpy() != 1.0
    np.testing.assert_array_equal(link, frame["bandwidth"].to_numpy() != 1.0)
    assert _within(frame["latency"][link].to_numpy(), spec.latency_factor)
    assert _within(frame["bandwidth"][link].to_numpy(), spec.bandwidth_factor)
    assert _within(_time_by_node(frame, link).to_numpy() / horizon, spec.link_window_share, 1e-9)
    # degraded links: only nodes with a home, whole regions at a time, at most the share
    home = home_regions(cluster, spec.link_tiers)
    index = {name: j for j, name in enumerate(cluster.node_names)}
    degraded_nodes = {index[x] for x in frame["node"][link]}
    assert all(home[j] >= 0 for j in degraded_nodes)
    regions = {int(home[j]) for j in degraded_nodes}
    assert len(regions) <= math.floor(spec.region_share[1] * r + 0.5)
    for region in regions:
        assert {int(j) for j in np.flatnonzero(home == region)} <= degraded_nodes


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), horizon=st.floats(1e-2, 1e6))
def test_sampled_drift_is_valid(seed: int, horizon: float) -> None:
    cluster = _cluster(seed % 5)
    frame = sample_drift(cluster, horizon, rng=seed)
    check_frame(frame, cluster, horizon)
    pd.testing.assert_frame_equal(frame, sample_drift(cluster, horizon, rng=seed))


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_same_frame_different_seed_differs() -> None:
    cluster = _cluster()
    a = make_conditions(cluster, 500.0, DriftSpec(), rng=11)
    b = make_conditions(cluster, 500.0, DriftSpec(), rng=np.random.default_rng(11))
    pd.testing.assert_frame_equal(a, b)
    c = make_conditions(cluster, 500.0, DriftSpec(), rng=12)
    assert len(a) > 0 and not a.equals(c)


def test_pattern_does_not_depend_on_the_horizon() -> None:
    cluster = _cluster()
    short = make_conditions(cluster, 10.0, DriftSpec(), rng=4)
    long = make_conditions(cluster, 1000.0, DriftSpec(), rng=4)
    assert list(short["node"]) == list(long["node"])
    for col in ("start_s", "end_s"):
        np.testing.assert_allclose(short[col] * 100.0, long[col], rtol=1e-12)
    pd.testing.assert_frame_equal(
        short[["speed", "latency", "bandwidth"]], long[["speed", "latency", "bandwidth"]]
    )


def test_sample_drift_spec_is_seeded_and_wide() -> None:
    assert sample_drift_spec(5) == sample_drift_spec(np.random.default_rng(5))
    specs_ = [sample_drift_spec(s) for s in range(300)]
    assert len({s.node_share for s in specs_}) > 250
    highs = np.array([s.node_share[1] for s in specs_])
    calm = np.mean(highs == 0.0)
    assert 0.05 <= calm <= 0.16  # about one in ten draws has no slowed node
    assert highs.max() > 0.55 and np.median(highs[highs > 0]) > 0.3
    slow_lo = np.array([s.slowdown[0] for s in specs_])
    assert slow_lo.min() < 0.15 and slow_lo.max() > 0.8
    assert {s.windows_per_node for s in specs_} >= {(1, 1), (1, 3), (3, 3)}


def test_sample_mix_shift_is_seeded_and_valid() -> None:
    assert sample_mix_shift(3) == sample_mix_shift(np.random.default_rng(3))
    shifts = [sample_mix_shift(s) for s in range(100)]
    assert {m.shape for m in shifts} == {"sine", "step", "ramp"}
    for m in shifts:
        assert len(m.kind_probs) == 4 and abs(sum(m.kind_probs) - 1.0) <= 1e-9
        assert 0.5 <= m.work_scale <= 2.0 and 0.5 <= m.cycles <= 3.0
    assert len(sample_mix_shift(0, n_kinds=2).kind_probs) == 2


# --- the shifting mix ------------------------------------------------------------------------


def _positions(arrival: np.ndarray) -> np.ndarray:
    return arrival / arrival[-1]


def test_step_shift_switches_the_mix_in_the_middle_of_the_run() -> None:
    cluster = _cluster()
    params = WorkloadParams(
        n_sensors=50, mix_shift=MixShift(kind_probs=(0.0, 0.0, 0.0, 1.0), shape="step")
    )
    w = generate_workload(cluster, params, n_tasks=6000, load=0.8, rng=2)
    x, kind = _positions(w.arrival_s), w.extra["kind"]
    # the sine's upper half, x in [1/4, 3/4], is all the second mix: every task compresses
    middle = (x > 0.2501) & (x < 0.7499)
    assert middle.sum() > 2000 and np.all(kind[middle] == 3)
    outside = (x < 0.2499) | (x > 0.7501)
    assert np.mean(kind[outside] == 3) < 0.3  # the own mix: compress is a minority


def test_ramp_shift_moves_the_mix_gradually() -> None:
    cluster = _cluster()
    shift = MixShift(kind_probs=(1.0, 0.0, 0.0, 0.0), shape="ramp")
    params = WorkloadParams(n_sensors=50, mix_shift=shift)
    w = generate_workload(cluster, params, n_tasks=20_000, load=0.8, rng=5)
    own = generate_workload(cluster, replace(params, mix_shift=None), 20_000, 0.8, rng=5)
    x = _positions(w.arrival_s)  # the same arrivals as `own` (test_mix_shift_is_seeded)
    lo = np.arange(0.0, 1.0, 0.1)
    deciles = [(x >= q) & (x < q + 0.1) for q in lo]
    shifted = np.array([np.mean(w.extra["kind"][d] == 0) for d in deciles])
    base = np.array([np.mean(own.extra["kind"][d] == 0) for d in deciles])
    assert np.all(np.diff(shifted) > 0)
    # at x, a task keeps its own kind with probability 1 - x, else becomes a filter
    np.testing.assert_allclose(shifted, base + (lo + 0.05) * (1 - base), atol=0.03)


def test_work_scale_scales_the_work_at_full_weight() -> None:
    cluster = _cluster()
    one = (KindProfile(1.0, 0.5, 1.0, 0.5, 64.0, 1.0),)
    params = WorkloadParams(
        n_sensors=50,
        kinds=one,
        periodic_kind_probs=(1.0,),
        event_kind_probs=(1.0,),
        mix_shift=MixShift(kind_probs=(1.0,), work_scale=4.0, shape="step"),
    )
    w = generate_workload(cluster, params, n_tasks=20_000, load=0.9, rng=1)
    x = _positions(w.arrival_s)
    middle = np.median(w.work_gi[(x > 0.3) & (x < 0.7)])
    ends = np.median(w.work_gi[(x < 0.2) | (x > 0.8)])
    assert middle / ends == pytest.approx(4.0, rel=0.1)
    # the load is still met exactly
    realised = w.work_gi.sum() / w.arrival_s[-1] / cluster.capacity_gi_s
    assert realised == pytest.approx(0.9, rel=1e-9)


def test_mix_shift_is_seeded() -> None:
    cluster = _cluster()
    params = WorkloadParams(n_sensors=50, mix_shift=MixShift())
    a = generate_workload(cluster, params, n_tasks=2000, load=0.8, rng=7)
    b = generate_workload(cluster, params, n_tasks=2000, load=0.8, rng=7)
    for k, v in a.columns().items():
        np.testing.assert_array_equal(v, b.columns()[k], err_msg=k)
    c = generate_workload(cluster, replace(params, mix_shift=None), n_tasks=2000, load=0.8, rng=7)
    assert not np.array_equal(a.extra["kind"], c.extra["kind"])
    # the arrival shape is drawn first: the same arrivals up to the load's stretch
    np.testing.assert_allclose(_positions(a.arrival_s), _positions(c.arrival_s), rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind_probs": (0.5, 0.6)}, "MixShift.kind_probs"),
        ({"kind_probs": ()}, "MixShift.kind_probs"),
        ({"work_scale": 0.0}, "MixShift.work_scale"),
        ({"cycles": math.inf}, "MixShift.cycles"),
        ({"shape": "square"}, "MixShift.shape: must be one of sine, step, ramp"),
    ],
)
def test_bad_mix_shift(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        MixShift(**kwargs)  # type: ignore[arg-type]


def test_mix_shift_needs_one_probability_per_kind() -> None:
    with pytest.raises(ConfigError, match=r"WorkloadParams\.mix_shift\.kind_probs: must be 4 "):
        WorkloadParams(mix_shift=MixShift(kind_probs=(0.5, 0.5)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"node_share": (0.5, 0.2)}, "DriftSpec.node_share"),
        ({"node_share": (0.2, 1.2)}, "DriftSpec.node_share"),
        ({"slowdown": (0.0, 0.5)}, "DriftSpec.slowdown"),
        # beyond what a conditions file accepts: generate would write one simulate refuses
        ({"slowdown": (1e-9, 0.5)}, r"DriftSpec.slowdown: .* 1e-06 <= low"),
        ({"slowdown": (0.5, 1e9)}, r"DriftSpec.slowdown: .* <= 1e\+06"),
        ({"latency_factor": (2.0, 1e7)}, "DriftSpec.latency_factor"),
        ({"bandwidth_factor": (1e-7, 0.5)}, "DriftSpec.bandwidth_factor"),
        ({"window_share": (0.0, 0.5)}, "DriftSpec.window_share"),
        ({"windows_per_node": (0, 2)}, "DriftSpec.windows_per_node"),
        ({"windows_per_node": (1.0, 2.0)}, "DriftSpec.windows_per_node"),
        ({"latency_factor": (0.5, 2.0)}, "DriftSpec.latency_factor"),
        ({"bandwidth_factor": (0.5, 1.5)}, "DriftSpec.bandwidth_factor"),
        ({"tier_weights": (("edge", 0.0),)}, "DriftSpec.tier_weights"),
        ({"link_tiers": "edge"}, "DriftSpec.link_tiers"),
        ({"region_share": (math.nan, 0.5)}, "DriftSpec.region_share"),
    ],
)
def test_bad_drift_spec(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DriftSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("horizon", [-1.0, math.inf, math.nan, "10", None, True])
def test_bad_horizon(horizon: object) -> None:
    with pytest.raises(ConfigError, match="horizon_s: must be a finite number >= 0"):
        make_conditions(_cluster(), horizon, DriftSpec(), rng=0)  # type: ignore[arg-type]


# --- scenarios -------------------------------------------------------------------------------


def test_iot_drift_preset() -> None:
    sc = get_scenario("iot-drift")
    assert 30 <= sc.cluster.n_nodes <= 100
    assert sc.drift == DriftSpec() and sc.workload.mix_shift == MixShift()
    assert sc.drift.node_share == (0.3, 0.4) and sc.drift.slowdown == (0.15, 0.6)
    assert sc.drift.window_share == (0.1, 0.4)
    inst = generate_instance("iot-drift", 8000, 0.85, seed=1)
    assert inst.conditions is not None
    horizon = float(inst.workload.arrival_s[-1])
    check_frame(inst.conditions, inst.cluster, horizon)
    slow = inst.conditions["speed"] != 1.0
    n = inst.cluster.n_nodes
    assert round(0.3 * n) <= inst.conditions["node"][slow].nunique() <= round(0.4 * n)
    assert (inst.conditions["latency"] != 1.0).any()
    # the detect-heavy second mix is reached mid-run: more detection there than at the ends
    x, kind = _positions(inst.workload.arrival_s), inst.workload.extra["kind"]
    assert np.mean(kind[(x > 0.4) & (x < 0.6)] == 2) > np.mean(kind[x < 0.1] == 2) + 0.2


@pytest.mark.parametrize("name", STATIONARY)
def test_stationary_instance_is_generate(name: str) -> None:
    inst = generate_instance(name, 300, 0.8, seed=3)
    cluster, workload = generate(name, 300, 0.8, seed=3)
    assert inst.conditions is None
    assert inst.cluster.to_dict() == cluster.to_dict()
    for k, v in workload.columns().items():
        np.testing.assert_array_equal(inst.workload.columns()[k], v, err_msg=k)


def test_with_drift_keeps_the_cluster_and_adds_conditions() -> None:
    drifting = with_drift("iot-default")
    assert drifting.name == "iot-default" and drifting.drifts
    assert not get_scenario("iot-default").drifts
    inst = generate_instance(drifting, 2000, 0.8, seed=9)
    cluster, workload = generate("iot-default", 2000, 0.8, seed=9)
    assert inst.cluster.to_dict() == cluster.to_dict()
    assert not np.array_equal(inst.workload.extra["kind"], workload.extra["kind"])
    assert inst.conditions is not None and len(inst.conditions) > 0
    # the preset's own drift is kept, a given one replaces it
    mild = DriftSpec(node_share=(0.1, 0.1))
    assert with_drift("iot-drift").drift == DriftSpec()
    assert with_drift("iot-drift", drift=mild).drift == mild


def test_conditions_pattern_is_the_seeds_at_any_size_and_load() -> None:
    a = generate_instance("iot-drift", 1000, 0.5, seed=4)
    b = generate_instance("iot-drift", 3000, 0.9, seed=4)
    assert a.conditions is not None and b.conditions is not None
    ha, hb = float(a.workload.arrival_s[-1]), float(b.workload.arrival_s[-1])
    assert list(a.conditions["node"]) == list(b.conditions["node"])
    np.testing.assert_allclose(a.conditions["start_s"] / ha, b.conditions["start_s"] / hb)
    c = generate_instance("iot-drift", 1000, 0.5, seed=5)
    assert c.conditions is not None and not a.conditions.equals(c.conditions)


def test_scenario_drift_must_be_a_spec() -> None:
    with pytest.raises(ConfigError, match=r"Scenario\.drift"):
        Scenario("x", "y", drift="on")  # type: ignore[arg-type]


def test_registry_lists_iot_drift() -> None:
    assert "iot-drift" in SCENARIOS
    assert all(SCENARIOS[name].drift is None for name in STATIONARY)


# --- command line ----------------------------------------------------------------------------


def _generate(*args: str) -> object:
    return CliRunner().invoke(app, ["generate", "--tasks", "300", "--load", "0.8", *args])


def test_cli_iot_drift_writes_conditions_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = _generate("--scenario", "iot-drift", "--seed", "2")
    assert res.exit_code == 0, res.output
    assert "to conditions.csv" in res.output
    written = pd.read_csv(tmp_path / "conditions.csv")
    expected = generate_instance("iot-drift", 300, 0.8, seed=2).conditions
    assert expected is not None and len(expected) > 0
    assert list(written.columns) == list(CONDITIONS_COLUMNS)
    assert list(written["node"]) == list(expected["node"])
    for col in CONDITIONS_COLUMNS[1:]:  # floats written in full: read back exactly
        np.testing.assert_array_equal(written[col].to_numpy(), expected[col].to_numpy())


def test_cli_conditions_out_without_drift_is_header_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = _generate(*"--scenario iot-small --out w.csv --conditions-out sub/c.csv".split())
    assert res.exit_code == 0, res.output
    assert (tmp_path / "sub" / "c.csv").read_text() == ",".join(CONDITIONS_COLUMNS) + "\n"


def test_cli_without_drift_writes_no_conditions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _generate("--scenario", "iot-small").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.yaml", "workload.parquet"]
    # --no-drift takes iot-drift's drift away: no conditions, the mix does not shift
    res = _generate("--scenario", "iot-drift", "--no-drift", "--out", "plain.parquet")
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "conditions.csv").exists()
    assert "not from this run" not in res.output
    plain = read_workload(tmp_path / "plain.parquet")
    stationary = replace(
        get_scenario("iot-drift"),
        drift=None,
        workload=replace(get_scenario("iot-drift").workload, mix_shift=None),
    )
    _, expected = generate(stationary, 300, 0.8, seed=0)
    np.testing.assert_array_equal(plain.extra["kind"], expected.extra["kind"])


def test_cli_without_drift_notes_an_earlier_conditions_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drifting run's conditions.csv, then a run without drift in the same folder: the
    old file is left untouched, and the second run says it is not its own."""
    monkeypatch.chdir(tmp_path)
    assert _generate("--scenario", "iot-drift").exit_code == 0
    before = (tmp_path / "conditions.csv").read_bytes()
    res = _generate("--scenario", "iot-drift", "--no-drift")
    assert res.exit_code == 0, res.output
    assert "note: conditions.csv is not from this run" in " ".join(res.output.split())
    assert (tmp_path / "conditions.csv").read_bytes() == before
    # writing the conditions explicitly (header only without drift): no note
    res = _generate("--scenario", "iot-small", "--conditions-out", "conditions.csv")
    assert res.exit_code == 0, res.output
    assert "not from this run" not in res.output
    assert (tmp_path / "conditions.csv").read_text() == ",".join(CONDITIONS_COLUMNS) + "\n"


def test_cli_drift_options_reach_the_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "cond.csv"
    options = "--drift-share 0.5 --drift-slowdown 0.2:0.3 --drift-window 0.25 --drift-regions 0"
    res = _generate(*f"--scenario iot-default --seed 3 --conditions-out cond.csv {options}".split())
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out)
    spec = DriftSpec(
        node_share=(0.5, 0.5), slowdown=(0.2, 0.3), window_share=(0.25, 0.25), region_share=(0, 0)
    )
    expected = generate_instance(with_drift("iot-default", drift=spec), 300, 0.8, seed=3)
    assert expected.conditions is not None
    assert frame["node"].nunique() == 50 and (frame["latency"] == 1.0).all()
    np.testing.assert_array_equal(frame["end_s"], expected.conditions["end_s"])
    assert frame["speed"].between(0.2, 0.3).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--drift-share", "1.5"], "--drift-share 1.5: DriftSpec.node_share: must be"),
        (["--drift-share", "abc"], "--drift-share abc: must be LO:HI or one number"),
        (["--drift-slowdown", "0.6:0.2"], "--drift-slowdown 0.6:0.2: DriftSpec.slowdown"),
        (["--drift-slowdown", "1e9"], "--drift-slowdown 1e9: DriftSpec.slowdown: must be"),
        (["--drift-window", "0:0.3"], "--drift-window 0:0.3: DriftSpec.window_share"),
        (["--drift-regions", "1:2:3"], "--drift-regions 1:2:3: must be LO:HI"),
        (["--no-drift", "--drift-window", "0.2"], "--drift-window: cannot be used with"),
        (["--conditions-out", "c.txt"], "--conditions-out c.txt: unknown file type '.txt'"),
    ],
)
def test_cli_bad_drift_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    res = _generate("--scenario", "iot-small", *args)
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert message in text and "Traceback" not in text
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_generate_random_drift_draws_one_pattern_per_seed():
    """The trainers' random drift: the stationary preset's cluster, a shifted task mix
    and random conditions, the same for the same seed and new for another."""
    from hybridsched.workload import generate_random_drift

    a = generate_random_drift("iot-small", 400, 0.8, 3)
    b = generate_random_drift("iot-small", 400, 0.8, 3)
    c = generate_random_drift("iot-small", 400, 0.8, 4)
    pd.testing.assert_frame_equal(a.conditions, b.conditions)
    np.testing.assert_array_equal(a.workload.arrival_s, b.workload.arrival_s)
    assert not a.conditions.equals(c.conditions)
    # the cluster is the preset's own for that seed; the mix shift changes the workload
    base_cluster, base_workload = generate("iot-small", 400, 0.8, 3)
    assert a.cluster.node_names == base_cluster.node_names
    np.testing.assert_array_equal(a.cluster.speed, base_cluster.speed)
    assert not np.array_equal(a.workload.work_gi, base_workload.work_gi)
    with pytest.raises(ConfigError, match="seed: must be an integer >= 0, got -1"):
        generate_random_drift("iot-small", 400, 0.8, -1)
