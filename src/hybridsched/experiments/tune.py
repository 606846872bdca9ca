"""Simulation-tuned scheduler arguments: Optuna on training seeds, checked on held-out seeds.

``hybridsched tune`` searches a policy's arguments (the colony's ants,
iterations, candidates, alpha, beta, rho and cost weights; the hybrid's
temperature) with Optuna's TPE sampler. A trial's objective is the mean of
``metric`` over its runs on the training workloads (seeds ``0 .. train_seeds-1``
at each load). Trials are asked ``batch`` at a time and all their runs go to a
backend at once (:mod:`hybridsched.experiments.backends`: the local pool or
Ray tasks), so the search does not depend on the backend or the worker count.
The best arguments are then run against the defaults on held-out workloads
(seeds from ``TEST_SEED0``), paired by workload with 95% CIs.

The study lives in ``OUT/study.db`` (SQLite): a run interrupted and started
again with the same ``--out`` and settings keeps its finished trials; the
trials of an interrupted batch are run again with the same arguments.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hybridsched.errors import ConfigError, HybridSchedError

log = logging.getLogger(__name__)

TEST_SEED0 = 1_000_000
"""First held-out seed: far from every training seed."""

_COLONY: dict[str, tuple[str, float, float, bool]] = {
    # name: (kind, low, high, log scale)
    "ants": ("int", 2, 16, False),
    "iterations": ("int", 2, 16, False),
    "candidates": ("int", 2, 12, False),
    "alpha": ("float", 0.25, 3.0, False),
    "beta": ("float", 0.5, 5.0, False),
    "rho": ("float", 0.05, 0.8, False),
    "w_miss": ("float", 0.0, 8.0, False),
    "w_energy": ("float", 0.001, 0.3, True),
    "w_wait": ("float", 0.0, 6.0, False),
}

SEARCH_SPACES: dict[str, dict[str, tuple[str, float, float, bool]]] = {
    "aco": dict(_COLONY),
    "hybrid": {**_COLONY, "temperature": ("float", 0.25, 4.0, True)},
}
"""Per tunable policy, each argument searched: (int or float, low, high, log scale)."""

METRICS: tuple[str, ...] = (
    "mean_response_s",
    "p95_response_s",
    "p99_response_s",
    "deadline_miss_rate",
    "energy_j",
)
"""Objectives a study may minimise."""

REPORTED: tuple[str, ...] = ("mean_response_s", "p95_response_s", "deadline_miss_rate", "energy_j")
"""Metrics of the held-out comparison."""


class TuneError(HybridSchedError):
    """A tuning folder that cannot be used (another study's, or unreadable)."""


@dataclass(frozen=True)
class TuneConfig:
    """A tuning study."""

    policy: str
    """The policy tuned (one of :data:`SEARCH_SPACES`)."""
    scenario: str = "iot-default"
    """Scenario preset of the workloads."""
    loads: tuple[float, ...] = (0.9,)
    """Offered loads."""
    tasks: int = 2_000
    """Tasks per workload."""
    trials: int = 20
    """Trials of the study (finished ones count on resume)."""
    train_seeds: int = 3
    """Training workloads per load: seeds 0 .. train_seeds-1."""
    test_seeds: int = 5
    """Held-out workloads per load: seeds TEST_SEED0 ...; the comparison's pairs."""
    metric: str = "mean_response_s"
    """The objective, minimised: its mean over a trial's runs."""
    batch: int = 4
    """Trials asked at once and run in parallel; part of the search (not the machine's)."""
    seed: int = 0
    """Seed of the sampler."""
    decision_interval: float = 0.5
    """Batching interval, s."""
    queue: str = "priority"
    """Queue discipline."""
    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    """Worker processes (ray: CPUs of a local Ray started for the run)."""
    backend: str = "local"
    """Where the runs execute: local or ray; it changes no result."""

    def __post_init__(self) -> None:
        if self.policy not in SEARCH_SPACES:
            raise ConfigError(
                f"--policy: {self.policy!r} has no tunable arguments; tunable policies: "
                f"{', '.join(SEARCH_SPACES)}"
            )
        for name, low in (
            ("tasks", 1),
            ("trials", 1),
            ("train-seeds", 1),
            ("test-seeds", 2),
            ("batch", 1),
            ("workers", 1),
        ):
            value = getattr(self, name.replace("-", "_"))
            if value < low:
                raise ConfigError(f"--{name}: must be >= {low}, got {value}")
        if self.metric not in METRICS:
            raise ConfigError(
                f"--metric: expected one of {', '.join(METRICS)}, got {self.metric!r}"
            )
        if not self.loads or not all(rho > 0 for rho in self.loads):
            raise ConfigError(f"--load: each must be > 0, got {list(self.loads)}")
        if self.backend not in ("local", "ray"):
            raise ConfigError(f"--backend: expected local or ray, got {self.backend!r}")

    def compare_config(self, args: dict[str, str] | None = None) -> Any:
        """The head-to-head configuration of one run of the tuned policy with ``args``."""
        from hybridsched.experiments.compare import CompareConfig

        return CompareConfig(
            scenario=self.scenario,
            tasks=self.tasks,
            loads=self.loads,
            seeds=1,
            policies=(self.policy,),
            decision_interval=self.decision_interval,
            queue=self.queue,
            workers=self.workers,
            policy_args={self.policy: args} if args else {},
        )


_IGNORED = ("workers", "backend", "trials")
"""Settings that may differ when a study is resumed (trials: the study may be extended)."""


def sample_args(trial: Any, policy: str) -> dict[str, str]:
    """Draw one trial's arguments from the policy's search space (as --policy-arg strings)."""
    out: dict[str, str] = {}
    for name, (kind, low, high, log_scale) in SEARCH_SPACES[policy].items():
        if kind == "int":
            out[name] = str(trial.suggest_int(name, int(low), int(high), log=log_scale))
        else:
            out[name] = repr(trial.suggest_float(name, low, high, log=log_scale))
    return out


def _args_of(params: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) if isinstance(v, int) else repr(float(v)) for k, v in params.items()}


def _runs(
    cfg: TuneConfig, args: dict[str, str] | None, seeds: range, label: str
) -> list[tuple[Any, ...]]:
    from hybridsched.experiments.backends import Shared
    from hybridsched.experiments.compare import _inputs, _one_run
    from hybridsched.experiments.pool import Job

    cc = cfg.compare_config(args)
    return [
        Job(
            _one_run,
            (cc, rho, s, cfg.policy, Shared(f"{rho!r}/{s}", _inputs, (cc, rho, s))),
            f"{cfg.policy} ({label}) on load {rho:g}, seed {s}",
        )
        for rho in cfg.loads
        for s in seeds
    ]


def _run_all(backend: Any, jobs: list[Any], tick: Callable[[], None]) -> list[dict[str, Any]]:
    rows: list[Any] = [None] * len(jobs)

    def got(k: int, row: dict[str, Any]) -> None:
        rows[k] = row
        tick()

    backend.run(jobs, got)
    return rows


def open_study(cfg: TuneConfig, out: Path) -> Any:
    """Create or reopen the study in ``out`` (``study.db``), checking ``config.json``.

    Raises:
        TuneError: ``out`` holds a study with other settings, or cannot be written.
    """
    import optuna

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TuneError(f"--out {out}: cannot create the folder: {exc.strerror or exc}") from None
    conf = out / "config.json"
    now = json.loads(json.dumps(asdict(cfg)))
    if conf.is_file():
        try:
            old = json.loads(conf.read_text())
        except (OSError, ValueError) as exc:
            raise TuneError(f"{conf}: not a configuration written by `tune`: {exc}") from None
        keys = sorted((set(old) | set(now)) - set(_IGNORED))
        diffs = [(k, old.get(k), now.get(k)) for k in keys if old.get(k) != now.get(k)]
        if diffs:
            what = "; ".join(f"{k} (folder: {a!r}, now: {b!r})" for k, a, b in diffs)
            raise TuneError(
                f"--out {out}: holds a study with other settings: {what}. Give the same "
                "settings to resume it, or another --out"
            )
    elif any(e for e in out.iterdir() if not e.name.startswith(".")):
        raise TuneError(f"--out {out}: not empty and has no config.json of `tune`; give a new one")
    try:
        conf.write_text(json.dumps(now, indent=2) + "\n")
    except OSError as exc:
        raise TuneError(f"{conf}: cannot write: {exc.strerror or exc}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name="tune",
        storage=f"sqlite:///{out / 'study.db'}",
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        direction="minimize",
        load_if_exists=True,
    )


def run_tune(
    cfg: TuneConfig,
    out: Path,
    backend: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the study, then the held-out comparison; write the results in ``out``.

    Writes ``study.db``, ``config.json``, ``trials.csv``, ``best_args.yaml`` (a
    ``--policy-args`` file) and ``evaluation.json``.

    Args:
        cfg: The study.
        out: Its folder.
        backend: Where runs execute (default: the one ``cfg.backend`` names).
        progress: ``progress(phase, done, total)`` with phase ``trials`` (done:
            finished trials) or ``held-out`` (done: finished runs).

    Returns:
        The content of ``evaluation.json``: best arguments, objective values and
        the held-out paired differences.
    """
    import optuna

    from hybridsched.experiments.backends import make_backend
    from hybridsched.experiments.compare import check_inputs
    from hybridsched.experiments.stats import paired_diff
    from hybridsched.policies.args import format_policy_args

    check_inputs(cfg.compare_config())
    study = open_study(cfg, out)
    own = backend is None
    runner = make_backend(cfg.backend, cfg.workers) if own else backend
    train = range(cfg.train_seeds)
    try:
        # trials of an interrupted batch: run again with the same arguments
        stale = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
        for t in stale:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(t.params, skip_if_exists=False)
        complete = optuna.trial.TrialState.COMPLETE

        def finished() -> int:
            return sum(1 for t in study.get_trials(deepcopy=False) if t.state == complete)

        if progress:
            progress("trials", finished(), cfg.trials)
        while finished() < cfg.trials:
            n = min(cfg.batch, cfg.trials - finished())
            trials = [study.ask() for _ in range(n)]
            argsets = [sample_args(t, cfg.policy) for t in trials]
            jobs = [
                j
                for t, a in zip(trials, argsets, strict=True)
                for j in _runs(cfg, a, train, f"trial {t.number}")
            ]
            rows = _run_all(runner, jobs, lambda: None)
            per = len(cfg.loads) * cfg.train_seeds
            for i, t in enumerate(trials):
                values = [r[cfg.metric] for r in rows[i * per : (i + 1) * per]]
                study.tell(t, float(sum(values) / len(values)))
            if progress:
                progress("trials", finished(), cfg.trials)
        best = study.best_trial
        best_args = _args_of(best.params)
        test = range(TEST_SEED0, TEST_SEED0 + cfg.test_seeds)
        jobs = _runs(cfg, None, test, "defaults") + _runs(cfg, best_args, test, "tuned")
        count = {"done": 0}

        def tick() -> None:
            count["done"] += 1
            if progress:
                progress("held-out", count["done"], len(jobs))

        if progress:
            progress("held-out", 0, len(jobs))
        rows = _run_all(runner, jobs, tick)
    finally:
        if own:
            runner.close()
    half = len(rows) // 2
    default_rows, tuned_rows = rows[:half], rows[half:]
    diffs = [
        asdict(paired_diff([r[m] for r in tuned_rows], [r[m] for r in default_rows], m, "defaults"))
        for m in REPORTED
    ]
    result = {
        "policy": cfg.policy,
        "best_args": best_args,
        "best_trial": best.number,
        "best_objective": best.value,
        "metric": cfg.metric,
        "trials": finished(),
        "held_out_seeds": list(test),
        "tuned_minus_defaults": diffs,
        "held_out": {
            "defaults": {m: _mean([r[m] for r in default_rows]) for m in REPORTED},
            "tuned": {m: _mean([r[m] for r in tuned_rows]) for m in REPORTED},
        },
    }
    comment = (
        f"hybridsched tune: {cfg.policy} on {cfg.scenario}, loads "
        f"{', '.join(f'{x:g}' for x in cfg.loads)}, {cfg.tasks} tasks; best of "
        f"{result['trials']} trials by {cfg.metric}\n"
        f"use: hybridsched simulate --policy {cfg.policy} --policy-args best_args.yaml ..."
    )
    (out / "best_args.yaml").write_text(
        format_policy_args(cfg.policy, _typed(best.params), comment)
    )
    study.trials_dataframe().to_csv(out / "trials.csv", index=False)
    (out / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _typed(params: dict[str, Any]) -> dict[str, Any]:
    return {k: int(v) if isinstance(v, int) else float(v) for k, v in params.items()}


def _mean(xs: list[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else math.nan
