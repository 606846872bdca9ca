"""The policy registry, typed policy arguments, and the base of compiled heuristics.

A policy is a class with a ``name``, a one-line description (its docstring's
first line), ``reset(cluster, rng)`` and ``assign(tasks, view) -> nodes``.
Registered by name with :func:`register`; :func:`make_policy` builds one from
its name and ``key=value`` arguments, checking both against what is known.
A policy class may set ``preferred_estimates`` (``nominal``, the default, or
``observed``): the estimates it runs with when a run asks for ``auto`` and its
work estimates are exact (:func:`resolve_estimates`; docs/MODEL.md 12.1).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, get_type_hints

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster
from hybridsched.sim.view import ClusterView, CompiledRun, TaskBatch

_REGISTRY: dict[str, type] = {}
# Policy modules that register themselves on import, loaded on first use so that
# importing the package does not pull in torch or OR-Tools.
_MODULES: tuple[str, ...] = (
    "hybridsched.policies.random",
    "hybridsched.policies.round_robin",
    "hybridsched.policies.least_loaded",
    "hybridsched.policies.olb",
    "hybridsched.policies.met",
    "hybridsched.policies.mct",
    "hybridsched.policies.min_min",
    "hybridsched.policies.max_min",
    "hybridsched.policies.sufferage",
    "hybridsched.policies.edf_mct",
    "hybridsched.policies.energy_aware",
    "hybridsched.policies.rl",
    "hybridsched.policies.aco",
    "hybridsched.policies.hybrid",
    "hybridsched.policies.optimal",
)
_EXTRA_MODULES: list[str] = []

P = TypeVar("P", bound=type)


def register(cls: P) -> P:
    """Class decorator: register a policy class under its ``name``."""
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"policy name {name!r} is registered twice")
    _REGISTRY[name] = cls
    return cls


def add_policy_module(module: str) -> None:
    """Make a module that registers policies known to the registry (loaded lazily)."""
    if module not in _EXTRA_MODULES:
        _EXTRA_MODULES.append(module)


def _load_all() -> None:
    for m in (*_MODULES, *_EXTRA_MODULES):
        try:
            importlib.import_module(m)
        except ModuleNotFoundError as exc:
            if exc.name != m:  # a module that exists but whose dependency is missing
                raise


def available_policies() -> dict[str, str]:
    """Registered policy names with their one-line descriptions, sorted by name."""
    _load_all()
    return {n: _summary(c) for n, c in sorted(_REGISTRY.items())}


def _summary(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def policy_class(name: str) -> type:
    """The class registered under ``name``.

    Raises:
        ConfigError: unknown name, listing the known names.
    """
    _load_all()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"policy: unknown name {name!r}; known policies: {known}")
    return _REGISTRY[name]


ESTIMATE_CHOICES: tuple[str, ...] = ("auto", "nominal", "observed")
"""What a run may ask for as its schedulers' estimates: ``auto`` (each policy's
``preferred_estimates``) or one mode for every policy."""


def preferred_estimates(name: str) -> str:
    """The estimates policy ``name`` runs with under ``auto``: its class's
    ``preferred_estimates``, ``nominal`` when the class sets none.

    Raises:
        ConfigError: unknown policy, or a class whose preference is not a mode.
    """
    mode = getattr(policy_class(name), "preferred_estimates", "nominal")
    if mode not in ESTIMATE_CHOICES[1:]:
        raise ConfigError(
            f"policy {name!r}: preferred_estimates must be nominal or observed, got {mode!r}"
        )
    return mode


def check_estimates(requested: str, option: str = "estimates") -> str:
    """``requested`` if it is one of :data:`ESTIMATE_CHOICES`.

    Raises:
        ConfigError: another value, naming ``option`` and the choices.
    """
    if requested not in ESTIMATE_CHOICES:
        raise ConfigError(
            f"{option}: must be one of {', '.join(ESTIMATE_CHOICES)}, got {requested!r}"
        )
    return requested


def resolve_estimates(
    requested: str, policy: str, option: str = "estimates", *, noisy: bool = False
) -> str:
    """The estimates policy ``policy`` runs with: its preference under ``auto``, else
    ``requested`` (``nominal`` or ``observed``, forced on every policy).

    With ``noisy`` (the run's work estimates carry per-task noise: estimate noise,
    ``SimOptions.estimate_cv``, which also reads a workload's ``work_est_gi`` column)
    ``auto`` is ``nominal`` for every policy: the
    observed correction then follows the noise, not the nodes, and made every
    measured scheduler worse (docs/HYBRID.md, session 17).

    Raises:
        ConfigError: ``requested`` is not a choice (naming ``option``), or the policy
            is unknown.
    """
    if check_estimates(requested, option) == "auto":
        return "nominal" if noisy else preferred_estimates(policy)
    return requested


def policy_params(name: str) -> dict[str, tuple[type, Any, str]]:
    """The arguments a policy takes: name -> (type, default, description)."""
    cls = policy_class(name)
    if not dataclasses.is_dataclass(cls):
        return {}
    hints = get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        out[f.name] = (hints.get(f.name, str), default, f.metadata.get("help", ""))
    return out


def make_policy(name: str, args: Mapping[str, Any] | None = None) -> Any:
    """Build the policy ``name`` with arguments (strings are converted by type).

    Raises:
        ConfigError: unknown policy, unknown argument (listing the valid ones),
            or a value of the wrong type.
    """
    cls = policy_class(name)
    args = dict(args or {})
    params = policy_params(name)
    valid = ", ".join(f"{k} ({_type_name(t)}, default {d!r})" for k, (t, d, _) in params.items())
    unknown = [k for k in args if k not in params]
    if unknown:
        raise ConfigError(
            f"policy {name!r}: unknown argument(s) {', '.join(map(repr, unknown))}; "
            + (f"valid arguments: {valid}" if valid else "it takes no arguments")
        )
    kwargs = {k: _convert(name, k, v, params[k][0], valid) for k, v in args.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"policy {name!r}: {exc}") from None


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", str(t))


def _convert(policy: str, key: str, value: Any, typ: Any, valid: str = "") -> Any:
    if not isinstance(value, str):
        return value
    try:
        if typ is bool:
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if typ in (int, float, str):
            return typ(value)
    except ValueError:
        words = " (true/false, yes/no, on/off or 1/0)" if typ is bool else ""
        raise ConfigError(
            f"policy {policy!r}: argument {key}={value!r} must be of type {_type_name(typ)}"
            + words
            + (f"; valid arguments: {valid}" if valid else "")
        ) from None
    return value


def parse_policy_args(items: list[str] | None) -> dict[str, str]:
    """Parse ``["k=v", ...]`` (the CLI's ``--policy-arg``) into a mapping.

    Raises:
        ConfigError: an item without ``=``.
    """
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--policy-arg: expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


class KernelPolicy:
    """Base of the heuristics whose rule is compiled in :mod:`hybridsched.policies.kernels`.

    ``assign`` runs the rule on copies of the view's projection; ``run_compiled``
    runs the whole simulation in the fused compiled loop. Both give the same
    schedule for the same seed.
    """

    name: ClassVar[str] = ""
    rule: ClassVar[int] = -1

    def __init__(self) -> None:
        self._rng: np.random.Generator = np.random.default_rng(0)
        self._rr = 0
        self._dynpow = np.zeros(0)
        self._inv = np.zeros((2, 0))

    def reset(self, cluster: Cluster, rng: np.random.Generator) -> None:
        """Start a run: keep the generator, rewind the round-robin pointer."""
        self._rng = rng
        self._rr = 0
        self._dynpow = np.ascontiguousarray(
            (cluster.power_max_w - cluster.power_idle_w) / cluster.cores
        )
        self._inv = kernels.node_table(cluster)

    def _draws(self, n: int) -> np.ndarray:
        if self.rule == kernels.RANDOM:
            return self._rng.random(n)
        return np.zeros(n)

    def assign(self, tasks: TaskBatch, view: ClusterView) -> np.ndarray:
        """Place the batch with the compiled rule (tentatively, on copies)."""
        nodes, self._rr = kernels.decide(
            view.compiled,
            tasks.index,
            view.time,
            self.rule,
            self._draws(len(tasks)),
            self._dynpow,
            view.node_table,  # the view's estimates (nominal, or observed)
            self._rr,
            False,
            view.core_free_s.copy(),
            view.core_free_min_s.copy(),
            view.queued_tasks.copy(),
        )
        return nodes

    def run_compiled(self, run: CompiledRun) -> bool:
        """Run the whole simulation in compiled code; returns True."""
        dec, starts = run.batch_bounds()
        u = self._draws(run.n_tasks)
        self._rr = kernels.run_fused(
            run.state, dec, starts, self.rule, u, self._dynpow, self._inv, self._rr
        )
        return True


# Last: the rule modules that kernels imports subclass KernelPolicy (defined above).
from hybridsched.policies import kernels  # noqa: E402
