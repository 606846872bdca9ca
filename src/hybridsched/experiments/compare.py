"""Head-to-head runs: every scheduler on identical workloads, in parallel processes.

Each (load, seed) pair draws one cluster and workload (or reads the given
files); every policy is simulated on exactly that pair. A scenario with drift
(``iot-drift``) also draws its changing conditions for the pair, and every run
of the pair applies them; a ``--conditions`` file applies to every run instead.
Runs are spread over a process pool (:mod:`hybridsched.experiments.pool`); each
run is deterministic given (scenario, tasks, load, seed, policy), so results do
not depend on the number of workers or their order. Given a results folder
(:class:`hybridsched.experiments.store.ResultsFolder`), each finished run is
saved as it ends and runs already there are not run again (``--resume``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hybridsched import __version__
from hybridsched.errors import ConfigError

if TYPE_CHECKING:
    from hybridsched.experiments.backends import Backend
    from hybridsched.experiments.store import ResultsFolder

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

QUICK: dict[str, Any] = {"tasks": 2_000, "seeds": 3}
"""The ``--quick`` preset: a first look in a few minutes instead of the default's tens."""

WALL_CLOCK_COLUMNS: tuple[str, ...] = ("scheduler_seconds", "sched_us_per_task")
"""Result columns measured in wall-clock time: the only ones that differ between
two runs of the same configuration."""


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
    """Worker processes (with the ray backend: the CPUs of a local Ray started for the run)."""
    backend: str = "local"
    """Where the runs execute: ``local`` (the process pool) or ``ray``
    (:mod:`hybridsched.experiments.backends`); it changes no result."""
    cluster: str | None = None
    """Cluster file, with ``workload`` instead of a scenario."""
    workload: str | None = None
    """Workload file, with ``cluster`` instead of a scenario."""
    focus: str | None = None
    """The policy whose differences to the best other are reported (default: hybrid if run)."""
    policy_args: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per policy, arguments as given with --policy-arg (NAME.KEY=VALUE)."""
    conditions: str | None = None
    """Conditions file (windows of node speed, latency, bandwidth; docs/MODEL.md section
    12) applied to every run; its node names must be the workloads' cluster's. Not with
    a scenario that draws its own conditions (one with drift, e.g. ``iot-drift``)."""
    estimates: str = "auto"
    """The schedulers' estimates: ``auto`` (each policy's ``preferred_estimates``:
    ``observed`` for the hybrid, ``nominal`` for the others), or ``nominal`` or
    ``observed`` in every run (observed: corrected by what completed tasks revealed;
    :attr:`hybridsched.sim.options.SimOptions.estimates`). Each row records its mode."""
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
        from hybridsched.policies.base import check_estimates

        check_estimates(self.estimates)
        if self.backend not in ("local", "ray"):
            raise ConfigError(f"backend: expected local or ray, got {self.backend!r}")
        if not self.policies:
            raise ConfigError("policies: give at least one")
        if len(set(self.policies)) != len(self.policies):
            raise ConfigError(f"policies: each name once, got {', '.join(self.policies)}")
        for rho in self.loads:
            if not rho > 0:
                raise ConfigError(f"load: must be > 0, got {rho}")
        if (self.cluster is None) != (self.workload is None):
            raise ConfigError("--cluster and --workload go together")
        if self.conditions is not None and self.scenario_drifts:
            raise ConfigError(
                f"--conditions {self.conditions}: scenario {self.scenario!r} draws its own "
                "conditions for every load and seed; give --conditions with a scenario "
                "without drift (e.g. iot-default) or with --cluster and --workload"
            )
        if self.focus is not None and self.focus not in self.policies:
            raise ConfigError(f"focus: {self.focus!r} is not among the policies compared")
        for name, args in self.policy_args.items():
            if name not in self.policies:
                key = next(iter(args), "KEY")
                raise ConfigError(
                    f"--policy-arg {name}.{key}: {name!r} is not a policy of this run; "
                    f"the policies run are: {', '.join(self.policies)}"
                )

    @property
    def from_files(self) -> bool:
        """Runs use the given cluster and workload files."""
        return self.workload is not None

    @property
    def scenario_drifts(self) -> bool:
        """Runs apply the conditions the scenario draws for each (load, seed) (its
        ``drift``; :func:`hybridsched.workload.generate_instance`)."""
        from hybridsched.workload import SCENARIOS

        sc = None if self.from_files else SCENARIOS.get(self.scenario)
        return sc is not None and sc.drift is not None

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

    def estimates_of(self, policy: str) -> str:
        """The estimates ``policy``'s runs use (``auto`` resolved to its preference)."""
        from hybridsched.policies import resolve_estimates

        return resolve_estimates(self.estimates, policy)

    def run_loads(self) -> tuple[float, ...]:
        """Loads actually run (one placeholder, nan, for given files)."""
        return (float("nan"),) if self.from_files else self.loads


def _inputs(cfg: CompareConfig, load: float, seed: int) -> tuple[Any, Any, Any]:
    """``(cluster, workload, conditions)`` of one (load, seed); ``conditions`` is a
    :class:`~hybridsched.sim.conditions.Conditions` (the scenario's or the file's) or None."""
    from hybridsched.sim.conditions import Conditions, read_conditions

    if cfg.from_files:
        from hybridsched.io import read_cluster, read_workload

        cluster = read_cluster(cfg.cluster)
        workload = read_workload(cfg.workload, cluster=cluster)
        frame = None
    else:
        from hybridsched.workload import generate_instance

        inst = generate_instance(cfg.scenario, cfg.tasks, load, seed)
        cluster, workload, frame = inst.cluster, inst.workload, inst.conditions
    if cfg.conditions is not None:
        return cluster, workload, read_conditions(cfg.conditions, cluster)
    if frame is None:
        return cluster, workload, None
    where = f"scenario {cfg.scenario}, load {load:g}, seed {seed}"
    return cluster, workload, Conditions.from_frame(frame, cluster, source=where)


def _one_run(
    cfg: CompareConfig, load: float, seed: int, policy: str, inputs: tuple | None = None
) -> dict[str, Any]:
    from hybridsched.policies import make_policy
    from hybridsched.sim import SUMMARY_KEYS, SimConfig, simulate
    from hybridsched.sim.bounds import response_lower_bound

    # inputs: the (cluster, workload, conditions) of (load, seed), when a backend shares them
    cluster, workload, conditions = _inputs(cfg, load, seed) if inputs is None else inputs
    result = simulate(
        cluster,
        workload,
        make_policy(policy, cfg.policy_args.get(policy)),
        config=SimConfig(decision_interval=cfg.decision_interval, queue=cfg.queue),
        options=_options(cfg, conditions, policy),
        seed=seed,
    )
    s = result.summary
    row: dict[str, Any] = {"scenario": cfg.label, "load": load, "seed": seed, "policy": policy}
    row["estimates"] = cfg.estimates_of(policy)
    for k in SUMMARY_KEYS:
        if k != "policy":  # the row names it already
            row[k] = s[k]
    row["miss_rate_p0"] = s["deadline_miss_rate_by_priority"].get("0", 0.0)
    row["sched_us_per_task"] = 1e6 * s["scheduler_seconds"] / s["tasks"]
    # the same for every policy on this workload: no scheduler's mean is below it
    row["bound_mean_response_s"] = (
        float(response_lower_bound(cluster, workload, cfg.decision_interval).mean())
        if nominal_bounds_hold(conditions)
        else float("nan")
    )
    q = np.quantile(result.tasks["response_s"], np.linspace(0.0, 1.0, N_QUANTILES))
    row["response_quantiles"] = q.tolist()
    # plain Python numbers: a row saved as JSON and read back is the same row
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}


def _options(cfg: CompareConfig, conditions: Any, policy: str) -> Any:
    """The simulation options of ``policy``'s run: its estimates under ``cfg``, under
    ``conditions`` (a :class:`~hybridsched.sim.conditions.Conditions` or None)."""
    from hybridsched.sim.options import SimOptions

    return SimOptions(conditions=conditions, estimates=cfg.estimates_of(policy))


def nominal_bounds_hold(conditions: Any) -> bool:
    """Whether the lower bounds computed on the nominal cluster still bound a run under
    ``conditions`` (a :class:`~hybridsched.sim.conditions.Conditions` or None).

    They do when no window makes anything faster: every speed and bandwidth
    multiplier <= 1 and every latency multiplier >= 1. Each task's execution and
    transfer then take at least their nominal time, so any schedule under the
    conditions, replayed on the nominal cluster with the same start times, is a
    nominal schedule with no larger responses. A window that speeds a node up can
    beat the nominal bounds: compare records them as NaN then.
    """
    if conditions is None:
        return True
    return bool(
        np.all(conditions.speed <= 1.0)
        and np.all(conditions.latency >= 1.0)
        and np.all(conditions.bandwidth <= 1.0)
    )


def _capacity_bound(
    cfg: CompareConfig, load: float, seed: int, inputs: tuple | None = None
) -> dict[str, Any]:
    from hybridsched.sim.bounds import capacity_lower_bound

    cluster, workload, conditions = _inputs(cfg, load, seed) if inputs is None else inputs
    value = (
        float(capacity_lower_bound(cluster, workload, cfg.decision_interval))
        if nominal_bounds_hold(conditions)
        else float("nan")
    )
    return {"load": load, "seed": seed, "capacity_bound_mean_response_s": value}


def check_inputs(cfg: CompareConfig) -> None:
    """Fail before any work on an unknown policy, a bad policy argument or a bad file.

    Raises:
        HybridSchedError: the subclass raised by the policy registry or the file reader.
    """
    from hybridsched.policies import make_policy

    for p in cfg.policies:
        make_policy(p, cfg.policy_args.get(p))
        cfg.estimates_of(p)
    if cfg.from_files:
        _inputs(cfg, float("nan"), 0)
    elif cfg.conditions is not None:
        from hybridsched.sim.conditions import read_conditions
        from hybridsched.workload import generate

        # the cluster depends on the seed only: a one-task workload draws it cheaply
        read_conditions(cfg.conditions, generate(cfg.scenario, 1, cfg.loads[0], 0)[0])


def run_key(load: float, seed: int, policy: str | None) -> str:
    """A run's name in a results folder (``policy=None``: the workload's capacity bound)."""
    where = "files" if load != load else f"load{load!r}"
    what = "capacity-bound" if policy is None else "policy-" + re.sub(r"[^\w.-]", "_", policy)
    return f"{where}_seed{seed}_{what}"


def run_compare(
    cfg: CompareConfig,
    progress: Callable[[int, int], None] | None = None,
    store: ResultsFolder | None = None,
    backend: Backend | None = None,
) -> list[dict[str, Any]]:
    """Run every (load, seed, policy); one row of metrics per run, in a stable order.

    With ``cfg.capacity_bound`` each (load, seed) workload also gets its capacity
    lower bound, computed once and recorded in every row of that workload as
    ``capacity_bound_mean_response_s``.

    Args:
        cfg: The experiment.
        progress: Called as ``progress(done, total)`` once before the first run
            (``done`` counts the runs found in ``store``) and after each run.
        store: A results folder: each run is saved there as it ends, and runs
            already saved there are taken as they are instead of run again.
        backend: Where the runs execute (default: the one ``cfg.backend`` names,
            started for this call and closed after it). The rows do not depend
            on it.

    On KeyboardInterrupt the worker processes (or Ray tasks) are stopped at
    once; the runs saved in ``store`` so far stay there.
    """
    from hybridsched.experiments.backends import Shared, make_backend
    from hybridsched.experiments.pool import Job

    check_inputs(cfg)
    pairs = [(rho, s) for rho in cfg.run_loads() for s in range(cfg.seeds)]
    where = "the given workload" if cfg.from_files else "load {:g}"
    # one workload per (load, seed), shared by its runs where the backend can share it
    inputs = {(rho, s): Shared(f"{rho!r}/{s}", _inputs, (cfg, rho, s)) for rho, s in pairs}
    specs = [
        (
            run_key(rho, s, p),
            Job(
                _one_run,
                (cfg, rho, s, p, inputs[rho, s]),
                f"{p} on {where.format(rho)}, seed {s}",
            ),
        )
        for rho, s in pairs
        for p in cfg.policies
    ]
    if cfg.capacity_bound:
        specs += [
            (
                run_key(rho, s, None),
                Job(
                    _capacity_bound,
                    (cfg, rho, s, inputs[rho, s]),
                    f"the capacity bound of {where.format(rho)}, seed {s}",
                ),
            )
            for rho, s in pairs
        ]
    done: dict[str, dict[str, Any]] = {}
    if store is not None:
        saved = store.finished()
        done = {key: saved[key] for key, _ in specs if key in saved}
    todo = [(key, job) for key, job in specs if key not in done]
    if progress:
        progress(len(done), len(specs))

    def finish(key: str, row: dict[str, Any]) -> None:
        if store is not None:
            store.save(key, row)
        done[key] = row
        if progress:
            progress(len(done), len(specs))

    own = backend is None and bool(todo)
    if own:
        backend = make_backend(cfg.backend, cfg.workers)
    try:
        if todo:
            backend.run([job for _, job in todo], lambda k, row: finish(todo[k][0], row))
    finally:
        if own:
            backend.close()
    results = [done[key] for key, _ in specs]
    rows = [r for r in results if "policy" in r]
    bounds = {
        (_nan_key(r["load"]), r["seed"]): r["capacity_bound_mean_response_s"]
        for r in results
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


def resolved_config(cfg: CompareConfig, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """The configuration as recorded beside the results (with the package version,
    ``conditions_from_scenario: true`` when the runs apply the conditions the scenario
    draws, and ``record``: facts of the run, e.g. ``ray_nodes``, the Ray nodes alive
    at its start)."""
    out = asdict(cfg)
    out["loads"] = list(cfg.loads)
    out["policies"] = list(cfg.policies)
    out["version"] = __version__
    out["seeds_used"] = list(range(cfg.seeds))
    # what each policy's runs used (``estimates: auto`` resolves per policy)
    out["estimates_by_policy"] = {p: cfg.estimates_of(p) for p in cfg.policies}
    if cfg.scenario_drifts:
        # only where true: folders of stationary runs keep the keys they had
        out["conditions_from_scenario"] = True
    digests = input_sha256(cfg)
    if digests:
        # the contents the runs read: --resume refuses files changed since
        out["input_sha256"] = digests
    out.update(record or {})
    return out


INPUT_FILES: tuple[str, ...] = ("cluster", "workload", "conditions")
"""The configuration keys that name input files (their contents set the runs' results)."""


def input_sha256(cfg: CompareConfig) -> dict[str, str]:
    """SHA-256 of each input file ``cfg`` names, by key (a file that cannot be read is
    left out: :func:`check_inputs` names it)."""
    out: dict[str, str] = {}
    for key in INPUT_FILES:
        path = getattr(cfg, key)
        if path is None:
            continue
        try:
            st = os.stat(path)
            out[key] = _sha256(os.path.abspath(path), st.st_size, st.st_mtime_ns)
        except OSError:
            continue
    return out


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """A file's SHA-256, once per version of it (its size and change time): a
    comparison records, checks and writes its configuration several times."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def changed_inputs(recorded: dict[str, Any], cfg: CompareConfig) -> list[str]:
    """A sentence per input file whose contents differ from those ``recorded`` (a
    ``config.json``) was made with; none for a folder from before digests were kept."""
    then = recorded.get("input_sha256")
    if not isinstance(then, dict):
        return []
    now = input_sha256(cfg)
    return [
        f"--{key} {getattr(cfg, key)} (sha256 {str(then[key])[:12]}... then, "
        f"{now[key][:12]}... now)"
        for key in INPUT_FILES
        # another path is a changed setting, which config_differences names
        if key in then
        and key in now
        and then[key] != now[key]
        and recorded.get(key) == getattr(cfg, key)
    ]


def config_from_dict(data: dict[str, Any]) -> CompareConfig:
    """Rebuild a configuration recorded by :func:`resolved_config`."""
    keys = {f for f in CompareConfig.__dataclass_fields__}
    kw = {k: v for k, v in data.items() if k in keys}
    kw["loads"] = tuple(kw.get("loads", (0.9,)))
    kw["policies"] = tuple(kw.get("policies", HEURISTICS))
    # folders written before arguments of policies not run were refused
    kw["policy_args"] = {
        k: v for k, v in (kw.get("policy_args") or {}).items() if k in kw["policies"]
    }
    return CompareConfig(**kw)


_RECORD_ONLY = (
    "version",
    "seeds_used",
    "ray_nodes",
    "conditions_from_scenario",
    "estimates_by_policy",
    "input_sha256",
)
"""Keys of config.json that describe a run and set nothing."""


def read_experiment(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an experiment file (YAML or JSON; the keys of the ``config.json`` that
    ``compare`` writes) into :class:`CompareConfig` keyword arguments.

    Only the keys present are returned. ``version`` and ``seeds_used`` are
    accepted (a ``config.json`` is an experiment file) and set nothing;
    ``seeds_used`` must be ``0 .. seeds-1``.

    Raises:
        ConfigError: the file is unreadable, not a mapping, has an unknown key or
            a value of the wrong type, naming the file, the key and the value.
    """
    from hybridsched.policies.args import read_yaml_mapping

    p = Path(path)
    data = read_yaml_mapping(p, str(p), syntax="YAML or JSON")
    return experiment_values(data, str(p))


def experiment_values(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Check a mapping of experiment keys (see :func:`read_experiment`); ``source`` names it."""
    fields = tuple(CompareConfig.__dataclass_fields__)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields and key not in _RECORD_ONLY:
            raise ConfigError(
                f"{source}: unknown key {key!r}; known keys: {', '.join(fields + _RECORD_ONLY)}"
            )

        def bad(rule: str, key: str = key, value: Any = value) -> ConfigError:
            return ConfigError(f"{source}: {key}: expected {rule}, got {value!r}")

        if key == "backend":
            if value not in ("local", "ray"):
                raise bad("local or ray")
            out[key] = value
        elif key in ("scenario", "queue", "estimates"):
            if not isinstance(value, str):
                raise bad("a string")
            out[key] = value
        elif key in ("cluster", "workload", "focus", "conditions"):
            if value is not None and not isinstance(value, str):
                raise bad("a string or null")
            out[key] = value
        elif key in ("tasks", "seeds", "workers"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad("an integer")
            out[key] = value
        elif key == "decision_interval":
            if not _is_number(value):
                raise bad("a number of seconds")
            out[key] = float(value)
        elif key == "capacity_bound":
            if not isinstance(value, bool):
                raise bad("true or false")
            out[key] = value
        elif key == "loads":
            vals = value if isinstance(value, list) else [value]
            if not vals or not all(_is_number(v) for v in vals):
                raise bad("a number or a list of numbers")
            out[key] = tuple(float(v) for v in vals)
        elif key == "policies":
            vals = value.split(",") if isinstance(value, str) else value
            if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
                raise bad("a list of policy names (or one comma-separated string)")
            out[key] = tuple(v.strip() for v in vals if v.strip())
        elif key == "policy_args":
            out[key] = _policy_args_value(value, bad)
        elif key == "seeds_used":
            if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
                raise bad("a list of integers")
    seeds = out.get("seeds", CompareConfig.seeds)
    if "seeds_used" in data and data["seeds_used"] != list(range(seeds)):
        raise ConfigError(
            f"{source}: seeds_used: expected 0 .. seeds-1 = {list(range(seeds))} "
            f"(seeds is {seeds}), got {data['seeds_used']!r}"
        )
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _policy_args_value(value: Any, bad: Callable[[str], ConfigError]) -> dict[str, dict[str, str]]:
    rule = "a mapping of policy to a mapping of argument to value, e.g. {aco: {ants: 8}}"
    if not isinstance(value, dict):
        raise bad(rule)
    out: dict[str, dict[str, str]] = {}
    for name, args in value.items():
        if not isinstance(args, dict):
            raise bad(rule)
        out[str(name)] = {}
        for k, v in args.items():
            if isinstance(v, dict | list) or v is None:
                raise bad(rule)
            out[str(name)][str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
    return out
