"""``hybridsched trace``: import public traces (Alibaba, Azure, Google, any table) as workloads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hybridsched.cli.app import TidyGroup, app, console, fail
from hybridsched.errors import HybridSchedError
from hybridsched.io import TABLE_SUFFIXES, read_cluster, write_table

if TYPE_CHECKING:
    from hybridsched.workload.traces import ImportReport

# The importers are imported inside the commands: every CLI call registers this
# module, and only `trace` commands should pay for loading them.
FORMAT_NAMES = ("alibaba-genai-2026", "azure-llm-2023", "google-2011", "alibaba-2018", "generic")

trace_app = typer.Typer(
    name="trace",
    help="Import public trace formats as workloads (see docs/TRACES.md).",
    no_args_is_help=True,
    cls=TidyGroup,
)

PROGRESS_MIN_BYTES = 32 * 1024 * 1024
"""Inputs at least this large get a progress bar."""


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key.strip():
            fail(f"{option} {v!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


IMPORT_EXAMPLES = """
[bold]Examples[/]

  hybridsched trace import batch_task.csv --format alibaba-2018 --out w.parquet
  --cluster c.yaml --target-load 0.8

  hybridsched trace import calls.csv -f generic -m arrival=ts -m work=cpu_s -o w.csv

  hybridsched trace formats   [dim](the formats, their columns and --param constants)[/]
"""


@trace_app.command("import", epilog=IMPORT_EXAMPLES)
def import_command(
    files: Annotated[list[Path], typer.Argument(help="Trace file(s), read in this order.")],
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help=f"Trace format: {', '.join(FORMAT_NAMES)}."),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Workload file to write (.parquet or .csv).")
    ],
    cluster: Annotated[
        Path | None,
        typer.Option(help="Cluster file: sets the regions, skips tasks that fit no node."),
    ] = None,
    target_load: Annotated[
        float | None,
        typer.Option(help="Rescale time so the offered load on --cluster is this."),
    ] = None,
    time_scale: Annotated[
        float | None, typer.Option(help="Multiply arrival times by this instead.")
    ] = None,
    regions: Annotated[
        int | None, typer.Option(help="Number of source regions (default: the cluster's, or 1).")
    ] = None,
    deadline_factor: Annotated[
        float | None,
        typer.Option(
            help="Deadline = factor x service time on the reference node (default: none)."
        ),
    ] = None,
    reference_speed: Annotated[
        float, typer.Option(help="Speed of the reference core, GI/s: work = duration x this.")
    ] = 1.0,
    limit: Annotated[int | None, typer.Option(help="Keep at most this many tasks.")] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse the first bad row instead of skipping it.")
    ] = False,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Format constant KEY=VALUE (repeatable)."),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", "-m", help="generic format: FIELD=COLUMN (repeatable)."),
    ] = None,
) -> None:
    """Import trace FILES in format --format and write them as one workload to --out."""
    from hybridsched.workload.traces import ImportOptions, import_trace

    if out.suffix.lower() not in TABLE_SUFFIXES:
        fail(f"--out {out}: unknown table file type {out.suffix!r}; use .parquet or .csv")
    try:
        options = ImportOptions(
            regions=regions,
            reference_speed=reference_speed,
            deadline_factor=deadline_factor,
            time_scale=time_scale,
            target_load=target_load,
            cluster=read_cluster(cluster) if cluster is not None else None,
            limit=limit,
            strict=strict,
            params=_pairs(param or [], "--param"),
            mapping=_pairs(mapping or [], "--map"),
        )
        total = sum(f.stat().st_size for f in files if f.is_file())
        if total >= PROGRESS_MIN_BYTES:
            with Progress(
                TextColumn("[bold]importing[/]"),
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("import", total=total)
                workload, report = import_trace(
                    fmt, files, options=options, progress=lambda n: bar.advance(task, n)
                )
        else:
            workload, report = import_trace(fmt, files, options=options)
        write_table(workload.columns(), out)
    except HybridSchedError as exc:
        fail(str(exc))
    console.print(report_table(report))
    console.print(f"wrote {report.kept:,} tasks to {out}", highlight=False)


def report_table(report: ImportReport) -> Table:
    """The import report as a rich table: read, kept, merged, skipped by reason, scaling."""
    table = Table(title=f"{report.format} import", show_header=True)
    table.add_column("records")
    table.add_column("count", justify="right")
    table.add_row("read", f"{report.read:,}")
    table.add_row("[green]kept[/]", f"{report.kept:,}")
    if report.merged:
        table.add_row("merged (events of kept/skipped tasks)", f"{report.merged:,}")
    for reason, count in sorted(report.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(f"[yellow]skipped[/]: {reason}", f"{count:,}")
    table.add_section()
    table.add_row("arrival span, s", f"{report.span_s:,.3f}")
    table.add_row("time scale", f"{report.time_scale:.6g}")
    table.add_row("total work, GI", f"{report.total_work_gi:,.3f}")
    if report.offered_load is not None:
        table.add_row("offered load", f"{report.offered_load:.6g}")
    return table


@trace_app.command("formats", epilog="[bold]Example[/]\n\n  hybridsched trace formats")
def formats_command() -> None:
    """List the trace formats and their mapping constants (--param)."""
    from hybridsched.workload.traces import FORMATS

    table = Table(title="trace formats")
    table.add_column("format")
    table.add_column("what")
    table.add_column("params (default)")
    for name, fmt in FORMATS.items():
        params = "\n".join(f"{k} ({p.default!r}): {p.doc}" for k, p in fmt.params.items())
        table.add_row(name, fmt.summary, params)
    console.print(table)


app.add_typer(trace_app, name="trace")
