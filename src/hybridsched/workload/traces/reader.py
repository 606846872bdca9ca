"""Streaming, typed reading of trace files, and the per-row accounting of one chunk.

* :func:`iter_table` reads a CSV (Arrow's streaming reader, block by block;
  ``.gz``/``.bz2``/``.zst``/``.lz4`` decompressed on the fly) or Parquet file
  (batch by batch) in bounded memory and yields :class:`Chunk` objects with
  typed columns. A CSV is first read with the final column types (fast); when
  a cell does not convert, the file is read again as text from the first row
  not yet yielded and converted column by column (:func:`convert`), so a bad
  cell costs one row, not the file. Rows with the wrong number of fields are
  dropped by the parser and reported with their line numbers.
* :class:`RowFilter` records why each row of a chunk is not a task and, in
  strict mode, refuses the earliest bad row with its row and line number.
* :func:`read_head` reads the start of a file for format detection.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybridsched.errors import ValidationError

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
        names: Sequence[str] | None = None,
    ) -> None:
        self.source = source
        """The file, for messages."""
        self.row0 = row0
        """Data rows of the file before this chunk."""
        self.n = n
        """Rows in this chunk."""
        self.malformed = 0
        """Rows the parser dropped (wrong number of fields) since the previous chunk."""
        self.malformed_rows: list[tuple[int, str]] = []
        """In strict mode: (line, description) of those rows."""
        self._arrays = dict(arrays)
        self._raw = dict(raw or {})
        self._unparsed = dict(unparsed or {})
        self._header_lines = header_lines
        self._skipped_lines = skipped_lines
        self._is_csv = is_csv
        self._names = names

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
        """The cell as written in the file (Parquet: as read), for messages."""
        raw = self._raw.get(name)
        if raw is not None:
            value = raw[i].as_py()
        elif self._is_csv:
            value = _cell_text(Path(self.source), self.line(i), name, self._names)
        else:
            value = self._arrays[name][i].as_py()
            if hasattr(value, "isoformat"):
                value = value.isoformat(sep=" ")
        return "an empty value" if value is None or value == "" else repr(value)

    def row(self, i: int) -> int:
        """1-based data row number in the file of chunk row ``i``."""
        return self.row0 + i + 1

    def line(self, i: int) -> int:
        """Physical line in the file of chunk row ``i`` (Parquet: the row number)."""
        if not self._is_csv:
            return self.row(i)
        return line_of(self.row(i), self._header_lines, self._skipped_lines)

    def where(self, i: int) -> str:
        """``row R (line L)`` for CSV (L counts the header), ``row R`` for Parquet."""
        if not self._is_csv:
            return f"row {self.row(i)}"
        return f"row {self.row(i)} (line {self.line(i)})"


def _cell_text(path: Path, line: int, name: str, names: Sequence[str] | None) -> str | None:
    """The text of column ``name`` on physical ``line`` of a CSV (error messages only)."""
    import io

    wanted = {1, line} if names is None else {line}
    found: dict[int, list[str]] = {}
    try:
        with pa.input_stream(str(path), compression=compression_of(path)) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
            for number, content in enumerate(text, start=1):
                if number in wanted:
                    found[number] = next(csv.reader([content]), [])
                if number >= line:
                    break
    except (OSError, pa.ArrowException):
        return None
    header = list(names) if names is not None else [f.strip() for f in found.get(1, [])]
    fields = found.get(line, [])
    if name not in header or header.index(name) >= len(fields):
        return None
    return fields[header.index(name)]


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
            values: values to quote for a column the file does not have (default: the
                cell's text as written in the file).
            reason: the skip reason (default ``bad_<column>``).
        """
        marked = self._mark(mask, self._code(reason or f"bad_{column}"))
        if self.strict and marked.any():
            i = int(np.argmax(marked))
            if self._first_bad is None or i < self._first_bad[0]:
                c = self.chunk
                if c.has(column) or values is None:
                    shown = c.show(column, i) if c.has(column) else "?"
                else:
                    shown = repr(values[i].item() if hasattr(values[i], "item") else values[i])
                self._first_bad = (
                    i,
                    f"{c.source}: {c.where(i)}, field {column}: {rule}, got {shown}",
                )
        return marked

    def check(self) -> None:
        """In strict mode, raise the chunk's earliest bad row: a bad cell or a malformed row.

        Raises:
            ValidationError: naming the file, row, line, field, value and rule.
        """
        if not self.strict:
            return
        first: tuple[int, str] | None = None
        if self._first_bad is not None:
            first = (self.chunk.line(self._first_bad[0]), self._first_bad[1])
        if self.chunk.malformed_rows:
            line, text = self.chunk.malformed_rows[0]
            if first is None or line < first[0]:
                first = (line, f"{self.chunk.source}: {text}")
        if first is not None:
            raise ValidationError(first[1] + " (strict mode refuses bad rows)")

    def counts(self, upto: int | None = None) -> tuple[int, int, dict[str, int]]:
        """(records read, merged, skipped by reason) over rows ``[:upto]``."""
        codes = self.codes if upto is None else self.codes[:upto]
        tally = np.bincount(codes, minlength=len(self._reasons))
        skipped = {self._reasons[c]: int(tally[c]) for c in range(3, len(tally)) if tally[c]}
        read = int(codes.shape[0] - tally[self.IGNORED])
        return read, int(tally[self.MERGED]), skipped


# --------------------------------------------------------------------------- conversion


# The number syntax Arrow's string casts accept; text cells that do not match
# are bad without trying them one by one.
_NUMBER_TEXT = {
    "float": r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:inf(?:inity)?|nan))$",
    "int": r"^-?(?:\d+|0[xX][0-9a-fA-F]+)$",
}


def convert(arr: pa.Array, kind: Kind) -> tuple[pa.Array, np.ndarray | None]:
    """Cast ``arr`` to ``kind``; cells that do not convert become null and are flagged.

    Returns:
        The typed array and a boolean mask of the cells that did not convert
        (None when all did). Clean data costs one vectorized cast. Otherwise
        text that is not a number is found with one vectorized pattern match,
        and any remaining failures by bisection.

    Raises:
        TypeError: the column's type cannot be cast to ``kind`` at all.
    """
    target = _ARROW_TYPES[kind]
    if arr.type == target:
        return arr, None
    if kind == "time" and pa.types.is_timestamp(arr.type):
        return arr.cast(pa.timestamp("ns", tz=arr.type.tz)).cast(pa.int64()).cast(target), None
    try:
        return pc.cast(arr, target), None
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise TypeError(f"a {arr.type} column cannot be read as {target}") from None
    except pa.ArrowInvalid:
        pass
    bad = np.zeros(len(arr), dtype=bool)
    if kind in _NUMBER_TEXT and pa.types.is_string(arr.type):
        ok = pc.match_substring_regex(arr, _NUMBER_TEXT[kind])
        bad = ~pc.fill_null(ok, True).to_numpy(zero_copy_only=False)
        arr = pc.if_else(pa.array(bad), pa.scalar(None, arr.type), arr)
    stack = [(0, len(arr))]
    while stack:
        lo, hi = stack.pop()
        try:
            pc.cast(arr.slice(lo, hi - lo), target)
        except pa.ArrowInvalid:
            if hi - lo == 1:
                bad[lo] = True
            else:
                mid = (lo + hi) // 2
                stack += [(mid, hi), (lo, mid)]
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
        strict: keep a description of each row with the wrong number of fields
            (``Chunk.malformed_rows``) so that :meth:`RowFilter.check` can refuse it.
        block_size: bytes of CSV text per block.
        progress: receives bytes consumed.

    Raises:
        ValidationError: the file cannot be read.
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
                if kind == "time" and not (
                    pa.types.is_timestamp(col.type) or pa.types.is_string(col.type)
                ):
                    raise ValidationError(
                        f"{path}: column {name} holds {col.type}, not date-times "
                        "(give its unit with time_unit=s, ms, us or ns)"
                    )
                try:
                    typed, bad = convert(col, kind)
                except TypeError as exc:
                    raise ValidationError(f"{path}: column {name}: {exc}") from None
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
    skipped_lines: list[int] = []  # physical lines the parser dropped, ascending
    described: dict[int, str] = {}  # strict mode: what was wrong with them

    def on_invalid(row: Any) -> str:
        # Arrow calls this for a row with the wrong number of fields; line
        # numbers are known because the reader runs single-threaded.
        line = int(row.number) if row.number is not None else -1
        if not skipped_lines or line > skipped_lines[-1]:
            skipped_lines.append(line)
            if strict:
                described[line] = (
                    f"row {line - header_lines} (line {line}): expected {row.expected_columns} "
                    f"fields, got {row.actual_columns} ({row.text[:120]!r})"
                )
        return "skip"

    codec = compression_of(path)
    size = path.stat().st_size
    reported = 0
    done = 0  # data rows yielded so far (a retry resumes after them)
    attributed = 0  # dropped lines already reported with a chunk
    typed = True
    while True:
        raw_file = pa.OSFile(str(path))
        stream = pa.CompressedInputStream(raw_file, codec) if codec else raw_file
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
                chunk = _make_chunk(path, batch, columns, typed, done, names, skipped_lines)
                done += chunk.n
                upto = bisect.bisect_right(
                    skipped_lines, line_of(done, header_lines, skipped_lines)
                )
                _attribute(chunk, skipped_lines[attributed:upto], described)
                attributed = upto
                if progress is not None:
                    pos = raw_file.tell()
                    if pos > reported:
                        progress(pos - reported)
                        reported = pos
                yield chunk
            break
        except pa.ArrowInvalid as exc:
            if typed:
                # A cell does not convert: read again as text, resuming after
                # the rows already yielded, and convert column by column.
                typed = False
                skipped_lines.clear()
                continue
            raise ValidationError(f"{path}: cannot be read as CSV: {exc}") from None
        except OSError as exc:
            raise ValidationError(f"{path}: cannot be read: {exc}") from None
        finally:
            raw_file.close()
    if len(skipped_lines) > attributed:
        tail = Chunk(str(path), done, 0, {}, header_lines=header_lines)
        _attribute(tail, skipped_lines[attributed:], described)
        yield tail
    if progress is not None and size > reported:
        progress(size - reported)


def _attribute(chunk: Chunk, lines: Sequence[int], described: Mapping[int, str]) -> None:
    chunk.malformed = len(lines)
    chunk.malformed_rows = [(ln, described[ln]) for ln in lines if ln in described]


def _make_chunk(
    path: Path,
    batch: pa.RecordBatch,
    columns: Mapping[str, Kind],
    typed: bool,
    row0: int,
    names: Sequence[str] | None,
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
        header_lines=0 if names is not None else 1,
        skipped_lines=skipped_lines,
        names=names,
    )


def blank_rows(chunk: Chunk) -> np.ndarray:
    """Rows where every read column is empty (blank lines)."""
    out = np.ones(chunk.n, dtype=bool)
    for name in chunk._arrays:
        if not chunk._arrays[name].null_count:
            return np.zeros(chunk.n, dtype=bool)
        out &= chunk.missing(name)
    return out
