"""What a person meets using ``compare``, ``report`` and ``suite``: the output folder,
experiment files, presets, tables that fit and plots that can be read."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from hybridsched.cli import app
from hybridsched.cli.app import _register
from hybridsched.errors import ConfigError
from hybridsched.experiments import compare as compare_mod
from hybridsched.experiments.compare import WALL_CLOCK_COLUMNS, CompareConfig, read_experiment
from hybridsched.experiments.plots import outlier_cut, policy_styles
from hybridsched.experiments.stats import LOWER_IS_BETTER

_register()
runner = CliRunner()

TINY = ["--scenario", "iot-small", "--tasks", "150", "--seeds", "2", "--workers", "1"]
FOURTEEN = (
    "random", "round-robin", "least-loaded", "olb", "met", "mct", "min-min", "max-min",
    "sufferage", "edf-mct", "energy-aware", "aco", "hybrid", "rl",
)  # fmt: skip


def _no_runs(monkeypatch: pytest.MonkeyPatch) -> list[CompareConfig]:
    """Replace the runner: record the configuration and stop before any run."""
    seen: list[CompareConfig] = []

    def fake(cfg: CompareConfig, progress=None, store=None):
        seen.append(cfg)
        raise ConfigError("stopped by the test before any run")

    monkeypatch.setattr(compare_mod, "run_compare", fake)
    return seen


# --- the output folder -------------------------------------------------------------------


def test_unwritable_out_fails_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _no_runs(monkeypatch)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = runner.invoke(app, ["compare", *TINY, "--policies", "mct", "--out", str(blocker / "o")])
    assert res.exit_code == 2 and seen == []
    assert f"--out {blocker / 'o'}: cannot create the folder" in res.output
    assert "Traceback" not in res.output


def test_read_only_file_system_out_fails_before_any_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # sysfs refuses new files even to root; a read-only mount says so with EROFS
    target = Path("/sys/kernel/hybridsched-out")
    if not target.parent.is_dir() or _can_write(target.parent):
        pytest.skip("no unwritable folder to try")
    seen = _no_runs(monkeypatch)
    res = runner.invoke(app, ["compare", *TINY, "--policies", "mct", "--out", str(target)])
    assert res.exit_code == 2 and seen == []
    assert f"--out {target}" in res.output and "Traceback" not in res.output


def _can_write(folder: Path) -> bool:
    try:
        (folder / ".hybridsched-probe").write_text("")
    except OSError:
        return False
    (folder / ".hybridsched-probe").unlink()
    return True


def test_fresh_run_replaces_what_a_previous_compare_left(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    first = runner.invoke(
        app, ["compare", *TINY, "--policies", "mct", "--load", "0.8", "--out", str(out)]
    )
    assert first.exit_code == 0, first.output
    (out / "notes.txt").write_text("mine")
    assert (out / "plots" / "cdf_load0.8.png").exists()
    second = runner.invoke(
        app, ["compare", *TINY, "--policies", "mct", "--load", "0.6", "--out", str(out)]
    )
    assert second.exit_code == 0, second.output
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots and all("load0.6" in p for p in plots)  # nothing of load 0.8 is left
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["load0.6_seed0_policy-mct.json", "load0.6_seed1_policy-mct.json"]
    assert set(pd.read_parquet(out / "results.parquet")["load"]) == {0.6}
    assert "load 0.8" not in (out / "report.md").read_text()
    assert (out / "notes.txt").read_text() == "mine"  # not a file of compare's: kept


def test_report_deletes_plots_it_no_longer_draws(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", *TINY, "--policies", "mct", "--out", str(out)])
    assert res.exit_code == 0, res.output
    stale = out / "plots" / "bar_mean_response_s_load0.3.png"
    stale.write_bytes(b"old")
    other = out / "plots" / "my-figure.png"
    other.write_bytes(b"mine")
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    assert not stale.exists() and other.exists()


def test_fresh_run_refuses_a_folder_compare_did_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _no_runs(monkeypatch)
    (tmp_path / "thesis.tex").write_text("precious")
    res = runner.invoke(app, ["compare", *TINY, "--policies", "mct", "--out", str(tmp_path)])
    assert res.exit_code == 2 and seen == []
    assert "not empty and has no config.json" in res.output and "thesis.tex" in res.output
    assert (tmp_path / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_resume_refuses_a_folder_of_another_configuration(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", *TINY, "--policies", "mct", "--out", str(out)])
    assert res.exit_code == 0, res.output
    before = (out / "results.parquet").read_bytes()
    bad = runner.invoke(
        app, ["compare", "--resume", "--seeds", "3", "--tasks", "100", "--out", str(out)]
    )
    assert bad.exit_code == 2
    text = " ".join(bad.output.split())
    assert "seeds (folder: 2, now: 3)" in text and "tasks (folder: 150, now: 100)" in text
    assert "seeds_used" in text and "scenario" not in text
    assert (out / "results.parquet").read_bytes() == before
    # the folder's own settings, with another worker count: nothing left to run, same results
    same = runner.invoke(app, ["compare", "--resume", "--workers", "2", "--out", str(out)])
    assert same.exit_code == 0, same.output
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "results.parquet"), pd.read_parquet(io.BytesIO(before))
    )


def test_resume_refuses_input_files_whose_contents_changed(tmp_path: Path) -> None:
    # the same file names with other contents: the resumed runs would mix two inputs
    from hybridsched.io import write_cluster, write_workload
    from hybridsched.workload import generate

    c, w = generate("iot-small", 120, 0.9, 0)
    write_cluster(c, tmp_path / "c.yaml")
    write_workload(w, tmp_path / "w.parquet")
    cond = tmp_path / "cond.csv"
    cond.write_text(f"node,start_s,end_s,speed\n{c.node_names[0]},1,5,0.5\n")
    out = tmp_path / "cmp"
    args = ["--cluster", str(tmp_path / "c.yaml"), "--workload", str(tmp_path / "w.parquet")]
    args += ["--conditions", str(cond), "--policies", "mct,met", "--seeds", "2"]
    res = runner.invoke(app, ["compare", *args, "--workers", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    recorded = json.loads((out / "config.json").read_text())["input_sha256"]
    assert sorted(recorded) == ["cluster", "conditions", "workload"]
    assert all(len(v) == 64 for v in recorded.values())
    before = (out / "results.parquet").read_bytes()
    next(iter((out / "runs").glob("*.json"))).unlink()  # one run left to do
    cond.write_text(f"node,start_s,end_s,speed\n{c.node_names[0]},1,5,0.25\n")
    bad = runner.invoke(app, ["compare", "--resume", "--out", str(out)])
    assert bad.exit_code == 2, bad.output
    text = " ".join(bad.output.split())
    assert f"--resume: the contents of --conditions {cond} (sha256 " in text
    assert "changed since the runs in" in text and "Traceback" not in text
    assert (out / "results.parquet").read_bytes() == before
    assert len(list((out / "runs").glob("*.json"))) == 3  # nothing run, nothing deleted
    # put back as they were: the resume runs the one missing run, same results
    cond.write_text(f"node,start_s,end_s,speed\n{c.node_names[0]},1,5,0.5\n")
    good = runner.invoke(app, ["compare", "--resume", "--out", str(out)])
    assert good.exit_code == 0, good.output
    # the run made again takes its own time; every other column is as before
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "results.parquet").drop(columns=list(WALL_CLOCK_COLUMNS)),
        pd.read_parquet(io.BytesIO(before)).drop(columns=list(WALL_CLOCK_COLUMNS)),
    )


@pytest.mark.parametrize("made", [False, True])
def test_resume_refuses_a_folder_without_a_comparison(tmp_path: Path, made: bool) -> None:
    # a mistyped --out must not start the default comparison (minutes of runs) there
    out = tmp_path / "typo"
    if made:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["compare", "--resume", "--out", str(out)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert f"--resume: {out} holds no comparison to resume (no config.json there)" in text
    assert "Traceback" not in res.output
    if made:
        assert sorted(q.name for q in out.iterdir()) == ["notes.txt"]
    else:
        assert not out.exists()


# --- options -----------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["", " , "])
def test_an_empty_policy_list_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    # not read as "every scheduler": that is minutes of runs nobody asked for
    seen = _no_runs(monkeypatch)
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", *TINY, "--policies", given, "--out", str(out)])
    assert res.exit_code == 2 and seen == []
    assert f"--policies {given!r}: names no scheduler" in " ".join(res.output.split())
    assert not out.exists()


def test_policy_arg_of_a_policy_not_run_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _no_runs(monkeypatch)
    for arg in ("acoo.ants=3", "aco.ants=3"):
        res = runner.invoke(
            app,
            ["compare", *TINY, "--policies", "mct,hybrid", "--policy-arg", arg,
             "--out", str(tmp_path / "x")],
        )  # fmt: skip
        assert res.exit_code == 2 and seen == []
        text = " ".join(res.output.split())
        name = arg.split(".")[0]
        assert f"--policy-arg {name}.ants: '{name}' is not a policy of this run" in text
        assert "the policies run are: mct, hybrid" in text
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="not a policy of this run"):
        CompareConfig(policies=("mct",), policy_args={"aco": {"ants": "3"}})


def test_experiment_file_sets_the_run_and_options_override_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _no_runs(monkeypatch)
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "scenario: iot-small\ntasks: 400\nloads: [0.6, 0.7]\nseeds: 4\n"
        "policies: [mct, aco]\npolicy_args: {aco: {ants: 3}}\nqueue: fifo\n"
    )
    res = runner.invoke(
        app, ["compare", "--config", str(exp), "--seeds", "2", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2, res.output  # stopped by the test, after resolving
    cfg = seen[-1]
    assert (cfg.scenario, cfg.tasks, cfg.loads, cfg.seeds) == ("iot-small", 400, (0.6, 0.7), 2)
    assert cfg.policies == ("mct", "aco") and cfg.queue == "fifo"
    assert cfg.policy_args == {"aco": {"ants": "3"}}
    # --policy-arg overrides argument by argument
    runner.invoke(
        app,
        ["compare", "--config", str(exp), "--policy-arg", "aco.ants=5", "--policy-arg",
         "aco.iterations=2", "--out", str(tmp_path / "o")],
    )  # fmt: skip
    assert seen[-1].policy_args == {"aco": {"ants": "5", "iterations": "2"}}
    # --quick sets tasks and seeds over the file; explicit options still win
    out = str(tmp_path / "o")
    runner.invoke(app, ["compare", "--config", str(exp), "--quick", "--seeds", "5", "--out", out])
    assert (seen[-1].tasks, seen[-1].seeds) == (compare_mod.QUICK["tasks"], 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tasks: 100\nsed: 3\n", "unknown key 'sed'"),
        ("tasks: many\n", "tasks: expected an integer, got 'many'"),
        ("loads: [0.5, high]\n", "loads: expected a number or a list of numbers"),
        ("policy_args: {aco: 3}\n", "policy_args: expected a mapping of policy"),
        ("seeds: 2\nseeds_used: [0, 1, 2]\n", "seeds_used: expected 0 .. seeds-1"),
        ("- a\n- b\n", "expected a mapping of keys to values"),
        ("tasks: [1\n", "not valid YAML or JSON"),
    ],
)
def test_experiment_file_errors_name_the_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    exp = tmp_path / "bad.yaml"
    exp.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        read_experiment(exp)
    assert str(exp) in str(err.value)
    res = runner.invoke(app, ["compare", "--config", str(exp), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_written_config_json_repeats_the_run(tmp_path: Path) -> None:
    first = tmp_path / "first"
    res = runner.invoke(app, ["compare", *TINY, "--policies", "mct,random", "--out", str(first)])
    assert res.exit_code == 0, res.output
    again = tmp_path / "again"
    res = runner.invoke(
        app, ["compare", "--config", str(first / "config.json"), "--out", str(again)]
    )
    assert res.exit_code == 0, res.output
    a = pd.read_parquet(first / "results.parquet").drop(columns=list(WALL_CLOCK_COLUMNS))
    b = pd.read_parquet(again / "results.parquet").drop(columns=list(WALL_CLOCK_COLUMNS))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    conf = json.loads((again / "config.json").read_text())
    assert conf["policies"] == ["mct", "random"] and conf["tasks"] == 150


def test_quick_preset_and_its_values_in_help(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _no_runs(monkeypatch)
    monkeypatch.chdir(tmp_path)
    runner.invoke(app, ["compare", "--quick", "--policies", "mct"])
    assert (seen[-1].tasks, seen[-1].seeds) == (2_000, 3)
    runner.invoke(app, ["compare", "--quick", "--tasks", "500", "--policies", "mct"])
    assert (seen[-1].tasks, seen[-1].seeds) == (500, 3)
    help_text = " ".join(
        runner.invoke(app, ["compare", "--help"], env={"COLUMNS": "200"}).output.split()
    )
    assert "--quick" in help_text and "2,000 tasks per workload and 3 seeds" in help_text
    # every option that has a default shows it, --load's included
    load_help = help_text[help_text.index("--load") : help_text.index("--seeds")]
    assert "[default: (0.9)]" in load_help


@pytest.mark.parametrize("command", ["compare", "suite", "report"])
def test_help_has_an_example(command: str) -> None:
    text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
    assert "Example" in text and f"hybridsched {command} " in text


def test_progress_bar_shows_an_eta() -> None:
    from rich.progress import TimeRemainingColumn

    from hybridsched.cli.compare import _progress

    assert any(isinstance(c, TimeRemainingColumn) for c in _progress(transient=True).columns)


def test_suite_page_defaults_under_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "RESULTS.md").write_text("shipped page")
    res = runner.invoke(
        app,
        ["suite", "--scenarios", "iot-small", "--load", "0.8", "--seeds", "2", "--tasks",
         "150", "--policies", "mct,least-loaded", "--workers", "1", "--out", "res"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (tmp_path / "docs" / "RESULTS.md").read_text() == "shipped page"
    page = (tmp_path / "res" / "RESULTS.md").read_text()
    assert "## iot-small" in page and "| least-loaded |" in page
    assert (tmp_path / "res" / "results_plots" / "iot-small_cdf_load0.8.png").exists()


# --- tables and plots --------------------------------------------------------------------


def _stats(policies: tuple[str, ...]) -> list[dict]:
    """Summary rows with wide numbers, as at a high load."""
    rng = np.random.default_rng(3)
    rows = []
    for p in policies:
        row = {"load": 0.9, "policy": p, "runs": 10}
        for m in LOWER_IS_BETTER:
            big = {"energy_j": 9.9e7, "sched_us_per_task": 99999.0}.get(m, 9999.0)
            row[m] = (float(rng.uniform(0.5, 1) * big), float(rng.uniform(0.01, 0.1) * big))
        rows.append(row)
    return rows


def _render(renderable: object, width: int) -> list[str]:
    con = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    con.print(renderable)
    return con.file.getvalue().splitlines()  # type: ignore[attr-defined]


@pytest.mark.parametrize("ci", [False, True])
def test_compact_table_fits_100_columns_without_cutting_a_cell(ci: bool) -> None:
    from hybridsched.cli.compare import compare_table

    cfg = CompareConfig(policies=FOURTEEN, seeds=10)
    stats = _stats(FOURTEEN)
    lines = _render(compare_table(cfg, stats, 0.9, "compact", ci), 100)
    assert max(len(line) for line in lines) <= 100
    assert not any("…" in line for line in lines)
    text = "\n".join(lines)
    for r in stats:  # every number whole: the policy, its mean and (with --ci) its CI
        assert r["policy"] in text
        assert f"{r['mean_response_s'][0]:.3f}" in text
        assert (f"±{r['mean_response_s'][1]:.3f}" in text) == ci
        assert f"{r['energy_j'][0] * 1e-6:.3f}" in text
    # auto: compact at 100 columns, wide (every metric with its CI) where it fits
    narrow = Console(width=100, file=io.StringIO())
    wide = Console(width=200, file=io.StringIO())
    assert len(compare_table(cfg, stats, 0.9, "auto", on=narrow).columns) == 7
    assert len(compare_table(cfg, stats, 0.9, "auto", on=wide).columns) == 9


def test_diffs_table_fits_100_columns() -> None:
    from hybridsched.cli.compare import diffs_table
    from hybridsched.experiments.stats import paired_diff

    cfg = CompareConfig(policies=FOURTEEN, seeds=10)
    diffs = [
        paired_diff([1.23456e6, 2.5e6, 3.1e6], [2.0e6, 2.9e6, 4.1e6], m, "energy-aware")
        for m in LOWER_IS_BETTER
    ]
    lines = _render(diffs_table(cfg, diffs), 100)
    assert max(len(line) for line in lines) <= 100
    assert not any("…" in line for line in lines)
    assert "energy (MJ)" in "\n".join(lines)


def test_fourteen_schedulers_have_distinct_styles() -> None:
    styles = policy_styles(FOURTEEN)
    assert len({s.color for s in styles.values()}) == 14
    assert len({(s.color, s.linestyle) for s in styles.values()}) == 14
    assert len({(s.linestyle, s.marker) for s in styles.values()}) == 14
    # the colours are far apart (RGB distance), those of aco, hybrid and rl above all
    from matplotlib.colors import to_rgb

    rgb = {p: np.array(to_rgb(s.color)) for p, s in styles.items()}
    dist = min(np.linalg.norm(rgb[a] - rgb[b]) for a in FOURTEEN for b in FOURTEEN if a < b)
    assert dist > 0.25
    # a scheduler keeps its style whatever else is compared
    assert policy_styles(("rl", "mct"))["rl"] == styles["rl"]
    many = policy_styles(tuple(f"p{k}" for k in range(40)))
    assert len({(s.color, s.linestyle, s.marker) for s in many.values()}) == 40


def test_outlier_bars_are_cut() -> None:
    # eight competitive means near 4 s, met and random far above: the axis ends at 4.4
    means = [4.0, 4.1, 3.9, 4.2, 4.05, 4.4, 3.5, 3.3, 450.0, 200.0]
    assert outlier_cut(means) == 4.4
    assert outlier_cut([1.0, 2.0, 3.0]) is None  # nothing far out
    assert outlier_cut([0.0, 0.0, 0.0, 5.0]) is None  # median 0: no scale to judge by


def test_plots_read_well(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hybridsched.experiments import plots

    drawn: dict[str, object] = {}

    def keep(plt, fig, path):
        ax = fig.axes[0]
        fig.canvas.draw()
        drawn[path.name] = {
            "title": ax.get_title(),
            "ylabel": ax.get_ylabel(),
            "ylim": ax.get_ylim(),
            "offset": ax.yaxis.get_offset_text().get_text(),
        }
        plt.close(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    pols = ("mct", "met", "random", "least-loaded", "aco")
    mean = {"mct": 4.0, "met": 450.0, "random": 200.0, "least-loaded": 4.2, "aco": 3.5}
    rows = [
        {
            "load": 0.9,
            "policy": p,
            "seed": s,
            "mean_response_s": mean[p] + s,
            "energy_j": 2.0e6 + 1e4 * s,
            "response_quantiles": list(np.linspace(0.1, 10 * mean[p], 11)),
        }
        for p in pols
        for s in range(3)
    ]
    from hybridsched.experiments.report import METRIC_LABELS, METRIC_SCALES

    metrics = {m: METRIC_LABELS[m] for m in ("mean_response_s", "energy_j")}
    plots.plot_all(
        pd.DataFrame(rows), pols, "aco", "iot-small", [0.9], metrics, METRIC_SCALES, tmp_path
    )
    assert all("load 0.9" in d["title"] and "load0.9" not in d["title"] for d in drawn.values())
    energy = drawn["bar_energy_j_load0.9.png"]
    assert energy["ylabel"] == "energy (MJ)" and energy["offset"] == ""
    assert energy["ylim"][1] < 3.0  # in MJ: about 2, not 2e6
    assert drawn["energy_vs_response_load0.9.png"]["ylabel"] == "energy (MJ)"
    resp = drawn["bar_mean_response_s_load0.9.png"]
    assert resp["ylim"][1] < 10.0  # met and random are cut, the others fill the axis
    assert "cut" in resp["title"]


def test_compare_output_fits_a_100_column_terminal(tmp_path: Path) -> None:
    args = ["compare", *TINY, "--policies", "energy-aware,least-loaded,round-robin"]
    res = runner.invoke(
        app, [*args, "--focus", "round-robin", "--out", str(tmp_path / "o")], env={"COLUMNS": "100"}
    )
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert not any("…" in line for line in lines)
    assert "energy-aware" in res.output and "round-robin minus the best other" in res.output
    # the full table where there is room
    wide = runner.invoke(
        app, [*args, "--resume", "--out", str(tmp_path / "o")], env={"COLUMNS": "200"}
    )
    assert wide.exit_code == 0, wide.output
    assert "µs/task" in wide.output and "µs/task" not in res.output
