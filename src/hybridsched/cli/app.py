"""The typer application and the error boundary shared by every command."""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from rich.markup import escape

from hybridsched.errors import HybridSchedError

app = typer.Typer(
    name="hybridsched",
    help="Schedule IoT data-processing tasks on edge/fog/cloud clusters and measure the result.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# piped output is not cut to 80 columns: the comparison tables are wide
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print a one-paragraph error message and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


_COMMAND_MODULES = ("core", "compare", "trace", "train", "tune")


def _register() -> None:
    # Command modules attach themselves to ``app`` on import; a module that is
    # not there (an optional part) is skipped, any other import error is real.
    for name in _COMMAND_MODULES:
        module = f"hybridsched.cli.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def main() -> None:
    """Console-script entry point."""
    _register()
    try:
        app(standalone_mode=True)
    except HybridSchedError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
