"""Throughput of the trace importers on synthetic files (records read per second).

Writes ~2,000,000-row files of each CSV format into a temporary folder, imports
each one with :func:`hybridsched.workload.traces.import_trace` (end to end: read,
map, sort, validate the workload) and prints a table of records/s. The files
mimic the real ones (same columns, value ranges and a few percent of failed
records); the Google file is a proper event log (SUBMIT, SCHEDULE, then
FINISH or another ending per task).

Usage::

    python benchmarks/bench_traces.py [--rows 2000000] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from rich.console import Console
from rich.table import Table

from hybridsched.workload.traces import ImportOptions, import_trace


def _write(columns: dict[str, object], path: Path, header: bool) -> None:
    table = pa.table(columns)
    with path.open("wb") as f:
        if header:
            f.write((",".join(table.column_names) + "\n").encode())
        opts = pacsv.WriteOptions(include_header=False, quoting_style="none")
        pacsv.write_csv(table, f, opts)


def synth_alibaba_genai(path: Path, n: int, rng: np.random.Generator) -> None:
    """Alibaba GenAI requests: 1 s timestamps, ~1.5 % failed, 0.5 % pending."""
    t = np.datetime64("2024-11-15T16:00:00", "s") + np.cumsum(rng.integers(0, 3, n)).astype(
        "timedelta64[s]"
    )
    types = np.array(["TXT_2_IMG", "IMG_2_IMG", "INPAINTING"])
    status = np.array(["SUCCEED", "FAILED", "PENDING", "PROCESSING"])
    groups = np.char.add("G", np.char.zfill(rng.integers(0, 5000, n).astype(str), 4))
    _write(
        {
            "gmt_create": pc.strftime(pa.array(t), format="%Y-%m-%d %H:%M:%S"),
            "predict_type": types[rng.choice(3, n, p=[0.91, 0.08, 0.01])],
            "predict_status": status[rng.choice(4, n, p=[0.98, 0.015, 0.004, 0.001])],
            "exec_time_seconds": rng.integers(1, 120, n).astype(float),
            "groupId": groups,
            "prompt_length": rng.integers(1, 200, n).astype(float),
            "negative_prompt_length": rng.integers(1, 50, n).astype(float),
            "num_images_per_prompt": rng.integers(1, 9, n).astype(float),
            "num_inference_steps": np.full(n, 30.0),
            "checkpoint_model_version_id": np.full(n, "M0001"),
            "num_lora": rng.integers(0, 3, n),
        },
        path,
        header=True,
    )


def synth_azure_llm(path: Path, n: int, rng: np.random.Generator) -> None:
    """Azure LLM requests: timestamps with 7 fractional digits."""
    t0 = np.datetime64("2023-11-16T18:00:00", "ns")
    t = t0 + (np.cumsum(rng.integers(0, 2_000_000, n)) // 100 * 100).astype("timedelta64[ns]")
    text = pc.utf8_slice_codeunits(pc.strftime(pa.array(t), format="%Y-%m-%d %H:%M:%S"), 0, 27)
    _write(
        {
            "TIMESTAMP": text,
            "ContextTokens": rng.integers(1, 8000, n),
            "GeneratedTokens": rng.integers(0, 800, n),
        },
        path,
        header=True,
    )


def synth_google_2011(path: Path, n: int, rng: np.random.Generator) -> None:
    """Google task_events: SUBMIT, SCHEDULE and an ending (95 % FINISH) per task."""
    m = n // 3
    submit = 600_000_000 + np.cumsum(rng.integers(0, 2_000, m))
    sched = submit + rng.integers(0, 5_000_000, m)
    end = sched + rng.integers(1_000_000, 600_000_000, m)
    job = 6_000_000_000 + np.arange(m) // 10
    idx = np.arange(m) % 10
    ending = np.where(rng.random(m) < 0.95, 4, rng.choice([2, 3, 5], m))
    t = np.concatenate([submit, sched, end])
    ev = np.concatenate([np.zeros(m, np.int64), np.ones(m, np.int64), ending])
    order = np.argsort(t, kind="stable")
    k = 3 * m
    users = np.array(["fJYeclskJqPWsJ1D3Lp2T7kyVs3fJ9eMy1mLdzcsyuM=", "o/YU+4zKsKd4L+Ex3Fx="])
    machine = np.where(ev[order] == 0, "", rng.integers(1, 12_000, k).astype(str))
    _write(
        {
            "time": t[order],
            "missing": pa.nulls(k, pa.string()),
            "job": np.tile(job, 3)[order],
            "task": np.tile(idx, 3)[order],
            "machine": machine,
            "event": ev[order],
            "user": users[rng.integers(0, 2, k)],
            "class": rng.integers(0, 4, k),
            "priority": rng.integers(0, 12, k),
            "cpu": np.round(rng.random(k) * 0.1, 5),
            "mem": np.round(rng.random(k) * 0.1, 5),
            "disk": np.round(rng.random(k) * 0.001, 7),
            "diff": rng.integers(0, 2, k),
        },
        path,
        header=False,
    )


def synth_alibaba_2018(path: Path, n: int, rng: np.random.Generator) -> None:
    """Alibaba 2018 batch tasks: 94 % Terminated."""
    status = np.array(
        ["Terminated", "Failed", "Running", "Waiting", "Cancelled", "Interrupted", "Ready"]
    )
    start = rng.integers(80_000, 700_000, n)
    _write(
        {
            "task_name": np.char.add("M", rng.integers(1, 20, n).astype(str)),
            "instance_num": rng.integers(1, 1000, n),
            "job_name": np.char.add("j_", rng.integers(1, 4_000_000, n).astype(str)),
            "task_type": rng.integers(1, 13, n),
            "status": status[rng.choice(7, n, p=[0.94, 0.02, 0.01, 0.01, 0.01, 0.005, 0.005])],
            "start_time": start,
            "end_time": start + rng.integers(1, 3000, n),
            "plan_cpu": rng.choice([50.0, 100.0, 200.0], n),
            "plan_mem": np.round(rng.random(n) * 2, 2),
        },
        path,
        header=False,
    )


def synth_generic(path: Path, n: int, rng: np.random.Generator) -> None:
    """A generic CSV: numeric arrival (s), duration, data size, user."""
    _write(
        {
            "ts": np.round(np.cumsum(rng.exponential(0.01, n)), 6),
            "runtime": np.round(rng.exponential(5.0, n), 3) + 0.001,
            "size": np.round(rng.exponential(2.0, n), 3),
            "user": np.char.add("u", rng.integers(0, 1000, n).astype(str)),
        },
        path,
        header=True,
    )


CASES: dict[str, tuple[Callable[[Path, int, np.random.Generator], None], dict[str, str]]] = {
    "alibaba-genai-2026": (synth_alibaba_genai, {}),
    "azure-llm-2023": (synth_azure_llm, {}),
    "google-2011": (synth_google_2011, {}),
    "alibaba-2018": (synth_alibaba_2018, {}),
    "generic": (
        synth_generic,
        {"arrival": "ts", "duration": "runtime", "data": "size", "group": "user"},
    ),
}


def main() -> None:
    """Synthesize, import and print records/s per format."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="imports per format; the best counts")
    ap.add_argument("--keep", type=Path, default=None, help="write the files here and keep them")
    ap.add_argument("--formats", nargs="*", default=list(CASES))
    args = ap.parse_args()
    console = Console()
    table = Table(title=f"Trace import throughput ({args.rows:,} rows per file)")
    table.add_column("format", no_wrap=True, min_width=18)
    for col in ("file MB", "read", "kept", "best s", "records/s", "MB/s"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for fmt in args.formats:
            synth, mapping = CASES[fmt]
            path = folder / f"{fmt}.csv"
            with console.status(f"writing {path.name}"):
                synth(path, args.rows, np.random.default_rng(0))
            size_mb = path.stat().st_size / 1e6
            best = float("inf")
            report = None
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                _, report = import_trace(
                    fmt, [path], options=ImportOptions(regions=4, mapping=mapping)
                )
                best = min(best, time.perf_counter() - t0)
            assert report is not None
            table.add_row(
                fmt,
                f"{size_mb:.0f}",
                f"{report.read:,}",
                f"{report.kept:,}",
                f"{best:.2f}",
                f"{report.read / best:,.0f}",
                f"{size_mb / best:.0f}",
            )
            if args.keep is None:
                path.unlink()
    console.print(table)


if __name__ == "__main__":
    main()
