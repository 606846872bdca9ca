"""Benchmark: what each part of the hybrid is worth, on stationary and drifting workloads.

Every scheduler runs on identical (scenario, load, seed) instances; a drifting
scenario's conditions (``generate_instance``) apply to every run of its
instance, as in ``compare``. The variants:

* ``mct``, ``min-min``, ``sufferage``, ``edf-mct``: the non-learned heuristics;
* ``aco``: the ant colony alone;
* ``hybrid``: the colony with the shipped trained network;
* ``hybrid-untrained``: the same colony with an untrained network whose only
  prior is MCT's regret (``PairScorer(init="mct")``, saved as a checkpoint and
  passed as ``checkpoint=``): what training adds to the colony;
* ``rl``: the shipped PPO network, greedy;
* ``hybrid-checkpoint``: the same colony with the network of ``--checkpoint``
  (only when that is given);
* ``rl-checkpoint``: greedy ``rl`` with the network of ``--checkpoint`` (a
  distilled ``rl`` network, for example).

For a drifting scenario, ``mct`` also runs on the same cluster and workload
*without* the conditions (variant ``mct, no conditions``): how much drift
raises the mean response. A scenario given as ``NAME:stationary`` (e.g.
``iot-drift:stationary``) runs every variant on NAME's instances with their
conditions left out (a shifting task mix stays: it is part of the workload),
to tell what drift changes from what the cluster does. A scenario given as
``NAME+drift`` (e.g. ``iot-hetero+drift``) is NAME with the default drift added
(:func:`~hybridsched.workload.with_drift`, as ``hybridsched generate --drift``
does): drifting workloads that no learned policy was trained or chosen on.

``--estimate-cv CV`` adds estimate noise to every run (the schedulers see the
work times lognormal noise of mean 1 and that CV; ``SimOptions.estimate_cv``);
``--latency-jitter CV`` and ``--shared-links`` add those options to every run.

``--estimates nominal,observed`` runs every variant once per estimate mode;
``auto`` runs each variant in its policy's preferred mode (``observed`` for the
hybrids, ``nominal`` for the others: what ``simulate`` and ``compare`` do by
default), each row recording the mode it ran in as ``resolved``. A mode other
than ``nominal`` needs ``SimOptions.estimates`` (what the view's execution and
transfer estimates are based on), and ``auto`` the policies' preferences; in a
tree without them only the modes it has run, and asking for another is refused.

It prints one Markdown table per (scenario, load, estimate mode): per variant
the mean of each metric with its 95% CI over the seeds, and the paired
difference of the mean response to ``mct``; then the ablation pairs; last, one
summary table of the paired differences in mean response, and where both
estimate modes ran, one of observed against nominal. Raw per-seed results
go to ``--out`` (JSON, saved as each run ends).

Usage::

    python benchmarks/bench_drift.py [--tasks 8000] [--seeds 10] [--loads 0.85] \\
        [--scenarios iot-default,iot-drift] [--estimates nominal] [--workers 2] \\
        [--out benchmarks/results/drift.json]
    python benchmarks/bench_drift.py --tables benchmarks/results/drift*.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from hybridsched import __version__
from hybridsched.experiments.stats import mean_ci, paired_diff

VARIANTS: tuple[str, ...] = (
    "mct",
    "min-min",
    "sufferage",
    "edf-mct",
    "aco",
    "hybrid",
    "hybrid-untrained",
    "rl",
    "hybrid-checkpoint",
    "rl-checkpoint",
)
"""The schedulers compared (``hybrid-untrained``: the hybrid's colony, untrained network)."""

NO_CONDITIONS = "mct, no conditions"
"""MCT on a drifting scenario's cluster and workload with its conditions left out."""

STATIONARY = ":stationary"
"""Suffix of a scenario run with its conditions left out."""

DRIFTED = "+drift"
"""Suffix of a scenario run with the default drift added."""

NON_LEARNED: tuple[str, ...] = ("mct", "min-min", "sufferage", "edf-mct", "aco")
"""The schedulers without a learned part: the hybrid's goal is set against the best."""

METRICS: tuple[tuple[str, str, float], ...] = (
    ("mean_response_s", "mean s", 1.0),
    ("p95_response_s", "p95 s", 1.0),
    ("deadline_miss_rate", "miss %", 100.0),
    ("energy_j", "energy MJ", 1e-6),
)
"""Reported metrics: key, column header, scale to the shown unit."""


def estimate_modes() -> tuple[str, ...] | None:
    """Whether this tree's ``SimOptions`` has an ``estimates`` field (None: not yet)."""
    from hybridsched.sim.options import SimOptions

    if "estimates" not in {f.name for f in dataclasses.fields(SimOptions)}:
        return None
    try:
        from hybridsched.policies import resolve_estimates  # noqa: F401
    except ImportError:  # a tree before the policies' preferred estimates
        return ("nominal", "observed")
    return ("nominal", "observed", "auto")


def untrained_checkpoint(folder: Path) -> Path:
    """An untrained network with the MCT prior, as wide as the shipped hybrid's."""
    import torch

    from hybridsched.learn.network import PairScorer, load_checkpoint, save_checkpoint
    from hybridsched.policies.hybrid import DEFAULT_CHECKPOINT

    torch.manual_seed(0)  # the head starts at zero: the scores are the prior's anyway
    hidden = load_checkpoint(DEFAULT_CHECKPOINT)[0].hidden
    model = PairScorer(hidden=hidden, init="mct")
    return save_checkpoint(folder / "untrained-mct.pt", model, {"init": "mct", "untrained": True})


def scenario_of(name: str) -> Any:
    """The scenario ``name`` stands for: a preset, ``NAME+drift`` (the preset with the
    default drift added), either with ``:stationary`` (same scenario; the runs then
    leave its conditions out).

    Raises:
        ConfigError: an unknown preset (the message lists the known ones).
    """
    from hybridsched.workload import get_scenario, with_drift

    base, drifted, _ = name.removesuffix(STATIONARY).partition(DRIFTED)
    return with_drift(base) if drifted else get_scenario(base)


def _commit() -> str | None:
    """The checkout's commit (``+dirty`` with uncommitted changes), or None outside git."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def run_one(job: tuple) -> dict[str, Any]:
    """One simulation; ``job`` is (scenario, tasks, load, seed, variant, estimates, ckpts,
    opts), ``ckpts`` the untrained network's checkpoint, ``--checkpoint``'s and the
    ``--checkpoint-arg`` arguments of the variants that take ``--checkpoint``, ``opts``
    the ``SimOptions`` fields every run gets (``estimate_cv``, ``latency_jitter``,
    ``shared_links``; empty: none)."""
    from hybridsched.policies import make_policy
    from hybridsched.sim import SimConfig, simulate
    from hybridsched.sim.conditions import Conditions
    from hybridsched.sim.options import SimOptions
    from hybridsched.workload import generate_instance

    scenario, tasks, load, seed, variant, estimates, (untrained, other, extra), opts = job
    stationary = scenario.endswith(STATIONARY)
    inst = generate_instance(scenario_of(scenario), tasks, load, seed)
    # the registered policy the variant runs
    name_of = {
        NO_CONDITIONS: "mct",
        "hybrid-untrained": "hybrid",
        "hybrid-checkpoint": "hybrid",
        "rl-checkpoint": "rl",
    }
    policy_name = name_of.get(variant, variant)
    mode = estimates
    if estimates == "auto":
        from hybridsched.policies import resolve_estimates

        mode = resolve_estimates("auto", policy_name)
    kw: dict[str, Any] = {} if mode == "nominal" else {"estimates": mode}
    kw |= opts
    if inst.conditions is not None and variant != NO_CONDITIONS and not stationary:
        kw["conditions"] = Conditions.from_frame(inst.conditions, inst.cluster, source=scenario)
    if variant in ("hybrid-untrained", "hybrid-checkpoint", "rl-checkpoint"):
        if variant == "hybrid-untrained":
            policy = make_policy(policy_name, {"checkpoint": untrained})
        else:
            policy = make_policy(policy_name, {"checkpoint": other, **extra})
    else:
        policy = make_policy(policy_name)
    t = time.perf_counter()
    res = simulate(
        inst.cluster,
        inst.workload,
        policy,
        config=SimConfig(decision_interval=0.5, queue="priority"),
        options=SimOptions(**kw) if kw else None,
        seed=seed,
    )
    s = res.summary
    row = {"scenario": scenario, "load": load, "seed": seed, "variant": variant}
    row |= {"estimates": estimates, "resolved": mode, "conditions": "conditions" in kw}
    row |= opts
    row |= {k: float(s[k]) for k, _, _ in METRICS}
    row |= {"tasks": int(s["tasks"]), "wall_s": time.perf_counter() - t}
    return row


def _cell(values: list[float], scale: float) -> str:
    m, h = mean_ci(values)
    return f"{m * scale:.4g} ± {h * scale:.2g}"


def _series(rows: list[dict[str, Any]], variant: str, key: str) -> list[float]:
    return [r[key] for r in sorted(rows, key=lambda r: r["seed"]) if r["variant"] == variant]


def _pair(rows: list[dict[str, Any]], a: str, b: str, key: str = "mean_response_s") -> str:
    d = paired_diff(_series(rows, a, key), _series(rows, b, key), key, b)
    mark = "" if d.significant else " (n.s.)"
    return f"{d.percent()}{mark}"


def tables(rows: list[dict[str, Any]]) -> str:
    """The Markdown tables of the results (one per scenario, load and estimate mode)."""
    out: list[str] = []
    groups = sorted({(r["scenario"], r["load"], r["estimates"]) for r in rows})
    for key in groups:
        scenario, load, est = key
        sub = [r for r in rows if (r["scenario"], r["load"], r["estimates"]) == key]
        seeds = len({r["seed"] for r in sub})
        variants = [v for v in (*VARIANTS, NO_CONDITIONS) if any(r["variant"] == v for r in sub)]
        title = f"{scenario}, load {load:g}, {est} estimates, {seeds} seeds (mean ± 95% CI)"
        out += [f"**{title}**", ""]
        header = ["scheduler", *(h for _, h, _ in METRICS), "mean vs mct (paired)"]
        out += ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
        for v in variants:
            cells = [_cell(_series(sub, v, k), sc) for k, _, sc in METRICS]
            vs = "" if v == "mct" or "mct" not in variants else _pair(sub, v, "mct")
            out.append(f"| {v} | " + " | ".join(cells) + f" | {vs} |")
        out.append("")
        best = min(
            (v for v in NON_LEARNED if v in variants),
            key=lambda v: float(np.mean(_series(sub, v, "mean_response_s"))),
        )
        pairs = [("hybrid", "hybrid-untrained"), ("hybrid", "aco"), ("hybrid-untrained", "aco")]
        pairs += [("hybrid", best)] if best != "aco" else []
        pairs += [("hybrid-checkpoint", "hybrid"), ("hybrid-checkpoint", best)]
        pairs += [("rl", "mct"), ("rl-checkpoint", "mct"), ("mct", NO_CONDITIONS)]
        out += ["| pair (paired by seed) | mean response | p95 | miss rate | energy |"]
        out += ["| --- | ---: | ---: | ---: | ---: |"]
        for a, b in pairs:
            if a in variants and b in variants:
                cells = [_pair(sub, a, b, k) for k, _, _ in METRICS]
                what = f"{a} vs {b}" + (" (best non-learned)" if b == best else "")
                out.append(f"| {what} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def summary(rows: list[dict[str, Any]]) -> str:
    """One Markdown table over every (scenario, load, estimate mode): the paired
    differences in mean response that the ablation is about."""
    cols = [
        ("hybrid vs hybrid-untrained", "hybrid", "hybrid-untrained"),
        ("hybrid vs aco", "hybrid", "aco"),
        ("hybrid-untrained vs aco", "hybrid-untrained", "aco"),
        ("aco vs mct", "aco", "mct"),
        ("rl vs mct", "rl", "mct"),
        ("rl-checkpoint vs mct", "rl-checkpoint", "mct"),
        ("drift on mct", "mct", NO_CONDITIONS),
    ]
    # a column no run has is left out (older files have no rl-checkpoint runs)
    have_any = {r["variant"] for r in rows}
    cols = [c for c in cols if c[0] != "rl-checkpoint vs mct" or "rl-checkpoint" in have_any]
    head = ["scenario", "load", "estimates", "best non-learned", "hybrid vs it"]
    out = ["| " + " | ".join(head + [c[0] for c in cols]) + " |"]
    out.append("| --- | ---: | --- | --- |" + " ---: |" * (len(cols) + 1))
    for key in sorted({(r["scenario"], r["load"], r["estimates"]) for r in rows}):
        sub = [r for r in rows if (r["scenario"], r["load"], r["estimates"]) == key]
        have = {r["variant"] for r in sub}
        best = min(
            (v for v in NON_LEARNED if v in have),
            key=lambda v: float(np.mean(_series(sub, v, "mean_response_s"))),
        )
        cells = [key[0], f"{key[1]:g}", key[2], best]
        cells.append(_pair(sub, "hybrid", best) if "hybrid" in have else "")
        cells += [_pair(sub, a, b) if {a, b} <= have else "" for _, a, b in cols]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def modes_table(rows: list[dict[str, Any]]) -> str:
    """Where both estimate modes ran: each variant's observed against its nominal
    estimates, and the hybrid in each mode against the best non-learned scheduler in
    its better mode (paired differences in mean response); empty otherwise."""
    out: list[str] = []
    keys = sorted({(r["scenario"], r["load"]) for r in rows})
    for scenario, load in keys:
        sub = [r for r in rows if (r["scenario"], r["load"]) == (scenario, load)]
        if {r["estimates"] for r in sub} != {"nominal", "observed"}:
            continue
        if not out:
            out += ["| scenario | load | comparison (mean response, paired) | difference |"]
            out += ["| --- | ---: | --- | ---: |"]

        def series(variant: str, mode: str, sub: list = sub) -> list[float]:
            return _series([r for r in sub if r["estimates"] == mode], variant, "mean_response_s")

        have = {r["variant"] for r in sub}
        lines: list[tuple[str, str, str, str, str]] = [
            (v, "observed", v, "nominal", "") for v in (*VARIANTS, NO_CONDITIONS) if v in have
        ]
        cands = [(v, m) for v in NON_LEARNED if v in have for m in ("nominal", "observed")]
        if cands:
            bv, bm = min(cands, key=lambda c: float(np.mean(series(*c))))
            best_note = " (best non-learned)"
            for v in ("hybrid", "hybrid-untrained", "hybrid-checkpoint"):
                if v in have:
                    lines += [(v, m, bv, bm, best_note) for m in ("nominal", "observed")]
        for a, am, b, bm, note in lines:
            d = paired_diff(series(a, am), series(b, bm), "mean_response_s", b)
            text = d.percent() + ("" if d.significant else " (n.s.)")
            out.append(f"| {scenario} | {load:g} | {a} {am} vs {b} {bm}{note} | {text} |")
    return "\n".join(out)


def save(path: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Write ``{"config": meta, "runs": rows}`` as JSON, one run per line."""
    runs = ",\n".join(json.dumps(r) for r in rows)
    path.write_text(f'{{"config": {json.dumps(meta)}, "runs": [\n{runs}\n]}}\n')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=8_000)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first", type=int, default=0, help="first seed")
    ap.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="the network of hybrid-checkpoint and rl-checkpoint",
    )
    ap.add_argument(
        "--checkpoint-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a policy argument of hybrid-checkpoint and rl-checkpoint (repeatable)",
    )
    ap.add_argument("--loads", default="0.85", help="comma-separated loads")
    ap.add_argument("--scenarios", default="iot-default,iot-drift")
    ap.add_argument("--variants", default=",".join(VARIANTS[:-2]))
    ap.add_argument("--estimates", default="nominal", help="comma-separated: nominal,observed,auto")
    ap.add_argument(
        "--estimate-cv",
        type=float,
        default=None,
        help="estimate noise: schedulers see work x lognormal noise of this CV",
    )
    ap.add_argument(
        "--latency-jitter", type=float, default=None, help="latency jitter CV of every run"
    )
    ap.add_argument("--shared-links", action="store_true", help="shared ingress links")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/drift.json"))
    ap.add_argument(
        "--tables", type=Path, nargs="+", help="only print the tables of saved --out files"
    )
    a = ap.parse_args()
    if a.tables is not None:
        rows = [r for f in a.tables for r in json.loads(f.read_text())["runs"]]
        print(tables(rows) + "\n" + summary(rows) + "\n\n" + modes_table(rows))
        return

    extra_args = dict(kv.partition("=")[::2] for kv in a.checkpoint_arg)
    if bad_args := [kv for kv in a.checkpoint_arg if "=" not in kv]:
        ap.error(f"--checkpoint-arg: expected KEY=VALUE, got {bad_args[0]!r}")
    if extra_args:  # refused now, not by the first run of a variant that cannot take them
        from hybridsched.errors import ConfigError
        from hybridsched.policies import make_policy

        for v, name in (("hybrid-checkpoint", "hybrid"), ("rl-checkpoint", "rl")):
            if v in [x.strip() for x in a.variants.split(",")]:
                try:
                    make_policy(name, {"checkpoint": str(a.checkpoint), **extra_args})
                except ConfigError as exc:
                    ap.error(f"--checkpoint-arg for {v}: {exc}")
    loads = [float(x) for x in a.loads.split(",") if x.strip()]
    scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    modes = [m.strip() for m in a.estimates.split(",") if m.strip()]
    for v in ("hybrid-checkpoint", "rl-checkpoint"):
        if v in variants and a.checkpoint is None:
            ap.error(f"--variants {v}: needs --checkpoint PATH")
    if unknown := [v for v in variants if v not in VARIANTS]:
        ap.error(f"--variants: unknown {unknown}; known: {', '.join(VARIANTS)}")
    known = estimate_modes() or ("nominal",)
    if bad := [m for m in modes if m not in known]:
        why = "" if estimate_modes() else " (this tree's SimOptions has no estimates field yet)"
        ap.error(f"--estimates: {', '.join(bad)} not available{why}; known: {', '.join(known)}")
    from hybridsched.errors import ConfigError

    opts: dict[str, Any] = {}
    if a.estimate_cv is not None:
        opts["estimate_cv"] = a.estimate_cv
    if a.latency_jitter is not None:
        opts["latency_jitter"] = a.latency_jitter
    if a.shared_links:
        opts["shared_links"] = True
    if opts:
        from hybridsched.sim.options import SimOptions

        flags = (("--estimate-cv", "estimate_cv"), ("--latency-jitter", "latency_jitter"))
        for flag, name in flags:
            if name in opts:
                try:
                    SimOptions(**{name: opts[name]})
                except ConfigError as exc:
                    ap.error(f"{flag}: {exc}")
    # the calibration run: mct on each drifting scenario's instances without their conditions
    try:
        drifting = {s: scenario_of(s).drift is not None for s in scenarios}
    except ConfigError as exc:
        ap.error(f"--scenarios: {exc}")
    extra = {s: (NO_CONDITIONS,) for s in scenarios if drifting[s] and not s.endswith(STATIONARY)}
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = (str(untrained_checkpoint(Path(tmp))), str(a.checkpoint or ""), extra_args)
        jobs = [
            (sc, a.tasks, rho, seed, v, est, ckpts, opts)
            for sc in scenarios
            for rho in loads
            for est in modes
            for v in (*variants, *extra.get(sc, ()))
            for seed in range(a.first, a.first + a.seeds)
        ]
        meta = {"tasks": a.tasks, "seeds": a.seeds, "first": a.first, "loads": loads}
        meta |= {"scenarios": scenarios, "variants": variants, "estimates": modes}
        meta |= {"checkpoint": str(a.checkpoint) if a.checkpoint else None}
        meta |= {"checkpoint_args": extra_args}
        meta |= {"estimate_cv": a.estimate_cv}
        meta |= {k: v for k, v in opts.items() if k != "estimate_cv"}
        meta |= {"version": __version__, "commit": _commit()}
        a.out.parent.mkdir(parents=True, exist_ok=True)
        rows: list[dict[str, Any]] = []
        t = time.perf_counter()
        with ProcessPoolExecutor(a.workers) as ex:
            for fut in as_completed([ex.submit(run_one, j) for j in jobs]):
                rows.append(fut.result())
                # saved as each run ends: a long sweep stopped early keeps what it ran
                save(a.out, meta, rows)
    print(f"{len(jobs)} runs of {a.tasks:,} tasks in {time.perf_counter() - t:.0f} s "
          f"({a.workers} workers); raw per-seed results: {a.out}\n")  # fmt: skip
    print(tables(rows) + "\n" + summary(rows) + "\n\n" + modes_table(rows))


if __name__ == "__main__":
    main()
