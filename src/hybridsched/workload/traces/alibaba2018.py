"""Alibaba cluster-trace-v2018 batch tasks (``batch_task.csv``).

Headerless; one row per task of a batch job: ``task_name, instance_num,
job_name, task_type, status, start_time, end_time, plan_cpu, plan_mem``, times
in seconds, ``plan_cpu`` in hundredths of a core, ``plan_mem`` normalised to
[0, 100] of a machine's memory.

Mapping (docs/TRACES.md): arrival from ``start_time`` (the table has no submit
time); work = (end_time - start_time) x reference speed; memory = plan_mem /
100 x the machine memory; priority = task_type - 1; region from a hash of
``job_name``. Only Terminated tasks become tasks.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hybridsched.workload.traces import common

NAMES = (
    "task_name",
    "instance_num",
    "job_name",
    "task_type",
    "status",
    "start_time",
    "end_time",
    "plan_cpu",
    "plan_mem",
)
"""The columns of batch_task.csv, in file order."""

STATUSES = ("Terminated", "Failed", "Cancelled", "Interrupted", "Running", "Waiting", "Ready")
"""Task statuses in the trace; only Terminated tasks became tasks."""
_OUTCOME = ("", "failed", "cancelled", "cancelled", "incomplete", "incomplete", "incomplete")


class Alibaba2018(common.CsvTraceFormat):
    """Importer of Alibaba cluster-trace-v2018 batch_task.csv."""

    name = "alibaba-2018"
    summary = "Alibaba cluster-trace-v2018 batch_task.csv (headerless batch tasks)"
    names = NAMES
    columns: ClassVar[dict[str, common.Kind]] = {
        "job_name": "str",
        "task_type": "float",
        "status": "str",
        "start_time": "int",
        "end_time": "int",
        "plan_mem": "float",
    }
    params: ClassVar[dict[str, common.Param]] = {
        "machine_memory_mb": common.Param(
            65536.0, "memory of the machine plan_mem is a percentage of, MB"
        ),
        "data_mb": common.Param(0.0, "input data of every task, MB (the table has no size field)"),
        "priority": common.Param(None, "one priority for every task (default: task_type - 1)", int),
    }

    def row_looks_right(self, fields: list[str]) -> bool:
        return (
            len(fields) == 9
            and fields[1].isdigit()
            and fields[5].lstrip("-").isdigit()
            and (fields[6].lstrip("-").isdigit() or fields[6] == "")
            and fields[4].isalpha()
        )

    def process(
        self, chunk: common.Chunk, rows: common.RowFilter, ctx: common.Context
    ) -> common.Records:
        p = ctx.params
        status = common.categories(chunk, rows, "status", STATUSES)
        for code in range(1, len(STATUSES)):
            rows.skip(status == code, _OUTCOME[code])
        start = chunk.ints("start_time")
        end = chunk.ints("end_time")
        for column, values in (("start_time", start), ("end_time", end)):
            rows.bad(chunk.null(column), column, "must be an integer >= 0 (seconds)")
            rows.bad(values < 0, column, "must be an integer >= 0 (seconds)", values)
        rows.bad(end < start, "end_time", "must be >= start_time", end)
        rows.skip(end == start, "zero_duration")
        task_type = common.require_number(chunk, rows, "task_type", minimum=1, integer=True)
        mem = common.require_number(chunk, rows, "plan_mem", missing_ok=True)
        keep = np.flatnonzero(rows.alive)
        priority = common.priorities(p, task_type[keep].astype(np.int64) - 1)
        return common.Records(
            t_ns=start[keep] * 1_000_000_000,
            work_gi=(end[keep] - start[keep]) * ctx.options.reference_speed,
            data_mb=np.full(keep.size, p["data_mb"]),
            memory_mb=mem[keep] / 100.0 * p["machine_memory_mb"],
            priority=priority,
            key=common.hash_strings(chunk.array("job_name").take(keep)),
            rows=keep,
        )
