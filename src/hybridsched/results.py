"""Write a simulation result: tasks, per-node totals, summary and an optional timeline.

Files in the output folder (each run owns them; see :data:`RESULT_FILES`):

* ``tasks.parquet`` (or ``tasks.csv``): one row per task.
* ``summary.json``: the run's figures, the package version and the inputs, and
  under ``nodes`` one record per node: tasks, busy core-seconds, utilization,
  energy (:func:`node_totals`).
* ``timeline.parquet`` (or ``.csv``) and ``timeline.png``, on request: per node,
  utilization, queue length and power sampled on a fixed step (:func:`timeline`).

All files of a run are written to temporary files first and renamed together,
so a failed write leaves none of them; files of an earlier run in the same
folder that this run does not write (the other format, an old timeline) are removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hybridsched import __version__
from hybridsched.errors import ConfigError
from hybridsched.io import arrow_array, atomic_paths
from hybridsched.model import Cluster
from hybridsched.sim import SimResult

RESULT_FILES: tuple[str, ...] = (
    "tasks.parquet",
    "tasks.csv",
    "summary.json",
    "timeline.parquet",
    "timeline.csv",
    "timeline.png",
)
"""Every file a ``simulate`` run may write into its folder."""

TIMELINE_SAMPLES = 200
"""Samples of the timeline when no step is given: the makespan / this."""


def write_result(
    result: SimResult,
    out: str | Path,
    *,
    csv: bool = False,
    extra: dict[str, Any] | None = None,
    cluster: Cluster | None = None,
    timeline_step: float | None = None,
) -> list[Path]:
    """Write ``result`` into folder ``out`` (created if needed); return the files written.

    ``summary.json`` also records the package version and ``extra`` (inputs, seed)
    under ``run``. With ``cluster``, the per-node totals go under ``nodes``; with ``cluster``
    and ``timeline_step`` (s; 0: the makespan / :data:`TIMELINE_SAMPLES`), the
    timeline table and its plot.

    Raises:
        OutputError: a file cannot be written; none of the new files is left.
    """
    import json

    import pyarrow as pa

    from hybridsched.io import _json_default

    out = Path(out)
    suffix = ".csv" if csv else ".parquet"
    tables: dict[str, Any] = {"tasks" + suffix: _tasks_table(result)}
    plot = None
    if cluster is not None and timeline_step is not None:
        tl = timeline(result, cluster, timeline_step)
        tables["timeline" + suffix] = _table(tl)
        plot = tl
    summary = dict(result.summary)
    summary["run"] = {"version": __version__, **(extra or {})}
    if cluster is not None:
        totals = node_totals(result, cluster)
        summary["nodes"] = [
            {k: _plain(v[j]) for k, v in totals.items()} for j in range(cluster.n_nodes)
        ]
    names = [*tables, "summary.json"] + (["timeline.png"] if plot is not None else [])
    paths = [out / n for n in names]
    # the run owns these names: an earlier run's other format or old timeline would mislead
    stale = [out / name for name in RESULT_FILES if name not in names]
    with atomic_paths(paths, remove=stale) as tmps:
        for table, tmp in zip(tables.values(), tmps, strict=False):
            if csv:
                import pyarrow.csv as pacsv

                for i, f in enumerate(table.schema):
                    if pa.types.is_dictionary(f.type):
                        table = table.set_column(i, f.name, table.column(i).cast(pa.string()))
                pacsv.write_csv(table, str(tmp))
            else:
                import pyarrow.parquet as pq

                dictionary = [
                    f.name
                    for f in table.schema
                    if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type)
                ]
                # numeric columns gain nothing from dictionary pages; node and tier names do
                pq.write_table(table, str(tmp), compression="snappy", use_dictionary=dictionary)
        text = json.dumps(summary, indent=2, default=_json_default) + "\n"
        tmps[len(tables)].write_text(text)
        if plot is not None:
            plot_timeline(plot, cluster, tmps[-1])
    return paths


def _tasks_table(result: SimResult) -> Any:
    import pyarrow as pa

    cols = dict(result.tasks)
    names = cols.pop("node")
    index = cols["node_index"]
    placed = index >= 0  # a task rejected under failures has no node (index -1): null
    # dictionary-encode node names: one string per node used, not per task
    used = np.flatnonzero(np.bincount(index[placed], minlength=1))
    first = np.full(used[-1] + 1 if used.size else 1, -1, dtype=np.int64)
    first[index[placed][::-1]] = np.flatnonzero(placed)[::-1]  # first task on each node
    dictionary = arrow_array(np.array([str(names[first[u]]) for u in used], dtype=object))
    lookup = np.zeros(first.shape[0], dtype=np.int32)
    lookup[used] = np.arange(used.size, dtype=np.int32)
    codes = np.where(placed, lookup[np.maximum(index, 0)], 0).astype(np.int32)
    node = pa.DictionaryArray.from_arrays(
        arrow_array(codes, None if placed.all() else placed), dictionary
    )
    rest = {k: v for k, v in cols.items() if k != "task_id"}
    return pa.Table.from_arrays(
        [arrow_array(cols["task_id"]), node, *(arrow_array(v) for v in rest.values())],
        names=["task_id", "node", *rest],
    )


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _table(columns: dict[str, np.ndarray]) -> Any:
    import pyarrow as pa

    return pa.Table.from_arrays(
        [arrow_array(np.asarray(v)) for v in columns.values()], names=list(columns)
    )


def _placed(result: SimResult) -> tuple[np.ndarray, ...]:
    """node, decision, start, finish of the tasks that ran (rejected ones left out)."""
    t = result.tasks
    node = np.asarray(t["node_index"])
    start = np.asarray(t["start_s"], dtype=np.float64)
    finish = np.asarray(t["finish_s"], dtype=np.float64)
    ok = (node >= 0) & np.isfinite(start) & np.isfinite(finish)
    dec = np.asarray(t["decision_s"], dtype=np.float64)
    return node[ok], dec[ok], start[ok], finish[ok]


def node_totals(result: SimResult, cluster: Cluster) -> dict[str, np.ndarray]:
    """Per node: tasks run, busy core-seconds and energy, over the run's span.

    ``busy_core_s`` is the sum of ``finish - start`` of the node's tasks (one core
    each). ``energy_j = idle_w x span + (max_w - idle_w) x busy_core_s / cores``
    with ``span`` from the first arrival to the last finish: SPEC's energy per
    node, whose sum is the summary's ``energy_j`` in the base model. Under
    failures the node is counted up for the whole span (an upper bound; work
    lost to a failure is not counted as busy).
    """
    node, _, start, finish = _placed(result)
    n = cluster.n_nodes
    arrival = np.asarray(result.tasks["arrival_s"], dtype=np.float64)
    t0 = float(arrival.min()) if arrival.size else 0.0
    span = float(finish.max()) - t0 if finish.size else 0.0
    tasks = np.bincount(node, minlength=n)
    busy = np.bincount(node, weights=finish - start, minlength=n)
    dyn = (cluster.power_max_w - cluster.power_idle_w) * busy / cluster.cores
    return {
        "node": np.asarray(cluster.node_names, dtype=object),
        "tier": np.asarray(cluster.tiers, dtype=object),
        "tasks": tasks.astype(np.int64),
        "busy_core_s": busy,
        "utilization": busy / (cluster.cores * span) if span > 0 else np.zeros(n),
        "energy_j": cluster.power_idle_w * span + dyn,
    }


def timeline(result: SimResult, cluster: Cluster, step_s: float = 0.0) -> dict[str, np.ndarray]:
    """Per node, utilization, queue length and power at ``t0, t0 + step, ...``.

    Computed after the run from each task's decision, start and finish times: at
    sample time ``t`` a task is *running* on its node when ``start <= t < finish``
    and *queued* when ``decision <= t < start`` (placed, its data in transit or
    waiting for a core). ``utilization = running / cores``, ``power_w = idle +
    (max - idle) x running / cores``. Samples run from the first arrival ``t0``
    to the last finish (included when it falls on the grid).

    Args:
        result: a simulation result.
        cluster: the cluster it ran on.
        step_s: sampling step, s; 0 picks the makespan / :data:`TIMELINE_SAMPLES`.

    Returns:
        Long-format columns ``time_s, node, tier, running, utilization, queue, power_w``,
        sorted by time then node order.

    Raises:
        ConfigError: ``step_s`` negative or not finite, or more than 10 million rows.
    """
    if not (np.isfinite(step_s) and step_s >= 0):
        raise ConfigError(f"--timeline-step: must be a finite number of seconds >= 0, got {step_s}")
    node, dec, start, finish = _placed(result)
    arrival = np.asarray(result.tasks["arrival_s"], dtype=np.float64)
    t0 = float(arrival.min())
    t1 = float(finish.max()) if finish.size else t0
    span = t1 - t0
    step = step_s if step_s > 0 else (span / TIMELINE_SAMPLES if span > 0 else 1.0)
    n_samples = int(np.floor(span / step)) + 1
    n = cluster.n_nodes
    if n_samples * n > 10_000_000:
        raise ConfigError(
            f"--timeline-step {step_s:g}: {n_samples:,} samples x {n} nodes is more than "
            f"10,000,000 rows; use a step of at least {span * n / 10_000_000:.3g} s"
        )
    times = t0 + step * np.arange(n_samples)

    def count(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        # tasks with lo <= t < hi at each sample t: +1 from the first sample >= lo,
        # -1 from the first sample >= hi
        a = np.searchsorted(times, lo, side="left")
        b = np.searchsorted(times, hi, side="left")
        diff = np.zeros((n, n_samples + 1), dtype=np.int64)
        np.add.at(diff, (node, a), 1)
        np.add.at(diff, (node, b), -1)
        return np.cumsum(diff, axis=1)[:, :n_samples]

    running = count(start, finish)
    queued = count(dec, start)
    cores = cluster.cores[:, None].astype(np.float64)
    util = running / cores
    power = (
        cluster.power_idle_w[:, None] + (cluster.power_max_w - cluster.power_idle_w)[:, None] * util
    )
    return {
        "time_s": np.repeat(times, n),
        "node": np.tile(np.asarray(cluster.node_names, dtype=object), n_samples),
        "tier": np.tile(np.asarray(cluster.tiers, dtype=object), n_samples),
        "running": running.T.reshape(-1),
        "utilization": util.T.reshape(-1),
        "queue": queued.T.reshape(-1),
        "power_w": power.T.reshape(-1),
    }


def plot_timeline(tl: dict[str, np.ndarray], cluster: Cluster, path: Path) -> None:
    """Plot a :func:`timeline`: mean utilization, total queue and total power per tier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = cluster.n_nodes
    times = tl["time_s"][::n]
    tiers = np.asarray(cluster.tiers, dtype=object)
    groups = [t for t in dict.fromkeys(cluster.tiers)] or [""]
    fig, axes = plt.subplots(3, 1, figsize=(9, 7.5), sharex=True)
    util = tl["utilization"].reshape(-1, n)
    queue = tl["queue"].reshape(-1, n)
    power = tl["power_w"].reshape(-1, n)
    for g in groups:
        sel = tiers == g
        label = g or "all nodes"
        axes[0].plot(times, util[:, sel].mean(axis=1), label=label)
        axes[1].plot(times, queue[:, sel].sum(axis=1), label=label)
        axes[2].plot(times, power[:, sel].sum(axis=1) / 1e3, label=label)
    axes[0].set_ylabel("mean utilization")
    axes[1].set_ylabel("tasks queued")
    axes[2].set_ylabel("power, kW")
    axes[2].set_xlabel("time, s")
    axes[0].legend(loc="upper right", fontsize="small")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("per-tier timeline (per node: timeline.parquet)")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
