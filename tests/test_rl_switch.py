"""``rl`` at its defaults: MCT's network where nothing drifts, ``rl-drift.pt`` where the view
observes drift, batch by batch (docs/RL.md, "The default network switches under drift")."""

from __future__ import annotations

import numpy as np
import pytest

from hybridsched.errors import ConfigError
from hybridsched.policies import make_policy
from hybridsched.policies.rl import DRIFT_CHECKPOINT, RLPolicy
from hybridsched.sim import simulate
from hybridsched.sim.conditions import Conditions
from hybridsched.sim.options import SimOptions
from hybridsched.workload import generate_instance

pytest.importorskip("torch")


def _run(inst, policy, estimates, cond=None):
    if cond is None and inst.conditions is not None:
        cond = Conditions.from_frame(inst.conditions, inst.cluster)
    opts = SimOptions(conditions=cond, estimates=estimates)
    return simulate(inst.cluster, inst.workload, policy, options=opts, decision_interval=0.5,
                    queue="priority")  # fmt: skip


@pytest.mark.parametrize("estimates", ["nominal", "observed"])
def test_where_nothing_drifts_the_default_is_mct(estimates):
    """A stationary run: every observed factor is exactly 1, so the drift network is never
    used and every task goes where MCT puts it."""
    inst = generate_instance("iot-default", 800, 0.9, 4)
    rl = make_policy("rl")
    got = _run(inst, rl, estimates)
    ref = _run(inst, make_policy("mct"), estimates)
    np.testing.assert_array_equal(got.tasks["node_index"], ref.tasks["node_index"])
    assert rl.drift_batches == 0


class _Checked:
    """The default ``rl``, checked at every decision against the two networks it holds:
    the drift network's nodes when the view observes drift, MCT's otherwise."""

    name = "rl-checked"

    def __init__(self, tolerance: float) -> None:
        self.rl = make_policy("rl", {"drift_tolerance": tolerance})
        self.drift = make_policy("rl", {"checkpoint": str(DRIFT_CHECKPOINT)})
        self.mct = make_policy("mct")
        self.calls = {True: 0, False: 0}

    def reset(self, cluster, rng) -> None:
        for p in (self.rl, self.drift, self.mct):
            p.reset(cluster, rng)

    def assign(self, tasks, view):
        drifting = self.rl.drifting(view)
        want = (self.drift if drifting else self.mct).assign(tasks, view)
        got = self.rl.assign(tasks, view)
        np.testing.assert_array_equal(got, want)
        self.calls[drifting] += 1
        return got


def test_under_drift_each_batch_goes_to_the_network_its_view_calls_for():
    """iot-drift: every batch after the first completions sees some node drift."""
    inst = generate_instance("iot-drift", 6000, 0.85, 6)
    checked = _Checked(0.1)
    res = _run(inst, checked, "observed")
    assert checked.calls[True] > 50 and checked.calls[False] >= 1, checked.calls
    assert checked.rl.drift_batches == checked.calls[True]
    # and it is not MCT: the drift network moved tasks
    mct = _run(inst, make_policy("mct"), "observed")
    assert np.any(res.tasks["node_index"] != mct.tasks["node_index"])


def test_the_switch_happens_when_a_slowdown_is_first_observed():
    """A stationary run whose ten fastest nodes slow to 0.3 of their speed from 6 s on: the
    batches before the slowdown are MCT's (no observed factor is off 1), those after the
    first slowed completions the drift network's."""
    import pandas as pd

    inst = generate_instance("iot-default", 6000, 0.9, 6)
    fast = np.argsort(-inst.cluster.speed)[:10]
    names = [inst.cluster.node_names[j] for j in fast]
    frame = pd.DataFrame({"node": names, "start_s": 6.0, "end_s": 10.0, "speed": 0.3})
    cond = Conditions.from_frame(frame, inst.cluster)
    checked = _Checked(0.1)
    times = []
    decide = checked.assign

    def assign(tasks, view):
        times.append((float(view.time), checked.rl.drifting(view)))
        return decide(tasks, view)

    checked.assign = assign
    _run(inst, checked, "observed", cond)
    flags = np.array([f for _, f in times])
    at = np.array([t for t, _ in times])
    assert not flags[at <= 6.0].any() and (at <= 6.0).sum() >= 10
    first = at[flags.argmax()]
    assert 6.0 < first < 7.0  # the first slowed completions are observed within a second
    assert flags[at > first].all()  # the factors stay off 1 for the rest of this short run


def test_drift_is_what_the_observations_show_beyond_the_tolerance():
    """``drifting`` is true exactly when some node's observed execution or transfer factor
    is off 1 by more than ``drift_tolerance``, and only with observed estimates."""
    inst = generate_instance("iot-drift", 1200, 0.85, 2)
    rl = make_policy("rl")
    seen, edge = [], []

    class Probe:
        name = "probe"

        def reset(self, cluster, rng):
            self.mct = make_policy("mct")
            self.mct.reset(cluster, rng)

        def assign(self, tasks, view):
            t = float(view.time)
            obs = view.observations
            ex, tr = obs.exec_factor(t), obs.transfer_factor(t)
            off = max(np.abs(ex - 1).max(), np.abs(tr - 1).max())
            seen.append((off, rl.drifting(view), view.estimates))
            if off > 0 and view.estimates == "observed":
                # the tolerance is strict: a factor exactly that far off is not drift
                rl.drift_tolerance = off
                edge.append(rl.drifting(view))
                rl.drift_tolerance = off * (1 - 1e-9)
                edge.append(not rl.drifting(view))
                rl.drift_tolerance = 0.1
            return self.mct.assign(tasks, view)

    _run(inst, Probe(), "observed")
    offs = np.array([s[0] for s in seen])
    flags = np.array([s[1] for s in seen])
    np.testing.assert_array_equal(flags, offs > 0.1)
    assert flags.any() and not flags.all()
    assert len(edge) > 20 and not any(edge)
    seen.clear()
    _run(inst, Probe(), "nominal")
    assert not any(s[1] for s in seen)  # nominal estimates: never, whatever is observed


def test_tolerance_inf_or_none_is_mct_under_drift():
    inst = generate_instance("iot-drift", 600, 0.85, 3)
    ref = _run(inst, make_policy("mct"), "observed")
    for args in ({"drift_tolerance": "inf"}, {"drift_checkpoint": "none"}):
        got = _run(inst, make_policy("rl", args), "observed")
        np.testing.assert_array_equal(got.tasks["node_index"], ref.tasks["node_index"])


def test_which_networks_it_holds_and_bad_tolerances():
    default = make_policy("rl")
    assert default.describe()["drift"]["checkpoint"] == str(DRIFT_CHECKPOINT)
    assert default.describe()["drift"]["max_regret"] == 0.25
    assert default.describe()["drift"]["tolerance"] == 0.1
    own = make_policy("rl", {"checkpoint": str(DRIFT_CHECKPOINT)})
    assert "drift" not in own.describe()  # a checkpoint of one's own: no switch
    both = make_policy(
        "rl", {"checkpoint": str(DRIFT_CHECKPOINT), "drift_checkpoint": str(DRIFT_CHECKPOINT)}
    )
    assert both.describe()["drift"]["checkpoint"] == str(DRIFT_CHECKPOINT)
    assert "drift" not in make_policy("rl", {"drift_checkpoint": "none"}).describe()
    for bad in (-0.5, float("nan")):
        with pytest.raises(ConfigError, match="rl drift_tolerance: must be a number >= 0"):
            RLPolicy(drift_tolerance=bad)


def test_max_regret_given_limits_both_networks():
    """``max_regret=0`` leaves MCT's node only, for the drift network too: under drift the
    schedule is MCT's with the same estimates."""
    inst = generate_instance("iot-drift", 1500, 0.85, 7)
    rl = make_policy("rl", {"max_regret": "0"})
    assert rl.describe()["max_regret"] == 0.0 and rl.describe()["drift"]["max_regret"] == 0.0
    got = _run(inst, rl, "observed")
    assert rl.drift_batches > 0
    ref = _run(inst, make_policy("mct"), "observed")
    np.testing.assert_array_equal(got.tasks["node_index"], ref.tasks["node_index"])


def test_a_policy_reused_for_a_second_run_counts_that_run_only():
    inst = generate_instance("iot-drift", 1500, 0.85, 7)
    rl = make_policy("rl")
    first = _run(inst, rl, "observed")
    n = rl.drift_batches
    second = _run(inst, rl, "observed")
    assert n > 0 and rl.drift_batches == n
    np.testing.assert_array_equal(first.tasks["node_index"], second.tasks["node_index"])


def test_a_missing_drift_checkpoint_is_named(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(ConfigError, match=r"rl drift_checkpoint: checkpoint .*nope\.pt: no such"):
        make_policy("rl", {"drift_checkpoint": str(missing)})


def test_simulate_on_a_drifting_cluster_switches_under_auto(tmp_path):
    """The CLI's default (``--estimates auto``) gives ``rl`` observed estimates, so on a
    drifting cluster it is not MCT (and is, on a stationary one: test_estimates_auto)."""
    import json

    from typer.testing import CliRunner

    from hybridsched.cli.app import _register, app
    from hybridsched.io import write_cluster, write_workload

    inst = generate_instance("iot-drift", 1500, 0.85, 7)
    write_cluster(inst.cluster, tmp_path / "c.yaml")
    write_workload(inst.workload, tmp_path / "w.parquet")
    inst.conditions.to_csv(tmp_path / "cond.csv", index=False)
    _register()
    out = {}
    for policy in ("rl", "mct"):
        args = ["simulate", "--cluster", str(tmp_path / "c.yaml"),
                "--workload", str(tmp_path / "w.parquet"), "--conditions",
                str(tmp_path / "cond.csv"), "--decision-interval", "0.5", "--policy", policy,
                "--out", str(tmp_path / policy), "--no-progress"]  # fmt: skip
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        out[policy] = json.loads((tmp_path / policy / "summary.json").read_text())
    assert out["rl"]["run"]["estimates"] == "observed"
    assert out["mct"]["run"]["estimates"] == "nominal"
    assert out["rl"]["mean_response_s"] != out["mct"]["mean_response_s"]
