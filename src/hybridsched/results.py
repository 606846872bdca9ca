"""Write a simulation result: tasks.parquet (or tasks.csv) and summary.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hybridsched import __version__
from hybridsched.io import arrow_array, atomic_path, write_json
from hybridsched.sim import SimResult


def write_result(
    result: SimResult, out: str | Path, *, csv: bool = False, extra: dict[str, Any] | None = None
) -> None:
    """Write ``result`` into folder ``out`` (created if needed), each file atomically.

    ``summary.json`` also records the package version and ``extra`` (inputs, seed)
    under ``run``.
    """
    import pyarrow as pa

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
    table = pa.Table.from_arrays(
        [arrow_array(cols["task_id"]), node, *(arrow_array(v) for v in rest.values())],
        names=["task_id", "node", *rest],
    )
    target = out / ("tasks.csv" if csv else "tasks.parquet")
    with atomic_path(target) as tmp:
        if csv:
            import pyarrow.csv as pacsv

            table = table.set_column(1, "node", table.column("node").cast(pa.string()))
            pacsv.write_csv(table, str(tmp))
        else:
            import pyarrow.parquet as pq

            # numeric columns gain nothing from dictionary pages; only node names do
            pq.write_table(table, str(tmp), compression="snappy", use_dictionary=["node"])
    summary = dict(result.summary)
    summary["run"] = {"version": __version__, **(extra or {})}
    write_json(summary, out / "summary.json")
