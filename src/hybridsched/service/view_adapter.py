"""The one place where live state becomes a :class:`~hybridsched.sim.ClusterView`.

The live service keeps plain state; :meth:`LiveState.snapshot` turns it into a
:class:`~hybridsched.sim.view.NodeSnapshot`, and the simulator builds the view
a policy sees from it (``ClusterView.from_snapshot``: the same view it gives
in the same state, docs/VIEW.md), so every registered policy decides live.
"""

from __future__ import annotations

import numpy as np

from hybridsched.model import Cluster
from hybridsched.sim.view import ClusterView, NodeSnapshot, TaskBatch

__all__ = ["NodeSnapshot", "build_view"]


def build_view(
    cluster: Cluster,
    cols: dict[str, np.ndarray],
    snapshot: NodeSnapshot,
    *,
    queue: str = "fifo",
    estimates: str = "nominal",
) -> tuple[TaskBatch, ClusterView]:
    """The batch and the view a policy sees for pending tasks ``cols`` in state ``snapshot``.

    Args:
        cluster: the cluster.
        cols: the batch in decision order (arrival, then task_id): ``task_id``,
            ``arrival_s``, ``region``, ``data_mb``, ``work_gi``, ``memory_mb``,
            ``deadline_abs_s``, ``priority``.
        snapshot: the live node state at the decision time.
        queue: the nodes' queue discipline (``fifo`` or ``priority``).
        estimates: ``nominal`` (the cluster file's speeds and links) or ``observed``
            (corrected by ``snapshot.observations``, as the simulator's
            ``--estimates observed``).
    """
    tasks = TaskBatch.from_columns(**cols)
    return tasks, ClusterView.from_snapshot(
        cluster, tasks, snapshot, queue=queue, estimates=estimates
    )
