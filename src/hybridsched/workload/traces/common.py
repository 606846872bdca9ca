"""Shared mapping machinery of the trace importers.

An importer turns the records of a public trace into the columns of docs/MODEL.md's
workload format. What every importer shares lives here:

* :class:`ImportOptions` (what the user asked for) and :class:`ImportReport`
  (what happened: records read, kept, merged and skipped by reason);
* :class:`Param` and :func:`resolve_params`, the per-format mapping constants;
* stable hashes (:func:`fnv1a64`, :func:`hash_strings`, :func:`hash_ints`)
  that map a group field to a region identically on every run and machine
  (Python's ``hash`` is salted per process, so it is not used);
* :class:`Records`, the tasks kept from one chunk, in the model's units;
* :class:`TraceFormat` and :class:`CsvTraceFormat`, the interface of one
  importer, and the column helpers (:func:`require_number`,
  :func:`require_time`, :func:`categories`) that check a column and mark its
  bad cells on the chunk's :class:`~hybridsched.workload.traces.reader.RowFilter`.

Reading files (streaming, typing, per-row accounting) is in
:mod:`hybridsched.workload.traces.reader`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster
from hybridsched.workload.traces.reader import (
    DEFAULT_BLOCK_SIZE,
    Chunk,
    FileHead,
    Kind,
    ProgressFn,
    RowFilter,
    blank_rows,
    iter_table,
    read_head,
)

__all__ = [
    "Chunk",
    "Context",
    "CsvTraceFormat",
    "FileHead",
    "ImportOptions",
    "ImportReport",
    "Kind",
    "Param",
    "ProgressFn",
    "Records",
    "RowFilter",
    "TraceFormat",
    "categories",
    "fnv1a64",
    "hash_ints",
    "hash_strings",
    "read_head",
    "regions_of",
    "require_number",
    "require_time",
    "resolve_params",
]

# --------------------------------------------------------------------------- options / report


@dataclass(frozen=True)
class ImportOptions:
    """What to import and how to map it; validated when built.

    ``time_scale`` and ``target_load`` are exclusive; ``target_load`` needs a
    ``cluster``.
    """

    regions: int | None = None
    """Number of source regions R; default: the cluster's, else 1."""
    reference_speed: float = 1.0
    """Speed of one core of the reference node, GI/s: work = duration x this."""
    deadline_factor: float | None = None
    """Deadline = factor x service time on the reference node; None: no deadline."""
    time_scale: float | None = None
    """Multiply every arrival (relative to the first) by this; None: 1."""
    target_load: float | None = None
    """Rescale time so the offered load on ``cluster`` is this (sum work / span / capacity)."""
    cluster: Cluster | None = None
    """When given: regions default to its count, tasks that fit no node are skipped."""
    limit: int | None = None
    """Keep at most this many tasks: the first ones kept, in file order."""
    strict: bool = False
    """Refuse the first bad row (with its row number) instead of skipping it."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Per-format mapping constants (see each format's ``params``); strings are converted."""
    mapping: Mapping[str, str] = field(default_factory=dict)
    """Column mapping for the ``generic`` format: field -> source column."""
    block_size: int = DEFAULT_BLOCK_SIZE
    """Bytes of CSV text per streamed block."""

    def __post_init__(self) -> None:
        if self.regions is not None and (
            isinstance(self.regions, bool) or not isinstance(self.regions, int) or self.regions < 1
        ):
            raise ConfigError(f"regions: must be an integer >= 1, got {self.regions!r}")
        _positive("reference_speed", self.reference_speed)
        if self.deadline_factor is not None:
            _positive("deadline_factor", self.deadline_factor)
        if self.time_scale is not None:
            _positive("time_scale", self.time_scale)
        if self.target_load is not None:
            _positive("target_load", self.target_load)
            if self.cluster is None:
                raise ConfigError("target_load: needs a cluster (its capacity defines the load)")
        if self.time_scale is not None and self.target_load is not None:
            raise ConfigError("time_scale and target_load: give one or the other, not both")
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1
        ):
            raise ConfigError(f"limit: must be an integer >= 1, got {self.limit!r}")
        if not isinstance(self.block_size, int) or self.block_size < 256:
            raise ConfigError(f"block_size: must be an integer >= 256, got {self.block_size!r}")
        if (
            self.cluster is not None
            and self.regions is not None
            and self.regions != self.cluster.n_regions
        ):
            raise ConfigError(
                f"regions: {self.regions} differs from the cluster's {self.cluster.n_regions} "
                "regions; leave it out to use the cluster's"
            )

    @property
    def n_regions(self) -> int:
        """The number of regions tasks are spread over."""
        if self.regions is not None:
            return self.regions
        return self.cluster.n_regions if self.cluster is not None else 1


def _positive(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name}: must be a finite number > 0, got {value!r}")


@dataclass
class ImportReport:
    """What an import did; every record read is counted exactly once.

    ``read == kept + merged + sum(skipped.values())``.
    """

    format: str
    """The format's registry name."""
    files: tuple[str, ...]
    """The input files, in reading order."""
    read: int = 0
    """Records (data rows) read; blank lines are not records."""
    kept: int = 0
    """Tasks written."""
    merged: int = 0
    """Rows folded into another record (event logs: a task's SCHEDULE/FINISH rows)."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Records not kept, by reason (``bad_<field>`` for bad values, else a filter name)."""
    time_scale: float = 1.0
    """Factor applied to arrivals (from ``time_scale`` or ``target_load``)."""
    span_s: float = 0.0
    """Last arrival after scaling, s (the first is 0)."""
    total_work_gi: float = 0.0
    """Sum of work over kept tasks, GI."""
    offered_load: float | None = None
    """total_work_gi / span_s / cluster capacity, when a cluster was given."""

    def skip(self, reason: str, count: int) -> None:
        """Count ``count`` records skipped for ``reason``."""
        if count:
            self.skipped[reason] = self.skipped.get(reason, 0) + int(count)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values."""
        return {
            "format": self.format,
            "files": list(self.files),
            "read": self.read,
            "kept": self.kept,
            "merged": self.merged,
            "skipped": dict(sorted(self.skipped.items())),
            "time_scale": self.time_scale,
            "span_s": self.span_s,
            "total_work_gi": self.total_work_gi,
            "offered_load": self.offered_load,
        }


# --------------------------------------------------------------------------- params


@dataclass(frozen=True)
class Param:
    """One mapping constant of a format, overridable with ``params``."""

    default: float | int | str | None
    """Value when not given (None: not used unless given)."""
    doc: str
    """One line: meaning and unit."""
    kind: type = float
    """``float``, ``int`` or ``str``."""
    minimum: float | None = 0.0
    """Smallest accepted value for numbers (inclusive); None: any."""


def resolve_params(fmt: str, spec: Mapping[str, Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Merge user values into a format's defaults, converting and checking them.

    Raises:
        ConfigError: an unknown name (with the known ones) or a bad value.
    """
    out = {k: p.default for k, p in spec.items()}
    for name, raw in given.items():
        if name not in spec:
            known = ", ".join(sorted(spec)) or "none"
            raise ConfigError(f"param {name!r}: unknown for format {fmt}; known params: {known}")
        p = spec[name]
        if p.kind is str:
            out[name] = str(raw)
            continue
        try:
            if isinstance(raw, bool):
                raise ValueError
            value = p.kind(raw) if p.kind is float else _to_int(raw)
        except (TypeError, ValueError):
            raise ConfigError(
                f"param {name}: must be {'an integer' if p.kind is int else 'a number'}, "
                f"got {raw!r}"
            ) from None
        if not math.isfinite(value) or (p.minimum is not None and value < p.minimum):
            raise ConfigError(
                f"param {name}: must be a finite number >= {p.minimum:g}, got {raw!r}"
            )
        out[name] = value
    return out


def _to_int(raw: Any) -> int:
    f = float(raw)
    if not f.is_integer():
        raise ValueError
    return int(f)


# --------------------------------------------------------------------------- hashing


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def fnv1a64(text: str) -> int:
    """64-bit FNV-1a of the UTF-8 bytes of ``text`` (the reference for :func:`hash_strings`)."""
    h = 0xCBF29CE484222325
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def hash_strings(values: pa.Array) -> np.ndarray:
    """Stable 64-bit hash of each value's text (FNV-1a of its UTF-8 bytes); null hashes as "".

    Vectorized over the values, one byte position at a time (so the cost is
    about n x the longest value, with no per-row Python loop). Values that
    are not text are hashed as their text form (``pyarrow`` cast to string).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.large_string())
    if values.null_count:
        values = pc.fill_null(values, "")
    n = len(values)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    if n == 0:
        return h
    bufs = values.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[values.offset : values.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(1, np.uint8)
    start = offsets[:-1]
    length = offsets[1:] - start
    longest = int(length.max())
    dense = min(longest, 32)
    last = max(data.shape[0] - 1, 0)
    with np.errstate(over="ignore"):
        for pos in range(dense):
            byte = data[np.minimum(start + pos, last)]
            np.copyto(h, (h ^ byte) * _FNV_PRIME, where=length > pos)
        live = np.flatnonzero(length > dense)  # the rare long values, sparsely
        pos = dense
        while live.size:
            h[live] = (h[live] ^ data[start[live] + pos]) * _FNV_PRIME
            pos += 1
            live = live[length[live] > pos]
    return h


def hash_ints(values: np.ndarray) -> np.ndarray:
    """Stable 64-bit hash of integers (the splitmix64 finalizer), vectorized."""
    with np.errstate(over="ignore"):
        z = np.asarray(values).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def regions_of(keys: np.ndarray, n_regions: int) -> np.ndarray:
    """Region index of each hashed group key: ``key mod R``."""
    return (keys % np.uint64(n_regions)).astype(np.int64)


# --------------------------------------------------------------------------- records


RECORD_COLUMNS = (
    "t_ns",
    "work_gi",
    "data_mb",
    "memory_mb",
    "priority",
    "key",
    "deadline_s",
    "rows",
)
"""The per-task fields of :class:`Records` (``deadline_s`` and ``rows`` may be None)."""


@dataclass
class Records:
    """The tasks kept from one chunk, in the model's units, before time shifting.

    ``rows`` (chunk-relative row of each task, ascending) lets the importer cut
    the report exactly at ``limit``; event logs, whose tasks span chunks, leave
    it None.
    """

    t_ns: np.ndarray
    """Absolute arrival time, int64 ns (any epoch; only differences matter)."""
    work_gi: np.ndarray
    """Compute demand, GI."""
    data_mb: np.ndarray
    """Input data, MB."""
    memory_mb: np.ndarray
    """Memory needed, MB."""
    priority: np.ndarray
    """Priority class, int64, 0 most urgent."""
    key: np.ndarray
    """Stable 64-bit hash of the group field; region = key mod R."""
    deadline_s: np.ndarray | None = None
    """Explicit relative deadlines, s (NaN: use the deadline factor); None: all NaN."""
    rows: np.ndarray | None = None
    """Chunk-relative row index of each task, ascending; None for event logs."""
    filter: RowFilter | None = None
    """The chunk's row accounting, committed to the report by the importer."""

    def __len__(self) -> int:
        return int(self.t_ns.shape[0])

    def take(self, index: np.ndarray) -> Records:
        """The tasks at ``index`` (boolean mask or integer array); the chunk's ``filter`` stays."""
        cols = {c: getattr(self, c) for c in RECORD_COLUMNS}
        return replace(self, **{c: v[index] for c, v in cols.items() if v is not None})

    @classmethod
    def empty(cls, filter: RowFilter | None = None) -> Records:
        """No task (a chunk where every row was skipped or merged)."""
        f = np.zeros(0, np.float64)
        i = np.zeros(0, np.int64)
        return cls(i, f, f, f, i, np.zeros(0, np.uint64), rows=i, filter=filter)


# --------------------------------------------------------------------------- formats


@dataclass
class Context:
    """What an importer needs while reading: options, resolved params, the report."""

    options: ImportOptions
    """The user's options."""
    params: dict[str, Any]
    """The format's params, defaults merged with the user's."""
    report: ImportReport
    """Counts so far (event logs count resolved records here directly)."""
    progress: ProgressFn | None = None
    """Receives bytes consumed."""
    full: bool = False
    """Set by the importer once ``limit`` tasks are kept: stop reading."""


class TraceFormat(ABC):
    """One public trace format: how to recognise it and how to map its records."""

    name: ClassVar[str]
    """Registry name, e.g. ``azure-llm-2023``."""
    summary: ClassVar[str]
    """One line: what the trace is."""
    params: ClassVar[Mapping[str, Param]] = {}
    """Mapping constants with defaults (see docs/TRACES.md)."""

    def validate(self, ctx: Context) -> None:  # noqa: B027 - optional hook, no-op by default
        """Check the options for this format before any file is read.

        Raises:
            ConfigError: an option this format cannot use.
        """

    @abstractmethod
    def mismatch(self, head: FileHead, ctx: Context | None) -> str | None:
        """None when ``head`` looks like this format, else why not (for messages)."""

    @abstractmethod
    def read(self, files: Sequence[Path], ctx: Context) -> Iterator[Records]:
        """Yield the kept tasks chunk by chunk; stop early once ``ctx.full``."""


class CsvTraceFormat(TraceFormat):
    """A format whose rows map one-to-one to tasks, read chunk by chunk."""

    header: ClassVar[tuple[str, ...] | None] = None
    """Required header columns (headered formats)."""
    names: ClassVar[tuple[str, ...] | None] = None
    """Column names of a headerless format."""
    columns: ClassVar[Mapping[str, Kind]] = {}
    """Columns read and their kinds."""
    optional: ClassVar[frozenset[str]] = frozenset()
    """Columns that may be absent from the header (treated as empty)."""

    def mismatch(self, head: FileHead, ctx: Context | None) -> str | None:
        if head.parquet:
            return "it is a Parquet file"
        if self.header is not None:
            missing = [c for c in self.header if c not in head.columns]
            if missing:
                return f"its header lacks column(s) {', '.join(missing)}"
            return None
        return self.rows_mismatch(head.rows())

    fields_hint: ClassVar[str | None] = None
    """Headerless formats: the fields as a mismatch message lists them (default: ``names``)."""

    def rows_mismatch(self, rows: list[list[str]]) -> str | None:
        """For headerless formats: None when most sampled rows pass :meth:`row_looks_right`."""
        if self.names is None:
            return None
        ok = sum(self.row_looks_right(r) for r in rows)
        if not rows or 2 * ok < len(rows):
            fields = self.fields_hint or ", ".join(self.names)
            return f"expected headerless rows of {len(self.names)} fields: {fields}"
        return None

    def row_looks_right(self, fields: list[str]) -> bool:
        """For headerless formats: whether one sampled row has this format's shape."""
        return True

    def read_columns(self, head: FileHead, ctx: Context) -> dict[str, Kind]:
        """The columns to read from this file (optional ones it lacks left out)."""
        if self.header is None:
            return dict(self.columns)
        return {
            c: k for c, k in self.columns.items() if c in head.columns or c not in self.optional
        }

    def chunks(
        self, files: Sequence[Path], ctx: Context, block_size: int | None = None
    ) -> Iterator[tuple[Chunk, RowFilter]]:
        """Stream every file as chunks, each with a fresh :class:`RowFilter`; stop once full."""
        for path in files:
            head = read_head(path)
            for chunk in iter_table(
                path,
                self.read_columns(head, ctx),
                names=self.names,
                strict=ctx.options.strict,
                block_size=block_size or ctx.options.block_size,
                progress=ctx.progress,
            ):
                ctx.report.read += chunk.malformed
                ctx.report.skip("malformed_row", chunk.malformed)
                rows = RowFilter(chunk, ctx.options.strict)
                if chunk.n == 0:  # only malformed rows after the last good one
                    rows.check()
                    continue
                rows.ignore(blank_rows(chunk))
                yield chunk, rows
                if ctx.full:
                    return

    def read(self, files: Sequence[Path], ctx: Context) -> Iterator[Records]:
        for chunk, rows in self.chunks(files, ctx):
            records = self.process(chunk, rows, ctx)
            rows.check()
            records.filter = rows
            yield records

    def process(self, chunk: Chunk, rows: RowFilter, ctx: Context) -> Records:
        """Map one chunk: mark skipped rows on ``rows`` and return the kept ones."""
        raise NotImplementedError(f"{type(self).__name__} maps records in read()")


def require_number(
    chunk: Chunk,
    rows: RowFilter,
    column: str,
    *,
    minimum: float | None = 0.0,
    integer: bool = False,
    missing_ok: bool = False,
    fill: float = 0.0,
) -> np.ndarray:
    """A numeric column as float64, with bad cells marked on ``rows``.

    Args:
        chunk: the chunk.
        rows: the chunk's filter.
        column: the column.
        minimum: smallest valid value (inclusive), None for any.
        integer: values must be whole numbers.
        missing_ok: empty cells are valid and read as ``fill``.
        fill: the value of empty cells when ``missing_ok``.
    """
    if not chunk.has(column):
        return np.full(chunk.n, fill, dtype=np.float64)
    x = chunk.floats(column)
    rule = "must be " + ("an integer" if integer else "a number")
    if minimum is not None:
        rule += f" >= {minimum:g}"
    missing = chunk.missing(column)
    bad = chunk.unparsed(column) | ~np.isfinite(x)
    if missing_ok:
        bad &= ~missing
        x = np.where(missing, fill, x)
    if minimum is not None:
        bad |= x < minimum
    if integer:
        bad |= np.isfinite(x) & (x != np.floor(x))
    if bad.any():
        rows.bad(bad, column, rule, x)
    return x


def require_time(chunk: Chunk, rows: RowFilter, column: str, rule: str) -> np.ndarray:
    """A timestamp column as int64 ns, with missing or unparsed cells marked bad."""
    t = chunk.ints(column)
    bad = chunk.null(column)
    if bad.any():
        rows.bad(bad, column, rule)
    return t


def priorities(params: Mapping[str, Any], mapped: np.ndarray) -> np.ndarray:
    """Each task's priority, int64: the format's ``mapped`` one, or the ``priority`` param
    for every task when it is given."""
    given = params["priority"]
    return mapped.astype(np.int64) if given is None else np.full(mapped.shape[0], given, np.int64)


def categories(
    chunk: Chunk, rows: RowFilter, column: str, values: Sequence[str], rule: str | None = None
) -> np.ndarray:
    """Index of each cell in ``values`` (exact match); others are marked bad (-1)."""
    idx = pc.index_in(chunk.array(column), value_set=pa.array(list(values), pa.string()))
    codes = pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    bad = codes < 0
    if bad.any():
        rows.bad(bad, column, rule or f"must be one of {', '.join(values)}")
    return codes
