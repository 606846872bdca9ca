"""Import public trace formats into the workload format of docs/MODEL.md.

One importer per format, selected by name from :data:`FORMATS`:

* ``alibaba-genai-2026``: Alibaba GenAI serving requests (lora_request_trace.csv);
* ``azure-llm-2023``: Azure LLM inference trace (TIMESTAMP,ContextTokens,GeneratedTokens);
* ``google-2011``: Google cluster-usage trace v2 task_events (event log);
* ``alibaba-2018``: Alibaba cluster-trace-v2018 batch_task.csv;
* ``generic``: any CSV/Parquet table with a user-given column mapping.

Every importer streams its files in bounded memory and maps each record the
same way (docs/TRACES.md has the per-format details):

* arrival: the record's timestamp minus the earliest kept one, times the time
  scale (given, or chosen so the offered load on a cluster is a target);
* work: duration x reference speed, or tokens x a per-token cost;
* region: a stable hash of a group field, mod the number of regions;
* deadline: deadline factor x the service time on the reference node
  (work / reference speed); no factor, no deadline.

Tasks are sorted by arrival (ties keep file order) and numbered from 0.
Records that are failed or incomplete are skipped and counted by reason; bad
rows too, unless ``strict``, which refuses the first one with its row number.

Example:
    >>> from hybridsched.workload.traces import ImportOptions, import_trace
    >>> wl, report = import_trace(  # doctest: +SKIP
    ...     "azure-llm-2023", ["AzureLLMInferenceTrace_conv.csv"],
    ...     options=ImportOptions(regions=3, deadline_factor=4.0))
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hybridsched.errors import ConfigError, ValidationError
from hybridsched.model import Workload
from hybridsched.workload.traces.alibaba2018 import Alibaba2018
from hybridsched.workload.traces.alibaba_genai import AlibabaGenAI
from hybridsched.workload.traces.azure_llm import AzureLLM
from hybridsched.workload.traces.common import (
    Context,
    FileHead,
    ImportOptions,
    ImportReport,
    Param,
    ProgressFn,
    Records,
    TraceFormat,
    fnv1a64,
    read_head,
    regions_of,
    resolve_params,
)
from hybridsched.workload.traces.generic import Generic
from hybridsched.workload.traces.google2011 import Google2011

__all__ = [
    "FORMATS",
    "ImportOptions",
    "ImportReport",
    "Param",
    "TraceFormat",
    "available_formats",
    "detect_format",
    "fnv1a64",
    "get_format",
    "import_trace",
]

FORMATS: dict[str, TraceFormat] = {
    f.name: f for f in (AlibabaGenAI(), AzureLLM(), Google2011(), Alibaba2018(), Generic())
}
"""The importers, by name."""


def available_formats() -> list[str]:
    """The names of the known formats, in registry order."""
    return list(FORMATS)


def get_format(name: str) -> TraceFormat:
    """The importer called ``name``.

    Raises:
        ConfigError: an unknown name, with the list of known names.
    """
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"format {name!r}: unknown; known formats: {', '.join(FORMATS)}"
        ) from None


def detect_format(path: str | os.PathLike[str], head: FileHead | None = None) -> str | None:
    """The format ``path`` looks like: a specific trace first, else ``generic``, else None.

    Raises:
        ValidationError: the file is missing, empty or unreadable.
    """
    head = head if head is not None else read_head(Path(path))
    for name, fmt in FORMATS.items():
        if name != "generic" and fmt.mismatch(head, None) is None:
            return name
    return "generic" if FORMATS["generic"].mismatch(head, None) is None else None


def import_trace(
    fmt: str,
    files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    options: ImportOptions | None = None,
    progress: ProgressFn | None = None,
) -> tuple[Workload, ImportReport]:
    """Import trace files (read in the given order) as one workload.

    Args:
        fmt: a name from :data:`FORMATS`.
        files: one file or several (e.g. the parts of a split trace).
        options: mapping and scaling options (default: :class:`ImportOptions`).
        progress: receives the number of input bytes consumed, as they are.

    Returns:
        The validated workload and the report of what was read, kept and skipped.

    Raises:
        ConfigError: an unknown format, param or mapping field, or a bad option.
        ValidationError: a missing or unreadable file, a file in another format
            (the message says which one it looks like), a bad row in strict mode
            (with its row and line number), or no task left to import.
    """
    trace = get_format(fmt)
    opts = options if options is not None else ImportOptions()
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = [Path(f) for f in files]
    if not paths:
        raise ConfigError("files: give at least one trace file")
    report = ImportReport(format=trace.name, files=tuple(str(p) for p in paths))
    ctx = Context(opts, resolve_params(trace.name, trace.params, opts.params), report, progress)
    trace.validate(ctx)
    for path in paths:
        _check_format(trace, path, ctx)

    parts: list[Records] = []
    max_memory = float(np.max(opts.cluster.memory_mb)) if opts.cluster is not None else math.inf
    for records in trace.read(paths, ctx):
        records = _drop(
            records, ~(np.isfinite(records.work_gi) & (records.work_gi > 0)), "bad_work", report
        )
        records = _drop(records, records.memory_mb > max_memory, "fits_no_node", report)
        upto = None
        if opts.limit is not None and report.kept + len(records) >= opts.limit:
            need = opts.limit - report.kept
            if records.rows is not None:
                upto = int(records.rows[need - 1]) + 1
            else:
                report.skip("beyond_limit", len(records) - need)
            records = records.take(np.arange(need))
            ctx.full = True
        if records.filter is not None:
            read, merged, skipped = records.filter.counts(upto)
            report.read += read
            report.merged += merged
            for reason, count in skipped.items():
                report.skip(reason, count)
        report.kept += len(records)
        if len(records):
            parts.append(records)
    if report.kept == 0:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(report.skipped.items())) or "none"
        raise ValidationError(
            f"{', '.join(report.files)}: no task to import ({report.read} records read; "
            f"skipped {skipped})"
        )
    return _assemble(parts, opts, trace.name, report), report


def _check_format(trace: TraceFormat, path: Path, ctx: Context) -> None:
    head = read_head(path)
    why = trace.mismatch(head, ctx)
    if why is None:
        return
    guess = detect_format(path, head)
    if guess is not None and guess not in (trace.name, "generic"):
        hint = f"; it looks like format {guess}: use --format {guess}"
    elif guess == "generic" and trace.name != "generic":
        hint = "; it looks like no known trace format (try --format generic with --map)"
    elif guess is None:
        hint = "; it looks like no known trace format"
    else:
        hint = ""
    raise ValidationError(f"{path}: does not match format {trace.name}: {why}{hint}")


def _drop(records: Records, mask: np.ndarray, reason: str, report: ImportReport) -> Records:
    if not mask.any():
        return records
    if records.filter is not None and records.rows is not None:
        rows = np.zeros(records.filter.chunk.n, dtype=bool)
        rows[records.rows[mask]] = True
        records.filter.skip(rows, reason)
    else:
        report.skip(reason, int(mask.sum()))
    return records.take(~mask)


def _time_order(t_ns: np.ndarray) -> np.ndarray | None:
    """Stable order by time (ties keep file order); None when already in order."""
    if bool(np.all(t_ns[1:] >= t_ns[:-1])):
        return None  # the usual case: traces are written in time order
    n = t_ns.shape[0]
    # A stable sort is ~4x slower than numpy's default one; when the times,
    # in units of their resolution, leave room for the row index in 63 bits,
    # sort (time, row) packed into one distinct key instead.
    rel = t_ns - t_ns.min()
    step = int(np.gcd.reduce(rel))
    if step > 0:
        ticks = rel // step
        if (int(ticks.max()) + 1) * n < 2**63:
            return np.argsort(ticks * n + np.arange(n))
    return np.argsort(t_ns, kind="stable")


def _assemble(
    parts: list[Records], opts: ImportOptions, name: str, report: ImportReport
) -> Workload:
    t_ns = np.concatenate([r.t_ns for r in parts])
    rel = (t_ns - t_ns.min()).astype(np.float64) / 1e9
    order = _time_order(t_ns)

    def col(attr: str) -> np.ndarray:
        values = np.concatenate([getattr(r, attr) for r in parts])
        return values if order is None else values[order]

    work = col("work_gi")
    rel = rel if order is None else rel[order]
    span = float(rel[-1])
    total = float(work.sum())
    scale = 1.0
    if opts.time_scale is not None:
        scale = float(opts.time_scale)
    elif opts.target_load is not None:
        if opts.cluster is None or span == 0.0:
            raise ConfigError(
                "target_load: cannot rescale time, every task arrives at the same instant"
            )
        scale = total / span / opts.cluster.capacity_gi_s / opts.target_load
    arrival = rel * scale
    factor = opts.deadline_factor
    deadline = (
        np.full(len(work), np.inf) if factor is None else factor * (work / opts.reference_speed)
    )
    if any(r.deadline_s is not None for r in parts):
        for r in parts:
            if r.deadline_s is None:
                r.deadline_s = np.full(len(r), np.nan)
        explicit = col("deadline_s")
        deadline = np.where(np.isnan(explicit), deadline, explicit)
    columns = {
        "task_id": np.arange(len(work), dtype=np.int64),
        "arrival_s": arrival,
        "region": regions_of(col("key"), opts.n_regions),
        "data_mb": col("data_mb"),
        "work_gi": work,
        "memory_mb": col("memory_mb"),
        "deadline_s": deadline,
        "priority": col("priority"),
    }
    report.time_scale = scale
    report.span_s = float(arrival[-1])
    report.total_work_gi = total
    if opts.cluster is not None and report.span_s > 0:
        report.offered_load = total / report.span_s / opts.cluster.capacity_gi_s
    return Workload.build(columns, cluster=opts.cluster, source=f"{name} import")
