"""``rl`` by imitation: train the pair scorer to pick, task by task, the colony's node.

PPO from the MCT prior only reproduced MCT on drifting workloads (docs/RL.md,
"Learning under drift"), while the non-learned colony ``aco`` is 8-10% below
MCT there. This script distils the colony into the ``rl`` network instead::

    # colony labels on training seeds (observed estimates, the scenario's conditions)
    python benchmarks/bench_rl_distill.py collect --seeds 0:12 --tasks 3000 --out runs/d0.npz

    # DAgger: the labels on the states a distilled policy itself visits
    python benchmarks/bench_rl_distill.py collect --seeds 100:106 --student runs/d0.pt \\
        --out runs/d1.npz

    # cross-entropy from the MCT prior; held-out split; save a loadable checkpoint
    python benchmarks/bench_rl_distill.py train runs/d0.npz runs/d1.npz --out runs/d1.pt

    # greedy rl(checkpoint) against mct on held-out seeds 20,000 and up
    python benchmarks/bench_rl_distill.py compare runs/d1.pt --seeds 10 --settings drift-0.9

``collect --teacher hybrid`` labels with the hybrid instead (the shipped
``rl-drift.pt`` since session 23), ``--drift random`` draws a drift spec and
a task-mix shift per seed (domain randomization, as the trainers do), and
``train --max-regret 0.25`` records the limit ``rl`` then applies
(docs/RL.md, "Distilling the hybrid, with a regret limit")::

    python benchmarks/bench_rl_distill.py collect --teacher hybrid --drift random \\
        --scenario iot-hetero --seeds 540:580 --tasks 4000 --keep 0.4 --out runs/rd1.npz

``collect`` runs ``aco`` (or ``--teacher``) through :class:`Recorder`, which replays ``rl``'s own
feature pipeline (:meth:`hybridsched.policies.rl.RLPolicy.assign`: observed
node features, one task at a time in batch order, the unavailable nodes
masked, each task tentatively placed on the colony's node) and keeps the pair
features, the mask and the colony's node of a share of the tasks. Every run
uses the setting of ``bench_drift.py``: decision interval 0.5 s, priority
queues, ``simulate`` with the scenario's conditions and observed estimates.
``compare`` runs both policies through ``simulate`` with the same options.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridsched.experiments.stats import paired_diff
from hybridsched.learn.features import (
    FEATURE_NAMES,
    N_FEATURES,
    node_table,
    observe_nodes,
    pair_features_one,
    place_tentative,
)

DRIFT_LOADS = (0.8, 0.85, 0.9)
"""Loads the training instances are drawn from."""


@dataclass(frozen=True)
class Setting:
    """One evaluation setting: scenario, load, tasks (a drifting scenario runs with its
    conditions and observed estimates)."""

    scenario: str
    load: float
    tasks: int


SETTINGS = {
    "drift-0.8": Setting("iot-drift", 0.8, 8000),
    "drift-0.9": Setting("iot-drift", 0.9, 8000),
    "stationary-0.9": Setting("iot-default", 0.9, 10_000),
}
"""Held-out settings (test seeds 20,000 and up), as in ``bench_rl_drift.py``."""

METRICS = ("mean_response_s", "p95_response_s", "deadline_miss_rate", "energy_j")


def instance(scenario: str, tasks: int, load: float, seed: int, drift: str) -> tuple:
    """``(cluster, workload, conditions frame or None)`` of one instance.

    ``scenario`` is a preset or ``NAME+drift`` (the preset with the default drift
    added, as ``bench_drift.py`` takes it). ``drift``: ``scenario`` keeps the
    scenario's own conditions (none for a stationary preset), ``none`` leaves them
    out, ``random`` draws a drift spec and a task-mix shift per seed, as the
    trainers' domain randomization does (``InstanceSpec(drift="random")``).
    """
    from bench_drift import scenario_of
    from hybridsched.workload import generate_instance, generate_random_drift

    draw = generate_random_drift if drift == "random" else generate_instance
    inst = draw(scenario_of(scenario), tasks, load, seed)
    return inst.cluster, inst.workload, None if drift == "none" else inst.conditions


def run(
    scenario: str, tasks: int, load: float, seed: int, policy: Any, drift: str = "scenario"
) -> dict:
    """``simulate`` one instance as ``bench_drift.py`` does; the summary's metrics.

    ``drift``: as :func:`instance`. With conditions, the view's estimates are ``observed``.
    """
    from hybridsched.sim import SimConfig, simulate
    from hybridsched.sim.conditions import Conditions
    from hybridsched.sim.options import SimOptions

    cluster, workload, frame = instance(scenario, tasks, load, seed, drift)
    options = None
    if frame is not None:
        cond = Conditions.from_frame(frame, cluster, source=scenario)
        options = SimOptions(conditions=cond, estimates="observed")
    config = SimConfig(decision_interval=0.5, queue="priority")
    t = time.perf_counter()
    res = simulate(cluster, workload, policy, config=config, options=options, seed=seed)
    return {k: float(res.summary[k]) for k in METRICS} | {"wall_s": time.perf_counter() - t}


def offline_teacher(scenario: str, tasks: int, load: float, seed: int, drift: str) -> Any:
    """The clairvoyant assignment of one instance, as a policy that replays it.

    The hybrid's run (observed estimates where there are conditions), improved by the
    offline climb that knows every arrival and condition window in advance
    (:func:`~hybridsched.sim.offline.improve_offline`, as ``bench_offline.py`` runs it).
    A student cannot see the future: it can only learn what such placements have in
    common with what the view shows.
    """
    from hybridsched.policies import make_policy
    from hybridsched.sim import SimConfig, simulate
    from hybridsched.sim.conditions import Conditions
    from hybridsched.sim.offline import FixedAssignment, improve_offline
    from hybridsched.sim.options import SimOptions

    cluster, workload, frame = instance(scenario, tasks, load, seed, drift)
    cond = None if frame is None else Conditions.from_frame(frame, cluster, source=scenario)
    config = SimConfig(decision_interval=0.5, queue="priority")
    options = SimOptions(conditions=cond, estimates="observed" if cond else "nominal")
    start = simulate(cluster, workload, make_policy("hybrid"), config=config, options=options,
                     seed=seed)  # fmt: skip
    res = improve_offline(
        cluster, workload, start.tasks["node_index"], decision_interval=0.5, queue="priority",
        seed=seed, conditions=cond,
    )  # fmt: skip
    return FixedAssignment(workload, res.nodes)


class Recorder:
    """Runs ``teacher`` (or ``student``) and records the teacher's node per task.

    The features are ``rl``'s, computed as :class:`~hybridsched.policies.rl.RLPolicy`
    computes them, with each task tentatively placed on the teacher's node. With
    a ``student`` (DAgger) the student's nodes are what the simulator commits, so
    the batches start from states the student visits; within a batch the
    tentative placements stay the teacher's, since its node for a task is chosen
    jointly with its nodes for the tasks before it. A task's row is kept with
    probability ``keep``.
    """

    name = "recorder"

    def __init__(self, teacher: Any, keep: float, seed: int, student: Any = None) -> None:
        self.teacher = teacher
        self.student = student
        self.keep = keep
        self._pick = np.random.default_rng(seed)
        self.x: list[np.ndarray] = []
        self.mask: list[np.ndarray] = []
        self.y: list[int] = []
        self.batch: list[int] = []

    def reset(self, cluster: Any, rng: np.random.Generator) -> None:
        self.teacher.reset(cluster, rng)
        if self.student is not None:
            self.student.reset(cluster, rng)
        self._static = node_table(cluster)

    def assign(self, tasks: Any, view: Any) -> np.ndarray:
        label = np.asarray(self.teacher.assign(tasks, view), dtype=np.int64)
        act = label if self.student is None else self.student.assign(tasks, view)
        proj = view.core_free_s.copy()
        proj_min = view.core_free_min_s.copy()
        queued_work = view.queued_work_s.copy()
        recent = view.recent_count.copy()
        recent_t = view.recent_time_s.copy()
        observe_nodes(self._static, view)
        n = view.n_nodes
        out = np.zeros((n, N_FEATURES), dtype=np.float32)
        mask = np.zeros(n, dtype=np.bool_)
        for k, i in enumerate(tasks.index):
            pair_features_one(
                view.compiled, i, view.time, proj_min, queued_work, recent, recent_t,
                self._static, out, mask,
            )  # fmt: skip
            if view.unavailable is not None:
                mask &= ~view.unavailable
            if self._pick.random() < self.keep and mask[label[k]]:
                self.x.append(out.copy())
                self.mask.append(mask.copy())
                self.y.append(int(label[k]))
                self.batch.append(len(tasks))
            place_tentative(
                view.compiled, i, int(label[k]), view.time, proj, proj_min, queued_work, recent,
                recent_t,
            )  # fmt: skip
        return act


def collect(
    scenario: str,
    seeds: range,
    tasks: int,
    keep: float,
    out: Path,
    student: Path | None,
    teacher: str = "aco",
    drift: str = "scenario",
    teacher_args: dict | None = None,
) -> None:
    from hybridsched.policies import get_policy

    xs, ms, ys, bs, ss, meta = [], [], [], [], [], []
    for seed in seeds:
        load = DRIFT_LOADS[seed % len(DRIFT_LOADS)]
        pupil = get_policy("rl", checkpoint=str(student)) if student else None
        if teacher == "offline":
            guide = offline_teacher(scenario, tasks, load, seed, drift)
        else:
            guide = get_policy(teacher, **(teacher_args or {}))
        rec = Recorder(guide, keep, seed, pupil)
        t = time.perf_counter()
        summary = run(scenario, tasks, load, seed, rec, drift)
        xs.append(np.stack(rec.x))
        ms.append(np.stack(rec.mask))
        ys.append(np.asarray(rec.y, dtype=np.int64))
        bs.append(np.asarray(rec.batch, dtype=np.int64))
        ss.append(np.full(len(rec.y), seed, dtype=np.int64))
        row = {"scenario": scenario, "drift": drift, "teacher": teacher, "seed": seed}
        row |= {"teacher_args": teacher_args} if teacher_args else {}
        row["load"] = load
        row |= {"rows": len(rec.y), **summary}
        row["wall_s"] = time.perf_counter() - t
        meta.append(row)
        print(json.dumps(row), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out, x=np.concatenate(xs), mask=np.concatenate(ms), y=np.concatenate(ys),
        batch=np.concatenate(bs), seed=np.concatenate(ss), meta=json.dumps(meta),
    )  # fmt: skip


@dataclass
class Rows:
    """Training rows grouped by cluster size (no padding), indexed globally in file order.

    ``x[g]``, ``mask[g]`` and ``y[g]`` hold the rows of the ``g``-th node count;
    global row ``i`` is row ``local[i]`` of group ``group[i]``; ``episode[i]``
    its episode (seed, kept apart between files).
    """

    x: list[np.ndarray]
    mask: list[np.ndarray]
    y: list[np.ndarray]
    group: np.ndarray
    local: np.ndarray
    episode: np.ndarray

    def split(self, idx: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``idx`` (global rows) as ``(group, local rows)`` pairs, order kept within a group."""
        g = self.group[idx]
        return [(k, self.local[idx[g == k]]) for k in range(len(self.x)) if np.any(g == k)]


def _load(paths: list[Path]) -> Rows:
    """The rows of every file, one array per node count (a 600-node cluster padded
    with the 60-node rows would take 10x their memory)."""
    parts = [np.load(p) for p in paths]
    sizes = sorted({int(p["mask"].shape[1]) for p in parts})
    xs: dict[int, list] = {n: [] for n in sizes}
    ms: dict[int, list] = {n: [] for n in sizes}
    ys: dict[int, list] = {n: [] for n in sizes}
    group, local, episode = [], [], []
    for k, p in enumerate(parts):
        n = int(p["mask"].shape[1])
        y = p["y"]
        start = sum(len(v) for v in ys[n])
        xs[n].append(p["x"])
        ms[n].append(p["mask"])
        ys[n].append(y)
        group.append(np.full(len(y), sizes.index(n), dtype=np.int64))
        local.append(np.arange(start, start + len(y), dtype=np.int64))
        # seeds repeat between files (a student's and the teacher's run): keep them apart
        episode.append(p["seed"] + 1_000_000 * k)
    return Rows(
        x=[np.concatenate(xs[n]) for n in sizes],
        mask=[np.concatenate(ms[n]) for n in sizes],
        y=[np.concatenate(ys[n]) for n in sizes],
        group=np.concatenate(group),
        local=np.concatenate(local),
        episode=np.concatenate(episode),
    )


def _mask_regret(rows: Rows, max_regret: float) -> Rows:
    """``rows`` with each mask cut to the nodes ``rl`` keeps under ``max_regret``
    (:func:`~hybridsched.policies.rl.near_best`, as ``rl`` cuts them).

    A row whose label (the teacher's node) falls outside is dropped: ``rl`` could never
    pick it, so it only teaches the scores of nodes the cut removes.
    """
    from hybridsched.policies.rl import near_best, regret_cut

    cut = regret_cut(max_regret)
    xs, ms, ys, keep_by = [], [], [], []
    for g in range(len(rows.x)):
        x, y = rows.x[g], rows.y[g]
        near = near_best(x, rows.mask[g], cut)
        keep = near[np.arange(len(y)), y]
        keep_by.append(keep)
        xs.append(x[keep])
        ms.append(near[keep])
        ys.append(y[keep])
        rows.x[g] = rows.mask[g] = None  # one node count's rows in memory twice, not all
        del x, near
    # each global row: whether it is kept, and its index among the kept rows of its group
    kept = np.zeros(len(rows.group), dtype=bool)
    local = np.zeros(len(rows.group), dtype=np.int64)
    for g, keep in enumerate(keep_by):
        sel = rows.group == g
        kept[sel] = keep[rows.local[sel]]
        local[sel] = (np.cumsum(keep) - 1)[rows.local[sel]]
    print(json.dumps({"regret_mask": max_regret, "rows_dropped": int((~kept).sum())}), flush=True)
    return Rows(
        x=xs, mask=ms, y=ys, group=rows.group[kept], local=local[kept], episode=rows.episode[kept]
    )


def _batches(rows: Rows, tr: np.ndarray, rng: np.random.Generator, size: int = 256) -> list:
    """One epoch's minibatches ``(group, local rows)``, each within one node count.

    With one node count this is the single-array shuffle (the same draws); with
    several, each group is shuffled and its batches interleaved at random.
    """
    perm = tr[rng.permutation(len(tr))]
    out = [(k, b[s : s + size]) for k, b in rows.split(perm) for s in range(0, len(b), size)]
    if len(rows.x) > 1:
        out = [out[j] for j in rng.permutation(len(out))]
    return out


def train(
    paths: list[Path],
    out: Path,
    epochs: int,
    hidden: int,
    lr: float,
    seed: int,
    start: Path | None,
    max_regret: float | None = None,
    mask_regret: bool = False,
) -> None:
    import torch
    from torch.nn import functional as F

    from hybridsched.learn.network import PairScorer, load_checkpoint, save_checkpoint

    rows = _load(paths)
    if mask_regret:
        rows = _mask_regret(rows, max_regret)
    episode = rows.episode
    rng = np.random.default_rng(seed)
    # held out by episode: a tenth of the training seeds, never trained on
    seeds = np.unique(episode)
    held = rng.choice(seeds, size=max(1, len(seeds) // 10), replace=False)
    is_val = np.isin(episode, held)
    val, tr = np.flatnonzero(is_val), np.flatnonzero(~is_val)
    torch.manual_seed(seed)
    model = PairScorer(N_FEATURES, hidden, init="mct")
    if start is not None:  # go on from a checkpoint's weights (same width)
        model.load_state_dict(load_checkpoint(start)[0].state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    X = [torch.from_numpy(v) for v in rows.x]
    M = [torch.from_numpy(v) for v in rows.mask]
    Y = [torch.from_numpy(v) for v in rows.y]
    regret = FEATURE_NAMES.index("regret")

    def evaluate(idx: np.ndarray, chunk: int = 8192) -> dict[str, float]:
        loss = hits = 0.0
        with torch.no_grad():
            for g, loc in rows.split(idx):
                for s in range(0, len(loc), chunk):
                    b = torch.from_numpy(loc[s : s + chunk])
                    logits = model(X[g][b], M[g][b])
                    loss += F.cross_entropy(logits, Y[g][b], reduction="sum").item()
                    hits += (logits.argmax(1) == Y[g][b]).sum().item()
        return {"loss": loss / len(idx), "acc": hits / len(idx)}

    mct_hits = 0
    for g, loc in rows.split(val):
        b = torch.from_numpy(loc)
        pick = torch.where(M[g][b], -X[g][b][..., regret], -1e9).argmax(1)
        mct_hits += int((pick == Y[g][b]).sum())
    log = [{"epoch": 0, "val": evaluate(val), "mct_acc": mct_hits / len(val)}]
    n_rows = len(episode)
    sizes = {int(m.shape[1]): len(m) for m in rows.mask}
    print(json.dumps({"rows": n_rows, "rows_by_nodes": sizes, **log[-1]}), flush=True)
    t0 = time.perf_counter()
    best = (log[0]["val"]["loss"], {k: v.clone() for k, v in model.state_dict().items()})
    for epoch in range(1, epochs + 1):
        model.train()
        for g, loc in _batches(rows, tr, rng):
            b = torch.from_numpy(loc)
            loss = F.cross_entropy(model(X[g][b], M[g][b]), Y[g][b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        row = {"epoch": epoch, "train": evaluate(tr[:20_000]), "val": evaluate(val)}
        row["s"] = round(time.perf_counter() - t0, 1)
        log.append(row)
        print(json.dumps(row), flush=True)
        if row["val"]["loss"] < best[0]:
            best = (row["val"]["loss"], {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    metas = [json.loads(str(np.load(p)["meta"])) for p in paths]
    teachers = sorted({m.get("teacher", "aco") for meta in metas for m in meta})
    config = {
        "method": "distill-" + "+".join(teachers),
        "data": [str(p) for p in paths],
        "rows": n_rows,
        "rows_by_nodes": sizes,
        "held_out_seeds": [int(v) for v in held],
        "hidden": hidden,
        "init": "mct" if start is None else str(start),
        "lr": lr,
        "epochs": epochs,
        "seed": seed,
        "best_val_loss": best[0],
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    if max_regret is not None:  # rl applies it unless told otherwise (RLPolicy.max_regret)
        config["max_regret"] = max_regret
        config["trained_with_regret_mask"] = mask_regret
    save_checkpoint(out, model, config)
    out.with_suffix(".log.json").write_text(json.dumps(log, indent=1))


def compare(
    checkpoint: Path, seeds: range, settings: list[str], out: Path | None, also: tuple = ()
) -> dict:
    from hybridsched.policies import get_policy

    table: dict = {}
    for name in settings:
        s = SETTINGS[name]
        names = ("mct", "rl", *also)
        rows: dict[str, list[dict]] = {n: [] for n in names}
        for seed in seeds:
            for pname in names:
                args = {"checkpoint": str(checkpoint)} if pname == "rl" else {}
                pol = get_policy(pname, **args)
                rows[pname].append(run(s.scenario, s.tasks, s.load, seed, pol))
        entry: dict = {"seeds": [seeds.start, seeds.stop - 1]}
        for metric in METRICS:
            b = [r[metric] for r in rows["mct"]]
            entry[metric] = {"mct": float(np.mean(b))}
            for pname in names[1:]:
                a = [r[metric] for r in rows[pname]]
                d = paired_diff(a, b, metric, pname)
                entry[metric][pname] = float(np.mean(a))
                entry[metric][f"{pname}_vs_mct"] = [100 * d.relative, 100 * d.relative_half_ci]
                entry[metric][f"{pname}_p"] = d.p_value
        entry["wall_s"] = {n: float(np.mean([r["wall_s"] for r in rows[n]])) for n in names}
        entry["per_seed"] = rows
        table[name] = entry
        brief = {k: v for k, v in entry.items() if k != "per_seed"}
        print(name, json.dumps(brief), flush=True)
        if out:
            out.write_text(json.dumps(table, indent=1))
    return table


def _range(text: str) -> range:
    lo, _, hi = text.partition(":")
    return range(int(lo), int(hi)) if hi else range(int(lo), int(lo) + 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--scenario", default="iot-drift", help="iot-drift: conditions, observed")
    c.add_argument("--seeds", type=_range, default=range(0, 12), help="LO:HI (HI excluded)")
    c.add_argument("--tasks", type=int, default=3000)
    c.add_argument("--keep", type=float, default=0.5, help="share of the tasks recorded")
    c.add_argument("--student", type=Path, default=None, help="DAgger: this checkpoint acts")
    c.add_argument(
        "--teacher",
        default="aco",
        help="the policy whose nodes are the labels; offline: the hybrid's run climbed "
        "with the future known (improve_offline)",
    )
    c.add_argument(
        "--teacher-arg", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    c.add_argument(
        "--drift",
        default="scenario",
        choices=("scenario", "none", "random"),
        help="the scenario's own conditions, none, or drawn per seed (domain randomization)",
    )
    c.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("train")
    t.add_argument("data", type=Path, nargs="+")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--epochs", type=int, default=8)
    t.add_argument("--hidden", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--start", type=Path, default=None, help="start from this checkpoint")
    t.add_argument(
        "--max-regret", type=float, default=None, help="recorded for rl to apply (max_regret)"
    )
    t.add_argument(
        "--mask-regret",
        action="store_true",
        help="train only on the nodes rl keeps under --max-regret (rows it cannot match dropped)",
    )
    k = sub.add_parser("compare")
    k.add_argument("checkpoint", type=Path)
    k.add_argument("--seeds", type=int, default=10, help="how many test seeds")
    k.add_argument("--first", type=int, default=20_000, help="the first test seed")
    k.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated")
    k.add_argument("--json", type=Path, default=None)
    k.add_argument("--aco", action="store_true", help="also run aco (--also aco)")
    k.add_argument("--also", default="", help="more policies to run, comma-separated (teachers)")
    a = ap.parse_args()
    if a.cmd == "collect":
        if a.teacher == "offline" and (a.student or a.teacher_arg):
            # its labels are one fixed schedule's: states off that schedule have none
            ap.error("--teacher offline: takes neither --student nor --teacher-arg")
        targs = dict(kv.partition("=")[::2] for kv in a.teacher_arg)
        collect(a.scenario, a.seeds, a.tasks, a.keep, a.out, a.student, a.teacher, a.drift, targs)
    elif a.cmd == "train":
        if a.max_regret is not None and not a.max_regret >= 0:
            ap.error(f"--max-regret: must be a number >= 0, got {a.max_regret}")
        if a.mask_regret and not (a.max_regret is not None and np.isfinite(a.max_regret)):
            ap.error(f"--mask-regret: needs a finite --max-regret, got {a.max_regret}")
        train(a.data, a.out, a.epochs, a.hidden, a.lr, a.seed, a.start, a.max_regret, a.mask_regret)
    else:
        seeds = range(a.first, a.first + a.seeds)
        extra = [n for n in a.also.split(",") if n and n not in ("mct", "rl")]
        extra += ["aco"] if a.aco else []
        compare(a.checkpoint, seeds, a.settings.split(","), a.json, tuple(dict.fromkeys(extra)))


if __name__ == "__main__":
    main()
