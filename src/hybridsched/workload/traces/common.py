"""Shared machinery of the trace importers: options, report, streaming readers, mapping helpers.

An importer turns the records of a public trace into the columns of SPEC.md's
workload format. The pieces every importer shares live here:

* :class:`ImportOptions` (what the user asked for) and :class:`ImportReport`
  (what happened: records read, kept, merged and skipped by reason);
* :func:`iter_table`, a bounded-memory reader of CSV (Arrow's streaming reader,
  block by block) and Parquet (row group by row group) files that yields
  :class:`Chunk` objects with typed columns. It first reads with the final
  column types (fast); when a value cannot be converted, it reads the file
  again as text from the row where it failed and converts column by column,
  marking the values that do not parse, so a bad cell costs one row, not the
  file;
* :class:`RowFilter`, which records why each row of a chunk is dropped, and in
  strict mode refuses the first bad row with its row and line number;
* :class:`Records`, the kept tasks of one chunk, in the model's units;
* stable hashes (:func:`fnv1a64`, :func:`hash_strings`, :func:`hash_ints`)
  that map a group field to a region identically on every run and machine
  (Python's ``hash`` is salted per process, so it is not used);
* :class:`TraceFormat` and :class:`CsvTraceFormat`, the interface of one
  importer, and :func:`read_head`, which reads the start of a file for
  format detection.
"""

from __future__ import annotations

import bisect
import csv
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridsched.errors import ConfigError, ValidationError
from hybridsched.model import Cluster

Kind = Literal["int", "float", "time", "str"]
"""How a source column is read: int64, float64, timestamp (int64 ns) or text."""

_ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "time": pa.timestamp("ns"),
    "str": pa.string(),
}

_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}

DEFAULT_BLOCK_SIZE = 1 << 22
"""Bytes of CSV text parsed per block (bounds memory; 4 MiB)."""

HEAD_BYTES = 1 << 16
"""Bytes read from the start of a file (after decompression) to detect its format."""

ProgressFn = Callable[[int], None]
"""Receives the number of bytes of input consumed since the last call."""


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
        if not isinstance(self.block_size, int) or self.block_size < 1024:
            raise ConfigError(f"block_size: must be an integer >= 1024, got {self.block_size!r}")
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
    """What an import did. Every record read is counted once:
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
        """The tasks at ``index`` (boolean mask or integer array)."""
        return Records(
            t_ns=self.t_ns[index],
            work_gi=self.work_gi[index],
            data_mb=self.data_mb[index],
            memory_mb=self.memory_mb[index],
            priority=self.priority[index],
            key=self.key[index],
            deadline_s=None if self.deadline_s is None else self.deadline_s[index],
            rows=None if self.rows is None else self.rows[index],
            filter=self.filter,
        )

    @classmethod
    def empty(cls, filter: RowFilter | None = None) -> Records:
        """No task (a chunk where every row was skipped or merged)."""
        f = np.zeros(0, np.float64)
        i = np.zeros(0, np.int64)
        return cls(i, f, f, f, i, np.zeros(0, np.uint64), rows=i, filter=filter)


# --------------------------------------------------------------------------- chunks


class Chunk:
    """One block of consecutive rows of one file, with typed columns.

    Missing cells are null; in the text fallback, cells that do not parse as
    their column's type are null too and flagged by :meth:`unparsed`, with the
    text kept for error messages.
    """

    def __init__(
        self,
        source: str,
        row0: int,
        n: int,
        arrays: Mapping[str, pa.Array],
        *,
        raw: Mapping[str, pa.Array] | None = None,
        unparsed: Mapping[str, np.ndarray] | None = None,
        header_lines: int = 0,
        skipped_lines: Sequence[int] = (),
        is_csv: bool = True,
        malformed: int = 0,
    ) -> None:
        self.source = source
        """The file, for messages."""
        self.row0 = row0
        """Data rows of the file before this chunk."""
        self.n = n
        """Rows in this chunk."""
        self.malformed = malformed
        """Rows of the file dropped by the parser (wrong field count) since the last chunk."""
        self._arrays = dict(arrays)
        self._raw = dict(raw or {})
        self._unparsed = dict(unparsed or {})
        self._header_lines = header_lines
        self._skipped_lines = skipped_lines
        self._is_csv = is_csv

    def __len__(self) -> int:
        return self.n

    def has(self, name: str) -> bool:
        """Whether the file has column ``name``."""
        return name in self._arrays

    def array(self, name: str) -> pa.Array:
        """The typed Arrow array of a column."""
        return self._arrays[name]

    def floats(self, name: str) -> np.ndarray:
        """A column as float64; missing or unparsed cells are NaN."""
        a = self._arrays[name]
        if a.null_count:
            a = pc.fill_null(a, math.nan)
        return a.to_numpy(zero_copy_only=False)

    def ints(self, name: str) -> np.ndarray:
        """A column (int or time) as int64; missing or unparsed cells are 0."""
        a = self._arrays[name]
        if pa.types.is_timestamp(a.type):
            a = a.cast(pa.int64())
        if a.null_count:
            a = pc.fill_null(a, 0)
        return a.to_numpy(zero_copy_only=False)

    def null(self, name: str) -> np.ndarray:
        """Cells with no usable value (missing or unparsed)."""
        a = self._arrays[name]
        if not a.null_count:
            return np.zeros(self.n, dtype=bool)
        return a.is_null().to_numpy(zero_copy_only=False)

    def unparsed(self, name: str) -> np.ndarray:
        """Cells with text that does not parse as the column's type."""
        u = self._unparsed.get(name)
        return u if u is not None else np.zeros(self.n, dtype=bool)

    def missing(self, name: str) -> np.ndarray:
        """Empty cells (no text at all)."""
        return self.null(name) & ~self.unparsed(name)

    def show(self, name: str, i: int) -> str:
        """The cell as written (or as read), for messages."""
        raw = self._raw.get(name)
        value = (raw if raw is not None else self._arrays[name])[i].as_py()
        if value is None:
            return "an empty value"
        if hasattr(value, "isoformat"):
            value = value.isoformat(sep=" ")
        return repr(value)

    def row(self, i: int) -> int:
        """1-based data row number in the file of chunk row ``i``."""
        return self.row0 + i + 1

    def where(self, i: int) -> str:
        """``row R (line L)`` for CSV (L counts the header), ``row R`` for Parquet."""
        r = self.row(i)
        if not self._is_csv:
            return f"row {r}"
        return f"row {r} (line {line_of(r, self._header_lines, self._skipped_lines)})"


def line_of(row: int, header_lines: int, skipped_lines: Sequence[int]) -> int:
    """Physical line of data row ``row`` given the sorted lines the parser dropped."""
    line = header_lines + row
    count = 0
    while True:
        c = bisect.bisect_right(skipped_lines, line)
        if c == count:
            return line
        line += c - count
        count = c


# --------------------------------------------------------------------------- row filter


class RowFilter:
    """Why each row of a chunk is not a task; the importer commits it to the report.

    Each row gets one code: kept (or pending, for event logs), merged, ignored
    (blank line) or a skip reason. A row keeps its first reason. In strict mode
    :meth:`bad` remembers the earliest bad row and :meth:`check` raises it.
    """

    KEPT = 0
    MERGED = 1
    IGNORED = 2

    def __init__(self, chunk: Chunk, strict: bool) -> None:
        self.chunk = chunk
        self.strict = strict
        self.alive = np.ones(chunk.n, dtype=bool)
        """Rows still candidates for a task."""
        self.codes = np.zeros(chunk.n, dtype=np.int16)
        self._reasons: list[str] = ["", "", ""]
        self._first_bad: tuple[int, str] | None = None

    def _code(self, reason: str) -> int:
        try:
            return self._reasons.index(reason, 3)
        except ValueError:
            self._reasons.append(reason)
            return len(self._reasons) - 1

    def _mark(self, mask: np.ndarray, code: int) -> np.ndarray:
        mask = mask & self.alive
        if mask.any():
            self.codes[mask] = code
            self.alive &= ~mask
        return mask

    def ignore(self, mask: np.ndarray) -> None:
        """Rows that are not records at all (blank lines)."""
        self._mark(mask, self.IGNORED)

    def merge(self, mask: np.ndarray) -> None:
        """Rows folded into another record."""
        self._mark(mask, self.MERGED)

    def skip(self, mask: np.ndarray, reason: str) -> np.ndarray:
        """Rows filtered out for ``reason`` (not an error: failed, incomplete, ...)."""
        return self._mark(mask, self._code(reason))

    def bad(
        self,
        mask: np.ndarray,
        column: str,
        rule: str,
        values: np.ndarray | None = None,
        reason: str | None = None,
    ) -> np.ndarray:
        """Rows whose ``column`` breaks ``rule``: skipped as ``bad_<column>``, refused if strict.

        Args:
            mask: the offending rows.
            column: the field, as named in the file.
            rule: what would be accepted, e.g. ``"must be a number >= 0"``.
            values: parsed values to quote (default: the cell's text).
            reason: the skip reason (default ``bad_<column>``).
        """
        marked = self._mark(mask, self._code(reason or f"bad_{column}"))
        if self.strict and marked.any():
            i = int(np.argmax(marked))
            if self._first_bad is None or i < self._first_bad[0]:
                c = self.chunk
                if values is None or (c.has(column) and c.null(column)[i]):
                    shown = c.show(column, i)
                else:
                    shown = repr(values[i].item() if hasattr(values[i], "item") else values[i])
                msg = f"{self.chunk.source}: {self.chunk.where(i)}, field {column}: {rule}, got {shown}"
                self._first_bad = (i, msg)
        return marked

    def check(self) -> None:
        """In strict mode, raise the earliest bad row recorded by :meth:`bad`.

        Raises:
            ValidationError: naming the file, row, line, field, value and rule.
        """
        if self._first_bad is not None:
            raise ValidationError(self._first_bad[1] + " (strict mode refuses bad rows)")

    def counts(self, upto: int | None = None) -> tuple[int, int, dict[str, int]]:
        """(records read, merged, skipped by reason) over rows ``[:upto]``."""
        codes = self.codes if upto is None else self.codes[:upto]
        tally = np.bincount(codes, minlength=len(self._reasons))
        skipped = {self._reasons[c]: int(tally[c]) for c in range(3, len(tally)) if tally[c]}
        read = int(codes.shape[0] - tally[self.IGNORED])
        return read, int(tally[self.MERGED]), skipped


# --------------------------------------------------------------------------- conversion


def convert(arr: pa.Array, kind: Kind) -> tuple[pa.Array, np.ndarray | None]:
    """Cast ``arr`` to ``kind``; cells that do not convert become null and are flagged.

    Returns:
        The typed array and a boolean mask of the cells that did not convert
        (None when all did). Bad cells are found by bisection, so the cost is
        one vectorized cast when the data is clean.
    """
    target = _ARROW_TYPES[kind]
    if arr.type == target:
        return arr, None
    if kind == "time" and pa.types.is_timestamp(arr.type):
        return arr.cast(pa.timestamp("ns", tz=arr.type.tz)).cast(pa.int64()).cast(target), None
    try:
        return pc.cast(arr, target), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    bad = np.zeros(len(arr), dtype=bool)
    stack = [(0, len(arr))]
    while stack:
        lo, hi = stack.pop()
        if hi - lo > 1:
            mid = (lo + hi) // 2
            for a, b in ((lo, mid), (mid, hi)):
                try:
                    pc.cast(arr.slice(a, b - a), target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                    stack.append((a, b))
        else:
            bad[lo] = True
    cleaned = pc.if_else(pa.array(bad), pa.scalar(None, arr.type), arr)
    return pc.cast(cleaned, target), bad


# --------------------------------------------------------------------------- file reading


def compression_of(path: Path) -> str | None:
    """Arrow codec name from the file extension (``.gz``, ``.bz2``, ``.zst``, ``.lz4``)."""
    return _COMPRESSION.get(path.suffix.lower())


def is_parquet(path: Path) -> bool:
    """Whether ``path`` starts with Parquet's magic bytes."""
    try:
        with path.open("rb") as f:
            return f.read(4) == b"PAR1"
    except OSError:
        return False


@dataclass(frozen=True)
class FileHead:
    """The start of a file, for format detection."""

    path: Path
    """The file."""
    parquet: bool
    """A Parquet file (then ``lines`` is empty and ``columns`` its schema names)."""
    lines: tuple[str, ...]
    """Complete text lines from the start (decompressed), at most ~64 KiB."""
    columns: tuple[str, ...]
    """Parquet column names, or the fields of the first CSV line."""

    def rows(self, skip: int = 0, limit: int = 50) -> list[list[str]]:
        """The first non-empty lines split as CSV fields (after ``skip`` lines)."""
        lines = [ln for ln in self.lines[skip:] if ln.strip()][:limit]
        return [[f.strip() for f in r] for r in csv.reader(lines)]


def read_head(path: Path) -> FileHead:
    """Read the start of ``path`` (decompressing by extension).

    Raises:
        ValidationError: the file is missing, a folder, empty or unreadable.
    """
    if not path.exists():
        raise ValidationError(f"{path}: no such file")
    if path.is_dir():
        raise ValidationError(f"{path}: is a folder, expected a file")
    if is_parquet(path):
        import pyarrow.parquet as pq

        try:
            names = tuple(pq.ParquetFile(str(path)).schema_arrow.names)
        except Exception as exc:
            raise ValidationError(f"{path}: cannot be read as Parquet: {exc}") from None
        return FileHead(path, True, (), names)
    try:
        with pa.input_stream(str(path), compression=compression_of(path)) as f:
            data = f.read(HEAD_BYTES)
    except (OSError, pa.ArrowException) as exc:
        raise ValidationError(f"{path}: cannot be read: {exc}") from None
    if not data.strip():
        raise ValidationError(f"{path}: is empty")
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.splitlines()
    if len(data) == HEAD_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    first = next(csv.reader(lines[:1]), [])
    return FileHead(path, False, tuple(lines), tuple(f.strip() for f in first))


def iter_table(
    path: Path,
    columns: Mapping[str, Kind],
    *,
    names: Sequence[str] | None = None,
    strict: bool = False,
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: ProgressFn | None = None,
) -> Iterator[Chunk]:
    """Stream a CSV or Parquet file as typed chunks in bounded memory.

    Args:
        path: the file (CSV, optionally compressed, or Parquet).
        columns: the columns to read and their kinds.
        names: column names of a headerless CSV (None: the first line is a header).
        strict: refuse a row with the wrong number of fields instead of skipping it.
        block_size: bytes of CSV text per block.
        progress: receives bytes consumed.

    Raises:
        ValidationError: the file cannot be read, or (strict) a malformed row.
    """
    if is_parquet(path):
        yield from _iter_parquet(path, columns, block_size, progress)
    else:
        yield from _iter_csv(path, columns, names, strict, block_size, progress)


def _iter_parquet(
    path: Path, columns: Mapping[str, Kind], block_size: int, progress: ProgressFn | None
) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(str(path))
        total = max(pf.metadata.num_rows, 1)
        size = path.stat().st_size
        batch_rows = max(block_size // 64, 1024)
        done = 0
        reported = 0
        for batch in pf.iter_batches(batch_size=batch_rows, columns=list(columns)):
            arrays: dict[str, pa.Array] = {}
            unparsed: dict[str, np.ndarray] = {}
            raw: dict[str, pa.Array] = {}
            for name, kind in columns.items():
                col = batch.column(name)
                typed, bad = convert(col, kind)
                arrays[name] = typed
                if bad is not None:
                    unparsed[name] = bad
                    raw[name] = col
            yield Chunk(
                str(path), done, batch.num_rows, arrays, raw=raw, unparsed=unparsed, is_csv=False
            )
            done += batch.num_rows
            if progress is not None:
                pos = size * done // total
                progress(pos - reported)
                reported = pos
    except (OSError, pa.ArrowException) as exc:
        raise ValidationError(f"{path}: cannot be read as Parquet: {exc}") from None


def _iter_csv(
    path: Path,
    columns: Mapping[str, Kind],
    names: Sequence[str] | None,
    strict: bool,
    block_size: int,
    progress: ProgressFn | None,
) -> Iterator[Chunk]:
    import pyarrow.csv as pacsv

    header_lines = 0 if names is not None else 1
    skipped_lines: list[int] = []  # physical lines the parser dropped (sorted)
    refused: list[Any] = []

    def on_invalid(row: Any) -> str:
        # Called by Arrow for a row with the wrong number of fields. Row numbers
        # are known because the reader runs single-threaded.
        if strict:
            refused.append(row)
            return "error"
        line = int(row.number) if row.number is not None else -1
        if not skipped_lines or line > skipped_lines[-1]:
            skipped_lines.append(line)
        return "skip"

    size = path.stat().st_size
    reported = 0
    done = 0  # data rows yielded so far (a retry resumes after them)
    attributed = 0  # malformed lines already counted in a chunk
    typed = True
    while True:
        raw_file = pa.OSFile(str(path))
        stream = (
            pa.CompressedInputStream(raw_file, compression_of(path))
            if compression_of(path)
            else raw_file
        )
        types = {c: (_ARROW_TYPES[k] if typed else pa.string()) for c, k in columns.items()}
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(
                    block_size=block_size,
                    use_threads=False,
                    column_names=list(names) if names is not None else None,
                ),
                parse_options=pacsv.ParseOptions(
                    invalid_row_handler=on_invalid, ignore_empty_lines=False
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=types,
                    include_columns=list(columns),
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
            seen = 0
            for batch in reader:
                m = batch.num_rows
                if seen + m <= done:
                    seen += m
                    continue
                if seen < done:
                    batch = batch.slice(done - seen)
                seen += m
                chunk = _make_chunk(path, batch, columns, typed, done, header_lines, skipped_lines)
                done += chunk.n
                last_line = line_of(done, header_lines, skipped_lines)
                upto = bisect.bisect_right(skipped_lines, last_line)
                chunk.malformed = upto - attributed
                attributed = upto
                if progress is not None:
                    pos = raw_file.tell()
                    if pos > reported:
                        progress(pos - reported)
                        reported = pos
                yield chunk
            break
        except pa.ArrowInvalid as exc:
            if refused:
                bad = refused[0]
                line = int(bad.number) if bad.number is not None else None
                where = f"line {line}" if line is not None else "a row"
                if line is not None:
                    where = f"row {line - header_lines} (line {line})"
                raise ValidationError(
                    f"{path}: {where}: expected {bad.expected_columns} fields, got "
                    f"{bad.actual_columns} ({bad.text[:120]!r}) (strict mode refuses bad rows)"
                ) from None
            if typed:
                # A cell does not convert: resume after the rows already yielded,
                # reading text and converting column by column.
                typed = False
                skipped_lines.clear()
                continue
            raise ValidationError(f"{path}: cannot be read as CSV: {exc}") from None
        except OSError as exc:
            raise ValidationError(f"{path}: cannot be read: {exc}") from None
        finally:
            raw_file.close()
    if len(skipped_lines) > attributed:
        tail = Chunk(str(path), done, 0, {}, malformed=len(skipped_lines) - attributed)
        attributed = len(skipped_lines)
        yield tail
    if progress is not None and size > reported:
        progress(size - reported)


def _make_chunk(
    path: Path,
    batch: pa.RecordBatch,
    columns: Mapping[str, Kind],
    typed: bool,
    row0: int,
    header_lines: int,
    skipped_lines: Sequence[int],
) -> Chunk:
    arrays: dict[str, pa.Array] = {}
    raw: dict[str, pa.Array] = {}
    unparsed: dict[str, np.ndarray] = {}
    for name, kind in columns.items():
        col = batch.column(name)
        if typed:
            arrays[name] = col
            continue
        values, bad = convert(col, kind)
        arrays[name] = values
        raw[name] = col
        if bad is not None:
            unparsed[name] = bad
    return Chunk(
        str(path),
        row0,
        batch.num_rows,
        arrays,
        raw=raw,
        unparsed=unparsed,
        header_lines=header_lines,
        skipped_lines=skipped_lines,
    )


def blank_rows(chunk: Chunk) -> np.ndarray:
    """Rows where every read column is empty (blank lines)."""
    out = np.ones(chunk.n, dtype=bool)
    for name in chunk._arrays:
        if not chunk._arrays[name].null_count:
            return np.zeros(chunk.n, dtype=bool)
        out &= chunk.missing(name)
    return out


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

    def validate(self, ctx: Context) -> None:
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

    def rows_mismatch(self, rows: list[list[str]]) -> str | None:
        """For headerless formats: None when most sampled rows look right."""
        return None

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
