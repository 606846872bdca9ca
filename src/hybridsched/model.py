"""The validated inputs of the reference model: a cluster and a workload.

Both are frozen containers of NumPy arrays (structure of arrays). They are
validated once, when built with :meth:`Cluster.build` / :meth:`Workload.build`;
everything past this edge trusts them. See ``docs/MODEL.md``
for the rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hybridsched.errors import ValidationError

WORKLOAD_COLUMNS: tuple[str, ...] = (
    "task_id",
    "arrival_s",
    "region",
    "data_mb",
    "work_gi",
    "memory_mb",
    "deadline_s",
    "priority",
)
"""The workload columns of docs/MODEL.md, in their canonical order."""

PRIORITY_CLASSES = 3
"""Priority classes the schedulers and objectives tell apart: 0, 1 and 2, where
class 2 also takes every priority above 2 (a workload may use any integer >= 0)."""

NODE_FIELDS: tuple[str, ...] = (
    "name",
    "cores",
    "speed",
    "memory_mb",
    "bandwidth_mb_s",
    "power_idle_w",
    "power_max_w",
    "latency_s",
)
"""The required fields of one node in a cluster file (``tier`` is optional)."""

MAX_TIME_S = 1e9
"""Largest time accepted anywhere in the inputs (arrival, deadline, latency, outage), s.

About 31.7 years: float64 then still resolves 0.2 microseconds, so responses and
energies stay exact to well below a second. Larger magnitudes break the
arithmetic (``arrival_s = 1e300`` made every response 0), so they are refused.
"""
MAX_QUANTITY = 1e12
"""Largest work (GI), data (MB), memory (MB), speed (GI/s), bandwidth (MB/s) and power (W)."""
MIN_RATE = 1e-6
"""Smallest speed (GI/s) and bandwidth (MB/s): slower makes durations overflow the time bound."""
MAX_CORES = 1_000_000
"""Most cores on one node."""


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Cluster:
    """A heterogeneous cluster: ``N`` nodes serving ``R`` source regions.

    Node ``j`` is index ``j`` of every array; the order is the file's order.
    """

    name: str
    """Free-text name of the cluster."""
    region_names: tuple[str, ...]
    """One name per source region (gateway); ``R = len(region_names)``."""
    node_names: tuple[str, ...]
    """Unique node names."""
    tiers: tuple[str, ...]
    """Free-text tier per node (edge / fog / cloud ...), ``""`` when not given."""
    cores: np.ndarray
    """Cores per node, int64 >= 1."""
    speed: np.ndarray
    """Speed of one core, GI/s."""
    memory_mb: np.ndarray
    """Memory, MB; a task needing more cannot run on the node."""
    bandwidth_mb_s: np.ndarray
    """Ingress bandwidth, MB/s."""
    power_idle_w: np.ndarray
    """Power drawn with no core busy, W."""
    power_max_w: np.ndarray
    """Power drawn with every core busy, W."""
    latency_s: np.ndarray
    """Latency from each node to each region, shape ``(N, R)``, s."""

    @property
    def n_nodes(self) -> int:
        """Number of nodes ``N``."""
        return len(self.node_names)

    @property
    def n_regions(self) -> int:
        """Number of source regions ``R``."""
        return len(self.region_names)

    @property
    def capacity_gi_s(self) -> float:
        """Total compute capacity, sum of cores x speed, GI/s."""
        return float(np.sum(self.cores * self.speed))

    @classmethod
    def build(cls, data: Mapping[str, Any], source: str = "<cluster>") -> Cluster:
        """Validate a parsed cluster document (as in docs/MODEL.md) and build the cluster.

        Args:
            data: the parsed YAML/JSON mapping.
            source: the file name, used in error messages.

        Raises:
            ValidationError: naming the source, the field, the value and the rule.
        """
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"{source}: the cluster file must be a mapping with 'regions' and 'nodes', "
                f"got {type(data).__name__}"
            )
        name = str(data.get("name", "cluster"))
        region_names = _parse_regions(data.get("regions"), source)
        n_regions = len(region_names)
        nodes = data.get("nodes")
        if not isinstance(nodes, Sequence) or isinstance(nodes, str) or len(nodes) == 0:
            raise ValidationError(f"{source}: field 'nodes' must be a non-empty list of nodes")
        names: list[str] = []
        tiers: list[str] = []
        cols: dict[str, list[float]] = {f: [] for f in NODE_FIELDS[1:-1]}
        latency: list[list[float]] = []
        for j, node in enumerate(nodes):
            where = f"{source}: nodes[{j}]"
            if not isinstance(node, Mapping):
                raise ValidationError(f"{where}: a node must be a mapping, got {node!r}")
            missing = [f for f in NODE_FIELDS if f not in node]
            if missing:
                raise ValidationError(f"{where}: missing field(s) {', '.join(missing)}")
            nm = node["name"]
            if not isinstance(nm, str) or not nm:
                raise ValidationError(f"{where}.name: must be a non-empty string, got {nm!r}")
            if nm in names:
                raise ValidationError(
                    f"{where}.name: duplicate node name {nm!r} (names are unique)"
                )
            names.append(nm)
            tiers.append(str(node.get("tier", "")))
            where = f"{source}: node {nm!r} (nodes[{j}])"
            cores = node["cores"]
            if (
                isinstance(cores, bool)
                or not isinstance(cores, (int, np.integer))
                or not 1 <= cores <= MAX_CORES
            ):
                raise ValidationError(
                    f"{where}.cores: must be an integer from 1 to {MAX_CORES:,}, got {_show(cores)}"
                )
            cols["cores"].append(int(cores))
            for f, positive in (
                ("speed", True),
                ("memory_mb", True),
                ("bandwidth_mb_s", True),
                ("power_idle_w", False),
                ("power_max_w", False),
            ):
                v = _number(node[f], f"{where}.{f}")
                lo = MIN_RATE if positive else 0.0
                if (positive and not lo <= v <= MAX_QUANTITY) or (not positive and not v >= 0):
                    rule = f"from {lo:g} to {MAX_QUANTITY:g}" if positive else ">= 0"
                    raise ValidationError(
                        f"{where}.{f}: must be a finite number {rule}, got {_show(node[f])}"
                    )
                if not v <= MAX_QUANTITY:
                    raise ValidationError(
                        f"{where}.{f}: must be a finite number <= {MAX_QUANTITY:g}, "
                        f"got {_show(node[f])}"
                    )
                cols[f].append(v)
            if cols["power_max_w"][-1] < cols["power_idle_w"][-1]:
                raise ValidationError(
                    f"{where}.power_max_w: must be >= power_idle_w "
                    f"({cols['power_idle_w'][-1]:g}), got {_show(node['power_max_w'])}"
                )
            lat = node["latency_s"]
            if isinstance(lat, (int, float)) and not isinstance(lat, bool) and n_regions == 1:
                lat = [lat]
            if not isinstance(lat, Sequence) or isinstance(lat, str) or len(lat) != n_regions:
                raise ValidationError(
                    f"{where}.latency_s: must be a list of {n_regions} values (one per region), "
                    f"got {lat!r}"
                )
            row = []
            for r, v in enumerate(lat):
                x = _number(v, f"{where}.latency_s[{r}]")
                if not 0 <= x <= MAX_TIME_S:
                    raise ValidationError(
                        f"{where}.latency_s[{r}]: must be a finite number of seconds from 0 to "
                        f"{MAX_TIME_S:g}, got {_show(v)}"
                    )
                row.append(x)
            latency.append(row)
        return cls(
            name=name,
            region_names=region_names,
            node_names=tuple(names),
            tiers=tuple(tiers),
            cores=_readonly(np.asarray(cols["cores"], dtype=np.int64)),
            speed=_readonly(np.asarray(cols["speed"], dtype=np.float64)),
            memory_mb=_readonly(np.asarray(cols["memory_mb"], dtype=np.float64)),
            bandwidth_mb_s=_readonly(np.asarray(cols["bandwidth_mb_s"], dtype=np.float64)),
            power_idle_w=_readonly(np.asarray(cols["power_idle_w"], dtype=np.float64)),
            power_max_w=_readonly(np.asarray(cols["power_max_w"], dtype=np.float64)),
            latency_s=_readonly(np.asarray(latency, dtype=np.float64).reshape(len(names), -1)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The cluster as a plain mapping in the file format of docs/MODEL.md."""
        nodes = []
        for j, nm in enumerate(self.node_names):
            node: dict[str, Any] = {"name": nm}
            if self.tiers[j]:
                node["tier"] = self.tiers[j]
            node.update(
                cores=int(self.cores[j]),
                speed=float(self.speed[j]),
                memory_mb=float(self.memory_mb[j]),
                bandwidth_mb_s=float(self.bandwidth_mb_s[j]),
                power_idle_w=float(self.power_idle_w[j]),
                power_max_w=float(self.power_max_w[j]),
                latency_s=[float(x) for x in self.latency_s[j]],
            )
            nodes.append(node)
        return {"name": self.name, "regions": list(self.region_names), "nodes": nodes}


def _parse_regions(value: Any, source: str) -> tuple[str, ...]:
    if isinstance(value, bool) or value is None:
        raise ValidationError(
            f"{source}: field 'regions' must be a positive integer or a list of names, "
            f"got {value!r}"
        )
    if isinstance(value, (int, np.integer)):
        if value < 1:
            raise ValidationError(f"{source}: field 'regions' must be >= 1, got {value!r}")
        return tuple(f"region-{r}" for r in range(int(value)))
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0:
        names = tuple(str(v) for v in value)
        if len(set(names)) != len(names):
            raise ValidationError(f"{source}: field 'regions' has duplicate names: {list(value)!r}")
        return names
    raise ValidationError(
        f"{source}: field 'regions' must be a positive integer or a non-empty list of names, "
        f"got {value!r}"
    )


def parse_number(v: Any) -> float:
    """``float(v)``, except that text with a digit separator (``"1_0"``) is refused.

    Python's ``float`` and NumPy's casts read ``"1_0"`` as 10; a number in a CSV or
    Parquet file has no separators, so such a cell is a typo, not a number.

    Raises:
        ValueError: text with ``_`` in it.
        TypeError, ValueError: as ``float(v)``.
    """
    if isinstance(v, str | bytes) and ("_" in v if isinstance(v, str) else b"_" in v):
        raise ValueError(f"digit separator in {v!r}")
    return float(v)


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValidationError(f"{where}: must be a number, got {_show(v)}")
    x = float(v)
    if np.isnan(x):
        raise ValidationError(f"{where}: must be a number, got NaN")
    return x


@dataclass(frozen=True, eq=False)
class TaskColumns:
    """The columns every set of tasks has, one entry per task: a :class:`Workload`'s
    and a decision's :class:`~hybridsched.sim.view.TaskBatch`."""

    task_id: np.ndarray
    """Unique task id, int64."""
    arrival_s: np.ndarray
    """When the task's data is produced at its region, s."""
    region: np.ndarray
    """0-based source region, int64."""
    data_mb: np.ndarray
    """Input data moved to the chosen node, MB."""
    work_gi: np.ndarray
    """Compute demand, GI (in a ``TaskBatch``: the schedulers' estimate of it)."""
    memory_mb: np.ndarray
    """Memory needed, MB."""


@dataclass(frozen=True, eq=False)
class Workload(TaskColumns):
    """A set of tasks, one per row, in the file's row order.

    ``deadline_s`` holds ``inf`` for tasks without a deadline.
    """

    deadline_s: np.ndarray
    """Allowed response time relative to arrival, s (inf: none)."""
    priority: np.ndarray
    """Priority class, int64; 0 is the most urgent."""
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Extra columns of the file, kept and ignored by the base model."""

    def __len__(self) -> int:
        return int(self.task_id.shape[0])

    @property
    def n_tasks(self) -> int:
        """Number of tasks."""
        return len(self)

    def columns(self) -> dict[str, np.ndarray]:
        """The SPEC columns (then the extra ones) as a name -> array mapping."""
        out = {c: getattr(self, c) for c in WORKLOAD_COLUMNS}
        out.update(self.extra)
        return out

    def subset(self, index: np.ndarray) -> Workload:
        """The tasks at ``index`` (an integer or boolean array), in that order."""
        return Workload(
            **{c: _readonly(getattr(self, c)[index]) for c in WORKLOAD_COLUMNS},
            extra={k: v[index] for k, v in self.extra.items()},
        )

    @classmethod
    def build(
        cls,
        columns: Mapping[str, Any],
        cluster: Cluster | None = None,
        source: str = "<workload>",
    ) -> Workload:
        """Validate workload columns (as in docs/MODEL.md) and build the workload.

        Args:
            columns: column name -> array-like, one entry per task.
            cluster: when given, regions are checked against it and every task
                must fit (memory) on at least one node.
            source: the file name, used in error messages.

        Raises:
            ValidationError: naming the source, the row, the column, the value and the rule.
        """
        needs = f"a workload needs {', '.join(WORKLOAD_COLUMNS)}"
        n = table_rows(columns, WORKLOAD_COLUMNS, WORKLOAD_COLUMNS, needs, source)
        a = {c: _column(columns[c], c, source) for c in WORKLOAD_COLUMNS}
        t_rule = f"must be a finite number of seconds from 0 to {MAX_TIME_S:g}"
        q = f"{MAX_QUANTITY:g}"
        _check(a["arrival_s"] >= 0, a["arrival_s"], "arrival_s", t_rule, source)
        _check(a["arrival_s"] <= MAX_TIME_S, a["arrival_s"], "arrival_s", t_rule, source)
        _check(a["region"] >= 0, a["region"], "region", "must be >= 0", source)
        rule = f"must be a finite number from 0 to {q}"
        _check(a["data_mb"] >= 0, a["data_mb"], "data_mb", rule, source)
        _check(a["data_mb"] <= MAX_QUANTITY, a["data_mb"], "data_mb", rule, source)
        rule = f"must be a finite number > 0 and <= {q}"
        _check(a["work_gi"] > 0, a["work_gi"], "work_gi", rule, source)
        _check(a["work_gi"] <= MAX_QUANTITY, a["work_gi"], "work_gi", rule, source)
        rule = f"must be a finite number from 0 to {q}"
        _check(a["memory_mb"] >= 0, a["memory_mb"], "memory_mb", rule, source)
        _check(a["memory_mb"] <= MAX_QUANTITY, a["memory_mb"], "memory_mb", rule, source)
        dl = a["deadline_s"]
        rule = f"must be > 0 and <= {MAX_TIME_S:g} seconds (or empty: no deadline)"
        _check(dl > 0, dl, "deadline_s", rule, source)
        _check((dl <= MAX_TIME_S) | (dl == np.inf), dl, "deadline_s", rule, source)
        _check(a["priority"] >= 0, a["priority"], "priority", "must be >= 0", source)
        ids = a["task_id"]
        # increasing ids (the usual case) are unique without a sort
        if n > 1 and not np.all(ids[1:] > ids[:-1]):
            uniq, counts = np.unique(ids, return_counts=True)
        else:
            uniq, counts = ids, np.ones(n, dtype=np.int64)
        if uniq.shape[0] != n:
            dup = int(uniq[np.argmax(counts > 1)])
            rows = np.flatnonzero(ids == dup)[:2]
            raise ValidationError(
                f"{source}: row {int(rows[1]) + 1}, column task_id: duplicate task_id {dup} "
                f"(first at row {int(rows[0]) + 1}); task ids must be unique"
            )
        if cluster is not None:
            _check(
                a["region"] < cluster.n_regions,
                a["region"],
                "region",
                f"must be < {cluster.n_regions} (the cluster's number of regions)",
                source,
            )
            fits = a["memory_mb"] <= float(np.max(cluster.memory_mb)) if n else np.ones(0, bool)
            _check(
                fits,
                a["memory_mb"],
                "memory_mb",
                f"fits no node (the largest node has {float(np.max(cluster.memory_mb)):g} MB)",
                source,
            )
        extra = {k: np.asarray(v) for k, v in columns.items() if k not in WORKLOAD_COLUMNS}
        return cls(**{c: _readonly(v) for c, v in a.items()}, extra=extra)


def table_rows(
    columns: Mapping[str, Any],
    required: Sequence[str],
    counted: Iterable[str],
    needs: str,
    source: str,
) -> int:
    """The number of rows of a table given as columns, checked.

    Args:
        columns: column name -> values.
        required: the columns it must have; the first one's length is the rows'.
        counted: the columns that must all have that many rows.
        needs: what the table needs, for the message (``"a workload needs ..."``).
        source: the file name, used in messages.

    Raises:
        ValidationError: a required column is missing, or a column's length differs.
    """
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValidationError(f"{source}: missing column(s) {', '.join(missing)}; {needs}")
    n = len(columns[required[0]])
    for c in counted:
        if len(columns[c]) != n:
            raise ValidationError(f"{source}: column {c} has {len(columns[c])} rows, expected {n}")
    return n


_INT_COLUMNS = frozenset({"task_id", "region", "priority"})


def _column(raw: Any, name: str, source: str) -> np.ndarray:
    arr = np.asarray(raw)
    if name in _INT_COLUMNS:
        if arr.dtype.kind in "iu":
            return _converted(arr, np.int64)
        if arr.dtype.kind == "b":
            raise ValidationError(f"{source}: column {name}: must be integers, got booleans")
        try:
            if arr.dtype.kind in "OSU":  # text: as parse_number reads it
                f = np.array([parse_number(v) for v in arr], dtype=np.float64)
            else:
                f = arr.astype(np.float64)
        except (TypeError, ValueError):
            f = None
        if f is None:
            bad = _first_bad(arr, parse_number)
            raise ValidationError(
                f"{source}: row {bad + 1}, column {name}: must be an integer, got {_show(arr[bad])}"
            )
        finite = np.isfinite(f)
        integral = np.zeros_like(finite)
        integral[finite] = f[finite] == np.floor(f[finite])
        if not np.all(integral):
            bad = int(np.argmin(integral))
            raise ValidationError(
                f"{source}: row {bad + 1}, column {name}: must be an integer, got {_show(arr[bad])}"
            )
        # beyond int64 the cast wraps around silently (a wrong id, a negative priority)
        in_range = (f >= -(2.0**63)) & (f < 2.0**63)
        if not np.all(in_range):
            bad = int(np.argmin(in_range))
            raise ValidationError(
                f"{source}: row {bad + 1}, column {name}: must be an integer from -2**63 to "
                f"2**63-1, got {_show(arr[bad])}"
            )
        return f.astype(np.int64)
    if arr.dtype.kind == "b":
        raise ValidationError(f"{source}: column {name}: must be numbers, got booleans")
    if arr.dtype.kind in "iuf":
        out = _converted(arr, np.float64)
    else:
        # object/string columns: empty cells are missing values.
        out = np.empty(arr.shape[0], dtype=np.float64)
        for i, v in enumerate(arr):
            if v is None or (isinstance(v, str) and v.strip() == ""):
                # an empty deadline means none; any other empty cell is refused below
                out[i] = np.inf if name == "deadline_s" else np.nan
                continue
            try:
                out[i] = parse_number(v)
            except (TypeError, ValueError):
                raise ValidationError(
                    f"{source}: row {i + 1}, column {name}: must be a number, got {v!r}"
                ) from None
    if np.any(np.isnan(out)):
        bad = int(np.argmax(np.isnan(out)))
        raise ValidationError(
            f"{source}: row {bad + 1}, column {name}: must be a number, got an empty value or NaN"
        )
    return out


def _converted(arr: np.ndarray, dtype: type) -> np.ndarray:
    """``arr`` as ``dtype``, without a copy when it is already a read-only contiguous
    array of that type (what Arrow hands over): nobody can change it under us."""
    if arr.dtype == dtype and not arr.flags.writeable and arr.flags.c_contiguous:
        return arr
    return arr.astype(dtype)


def _first_bad(arr: np.ndarray, conv: Any) -> int:
    for i, v in enumerate(arr):
        try:
            conv(v)
        except (TypeError, ValueError):
            return i
    return 0


def _check(ok: np.ndarray, values: np.ndarray, name: str, rule: str, source: str) -> None:
    if not np.all(ok):
        bad = int(np.argmin(ok))
        raise ValidationError(
            f"{source}: row {bad + 1}, column {name}: {rule}, got {_show(values[bad])}"
        )


def _show(v: Any) -> str:
    """A value as a user wrote it (``-1.0``, not ``np.float64(-1.0)``)."""
    return repr(v.item()) if isinstance(v, np.generic) else repr(v)
