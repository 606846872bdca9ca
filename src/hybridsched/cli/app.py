"""The typer application and the error boundary shared by every command."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperGroup, TyperOption

from hybridsched.errors import HybridSchedError

_TYPE_NAMES = {"int": "INTEGER", "float": "NUMBER", "Path": "PATH", "str": "TEXT"}


def _tidy(params: list[Any]) -> None:
    """Show plain metavars (``INTEGER``, ``PATH``) instead of typer's ``<int>`` tags.

    Flags show none; a repeatable option shows its value's name once (its help
    says it repeats).
    """
    for param in params:
        # typer's own tags come from bare_type(); an older typer without it keeps its help
        if param.metavar is not None or not hasattr(param, "bare_type"):
            continue
        if isinstance(param, TyperOption):
            if param.is_flag or param.is_bool_flag:
                param.metavar = ""
            else:
                bare = param.bare_type()
                bare = bare.removeprefix("list[").removesuffix("]")
                param.metavar = _TYPE_NAMES.get(bare, bare.upper())
        elif isinstance(param, TyperArgument) and not getattr(param, "_tidy", False):
            bare = param.bare_type().removeprefix("list[").removesuffix("]")
            label = _TYPE_NAMES.get(bare, bare.upper())
            # an argument's name is its metavar; only its type column needs the plain name
            param.display_type_rich = lambda ctx, label=label: label
            param.metavar = (param.name or "value").upper()
            param._tidy = True


class TidyGroup(TyperGroup):
    """A typer group whose help, and its commands', show plain metavars."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The group's parameters, tidied."""
        params = super().get_params(ctx)
        _tidy(params)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command ``cmd_name`` with tidied help."""
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _tidy(command.params)
            help_option = command.get_help_option(ctx)
            if help_option is not None:
                _tidy([help_option])
        return command


app = typer.Typer(
    name="hybridsched",
    help="Schedule IoT data-processing tasks on edge/fog/cloud clusters and measure the result.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=TidyGroup,
)
# piped output is not cut to 80 columns: the comparison tables are wide
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from hybridsched import __version__

        console.print(f"hybridsched {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Schedule IoT data-processing tasks on edge/fog/cloud clusters and measure the result.

    Start with `hybridsched generate`, then `hybridsched simulate`; `hybridsched
    COMMAND --help` shows each command's options and examples.
    """


def fail(message: str, code: int = 2) -> None:
    """Print a one-paragraph error message and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def check_seed(value: int, option: str = "--seed") -> None:
    """Refuse a seed NumPy cannot take (negative).

    Raises:
        typer.Exit: after the message (exit 2).
    """
    if value < 0:
        fail(f"{option}: must be an integer >= 0, got {value}")


def check_number(
    value: float | None,
    option: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> None:
    """Refuse a non-finite option value or one outside ``[low, high]`` (``(low, high]``).

    Raises:
        typer.Exit: after a message naming the option, the value and the rule.
    """
    if value is None:
        return
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f"<= {high:g}")
        rule = "a finite number" + (" " + " and ".join(parts) if parts else "")
        fail(f"{option}: must be {rule}, got {value:g}")


PluginOption = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        help="Module (my_pkg.scheds) or .py file that registers schedulers; repeatable "
        "(docs/PLUGINS.md).",
    ),
]
"""The ``--plugin`` option, for any command that builds policies by name."""

EstimatesOption = Annotated[
    str,
    typer.Option(
        help="Schedulers' estimates: auto (each scheduler's preference: observed for "
        "hybrid and rl, nominal for the others; nominal for all with --estimate-cv), or nominal "
        "or observed for every scheduler "
        "(observed: corrected by what completed tasks revealed; docs/MODEL.md section 12.1)."
    ),
]
"""The ``--estimates`` option of ``simulate``, ``compare`` and ``serve``."""

TrainEstimatesOption = Annotated[
    str,
    typer.Option(
        help="The view's estimates during episodes: nominal, or observed (corrected by "
        "what completed tasks revealed; docs/MODEL.md section 12.1)."
    ),
]
"""The ``--estimates`` option of ``train``: no ``auto``, an episode has no scheduler of
its own to prefer a mode."""

ConditionsOption = Annotated[
    Path | None,
    typer.Option(
        help="Conditions file: windows of node speed, latency, bandwidth that every run goes "
        "through (.csv/.parquet: node,start_s,end_s,speed,latency,bandwidth; docs/MODEL.md "
        "section 12)."
    ),
]
"""The ``--conditions`` option of ``simulate`` and ``compare``."""


def load_plugins(specs: list[str] | None) -> None:
    """Import the ``--plugin`` modules, and name them for worker processes too.

    Raises:
        ConfigError: a plugin that cannot be found or fails to import.
    """
    if not specs:
        return
    from hybridsched.policies.plugins import load_plugin, remember

    for spec in specs:
        load_plugin(spec)
        remember(spec)


_COMMAND_MODULES = ("core", "compare", "trace", "train", "tune", "service")


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
        _error(str(exc))
    except MemoryError:
        _error("out of memory: use fewer tasks or nodes (or a machine with more memory)")
    except OSError as exc:
        # a file that could not be read or written past the commands' own checks
        reason = exc.strerror or str(exc)
        _error(f"{exc.filename}: {reason}" if exc.filename else reason)


def _error(message: str) -> Any:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(2)
