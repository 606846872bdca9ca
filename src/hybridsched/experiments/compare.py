"""Head-to-head runs: every scheduler on identical workloads, in parallel processes.

Each (load, seed) pair draws one cluster and workload (or reads the given
files); every policy is simulated on exactly that pair. Runs are spread over a
process pool; each run is deterministic given (scenario, tasks, load, seed,
policy), so results do not depend on the number of workers or their order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybridsched import __version__
from hybridsched.errors import ConfigError

HEURISTICS: tuple[str, ...] = (
    "random",
    "round-robin",
    "least-loaded",
    "olb",
    "met",
    "mct",
    "min-min",
    "max-min",
    "sufferage",
    "edf-mct",
    "energy-aware",
)
"""The classic heuristics of the core."""

N_QUANTILES = 201
"""Response-time quantiles kept per run (for CDF plots without every task)."""


def default_policies() -> tuple[str, ...]:
    """Every registered scheduler except the exact oracle (too slow beyond tiny batches)."""
    from hybridsched.policies import available_policies

    names = [n for n in available_policies() if n != "optimal"]
    order = {n: k for k, n in enumerate(HEURISTICS)}
    return tuple(sorted(names, key=lambda n: (order.get(n, len(order)), n)))


@dataclass(frozen=True)
class CompareConfig:
    """A head-to-head experiment."""

    scenario: str = "iot-default"
    """Scenario preset of the generated workloads (ignored with ``workload``)."""
    tasks: int = 30_000
    """Tasks per generated workload."""
    loads: tuple[float, ...] = (0.9,)
    """Offered loads (work / capacity) of the generated workloads."""
    seeds: int = 5
    """Seeds per load: 0 .. seeds-1 (workload and policy randomness)."""
    policies: tuple[str, ...] = HEURISTICS
    """Schedulers to compare."""
    decision_interval: float = 0.5
    """Batching interval, s."""
    queue: str = "priority"
    """Queue discipline at the nodes."""
    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    """Worker processes."""
    cluster: str | None = None
    """Cluster file, with ``workload`` instead of a scenario."""
    workload: str | None = None
    """Workload file, with ``cluster`` instead of a scenario."""
    focus: str | None = None
    """The policy whose differences to the best other are reported (default: hybrid if run)."""
    policy_args: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per policy, arguments as given with --policy-arg (NAME.KEY=VALUE)."""
    capacity_bound: bool = False
    """Also compute the capacity lower bound of every workload (slow: about 50 s
    per 30,000 tasks; :func:`hybridsched.sim.bounds.capacity_lower_bound`)."""

    def __post_init__(self) -> None:
        if self.tasks < 1:
            raise ConfigError(f"tasks: must be >= 1, got {self.tasks}")
        if self.seeds < 1:
            raise ConfigError(f"seeds: must be >= 1, got {self.seeds}")
        if self.workers < 1:
            raise ConfigError(f"workers: must be >= 1, got {self.workers}")
        if not self.policies:
            raise ConfigError("policies: give at least one")
        if len(set(self.policies)) != len(self.policies):
            raise ConfigError(f"policies: each name once, got {', '.join(self.policies)}")
        for rho in self.loads:
            if not rho > 0:
                raise ConfigError(f"load: must be > 0, got {rho}")
        if (self.cluster is None) != (self.workload is None):
            raise ConfigError("--cluster and --workload go together")
        if self.focus is not None and self.focus not in self.policies:
            raise ConfigError(f"focus: {self.focus!r} is not among the policies compared")

    @property
    def from_files(self) -> bool:
        """Runs use the given cluster and workload files."""
        return self.workload is not None

    @property
    def focus_policy(self) -> str | None:
        """The focus policy: as given, else ``hybrid`` when compared, else none."""
        if self.focus is not None:
            return self.focus
        return "hybrid" if "hybrid" in self.policies else None

    @property
    def label(self) -> str:
        """What the workloads are, for titles."""
        return Path(self.workload).name if self.workload else self.scenario

    def run_loads(self) -> tuple[float, ...]:
        """Loads actually run (one placeholder, nan, for given files)."""
        return (float("nan"),) if self.from_files else self.loads


def _inputs(cfg: CompareConfig, load: float, seed: int):
    if cfg.from_files:
        from hybridsched.io import read_cluster, read_workload

        cluster = read_cluster(cfg.cluster)
        return cluster, read_workload(cfg.workload, cluster=cluster)
    from hybridsched.workload import generate

    return generate(cfg.scenario, cfg.tasks, load, seed)


def _one_run(cfg: CompareConfig, load: float, seed: int, policy: str) -> dict[str, Any]:
    from hybridsched.policies import make_policy
    from hybridsched.sim import SimConfig, simulate
    from hybridsched.sim.bounds import response_lower_bound

    cluster, workload = _inputs(cfg, load, seed)
    result = simulate(
        cluster,
        workload,
        make_policy(policy, cfg.policy_args.get(policy)),
        config=SimConfig(decision_interval=cfg.decision_interval, queue=cfg.queue),
        seed=seed,
    )
    s = result.summary
    row: dict[str, Any] = {"scenario": cfg.label, "load": load, "seed": seed, "policy": policy}
    for k in (
        "tasks",
        "mean_response_s",
        "p50_response_s",
        "p95_response_s",
        "p99_response_s",
        "deadline_miss_rate",
        "makespan_s",
        "energy_j",
        "utilization",
        "scheduler_seconds",
    ):
        row[k] = s[k]
    row["miss_rate_p0"] = s["deadline_miss_rate_by_priority"].get("0", 0.0)
    row["sched_us_per_task"] = 1e6 * s["scheduler_seconds"] / s["tasks"]
    # the same for every policy on this workload: no scheduler's mean is below it
    row["bound_mean_response_s"] = float(
        response_lower_bound(cluster, workload, cfg.decision_interval).mean()
    )
    q = np.quantile(result.tasks["response_s"], np.linspace(0.0, 1.0, N_QUANTILES))
    row["response_quantiles"] = q.tolist()
    return row


def _capacity_bound(cfg: CompareConfig, load: float, seed: int) -> dict[str, Any]:
    from hybridsched.sim.bounds import capacity_lower_bound

    cluster, workload = _inputs(cfg, load, seed)
    value = capacity_lower_bound(cluster, workload, cfg.decision_interval)
    return {"load": load, "seed": seed, "capacity_bound_mean_response_s": value}


def run_compare(
    cfg: CompareConfig, progress: Callable[[int, int], None] | None = None
) -> list[dict[str, Any]]:
    """Run every (load, seed, policy); one row of metrics per run, in a stable order.

    With ``cfg.capacity_bound`` each (load, seed) workload also gets its capacity
    lower bound, computed once and recorded in every row of that workload as
    ``capacity_bound_mean_response_s``.
    """
    from hybridsched.policies import make_policy

    for p in cfg.policies:
        make_policy(p, cfg.policy_args.get(p))  # bad names or arguments fail before any work
    if cfg.from_files:
        _inputs(cfg, float("nan"), 0)  # bad files fail before any work
    pairs = [(rho, s) for rho in cfg.run_loads() for s in range(cfg.seeds)]
    jobs: list[tuple[Callable[..., dict[str, Any]], tuple]] = [
        (_one_run, (cfg, rho, s, p)) for rho, s in pairs for p in cfg.policies
    ]
    if cfg.capacity_bound:
        jobs += [(_capacity_bound, (cfg, rho, s)) for rho, s in pairs]
    done: list[dict[str, Any]] = []
    if cfg.workers == 1 or len(jobs) == 1:
        for k, (fn, job_args) in enumerate(jobs):
            done.append(fn(*job_args))
            if progress:
                progress(k + 1, len(jobs))
    else:
        with ProcessPoolExecutor(max_workers=min(cfg.workers, len(jobs))) as pool:
            futures = [pool.submit(fn, *job_args) for fn, job_args in jobs]
            for k, fut in enumerate(as_completed(futures)):
                done.append(fut.result())
                if progress:
                    progress(k + 1, len(jobs))
    rows = [r for r in done if "policy" in r]
    bounds = {
        (_nan_key(r["load"]), r["seed"]): r["capacity_bound_mean_response_s"]
        for r in done
        if "policy" not in r
    }
    for r in rows:
        key = (_nan_key(r["load"]), r["seed"])
        if key in bounds:
            r["capacity_bound_mean_response_s"] = bounds[key]
    rows.sort(key=lambda r: (_nan_key(r["load"]), r["seed"], cfg.policies.index(r["policy"])))
    return rows


def _nan_key(x: float) -> float:
    return -1.0 if x != x else x


def resolved_config(cfg: CompareConfig) -> dict[str, Any]:
    """The configuration as recorded beside the results (with the package version)."""
    out = asdict(cfg)
    out["loads"] = list(cfg.loads)
    out["policies"] = list(cfg.policies)
    out["version"] = __version__
    out["seeds_used"] = list(range(cfg.seeds))
    return out


def config_from_dict(data: dict[str, Any]) -> CompareConfig:
    """Rebuild a configuration recorded by :func:`resolved_config`."""
    keys = {f for f in CompareConfig.__dataclass_fields__}
    kw = {k: v for k, v in data.items() if k in keys}
    kw["loads"] = tuple(kw.get("loads", (0.9,)))
    kw["policies"] = tuple(kw.get("policies", HEURISTICS))
    return CompareConfig(**kw)
