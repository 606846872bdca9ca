"""Head-to-head runs: every scheduler on identical workloads, in parallel processes.

Each (load, seed) pair draws one cluster and workload; every policy is
simulated on exactly that pair. Runs are spread over a process pool; each run
is deterministic given (scenario, tasks, load, seed, policy), so the results do
not depend on the number of workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hybridsched import __version__
from hybridsched.errors import ConfigError

DEFAULT_POLICIES: tuple[str, ...] = (
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


@dataclass(frozen=True)
class CompareConfig:
    """A head-to-head experiment."""

    scenario: str = "iot-default"
    """Scenario preset of the generated workloads."""
    tasks: int = 20_000
    """Tasks per workload."""
    loads: tuple[float, ...] = (0.9,)
    """Offered loads (work / capacity)."""
    seeds: int = 5
    """Seeds per load: 0 .. seeds-1."""
    policies: tuple[str, ...] = DEFAULT_POLICIES
    """Schedulers to compare."""
    decision_interval: float = 0.5
    """Batching interval, s."""
    queue: str = "priority"
    """Queue discipline at the nodes."""
    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    """Worker processes."""

    def __post_init__(self) -> None:
        if self.tasks < 1:
            raise ConfigError(f"tasks: must be >= 1, got {self.tasks}")
        if self.seeds < 1:
            raise ConfigError(f"seeds: must be >= 1, got {self.seeds}")
        if self.workers < 1:
            raise ConfigError(f"workers: must be >= 1, got {self.workers}")
        if not self.policies:
            raise ConfigError("policies: give at least one")
        for rho in self.loads:
            if not rho > 0:
                raise ConfigError(f"load: must be > 0, got {rho}")


def _one_run(cfg: CompareConfig, load: float, seed: int, policy: str) -> dict[str, Any]:
    from hybridsched.policies import make_policy
    from hybridsched.sim import SimConfig, simulate
    from hybridsched.workload import generate

    cluster, workload = generate(cfg.scenario, cfg.tasks, load, seed)
    result = simulate(
        cluster,
        workload,
        make_policy(policy),
        config=SimConfig(decision_interval=cfg.decision_interval, queue=cfg.queue),
        seed=seed,
    )
    s = result.summary
    row = {"scenario": cfg.scenario, "load": load, "seed": seed, "policy": policy}
    for k in (
        "mean_response_s",
        "p95_response_s",
        "p99_response_s",
        "deadline_miss_rate",
        "energy_j",
        "utilization",
        "scheduler_seconds",
    ):
        row[k] = s[k]
    row["miss_rate_p0"] = s["deadline_miss_rate_by_priority"].get("0", 0.0)
    row["sched_us_per_task"] = 1e6 * s["scheduler_seconds"] / s["tasks"]
    return row


def run_compare(
    cfg: CompareConfig, progress: Callable[[int, int], None] | None = None
) -> list[dict[str, Any]]:
    """Run every (load, seed, policy) and return one row of metrics per run."""
    from hybridsched.policies import policy_class

    for p in cfg.policies:
        policy_class(p)  # unknown names fail before any work starts
    jobs = [(rho, s, p) for rho in cfg.loads for s in range(cfg.seeds) for p in cfg.policies]
    rows: list[dict[str, Any]] = []
    if cfg.workers == 1:
        for k, job in enumerate(jobs):
            rows.append(_one_run(cfg, *job))
            if progress:
                progress(k + 1, len(jobs))
    else:
        with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
            futures = [pool.submit(_one_run, cfg, *job) for job in jobs]
            for k, fut in enumerate(as_completed(futures)):
                rows.append(fut.result())
                if progress:
                    progress(k + 1, len(jobs))
    rows.sort(key=lambda r: (r["load"], r["seed"], cfg.policies.index(r["policy"])))
    return rows


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student t)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return float(x.mean()), float("nan")
    half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean()), float(half)


def resolved_config(cfg: CompareConfig) -> dict[str, Any]:
    """The configuration as recorded beside the results."""
    out = asdict(cfg)
    out["version"] = __version__
    return out
