"""Read and write cluster, workload and result files.

Formats (docs/MODEL.md): clusters are YAML or JSON, workloads CSV or Parquet, chosen
by the file extension. Writers are atomic: they write a temporary file beside
the target and rename it, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybridsched.errors import OutputError, ValidationError
from hybridsched.model import WORKLOAD_COLUMNS, Cluster, Workload

CLUSTER_SUFFIXES = (".yaml", ".yml", ".json")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_cluster(path: str | os.PathLike[str]) -> Cluster:
    """Read and validate a cluster file (YAML or JSON, by extension).

    Raises:
        ValidationError: the file is missing, unreadable, not YAML/JSON, or breaks a rule.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in CLUSTER_SUFFIXES:
        raise ValidationError(
            f"{p}: unknown cluster file type {suffix!r}; use one of {', '.join(CLUSTER_SUFFIXES)}"
        )
    text = _read_text(p)
    try:
        if suffix == ".json":
            data = json.loads(text, object_pairs_hook=_unique_keys)
        else:
            data = load_yaml(text)
    except Exception as exc:  # parser errors carry line numbers in their text
        kind = "JSON" if suffix == ".json" else "YAML"
        raise ValidationError(f"{p}: not valid {kind}: {exc}") from None
    return Cluster.build(data, source=str(p))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; a key given twice is refused (the last would win)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} given twice in one object")
        out[key] = value
    return out


def load_yaml(text: str) -> Any:
    """Parse YAML safely, refusing a key given twice in one mapping (the last would
    silently win); such a key raises :func:`duplicate_key_error`'s class, a
    ``yaml.YAMLError`` whose ``problem_mark`` is the second key's place."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())


@functools.cache
def duplicate_key_error() -> type:
    """The ``yaml.YAMLError`` subclass :func:`load_yaml` raises for a key given twice."""
    import yaml

    class DuplicateKeyError(yaml.constructor.ConstructorError):
        pass

    return DuplicateKeyError


@functools.cache
def _yaml_loader() -> type:
    """PyYAML's safe loader (the C one when PyYAML has it: same results, ~10x faster)
    that refuses a key given twice in one mapping."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    error = duplicate_key_error()

    class UniqueKeyLoader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.get(key, seen)
                except TypeError:  # an unhashable key: the base class refuses it
                    continue
                if first is not seen:
                    # equal in Python (1 and true too): one would replace the other
                    also = "" if repr(first) == repr(key) else f" (as {first!r} before)"
                    raise error(
                        None,
                        None,
                        f"key {key!r} given twice in one mapping{also}",
                        key_node.start_mark,
                    )
                seen[key] = key
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def write_cluster(cluster: Cluster, path: str | os.PathLike[str]) -> None:
    """Write a cluster as YAML or JSON (by extension), atomically."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in CLUSTER_SUFFIXES:
        raise ValidationError(
            f"{p}: unknown cluster file type {suffix!r}; use one of {', '.join(CLUSTER_SUFFIXES)}"
        )
    data = cluster.to_dict()
    if suffix == ".json":
        text = json.dumps(data, indent=2)
    else:
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    with atomic_path(p) as tmp:
        tmp.write_text(text)


def read_workload(path: str | os.PathLike[str], cluster: Cluster | None = None) -> Workload:
    """Read and validate a workload file (CSV or Parquet, by extension).

    Args:
        path: the file.
        cluster: when given, regions and memory are checked against it.

    Raises:
        ValidationError: the file is missing, unreadable, or breaks a rule of docs/MODEL.md.
    """
    p = Path(path)
    columns = read_table(p)
    if p.suffix.lower() in (".parquet", ".pq"):
        _check_numeric_types(p, columns, WORKLOAD_COLUMNS)
    if columns and all(len(v) == 0 for v in columns.values()):
        raise ValidationError(
            f"{p}: has no task rows (only a header); a workload needs at least one task"
        )
    return Workload.build(columns, cluster=cluster, source=str(p))


def _check_numeric_types(p: Path, columns: Mapping[str, np.ndarray], names: Any) -> None:
    """Refuse a typed (Parquet) column that is not numeric: Parquet stores types, so a
    string or boolean column is a wrong type, not text to convert (CSV text is parsed)."""
    for name in names:
        arr = columns.get(name)
        if arr is None or arr.dtype.kind in "iuf":
            continue
        if arr.dtype.kind == "O" and all(v is None for v in arr):
            continue  # an all-null column (an empty deadline_s): the row rules apply
        typ = {"b": "boolean", "O": "string", "U": "string", "M": "timestamp"}.get(
            arr.dtype.kind, str(arr.dtype)
        )
        row = 0  # the first value that is not even text of a number, else the first
        for k, v in enumerate(arr):
            try:
                float(v)
            except (TypeError, ValueError):
                row = k
                break
        value = arr[row].item() if isinstance(arr[row], np.generic) else arr[row]
        raise ValidationError(
            f"{p}: row {row + 1}, column {name}: has type {typ}, got {value!r}; a Parquet "
            f"file must store this column as numbers (integer or floating point)"
        )


def read_table(path: Path, *, refuse_nan: bool = False) -> dict[str, np.ndarray]:
    """Read a CSV or Parquet table into a column name -> NumPy array mapping.

    A column name given twice is refused. With ``refuse_nan``, so is a NaN
    value (the text ``nan`` in a CSV cell): for tables whose empty cells
    have a meaning (conditions, failures), which NaN would otherwise take on.
    """
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValidationError(f"{path}: unknown table file type {suffix!r}; use .csv or .parquet")
    if not path.exists():
        raise ValidationError(f"{path}: no such file")
    if path.is_dir():
        raise ValidationError(f"{path}: is a folder, expected a file")
    try:
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            # Every SPEC column is numeric; reading as strings first would be slow,
            # so let Arrow infer and fall back to strings where a column is mixed.
            # only an empty cell is missing; "nan" is a (refused) value, not a gap
            table = pacsv.read_csv(
                str(path),
                convert_options=pacsv.ConvertOptions(
                    null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False
                ),
            )
        else:
            import pyarrow.parquet as pq

            # ParquetFile, not read_table: no pyarrow.dataset import (a third of a second)
            with pq.ParquetFile(str(path)) as pf:
                table = pf.read()
        # Arrow decodes the header lazily: a non-UTF-8 column name fails only here
        names = [str(name) for name in table.column_names]
    except Exception as exc:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        raise ValidationError(f"{path}: cannot be read as {kind}: {exc}") from None
    import pyarrow as pa
    import pyarrow.compute as pc

    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValidationError(
            f"{path}: column(s) {', '.join(twice)} given more than once; each column once"
        )
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        col = table.column(i)
        if refuse_nan and pa.types.is_floating(col.type) and col.length() > 0:
            nan = pc.fill_null(pc.is_nan(col), False).to_numpy(zero_copy_only=False)
            if nan.any():
                raise ValidationError(
                    f"{path}: row {int(np.argmax(nan)) + 1}, column {name}: must be a number, "
                    "got nan (leave the cell empty where the column allows it)"
                )
        if name == "deadline_s" and col.null_count and pa.types.is_floating(col.type):
            col = col.fill_null(np.inf)  # an empty deadline means none (SPEC)
        elif name == "deadline_s" and col.null_count and pa.types.is_integer(col.type):
            col = col.cast(pa.float64()).fill_null(np.inf)
        elif name == "deadline_s" and col.null_count and pa.types.is_null(col.type):
            col = pa.chunked_array([np.full(len(col), np.inf)])
        arr = _to_numpy(col)
        # nobody else holds these arrays: read-only lets validation keep them uncopied
        arr.setflags(write=False)
        out[name] = arr
    return out


def _to_numpy(col: Any) -> np.ndarray:
    """A NumPy view of an Arrow column: zero-copy for numbers without nulls.

    Arrow's own ``to_numpy`` imports pandas (half a second) even for plain numbers,
    so those go straight through the data buffer; anything else (strings, nulls)
    takes Arrow's conversion.
    """
    import pyarrow as pa

    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    t = arr.type
    if arr.null_count == 0 and len(arr) > 0:
        kind = None
        if pa.types.is_floating(t) and t.bit_width in (32, 64):
            kind = "f"
        elif pa.types.is_signed_integer(t):
            kind = "i"
        elif pa.types.is_unsigned_integer(t):
            kind = "u"
        if kind is not None:
            dtype = np.dtype(f"{kind}{t.bit_width // 8}")
            data = arr.buffers()[1]
            return np.frombuffer(
                data, dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize
            )
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def write_workload(workload: Workload, path: str | os.PathLike[str]) -> None:
    """Write a workload as CSV or Parquet (by extension), atomically."""
    write_table(workload.columns(), path)


def write_table(columns: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> None:
    """Write columns as CSV or Parquet (by extension), atomically."""
    import pyarrow as pa

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValidationError(f"{p}: unknown table file type {suffix!r}; use .csv or .parquet")
    table = pa.Table.from_arrays(
        [arrow_array(np.asarray(v)) for v in columns.values()], names=list(columns)
    )
    with atomic_path(p) as tmp:
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, str(tmp))
        else:
            import pyarrow.parquet as pq

            strings = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
            pq.write_table(table, str(tmp), compression="snappy", use_dictionary=strings)


def arrow_array(values: np.ndarray, valid: np.ndarray | None = None) -> Any:
    """An Arrow array over a NumPy array (numbers and booleans without a copy of the data).

    ``valid`` marks the non-null entries (None: all valid). Arrow's ``pa.array``
    imports pandas on first use, half a second of a short run's start-up; numbers,
    booleans and strings are built from their buffers instead (strings with 64-bit
    offsets, then cast to ``string``, which checks they fit), anything else goes
    through ``pa.array``.
    """
    import pyarrow as pa

    v = np.ascontiguousarray(values)
    strings = v.ndim == 1 and (
        v.dtype.kind == "U" or (v.dtype.kind == "O" and all(isinstance(x, str) for x in v))
    )
    numbers = v.ndim == 1 and v.dtype.kind in "biuf" and v.dtype.itemsize in (1, 2, 4, 8)
    if not (strings or numbers):
        return pa.array(v, mask=None if valid is None else ~np.asarray(valid, dtype=bool))
    n = v.shape[0]
    if valid is None:
        validity, nulls = None, 0
    else:
        ok = np.asarray(valid, dtype=bool)
        validity, nulls = pa.py_buffer(np.packbits(ok, bitorder="little")), int(n - ok.sum())
    if strings:
        raw = [str(x).encode() for x in v]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(b) for b in raw], out=offsets[1:])
        buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(raw))]
        return pa.Array.from_buffers(pa.large_string(), n, buffers, null_count=nulls).cast(
            pa.string()
        )
    if v.dtype.kind == "b":
        data, typ = pa.py_buffer(np.packbits(v, bitorder="little")), pa.bool_()
    else:
        data, typ = pa.py_buffer(v), pa.from_numpy_dtype(v.dtype)
    return pa.Array.from_buffers(typ, n, [validity, data], null_count=nulls)


def write_json(data: Any, path: str | os.PathLike[str]) -> None:
    """Write JSON (indented, keys in insertion order), atomically."""
    p = Path(path)
    with atomic_path(p) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The file ends with the permissions of a plain ``open(path, "w")``: ``0o666``
    less the umask (``mkstemp`` alone would leave it ``0o600``).

    Raises:
        OutputError: the folder cannot be created or written, or writing or
            renaming fails (disk full, read-only file system); nothing is left behind.
    """
    created = None
    try:
        created = _make_folder(path.parent)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        _remove_created(created, path.parent)
        raise OutputError(f"{path}: cannot write here: {_os_reason(exc)}") from None
    os.close(fd)
    tmp = Path(name)
    done = False
    try:
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
            done = True
        except OSError as exc:
            raise OutputError(f"{path}: cannot be written: {_os_reason(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if not done:
            _remove_created(created, path.parent)


@contextlib.contextmanager
def atomic_paths(paths: list[Path], remove: Sequence[Path] = ()) -> Iterator[list[Path]]:
    """Temporary paths for several files, renamed onto ``paths`` together once all are
    written: a failure on any of them leaves none of the new files (see :func:`atomic_path`).

    The renames, and the removal of the files ``remove`` names (an earlier run's
    files that would mislead beside the new ones), happen with Ctrl-C held: all
    of them or none. A Ctrl-C that comes once they are done is raised as
    :class:`~hybridsched.interrupts.InterruptedAfterCommit`, so the caller
    knows the files are in place.

    Raises:
        OutputError: as :func:`atomic_path`.
    """
    from hybridsched.interrupts import InterruptedAfterCommit, held_interrupts

    tmps: list[Path] = []
    created: list[tuple[Path | None, Path]] = []  # (topmost folder made, the file's folder)
    committed = False  # the renames are done
    try:
        try:
            try:
                for path in paths:
                    created.append((_make_folder(path.parent), path.parent))
                    # the temporary name keeps the suffix: writers that pick the format
                    # by extension can write to it
                    fd, name = tempfile.mkstemp(
                        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
                    )
                    os.close(fd)
                    tmps.append(Path(name))
            except OSError as exc:
                raise OutputError(f"{path}: cannot write here: {_os_reason(exc)}") from None
            try:
                yield tmps
                mode = 0o666 & ~_umask()
                for tmp in tmps:
                    os.chmod(tmp, mode)
                # all the renames or none: a Ctrl-C meanwhile comes once they are done
                with held_interrupts():
                    for tmp, path in zip(tmps, paths, strict=True):
                        os.replace(tmp, path)
                    committed = True
                    for path in remove:
                        with contextlib.suppress(OSError):
                            path.unlink(missing_ok=True)
            except OSError as exc:
                raise OutputError(
                    f"{paths[0].parent}: cannot be written: {_os_reason(exc)}"
                ) from None
        finally:
            for tmp in tmps:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
            if not committed:
                for top, leaf in reversed(created):
                    _remove_created(top, leaf)
    except KeyboardInterrupt as exc:
        # one that comes after the renames (its clean-up included) tells the caller so
        if committed and not isinstance(exc, InterruptedAfterCommit):
            raise InterruptedAfterCommit from None
        raise


def _make_folder(folder: Path) -> Path | None:
    """Create ``folder`` and its missing parents; the topmost one created (None: none was).

    Raises:
        OSError: it cannot be created.
    """
    top = None
    probe = folder
    while not probe.exists() and probe.parent != probe:
        top = probe
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return top


def _remove_created(top: Path | None, leaf: Path) -> None:
    """Remove the folders from ``leaf`` up to ``top`` that a failed write created, while
    they are empty (a folder something else wrote into meanwhile stays)."""
    if top is None:
        return
    probe = leaf
    while True:
        try:
            probe.rmdir()
        except OSError:
            return
        if probe == top:
            return
        probe = probe.parent


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_writable(folder: Path, option: str = "--out") -> None:
    """Refuse early a folder that cannot be created or written into (read-only, a file).

    Raises:
        OutputError: naming the option, the folder and the reason.
    """
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {folder}: exists and is not a folder")
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{option} {folder}: {probe} is not a folder")
    try:
        # probe the nearest existing folder: nothing is created before the run succeeds
        fd, name = tempfile.mkstemp(prefix=".write-check.", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputError(f"{option} {folder}: cannot write here: {_os_reason(exc)}") from None


def _read_text(p: Path) -> str:
    if not p.exists():
        raise ValidationError(f"{p}: no such file")
    if p.is_dir():
        raise ValidationError(f"{p}: is a folder, expected a file")
    try:
        return p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{p}: cannot be read: {exc}") from None
