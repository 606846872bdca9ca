"""Prometheus metrics of one service (its own registry: no globals)."""

from __future__ import annotations

from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The service's counters, gauges and histograms (names prefixed ``hybridsched_``)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        counter = partial(Counter, registry=r)
        gauge = partial(Gauge, registry=r)
        latency = partial(Histogram, buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = gauge("hybridsched_queue_depth", "Tasks pending a decision")
        self.submitted = counter(
            "hybridsched_tasks_submitted_total", "Tasks accepted (not duplicates)"
        )
        self.decisions = counter(
            "hybridsched_decisions_total", "Decision batches run by the policy"
        )
        self.decision_seconds = latency(
            "hybridsched_decision_seconds", "Time to build the view and run the policy, per batch"
        )
        self.assignments = counter("hybridsched_assignments_total", "Tasks assigned to a node")
        self.transitions = counter(
            "hybridsched_task_transitions_total",
            "Committed task status changes, by new status",
            ["status"],
        )
        self.misses = counter(
            "hybridsched_deadline_misses_total", "Tasks finished after their deadline"
        )
        self.retries = counter(
            "hybridsched_retries_total", "Tasks sent back to pending (node lost, failure)"
        )
        self.nodes_up = gauge("hybridsched_nodes_up", "Nodes that can take tasks")
        self.nodes_down = gauge("hybridsched_nodes_down", "Nodes that cannot")
        self.node_losses = counter(
            "hybridsched_node_losses_total", "Nodes declared down (missed heartbeats)"
        )
        self.db_seconds = latency(
            "hybridsched_db_commit_seconds",
            "Time of one writer transaction (a group of state changes)",
        )
        self.submit_seconds = latency(
            "hybridsched_submit_seconds",
            "Time from receiving a submission to its committed acknowledgement",
        )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
