"""Prometheus metrics of one service (its own registry: no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The service's counters, gauges and histograms (names prefixed ``hybridsched_``)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.queue_depth = Gauge("hybridsched_queue_depth", "Tasks pending a decision", registry=r)
        self.submitted = Counter(
            "hybridsched_tasks_submitted_total", "Tasks accepted (not duplicates)", registry=r
        )
        self.decisions = Counter(
            "hybridsched_decisions_total", "Decision batches run by the policy", registry=r
        )
        self.decision_seconds = Histogram(
            "hybridsched_decision_seconds",
            "Time to build the view and run the policy, per batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.assignments = Counter(
            "hybridsched_assignments_total", "Tasks assigned to a node", registry=r
        )
        self.transitions = Counter(
            "hybridsched_task_transitions_total",
            "Committed task status changes, by new status",
            ["status"],
            registry=r,
        )
        self.misses = Counter(
            "hybridsched_deadline_misses_total", "Tasks finished after their deadline", registry=r
        )
        self.retries = Counter(
            "hybridsched_retries_total",
            "Tasks sent back to pending (node lost, failure)",
            registry=r,
        )
        self.nodes_up = Gauge("hybridsched_nodes_up", "Nodes that can take tasks", registry=r)
        self.nodes_down = Gauge("hybridsched_nodes_down", "Nodes that cannot", registry=r)
        self.node_losses = Counter(
            "hybridsched_node_losses_total", "Nodes declared down (missed heartbeats)", registry=r
        )
        self.db_seconds = Histogram(
            "hybridsched_db_commit_seconds",
            "Time of one writer transaction (a group of state changes)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.submit_seconds = Histogram(
            "hybridsched_submit_seconds",
            "Time from receiving a submission to its committed acknowledgement",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
