"""Configuration of the live service (validated once, at the edge)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster
from hybridsched.sim.observations import ESTIMATES


@dataclass(frozen=True)
class ServiceConfig:
    """Everything ``hybridsched serve`` is told."""

    cluster: Cluster
    """The cluster served (node names are the agents' node names)."""
    policy: str = "mct"
    """Scheduler name (every registered policy)."""
    policy_args: dict[str, Any] = field(default_factory=dict)
    """Policy arguments (``--policy-arg``)."""
    decision_interval: float = 0.0
    """Batching interval, model s; 0 decides what is pending as soon as possible."""
    queue: str = "fifo"
    """Queue discipline at the nodes: ``fifo`` or ``priority``."""
    estimates: str = "auto"
    """The view's estimates: ``nominal`` (cluster file) or ``observed`` (corrected by
    what finished and running tasks revealed, docs/SERVICE.md); ``auto`` is resolved
    at construction to the policy's preference (``observed`` for the hybrid, else
    ``nominal``), so the field always holds the mode the decisions use."""
    db_url: str = "sqlite:///hybridsched.db"
    """``sqlite:///PATH`` or ``postgresql://...``."""
    tokens: dict[str, str] = field(default_factory=dict, repr=False)
    """Bearer token -> role (``admin``, ``submit``, ``node:NAME[,NAME...]``, ``node:*``)."""
    time_scale: float = 1.0
    """Model seconds per wall second."""
    heartbeat_timeout_s: float = 10.0
    """Wall seconds without a heartbeat before a node is down."""
    max_retries: int = 3
    """Retries (node loss, failure) before a task is rejected / failed."""
    max_batch: int = 256
    """Most tasks decided in one batch (more due tasks: several decisions at that instant).
    Bounds how long one decision takes (the policy runs in the decision process)."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body accepted, bytes."""
    mqtt_url: str | None = None
    """``mqtt://HOST:PORT`` of a broker, or None."""
    mqtt_topic_root: str = "hybridsched"
    """Topic root: ``<root>/tasks`` in, ``<root>/status/<task_id>`` out."""
    seed: int = 0
    """Seed of the policy's randomness."""
    policy_modules: tuple[str, ...] = ()
    """Extra modules that register policies (imported by the decision process too)."""

    def __post_init__(self) -> None:
        def positive(name: str, v: float) -> None:
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{name}: must be a number > 0, got {v!r}")

        positive("--time-scale", self.time_scale)
        positive("--heartbeat-timeout", self.heartbeat_timeout_s)
        d = self.decision_interval
        if not math.isfinite(d) or d < 0:
            raise ConfigError(f"--decision-interval: must be a number >= 0 (seconds), got {d!r}")
        if self.queue not in ("fifo", "priority"):
            raise ConfigError(f"--queue: must be fifo or priority, got {self.queue!r}")
        if self.estimates not in ESTIMATES:
            from hybridsched.policies import add_policy_module, resolve_estimates

            for m in self.policy_modules:
                add_policy_module(m)  # the policy may be one of theirs
            mode = resolve_estimates(self.estimates, self.policy, "--estimates")
            object.__setattr__(self, "estimates", mode)
        if not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ConfigError(f"--max-batch: must be an integer >= 1, got {self.max_batch!r}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries: must be >= 0, got {self.max_retries!r}")
