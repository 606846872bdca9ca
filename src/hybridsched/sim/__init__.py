"""The simulator: one entry point (:func:`simulate`), the engine, the view a policy sees, metrics.

See docs/VIEW.md for the view and docs/OPTIONS.md for the options.
"""

from __future__ import annotations

from hybridsched.sim.engine import (
    QUEUES,
    Engine,
    EngineHooks,
    Kernel,
    SimConfig,
    SimResult,
    simulate,
)
from hybridsched.sim.metrics import SUMMARY_KEYS, summarize
from hybridsched.sim.observations import NodeObservations
from hybridsched.sim.options import SimOptions
from hybridsched.sim.view import ClusterView, CompiledRun, NodeSnapshot, Policy, TaskBatch

__all__ = [
    "QUEUES",
    "SUMMARY_KEYS",
    "ClusterView",
    "CompiledRun",
    "Engine",
    "EngineHooks",
    "Kernel",
    "NodeObservations",
    "NodeSnapshot",
    "Policy",
    "SimConfig",
    "SimOptions",
    "SimResult",
    "TaskBatch",
    "simulate",
    "summarize",
]
