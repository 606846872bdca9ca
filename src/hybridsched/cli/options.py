"""Options shared by the commands that run experiments (compare, suite, tune).

Each is a type for a command's parameter; the command gives the default, e.g.
``queue: Queue = "priority"``.
"""

from __future__ import annotations

from typing import Annotated

import typer

Scenario = Annotated[str, typer.Option(help="Scenario preset.")]
Loads = Annotated[
    list[float] | None,
    typer.Option(help="Offered load, work / capacity (repeatable).", show_default="0.9"),
]
Policies = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated schedulers.", show_default="every registered one but optimal"
    ),
]
Interval = Annotated[float, typer.Option(help="Batching interval, s.")]
Queue = Annotated[str, typer.Option(help="fifo or priority.")]
Workers = Annotated[
    int | None, typer.Option(help="Worker processes.", show_default="the CPU count")
]
Backend = Annotated[
    str,
    typer.Option(
        help="Where the runs execute: local (this machine's process pool) or ray (a Ray "
        'cluster; pip install -e ".[ray]"). Results are the same.'
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        help="With --backend ray: the cluster's address (host:port or ray://host:port); "
        "default: the RAY_ADDRESS environment variable, else a local Ray started for the run "
        "with --workers CPUs."
    ),
]
