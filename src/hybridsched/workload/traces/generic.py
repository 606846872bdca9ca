"""Any CSV (with a header) or Parquet table, with the column mapping given by the user.

``mapping`` names, for each workload field, the source column:

========  ========  ==========================================================
field     needed    meaning
========  ========  ==========================================================
arrival   yes       timestamp: a number in ``time_unit`` or a date-time
duration  one of    service time on the reference node, in ``duration_unit``
work      these     compute demand, GI (used as is)
end       three     end time, same unit as ``arrival``: duration = end - arrival
data      no        input data, MB x ``data_scale`` (default 0)
memory    no        memory needed, MB x ``memory_scale`` (default 0)
priority  no        integer >= 0 (default: param ``priority``, else 0)
group     no        region = stable hash of this column's text mod R
region    no        region index in [0, R) used as is
deadline  no        relative deadline, s (empty: the deadline factor applies)
status    no        rows whose value is not in ``keep_status`` are skipped
========  ========  ==========================================================
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridsched.errors import ConfigError
from hybridsched.workload.traces.common import (
    Chunk,
    Context,
    CsvTraceFormat,
    FileHead,
    Kind,
    Param,
    Records,
    RowFilter,
    hash_ints,
    hash_strings,
    require_number,
    require_time,
)

FIELDS = (
    "arrival",
    "duration",
    "work",
    "end",
    "data",
    "memory",
    "priority",
    "group",
    "region",
    "deadline",
    "status",
)
"""The fields a mapping may name."""

_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


class Generic(CsvTraceFormat):
    """Importer of any table with a user-given column mapping."""

    name = "generic"
    summary = "any CSV (with header) or Parquet table, columns mapped with --map FIELD=COLUMN"
    params: ClassVar[dict[str, Param]] = {
        "time_unit": Param("s", "unit of arrival/end: s, ms, us, ns or datetime", str),
        "duration_unit": Param("s", "unit of duration: s, ms, us or ns", str),
        "data_scale": Param(1.0, "data_mb = data column x this"),
        "memory_scale": Param(1.0, "memory_mb = memory column x this"),
        "keep_status": Param(
            "", "comma-separated status values to keep (with a status column)", str
        ),
        "priority": Param(None, "priority of every task (when no priority column)", int),
    }

    def mismatch(self, head: FileHead, ctx: Context | None) -> str | None:
        if ctx is None:
            return None if head.parquet or _has_header(head) else "it has no header line"
        wanted = [c for c in ctx.options.mapping.values() if c not in head.columns]
        if wanted:
            shown = ", ".join(head.columns[:30]) or "none"
            return f"it has no column(s) {', '.join(wanted)} (its columns: {shown})"
        return None

    def validate(self, ctx: Context) -> None:
        self._columns(ctx)

    def read_columns(self, head: FileHead, ctx: Context) -> dict[str, Kind]:
        return self._columns(ctx)

    def _columns(self, ctx: Context) -> dict[str, Kind]:
        m = dict(ctx.options.mapping)
        p = ctx.params
        unknown = [f for f in m if f not in FIELDS]
        if unknown:
            raise ConfigError(
                f"mapping: unknown field(s) {', '.join(unknown)}; known fields: {', '.join(FIELDS)}"
            )
        if "arrival" not in m:
            raise ConfigError("mapping: the generic format needs arrival=COLUMN")
        given = [f for f in ("duration", "work", "end") if f in m]
        if len(given) != 1:
            raise ConfigError(
                "mapping: give exactly one of duration=COLUMN, work=COLUMN or end=COLUMN, "
                f"got {', '.join(given) or 'none'}"
            )
        if "group" in m and "region" in m:
            raise ConfigError("mapping: give group=COLUMN or region=COLUMN, not both")
        if p["time_unit"] not in (*_UNIT_NS, "datetime"):
            raise ConfigError(
                f"param time_unit: must be one of s, ms, us, ns, datetime, got {p['time_unit']!r}"
            )
        if p["duration_unit"] not in _UNIT_NS:
            raise ConfigError(
                f"param duration_unit: must be one of s, ms, us, ns, got {p['duration_unit']!r}"
            )
        if "status" in m and not _keep_set(p["keep_status"]):
            raise ConfigError("param keep_status: needed with status=COLUMN (values to keep)")
        time_kind: Kind = "time" if p["time_unit"] == "datetime" else "float"
        kinds: dict[str, Kind] = {}
        for f, col in m.items():
            kind: Kind = {
                "arrival": time_kind,
                "end": time_kind,
                "group": "str",
                "status": "str",
            }.get(f, "float")
            if col in kinds and kinds[col] != kind:
                raise ConfigError(f"mapping: column {col!r} is used as both text and number")
            kinds[col] = kind
        return kinds

    def process(self, chunk: Chunk, rows: RowFilter, ctx: Context) -> Records:
        m = ctx.options.mapping
        p = ctx.params
        n_regions = ctx.options.n_regions
        if "status" in m:
            keep_set = pa.array(sorted(_keep_set(p["keep_status"])), pa.string())
            ok = pc.fill_null(pc.is_in(chunk.array(m["status"]), value_set=keep_set), False)
            rows.skip(~ok.to_numpy(zero_copy_only=False), "excluded_status")
        t_ns = self._times(chunk, rows, m["arrival"], p["time_unit"])
        if "work" in m:
            work = require_number(chunk, rows, m["work"])
        elif "duration" in m:
            dur = require_number(chunk, rows, m["duration"])
            work = dur * (_UNIT_NS[p["duration_unit"]] / 1e9) * ctx.options.reference_speed
        else:
            end_ns = self._times(chunk, rows, m["end"], p["time_unit"])
            rows.bad(end_ns < t_ns, m["end"], f"must be >= {m['arrival']} (the arrival)")
            work = (end_ns - t_ns) / 1e9 * ctx.options.reference_speed
        rows.skip(work == 0, "zero_work")
        data = require_number(chunk, rows, m["data"], missing_ok=True) if "data" in m else None
        memory = (
            require_number(chunk, rows, m["memory"], missing_ok=True) if "memory" in m else None
        )
        prio = require_number(chunk, rows, m["priority"], integer=True) if "priority" in m else None
        region = None
        if "region" in m:
            region = require_number(chunk, rows, m["region"], integer=True)
            rows.bad(
                region >= n_regions, m["region"], f"must be an integer in [0, {n_regions})", region
            )
        deadline = None
        if "deadline" in m:
            deadline = require_number(chunk, rows, m["deadline"], missing_ok=True, fill=np.nan)
            rows.bad(deadline == 0, m["deadline"], "must be > 0 (or empty)", deadline)
        keep = np.flatnonzero(rows.alive)
        k = keep.size
        if region is not None:
            key = region[keep].astype(np.uint64)
        elif "group" in m:
            key = hash_strings(chunk.array(m["group"]).take(keep))
        else:
            key = hash_ints(t_ns[keep])
        const_prio = p["priority"] if p["priority"] is not None else 0
        return Records(
            t_ns=t_ns[keep],
            work_gi=work[keep],
            data_mb=np.zeros(k) if data is None else data[keep] * p["data_scale"],
            memory_mb=np.zeros(k) if memory is None else memory[keep] * p["memory_scale"],
            priority=(
                np.full(k, const_prio, np.int64) if prio is None else prio[keep].astype(np.int64)
            ),
            key=key,
            deadline_s=None if deadline is None else deadline[keep],
            rows=keep,
        )

    @staticmethod
    def _times(chunk: Chunk, rows: RowFilter, column: str, unit: str) -> np.ndarray:
        if unit == "datetime":
            return require_time(chunk, rows, column, "must be a date-time YYYY-MM-DD HH:MM:SS[.f]")
        x = require_number(chunk, rows, column, minimum=None)
        with np.errstate(invalid="ignore"):
            ns = np.round(x * _UNIT_NS[unit])
        too_big = np.abs(ns) >= 2.0**62
        rows.bad(too_big, column, f"must be a time in {unit} that fits 64-bit nanoseconds", x)
        return np.where(np.isfinite(ns) & ~too_big, ns, 0).astype(np.int64)


def _keep_set(text: str) -> set[str]:
    return {v.strip() for v in text.split(",") if v.strip()}


def _has_header(head: FileHead) -> bool:
    def number(s: str) -> bool:
        try:
            float(s)
        except ValueError:
            return False
        return True

    return bool(head.columns) and not any(number(c) for c in head.columns)
