"""Google cluster-usage trace v2 (2011), ``task_events`` tables.

Headerless event log (one file or the ``part-?????-of-00500.csv.gz`` series,
read in the given order): ``time`` (microseconds), ``missing_info``,
``job_id``, ``task_index``, ``machine_id``, ``event_type`` (0 SUBMIT,
1 SCHEDULE, 2 EVICT, 3 FAIL, 4 FINISH, 5 KILL, 6 LOST, 7 UPDATE_PENDING,
8 UPDATE_RUNNING), ``user``, ``scheduling_class``, ``priority`` (0-11),
``cpu_request``, ``memory_request``, ``disk_request`` (normalised to the
largest machine), ``different_machines``.

A task (job_id, task_index) may run several times: each SUBMIT opens an
*attempt*, closed by the first EVICT, FAIL, FINISH, KILL or LOST. An attempt
that ends in FINISH becomes one task: arrival = its SUBMIT time, work =
(FINISH - last SCHEDULE) x reference speed, memory and data from the SUBMIT
row's requests, priority from the SUBMIT row's priority band, region from a
hash of the job id. Other attempts are skipped by how they ended. Attempts
still open are carried across chunks and files (memory is bounded by the
number of open tasks, not by the trace).

Counting: the SUBMIT row stands for its attempt (kept, or skipped by the
attempt's outcome); the attempt's other rows are *merged*. Rows of a task
with no open attempt (its SUBMIT precedes the trace) are skipped as
``no_submit``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from hybridsched.workload.traces import common

NAMES = (
    "time",
    "missing_info",
    "job_id",
    "task_index",
    "machine_id",
    "event_type",
    "user",
    "scheduling_class",
    "priority",
    "cpu_request",
    "memory_request",
    "disk_request",
    "different_machines",
)
"""The columns of task_events, in file order."""

SUBMIT, SCHEDULE, EVICT, FAIL, FINISH, KILL, LOST = range(7)
_ENDINGS = {EVICT: "evicted", FAIL: "failed", KILL: "killed", LOST: "lost"}
_TIME_MAX = np.iinfo(np.int64).max  # "after the end of the trace"
TASK_BITS = 20
"""A task is keyed by ``job_id << 20 | task_index``: task_index < 2**20, job_id < 2**43."""
_JOB_LIMIT = 1 << (63 - TASK_BITS)


def priority_band(priority: np.ndarray) -> np.ndarray:
    """SPEC priority from the trace's 0-11: production (9-11) 0, middle (2-8) 1, free (0-1) 2."""
    return np.where(priority >= 9, 0, np.where(priority >= 2, 1, 2)).astype(np.int64)


@dataclass
class _Attempts:
    """Attempts as arrays (one entry each); the carried open ones are sorted by key."""

    key: np.ndarray
    """Task key, int64 (job_id << TASK_BITS | task_index)."""
    submit: np.ndarray
    """SUBMIT time, us."""
    sched: np.ndarray
    """Last SCHEDULE time so far, us (-1: none)."""
    prio: np.ndarray
    """Trace priority 0-11 of the SUBMIT row."""
    mem: np.ndarray
    """Normalised memory request of the SUBMIT row."""
    disk: np.ndarray
    """Normalised disk request of the SUBMIT row."""

    FIELDS: ClassVar[tuple[str, ...]] = ("key", "submit", "sched", "prio", "mem", "disk")

    @classmethod
    def none(cls) -> _Attempts:
        i = np.zeros(0, np.int64)
        f = np.zeros(0, np.float64)
        return cls(i, i, i, i, f, f)

    def __len__(self) -> int:
        return int(self.key.shape[0])

    def apply(self, fn: Callable[[np.ndarray], np.ndarray]) -> _Attempts:
        return _Attempts(*(fn(getattr(self, f)) for f in self.FIELDS))


class Google2011(common.CsvTraceFormat):
    """Importer of Google cluster-usage trace v2 task_events."""

    name = "google-2011"
    summary = "Google cluster-usage trace v2 (2011) task_events (headerless event log)"
    names = NAMES
    columns: ClassVar[dict[str, common.Kind]] = {
        "time": "int",
        "job_id": "int",
        "task_index": "int",
        "event_type": "int",
        "priority": "int",
        "memory_request": "float",
        "disk_request": "float",
    }
    params: ClassVar[dict[str, common.Param]] = {
        "machine_memory_mb": common.Param(
            65536.0, "memory of the largest machine (request = 1), MB"
        ),
        "machine_disk_mb": common.Param(
            100000.0, "disk of the largest machine (request = 1) -> data, MB"
        ),
        "priority": common.Param(
            None, "one priority for every task (default: by priority band)", int
        ),
    }

    fields_hint = (
        "time, missing_info, job_id, task_index, machine_id, event_type (0-8), user, "
        "scheduling_class, priority, cpu_request, memory_request, disk_request, "
        "different_machines"
    )

    def row_looks_right(self, fields: list[str]) -> bool:
        return (
            len(fields) == 13
            and fields[0].isdigit()
            and fields[2].isdigit()
            and fields[3].isdigit()
            and fields[5].isdigit()
            and int(fields[5]) <= 8
        )

    def read(self, files: Sequence[Path], ctx: common.Context) -> Iterator[common.Records]:
        carry = _Attempts.none()
        for chunk, rows in self.chunks(files, ctx, max(ctx.options.block_size, 1 << 23)):
            records, carry = self._step(chunk, rows, carry, ctx)
            rows.check()
            records.filter = rows
            yield records
        ctx.report.skip("unfinished", len(carry))

    def _step(
        self, chunk: common.Chunk, rows: common.RowFilter, carry: _Attempts, ctx: common.Context
    ) -> tuple[common.Records, _Attempts]:
        p = ctx.params
        report = ctx.report
        time_us = chunk.ints("time")
        job = chunk.ints("job_id")
        task = chunk.ints("task_index")
        event = chunk.ints("event_type")
        prio = chunk.ints("priority")
        for c, v, hi in (
            ("time", time_us, None),
            ("job_id", job, _JOB_LIMIT),
            ("task_index", task, 1 << TASK_BITS),
            ("event_type", event, 9),
            ("priority", prio, 12),
        ):
            bad = chunk.null(c) | (v < 0)
            if hi is not None:
                bad |= v >= hi
            rule = "must be an integer >= 0" + (f" and < {hi}" if hi is not None else "")
            rows.bad(bad, c, rule, v)
        mem = common.require_number(chunk, rows, "memory_request", missing_ok=True)
        disk = common.require_number(chunk, rows, "disk_request", missing_ok=True)
        rows.skip(time_us == _TIME_MAX, "after_trace_end")

        # The chunk's rows sorted by task (stable: file order within a task).
        live = np.flatnonzero(rows.alive)
        key_all = (job << TASK_BITS) | task
        live = live[np.argsort(key_all[live], kind="stable")]
        ckey = key_all[live]
        # Carried open attempts of the tasks this chunk touches go first, as
        # SUBMIT pseudo-rows; the others stay in the carry untouched.
        pos = np.searchsorted(carry.key, ckey)
        hit = pos < len(carry)
        hit[hit] = carry.key[pos[hit]] == ckey[hit]
        touched = pos[hit]
        if touched.size:  # ckey is sorted, so touched is too: drop repeats
            touched = touched[np.concatenate(([True], touched[1:] != touched[:-1]))]
        untouched = np.ones(len(carry), dtype=bool)
        untouched[touched] = False
        opened = carry.apply(lambda a: a[touched])
        rest = carry.apply(lambda a: a[untouched])
        n_open = len(opened)
        n = n_open + live.size
        if n == 0:
            return common.Records.empty(), carry
        # perm[i]: where merged row i comes from in (open attempts ++ live rows).
        at_open = np.searchsorted(ckey, opened.key, side="left") + np.arange(n_open)
        perm = np.empty(n, dtype=np.int64)
        from_rows = np.ones(n, dtype=bool)
        from_rows[at_open] = False
        perm[at_open] = np.arange(n_open)
        perm[from_rows] = np.arange(n_open, n)

        def merged(open_values: np.ndarray, row_values: np.ndarray) -> np.ndarray:
            return np.concatenate((open_values, row_values[live]))[perm]

        key = merged(opened.key, key_all)
        time = merged(opened.submit, time_us)
        ev = merged(np.zeros(n_open, np.int64), event)
        sched0 = merged(opened.sched, np.full(chunk.n, -1, np.int64))
        src = merged(np.full(n_open, -1, np.int64), np.arange(chunk.n))  # chunk row, -1: carried

        # Segments: an attempt starts at a SUBMIT (or a carried attempt); rows
        # of a task before its first SUBMIT form an orphan segment.
        idx = np.arange(n)
        new_task = np.ones(n, dtype=bool)
        new_task[1:] = key[1:] != key[:-1]
        heads = np.flatnonzero(new_task | (ev == SUBMIT))
        seg = np.zeros(n, dtype=np.int64)
        seg[heads[1:]] = 1
        seg = np.cumsum(seg)
        is_end = (ev >= EVICT) & (ev <= LOST)
        first_end = np.minimum.reduceat(np.where(is_end, idx, n), heads)
        until_end = idx <= first_end[seg]
        sched_t = np.where((ev == SCHEDULE) & until_end, time, sched0)
        sched = np.maximum.reduceat(sched_t, heads)

        attempt = ev[heads] == SUBMIT
        is_head = np.zeros(n, dtype=bool)
        is_head[heads] = True
        in_attempt = attempt[seg] & until_end
        chunk_row = src >= 0
        # A SUBMIT row stands for its attempt (counted when it ends); the
        # attempt's other rows are merged; rows outside any attempt are orphans.
        rows.merge(_mask(chunk.n, src[chunk_row & in_attempt & ~is_head]))
        rows.skip(_mask(chunk.n, src[chunk_row & ~in_attempt]), "no_submit")

        has_end = first_end < n
        end_at = np.minimum(first_end, n - 1)
        end_event = np.where(has_end, ev[end_at], -1)
        next_same_task = np.zeros(heads.size, dtype=bool)
        next_same_task[:-1] = ~new_task[heads[1:]]
        still_open = attempt & ~has_end
        report.skip("resubmitted", int(np.sum(still_open & next_same_task)))
        for code, reason in _ENDINGS.items():
            report.skip(reason, int(np.sum(attempt & (end_event == code))))
        finished = attempt & (end_event == FINISH)
        never = finished & (sched < 0)
        duration_us = time[end_at] - sched
        zero = finished & ~never & (duration_us <= 0)
        report.skip("never_scheduled", int(never.sum()))
        report.skip("zero_duration", int(zero.sum()))
        kept = np.flatnonzero(finished & ~never & ~zero)
        kept = kept[np.argsort(src[end_at[kept]])]  # in FINISH-row order (rows are distinct)

        head_src = perm[heads]

        def attrs(open_values: np.ndarray, row_values: np.ndarray) -> np.ndarray:
            return np.concatenate((open_values, row_values[live]))[head_src]

        a_prio = attrs(opened.prio, prio)
        a_mem = attrs(opened.mem, mem)
        a_disk = attrs(opened.disk, disk)
        new_open = np.flatnonzero(still_open & ~next_same_task)  # sorted by key
        fresh = _Attempts(
            key[heads[new_open]],
            time[heads[new_open]],
            sched[new_open],
            a_prio[new_open],
            a_mem[new_open],
            a_disk[new_open],
        )
        carry = _merge_sorted(rest, fresh)

        h = heads[kept]
        priority = common.priorities(p, priority_band(a_prio[kept]))
        records = common.Records(
            t_ns=time[h] * 1000,
            work_gi=duration_us[kept] / 1e6 * ctx.options.reference_speed,
            data_mb=a_disk[kept] * p["machine_disk_mb"],
            memory_mb=a_mem[kept] * p["machine_memory_mb"],
            priority=priority,
            key=common.hash_ints(key[h] >> TASK_BITS),
        )
        return records, carry


def _merge_sorted(a: _Attempts, b: _Attempts) -> _Attempts:
    """Two key-sorted sets of attempts with disjoint keys, merged into one sorted set."""
    if not len(b):
        return a
    n = len(a) + len(b)
    at_b = np.searchsorted(a.key, b.key) + np.arange(len(b))
    from_a = np.ones(n, dtype=bool)
    from_a[at_b] = False

    def merge(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.empty(n, dtype=x.dtype)
        out[at_b] = y
        out[from_a] = x
        return out

    return _Attempts(*(merge(getattr(a, f), getattr(b, f)) for f in _Attempts.FIELDS))


def _mask(n: int, index: np.ndarray) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[index] = True
    return out
