"""Request and response bodies of the API (the OpenAPI document is the contract)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_BATCH = 10_000
"""Most tasks or reports in one request."""


def _finite(v: float | None) -> float | None:
    """A validator: refuse NaN and infinities (Python's JSON parser reads them)."""
    if v is not None and not math.isfinite(v):
        raise ValueError("must be finite")
    return v


class TaskIn(BaseModel):
    """A task: the workload columns of docs/MODEL.md and an optional opaque payload."""

    model_config = ConfigDict(extra="forbid")

    task_id: int = Field(ge=0, le=2**63 - 1, description="Unique id; resubmitting is a no-op")
    arrival_s: float | None = Field(
        default=None, ge=0, description="Arrival, model s; default: when the service receives it"
    )
    region: int = Field(ge=0, description="Source region (gateway) index")
    data_mb: float = Field(ge=0, description="Input data, MB")
    work_gi: float = Field(gt=0, description="Compute demand, GI")
    memory_mb: float = Field(default=0.0, ge=0, description="Memory needed, MB")
    deadline_s: float | None = Field(
        default=None, gt=0, description="Relative deadline, s; null or absent: none"
    )
    priority: int = Field(default=0, ge=0, le=1_000_000, description="Priority class, 0 first")
    payload: Any = Field(default=None, description="Opaque JSON handed to the agent")

    _finite = field_validator("arrival_s", "data_mb", "work_gi", "memory_mb")(_finite)


class SubmitResult(BaseModel):
    """What happened to one submitted task."""

    task_id: int
    status: str
    duplicate: bool = Field(description="The task_id was known; nothing was changed")


class SubmitResponse(BaseModel):
    """The committed result of a submission, one entry per task in request order."""

    results: list[SubmitResult]


class TaskOut(BaseModel):
    """A task's state; every time in model seconds."""

    task_id: int
    status: str
    node: str | None
    arrival_s: float
    region: int
    data_mb: float
    work_gi: float
    memory_mb: float
    deadline_s: float | None
    priority: int
    attempt: int
    retries: int
    decision_s: float | None
    ready_s: float | None
    start_s: float | None
    finish_s: float | None
    observed_s: float | None
    exit_code: int | None
    reason: str | None


class TaskQuery(BaseModel):
    """Ids of tasks to look up together."""

    model_config = ConfigDict(extra="forbid")
    task_ids: list[int] = Field(max_length=MAX_BATCH)


class TaskList(BaseModel):
    """Tasks found (unknown ids are left out)."""

    tasks: list[TaskOut]


class NodeOut(BaseModel):
    """A node's state."""

    name: str
    index: int
    tier: str
    cores: int
    speed: float
    up: bool = Field(description="An agent is attached and heard from, and not drained")
    attached: bool
    drained: bool
    queued: int
    running: int
    last_seen_s_ago: float
    observed_mean_s: float | None = Field(description="Mean observed execution time reported")
    exec_ratio: float | None = Field(
        default=None,
        description="Decayed mean of realized / nominal execution time of finished tasks "
        "(null: none observed)",
    )
    exec_count: int = Field(default=0, description="Finished tasks observed on this node")
    exec_estimate: float = Field(
        default=1.0,
        description="The observed estimate of execution time / nominal now (what "
        "--estimates observed uses): the ratio shrunk towards 1, at least running_ratio",
    )
    running_ratio: float = Field(
        default=0.0,
        description="Largest elapsed / nominal execution time of the running tasks now",
    )


class DrainIn(BaseModel):
    """Drain a node (no new tasks) or undo it."""

    model_config = ConfigDict(extra="forbid")
    drained: bool = True


class NodesIn(BaseModel):
    """The nodes an agent speaks for."""

    model_config = ConfigDict(extra="forbid")
    nodes: list[str] = Field(min_length=1, max_length=100_000)


class LeaseIn(NodesIn):
    """Ask for tasks assigned to these nodes (also a heartbeat)."""

    max_tasks: int = Field(default=1000, ge=1, le=MAX_BATCH)
    wait_s: float = Field(default=0.0, ge=0, le=30, description="Long-poll up to this, wall s")
    resync: bool = Field(
        default=False, description="Also re-deliver tasks delivered before (agent restarted)"
    )


class LeasedTask(BaseModel):
    """A task for a node; reports must carry its ``attempt`` (the lease)."""

    task_id: int
    node: str
    attempt: int
    arrival_s: float
    ready_s: float | None
    start_s: float | None = None
    work_gi: float
    data_mb: float
    memory_mb: float
    region: int
    priority: int
    deadline_abs_s: float | None
    payload: str | None


class LeaseOut(BaseModel):
    """Leased tasks and the clock."""

    time_s: float
    time_scale: float
    queue: str
    tasks: list[LeasedTask]


class ReportIn(BaseModel):
    """One event of a task on a node."""

    model_config = ConfigDict(extra="forbid")
    task_id: int = Field(ge=0)
    node: str
    attempt: int = Field(ge=1)
    kind: Literal["start", "finish", "failure"]
    time_s: float = Field(description="When it happened, model s")
    start_s: float | None = Field(default=None, description="Start, model s (finish reports)")
    observed_s: float | None = Field(default=None, ge=0, description="Observed execution, s")
    exit_code: int | None = None

    _finite = field_validator("time_s", "start_s")(_finite)


class ReportsIn(BaseModel):
    """Reports of an agent, applied in one transaction."""

    model_config = ConfigDict(extra="forbid")
    reports: list[ReportIn] = Field(min_length=1, max_length=MAX_BATCH)


class ReportResult(BaseModel):
    """What happened to one report."""

    task_id: int
    outcome: Literal["ok", "duplicate", "refused"]
    detail: str


class ReportsOut(BaseModel):
    """One result per report, in order."""

    results: list[ReportResult]


class ClusterOut(BaseModel):
    """The cluster and the service's state."""

    time_s: float
    time_scale: float
    policy: str
    policy_args: dict[str, Any]
    decision_interval_s: float
    queue: str
    estimates: str = Field(
        description="The view's estimates: nominal or observed (--estimates auto, the "
        "default, resolved to the policy's preference)"
    )
    counts: dict[str, int]
    nodes_up: int
    nodes: int
    cluster: dict[str, Any] = Field(description="The cluster in the cluster file's format")


class ClockOut(BaseModel):
    """The model clock now."""

    time_s: float = Field(description="Model time now, s")
    time_scale: float = Field(description="Model seconds per wall second")


class Problem(BaseModel):
    """An error."""

    detail: Any
