"""The simulator: engine (event loop, queue disciplines), view and policy protocol, metrics."""

from __future__ import annotations

from hybridsched.sim.engine import QUEUES, Engine, SimConfig, SimResult, simulate
from hybridsched.sim.metrics import SUMMARY_KEYS, summarize
from hybridsched.sim.view import ClusterView, CompiledRun, NodeSnapshot, Policy, TaskBatch

__all__ = [
    "QUEUES",
    "SUMMARY_KEYS",
    "ClusterView",
    "CompiledRun",
    "Engine",
    "NodeSnapshot",
    "Policy",
    "SimConfig",
    "SimResult",
    "TaskBatch",
    "simulate",
    "summarize",
]
