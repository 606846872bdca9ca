"""The ``train`` commands: ``train rl`` and ``train hybrid``, with a progress bar.

Each subcommand takes only the options that apply to its trainer, with the
defaults of its config (:mod:`hybridsched.train.config`). ``--resume DIR``
continues the run in ``DIR`` with that run's own config: only ``--minutes``,
``--max-updates`` and where the work runs (``--backend``, ``--workers``,
``--ray-address``: the weights do not depend on it) may be given with it; any
other option is refused, never ignored. The old spelling ``train --policy X``
is refused with the new one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from hybridsched.cli.app import TrainEstimatesOption, app, console, err_console, fail
from hybridsched.cli.options import RayAddress
from hybridsched.errors import HybridSchedError
from hybridsched.interrupts import ignore_further
from hybridsched.model import PRIORITY_CLASSES
from hybridsched.train.config import HybridTrainConfig, TrainConfig

TRAINABLE = ("hybrid", "rl")
_F = TypeVar("_F", bound=Callable[..., None])


class _TrainGroup(TyperGroup):
    """``train``: refuses the old ``--policy`` spelling and untrainable names with a message."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        for k, a in enumerate(args):
            if a == "--policy" or a.startswith("--policy="):
                name = (
                    a.split("=", 1)[1] if "=" in a else (args[k + 1] if k + 1 < len(args) else "")
                )
                if name not in TRAINABLE:
                    fail(f"train: {name!r} is not trainable; trainable policies: rl, hybrid")
                fail(
                    f"train --policy {name}: the policy is now a subcommand; "
                    f"use `hybridsched train {name} ...` (see `hybridsched train {name} --help`)"
                )
            if not a.startswith("-"):
                break
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: typer.Context, args: list[str]
    ) -> tuple[str | None, Any, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            fail(f"train {name}: {name!r} is not trainable; trainable policies: rl, hybrid")
        return super().resolve_command(ctx, args)


train_app = typer.Typer(
    cls=_TrainGroup,
    no_args_is_help=True,
    help="Train a learned scheduler (rl or hybrid); writes checkpoints and a learning curve.",
)
app.add_typer(train_app, name="train")


def _defaults(config: type) -> dict[str, Any]:
    return {f.name: f.default for f in fields(config) if not callable(f.default_factory)}


_RL = _defaults(TrainConfig)
_HY = _defaults(HybridTrainConfig)

# options both trainers take (each subcommand gives its own default)
Scenario = Annotated[str, typer.Option(help="Scenario preset of the episodes.")]
Load = Annotated[float, typer.Option(help="Offered work / cluster capacity.")]
Minutes = Annotated[float, typer.Option(help="Wall-clock budget, minutes.")]
Out = Annotated[Path, typer.Option(help="Run folder (checkpoints, curve).")]
Resume = Annotated[
    Path | None,
    typer.Option(
        help="Continue the run in this folder with its own config "
        "(only --minutes, --max-updates, --backend, --workers and --ray-address "
        "may be given with it)."
    ),
]
Seed = Annotated[int, typer.Option(help="Root seed of the run.")]
Tasks = Annotated[int, typer.Option(help="Tasks per training episode.")]
Interval = Annotated[float, typer.Option(help="Batching interval, s.")]
Queue = Annotated[str, typer.Option(help="Queue discipline: fifo or priority.")]
EvalSeeds = Annotated[int, typer.Option(help="Held-out validation seeds.")]
EvalTasks = Annotated[int, typer.Option(help="Tasks per validation episode.")]
EvalEvery = Annotated[float, typer.Option(help="Seconds between evaluations.")]
MaxUpdates = Annotated[int, typer.Option(help="Stop after N updates (0: time only).")]
Threads = Annotated[int, typer.Option(help="Torch threads.")]
_BACKEND_HELP = (
    "Where the simulator work runs: local (this process, one worker) or ray "
    "(--workers Ray actors); see docs/SCALE.md."
)
Backend = Annotated[str, typer.Option(help=_BACKEND_HELP)]
Workers = Annotated[int, typer.Option(help="Workers (Ray actors with --backend ray).")]
Drift = Annotated[
    str,
    typer.Option(
        help="What changes during an episode: none, scenario (the scenario's own "
        "conditions, e.g. iot-drift) or random (conditions and a task-mix shift drawn per "
        "episode: domain randomization; docs/RL.md)."
    ),
]

# the options both commands take, by their config field (the rest are each command's own)
_COMMON = {
    "scenario": "scenario",
    "load": "load",
    "tasks": "n_tasks",
    "decision_interval": "decision_interval",
    "queue": "queue",
    "drift": "drift",
    "estimates": "estimates",
    "seed": "seed",
    "minutes": "minutes",
    "max_updates": "max_updates",
    "eval_seeds": "eval_seeds",
    "eval_tasks": "eval_tasks",
    "eval_every": "eval_every_s",
    "threads": "threads",
    "backend": "backend",
    "workers": "workers",
}


# what may change on resume: the budget and where the work runs, never the results
_WITH_RESUME = ("resume", "minutes", "max_updates", "backend", "workers", "ray_address")


# The options every trainer takes, before and after its own: templates whose signatures
# (not bodies) :func:`_trainer_command` uses. An option without a default here gets its
# config's, through _COMMON.
def _options_before(
    *,
    scenario: Scenario,
    load: Load,
    minutes: Minutes,
    out: Out,
    resume: Resume = None,
    seed: Seed,
    tasks: Tasks,
    decision_interval: Interval,
    queue: Queue,
    drift: Drift,
    estimates: TrainEstimatesOption,
) -> None: ...


def _options_after(
    *,
    eval_seeds: EvalSeeds,
    eval_tasks: EvalTasks,
    eval_every: EvalEvery,
    max_updates: MaxUpdates,
    threads: Threads,
    backend: Backend,
    workers: Workers,
    ray_address: RayAddress = None,
) -> None: ...


def _trainer_command(name: str, config_class: type) -> Callable[[_F], _F]:
    """Register ``train NAME``: the shared options around the command's own.

    The command declares ``ctx``, its own options and ``**shared`` (the shared options'
    values, which :func:`_start` reads from ``ctx``); the shared ones get
    ``config_class``'s defaults and ``--out runs/NAME``. An own option named as a shared
    one replaces it, in the shared one's place.
    """
    defaults = _defaults(config_class)
    defaults["out"] = Path("runs") / name

    def decorate(command: _F) -> _F:
        own = dict(inspect.signature(command, eval_str=True).parameters)
        ctx = own.pop("ctx")
        own.pop("shared")

        def place(template: Callable[..., None]) -> list[inspect.Parameter]:
            params = []
            for p in inspect.signature(template, eval_str=True).parameters.values():
                if p.name in own:
                    params.append(own.pop(p.name))
                    continue
                if p.default is inspect.Parameter.empty:
                    p = p.replace(default=defaults[_COMMON.get(p.name, p.name)])
                params.append(p)
            return params

        before = place(_options_before)
        after = place(_options_after)
        options = [*before, *own.values(), *after]
        params = [ctx, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in options)]
        command.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
        return train_app.command(name)(command)

    return decorate


@_trainer_command("rl", TrainConfig)
def train_rl(
    ctx: typer.Context,
    envs: Annotated[int, typer.Option(help="Simulator copies stepped together.")] = _RL["n_envs"],
    steps: Annotated[int, typer.Option(help="Decisions per copy per update.")] = _RL[
        "rollout_steps"
    ],
    init: Annotated[
        str, typer.Option(help="Initial policy: zero (uniform, learn from scratch) or mct.")
    ] = _RL["init"],
    gamma: Annotated[float, typer.Option(help="Discount per decision, in (0, 1].")] = _RL["gamma"],
    gae_lambda: Annotated[float, typer.Option(help="GAE lambda, in [0, 1].")] = _RL["gae_lambda"],
    average_reward: Annotated[
        bool,
        typer.Option(
            "--average-reward/--discounted",
            help="Differential returns (each reward minus the rollout's mean), or discounted.",
        ),
    ] = _RL["average_reward"],
    w_response: Annotated[float, typer.Option(help="Objective weight per s of response.")] = 1.0,
    w_miss: Annotated[
        str, typer.Option(help="Penalty per missed deadline, priority 0,1,2+ (e.g. 5,2,1).")
    ] = "0,0,0",
    w_energy: Annotated[float, typer.Option(help="Objective weight per kJ.")] = 0.0,
    shards: Annotated[
        int | None,
        typer.Option(
            help="Fixed groups of the simulator copies, each with its own random streams; "
            "the weights depend on it, not on --workers (default: --workers)."
        ),
    ] = None,
    **shared: Any,
) -> None:
    """Train the pair-scoring network by PPO (the `rl` policy)."""
    from hybridsched.train.objective import Objective
    from hybridsched.train.trainer import Trainer

    def config(**common: Any) -> TrainConfig:
        objective = Objective(response=w_response, miss=_miss(w_miss), energy=w_energy)
        return TrainConfig(
            **common,
            objective=objective,
            n_envs=envs,
            rollout_steps=steps,
            init=init,
            shards=common["workers"] if shards is None else shards,
            gamma=gamma,
            gae_lambda=gae_lambda,
            average_reward=average_reward,
        )

    trainer, p = _start(ctx, Trainer, config, "training")
    _report(
        f"rl training in {trainer.out}",
        [
            ("updates", f"{p.updates:,}"),
            ("backend, workers, shards", _where(trainer.config, trainer.config.shards)),
            ("decisions", f"{p.decisions:,}"),
            ("decisions/s (env + policy, rollouts)", f"{p.rollout_rate:,.0f}"),
            ("decisions/s (rollouts + PPO updates)", f"{p.training_rate:,.0f}"),
            ("decisions/s (overall, evaluation included)", f"{p.overall_rate:,.0f}"),
            ("validation objective per task, best", f"{p.best:.4f}"),
            ("validation objective per task, MCT", f"{p.mct:.4f}"),
        ],
        trainer.out,
        "rl",
    )


@_trainer_command("hybrid", HybridTrainConfig)
def train_hybrid(
    ctx: typer.Context,
    decision_interval: Annotated[
        float, typer.Option(help="Batching interval, s; > 0 (the hybrid decides batches).")
    ] = _HY["decision_interval"],
    init: Annotated[
        str, typer.Option(help="Initial weights (a checkpoint); empty: the shipped rl network.")
    ] = _HY["init"],
    **shared: Any,
) -> None:
    """Train the hybrid's network through the ant colony by REINFORCE (the `hybrid` policy)."""
    from hybridsched.train.hybrid_trainer import HybridTrainer

    def config(**common: Any) -> HybridTrainConfig:
        return HybridTrainConfig(**common, init=init)

    trainer, p = _start(ctx, HybridTrainer, config, "training hybrid")
    _report(
        f"hybrid training in {trainer.out}",
        [
            ("updates", f"{p.updates:,}"),
            ("backend, workers", _where(trainer.config)),
            ("validation mean response, best (s)", f"{p.best:.4f}"),
            ("validation mean response, MCT (s)", f"{p.mct:.4f}"),
        ],
        trainer.out,
        "hybrid",
    )


def _where(config: Any, *more: int) -> str:
    return ", ".join(str(v) for v in (config.backend, config.workers, *more))


def _miss(text: str) -> tuple[float, ...]:
    try:
        miss = tuple(float(v) for v in text.split(","))
    except ValueError:
        miss = ()
    if len(miss) == 1:
        miss = miss * PRIORITY_CLASSES
    if len(miss) != PRIORITY_CLASSES:
        fail(
            f"--w-miss: expected one number or {PRIORITY_CLASSES} comma-separated numbers "
            f"(priority 0, 1, 2+), got {text!r}"
        )
    return miss


def _start(
    ctx: typer.Context, trainer_class: Any, config: Callable[..., Any], label: str
) -> tuple[Any, Any]:
    """Build (or, with --resume, rebuild) the run and train it; the trainer and its progress."""
    params = ctx.params
    try:
        if params["resume"] is not None:
            trainer = _resume(ctx, trainer_class, params["resume"], params["max_updates"])
        else:
            c = config(**{field: params[option] for option, field in _COMMON.items()})
            c.spec().build(0)  # check scenario, load and options before training
            trainer = trainer_class(c, params["out"])
        if params["ray_address"] and trainer.config.backend != "ray":
            fail("--ray-address: goes with --backend ray")
        trainer.ray_address = params["ray_address"]
        return trainer, _run(ctx, trainer, params["minutes"], label)
    except (HybridSchedError, ValueError) as exc:
        fail(str(exc))
        raise  # unreachable: fail exits


def _given(ctx: typer.Context, name: str) -> bool:
    # by name: typer carries its own copy of click, so click's enum is not the one it uses
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _resume(ctx: typer.Context, trainer_class: Any, folder: Path, max_updates: int) -> Any:
    """The run saved in ``folder``; options that would change its config are refused."""
    refused = [n for n in ctx.params if n not in _WITH_RESUME and _given(ctx, n)]
    if refused:
        names = ", ".join("--" + n.replace("_", "-") for n in refused)
        fail(
            f"--resume {folder}: the run continues with its own config, so {names} cannot "
            "apply; only --minutes, --max-updates, --backend, --workers and --ray-address "
            "may be given with --resume"
        )
    trainer = trainer_class.resume(folder)
    changes: dict[str, Any] = {}
    if _given(ctx, "max_updates"):
        changes["max_updates"] = max_updates
    if _given(ctx, "backend"):
        # a run moved to this machine's single worker need not say --workers 1
        changes["backend"] = ctx.params["backend"]
        if ctx.params["backend"] == "local":
            changes["workers"] = 1
    if _given(ctx, "workers"):
        changes["workers"] = ctx.params["workers"]
    trainer.config = replace(trainer.config, **changes)
    return trainer


def _run(ctx: typer.Context, trainer: Any, minutes: float, label: str) -> Any:
    """Run ``trainer`` under a progress bar; with --resume and no --minutes, its config's."""
    if ctx.params.get("resume") is not None and not _given(ctx, "minutes"):
        minutes = trainer.config.minutes
    budget = 60.0 * minutes
    with Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
    ) as bar:
        task = bar.add_task("starting", total=max(budget, 1e-9))

        def show(p: Any) -> None:
            bar.update(task, completed=min(p.session_s, budget), description=p.status())

        try:
            trainer.run(minutes, show, graceful=True)
        except KeyboardInterrupt:
            if trainer.saved_at is None:
                ignore_further()
                err_console.print("interrupted before the run saved anything", highlight=False)
                raise typer.Exit(130) from None
            _interrupted(
                ctx, trainer, f"interrupted at once: the state saved at update {trainer.saved_at}"
            )
    if trainer.interrupted:
        _interrupted(ctx, trainer, f"interrupted after update {trainer.progress.updates}: the run")
    return trainer.progress


def _interrupted(ctx: typer.Context, trainer: Any, what: str) -> None:
    """Say what Ctrl-C kept and how to go on; exit 130."""
    ignore_further()
    again = f"{ctx.command_path} --resume {trainer.out}"
    if trainer.ray_address:
        again += f" --ray-address {trainer.ray_address}"
    err_console.print(
        f"{what} is kept in {trainer.out}/; go on with: {again}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(130)


def _report(title: str, rows: list[tuple[str, str]], out: Path, policy: str) -> None:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    console.print(
        f"wrote {out / 'best.pt'} (use --policy {policy} --policy-arg checkpoint=...), "
        f"{out / 'curve.csv'}, {out / 'curve.png'}"
    )
