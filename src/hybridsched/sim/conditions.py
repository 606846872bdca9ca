"""Conditions that change during a run: time windows of node speed, latency and bandwidth.

A conditions file (CSV or Parquet; docs/MODEL.md section 12) has one row per
window::

    node,start_s,end_s,speed,latency,bandwidth
    edge-0,100,400,0.5,,
    fog-1,250,,1,3,0.25

* ``node``: a node name of the cluster;
* ``start_s``: when the window opens, s (finite, >= 0);
* ``end_s``: when it closes, s (> ``start_s``; empty or ``inf``: never);
* ``speed``, ``latency``, ``bandwidth``: multipliers of the node's per-core
  speed, of its latency from every region and of its ingress bandwidth while
  the window is open (each > 0; an empty cell or a missing column means 1).

Windows of one node must not overlap; outside every window a node has its
nominal values (the cluster file's). :class:`Conditions` is the validated
value (:meth:`Conditions.from_frame`, :func:`read_conditions`);
:class:`~hybridsched.sim.options_engine.ConditionsHook` applies it during a run.
Schedulers never see it: the view keeps the nominal values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridsched.errors import ConfigError, ValidationError
from hybridsched.model import Cluster, table_rows
from hybridsched.sim.options import _numbers, _plain, _readonly, node_names, time_intervals

CONDITION_COLUMNS: tuple[str, ...] = ("node", "start_s", "end_s", "speed", "latency", "bandwidth")
"""The columns of a conditions file, in the order :meth:`Conditions.to_frame` writes them."""

MULTIPLIERS: tuple[str, ...] = ("speed", "latency", "bandwidth")
"""The multiplier columns (optional: a missing one means 1)."""

MIN_FACTOR = 1e-6
"""Smallest accepted multiplier: below it, times leave what float64 resolves."""
MAX_FACTOR = 1e6
"""Largest accepted multiplier."""


@dataclass(frozen=True, eq=False)
class Conditions:
    """Validated windows: node ``node[k]`` has its speed, latency and bandwidth multiplied
    by ``speed[k]``, ``latency[k]``, ``bandwidth[k]`` on ``[start_s[k], end_s[k])``.

    Rows are sorted by ``(start_s, node)``; windows of one node do not overlap.
    Built by :meth:`from_frame`, :meth:`build` or :func:`read_conditions`, for
    one cluster (its node names are kept and checked when a run starts).
    """

    node: np.ndarray
    """Node index per window, int64."""
    start_s: np.ndarray
    """When each window opens, s."""
    end_s: np.ndarray
    """When it closes, s (inf: never)."""
    speed: np.ndarray
    """Multiplier of the node's per-core speed."""
    latency: np.ndarray
    """Multiplier of the node's latency from every region."""
    bandwidth: np.ndarray
    """Multiplier of the node's ingress bandwidth."""
    node_names: tuple[str, ...]
    """The node names of the cluster the windows were built for."""
    source: str = "<conditions>"
    """Where the windows came from, for messages and the run's record."""

    def __len__(self) -> int:
        return int(self.node.shape[0])

    @classmethod
    def build(
        cls, columns: Mapping[str, Any], cluster: Cluster, source: str = "<conditions>"
    ) -> Conditions:
        """Validate the columns of a conditions table and build the windows.

        Args:
            columns: column name -> values (``node``, ``start_s``, ``end_s`` required;
                ``speed``, ``latency``, ``bandwidth`` optional).
            cluster: the cluster whose node names the ``node`` column uses.
            source: the file name, used in messages.

        Raises:
            ValidationError: naming the source, the row (1-based data rows), the
                column, the value and the rule.
        """
        unknown = [str(c) for c in columns if c not in CONDITION_COLUMNS]
        if unknown:
            raise ValidationError(
                f"{source}: unknown column(s) {', '.join(unknown)}; a conditions file has "
                f"{', '.join(CONDITION_COLUMNS)} (the multipliers are optional)"
            )
        needs = (
            "a conditions file needs node, start_s and end_s (and any of speed, latency, bandwidth)"
        )
        n = table_rows(columns, CONDITION_COLUMNS[:3], columns, needs, source)
        names = node_names(columns["node"], cluster, source)
        pos = {nm: j for j, nm in enumerate(cluster.node_names)}
        node = np.asarray([pos[nm] for nm in names], dtype=np.int64)
        start, end = time_intervals(columns, "start_s", "end_s", source, "until the end")
        factors = {}
        for m in MULTIPLIERS:
            if m not in columns:
                factors[m] = np.ones(n)
                continue
            f = _numbers(columns[m], m, source, empty=1.0)
            bad = ~((f >= MIN_FACTOR) & (f <= MAX_FACTOR))  # NaN is bad too
            if bad.any():
                k = int(np.argmax(bad))
                raise ValidationError(
                    f"{source}: row {k + 1}, column {m}: must be a multiplier > 0 (at least "
                    f"{MIN_FACTOR:g} and at most {MAX_FACTOR:g}; empty: 1), got {_plain(f[k])}"
                )
            factors[m] = f
        # windows of one node must not overlap (touching is fine)
        order = np.lexsort((end, start, node))
        for a, b in zip(order[:-1].tolist(), order[1:].tolist(), strict=True):
            if node[a] == node[b] and start[b] < end[a]:
                raise ValidationError(
                    f"{source}: row {b + 1}: the window of node {names[b]!r} on "
                    f"[{start[b]:g}, {end[b]:g}) overlaps the one at row {a + 1} on "
                    f"[{start[a]:g}, {end[a]:g}); windows of one node must not overlap"
                )
        keep = np.lexsort((node, start))
        return cls(
            node=_readonly(node[keep]),
            start_s=_readonly(start[keep]),
            end_s=_readonly(end[keep]),
            speed=_readonly(factors["speed"][keep]),
            latency=_readonly(factors["latency"][keep]),
            bandwidth=_readonly(factors["bandwidth"][keep]),
            node_names=tuple(cluster.node_names),
            source=source,
        )

    @classmethod
    def from_frame(cls, df: Any, cluster: Cluster, source: str = "<conditions>") -> Conditions:
        """The windows of a pandas DataFrame with the columns of a conditions file.

        Raises:
            ValidationError: as :meth:`build`.
        """
        return cls.build({str(c): df[c].to_numpy() for c in df.columns}, cluster, source)

    def to_frame(self, cluster: Cluster | None = None) -> Any:
        """The windows as a pandas DataFrame with the file's columns (node names).

        ``cluster`` (optional) must be the one the windows were built for.
        """
        import pandas as pd

        if cluster is not None:
            self.check(cluster)
        names = np.asarray(self.node_names, dtype=object)
        return pd.DataFrame(
            {
                "node": names[self.node],
                "start_s": self.start_s,
                "end_s": self.end_s,
                "speed": self.speed,
                "latency": self.latency,
                "bandwidth": self.bandwidth,
            }
        )

    def check(self, cluster: Cluster) -> None:
        """Refuse a cluster other than the one the windows were built for.

        Raises:
            ConfigError: naming the source and the first node that differs.
        """
        if tuple(cluster.node_names) != self.node_names:
            raise ConfigError(
                f"conditions ({self.source}): built for nodes {', '.join(self.node_names[:4])}"
                f"{', ...' if len(self.node_names) > 4 else ''}, not for cluster "
                f"{cluster.name!r}; read the file again with this cluster"
            )

    def change_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """When a node's multipliers change: ``(time, node, factors)``.

        Sorted by ``(time, node)``; ``factors[k]`` (speed, latency, bandwidth)
        are in force on node ``node[k]`` from ``time[k]`` until its next change.
        A window's end gives ones, unless another window of the node opens then.
        """
        pts: list[tuple[float, int, float, float, float]] = []
        for j in np.unique(self.node).tolist():
            rows = np.flatnonzero(self.node == j)  # already sorted by start
            for q, k in enumerate(rows.tolist()):
                pts.append((self.start_s[k], j, self.speed[k], self.latency[k], self.bandwidth[k]))
                nxt = rows[q + 1] if q + 1 < rows.shape[0] else -1
                end = self.end_s[k]
                if end < np.inf and not (nxt >= 0 and self.start_s[nxt] == end):
                    pts.append((end, j, 1.0, 1.0, 1.0))
        pts.sort()
        arr = np.asarray(pts, dtype=np.float64).reshape(-1, 5)
        return arr[:, 0].copy(), arr[:, 1].astype(np.int64), np.ascontiguousarray(arr[:, 2:])


def read_conditions(path: str | os.PathLike[str], cluster: Cluster) -> Conditions:
    """Read and validate a conditions file (CSV or Parquet) for ``cluster``.

    Raises:
        ValidationError: the file is missing or unreadable, or a row breaks a rule
            (the message names the file, the row and the column).
    """
    from hybridsched.io import read_table

    p = Path(path)
    return Conditions.build(read_table(p, refuse_nan=True), cluster, source=str(p))
