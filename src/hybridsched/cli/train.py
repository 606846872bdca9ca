"""The ``train`` command: train the learned scheduler, with a progress bar."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hybridsched.cli.app import app, console, fail
from hybridsched.errors import HybridSchedError

TRAINABLE = ("rl", "hybrid")


@app.command()
def train(
    policy: Annotated[str, typer.Option(help="What to train: rl or hybrid.")] = "rl",
    scenario: Annotated[str, typer.Option(help="Scenario preset of the episodes.")] = "iot-default",
    load: Annotated[float, typer.Option(help="Offered work / cluster capacity.")] = 0.8,
    minutes: Annotated[float, typer.Option(help="Wall-clock budget, minutes.")] = 10.0,
    out: Annotated[Path, typer.Option(help="Run folder (checkpoints, curve).")] = Path("runs/rl"),
    resume: Annotated[
        Path | None, typer.Option(help="Continue the run in this folder (its config is used).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Root seed of the run.")] = 0,
    tasks: Annotated[int, typer.Option(help="Tasks per training episode.")] = 2000,
    envs: Annotated[int, typer.Option(help="Simulator copies stepped together.")] = 256,
    steps: Annotated[int, typer.Option(help="Decisions per copy per update.")] = 16,
    init: Annotated[
        str, typer.Option(help="Initial policy: zero (uniform, learn from scratch) or mct.")
    ] = "zero",
    decision_interval: Annotated[float, typer.Option(help="Batching interval, s.")] = 0.0,
    queue: Annotated[str, typer.Option(help="Queue discipline: fifo or priority.")] = "fifo",
    w_response: Annotated[float, typer.Option(help="Objective weight per s of response.")] = 1.0,
    w_miss: Annotated[
        str, typer.Option(help="Penalty per missed deadline, priority 0,1,2+ (e.g. 5,2,1).")
    ] = "0,0,0",
    w_energy: Annotated[float, typer.Option(help="Objective weight per kJ.")] = 0.0,
    eval_seeds: Annotated[int, typer.Option(help="Held-out validation seeds.")] = 4,
    eval_tasks: Annotated[int, typer.Option(help="Tasks per validation episode.")] = 5000,
    eval_every: Annotated[float, typer.Option(help="Seconds between evaluations.")] = 30.0,
    max_updates: Annotated[int, typer.Option(help="Stop after N updates (0: time only).")] = 0,
) -> None:
    """Train a learned scheduler by policy gradient; write checkpoints and a learning curve."""
    if policy not in TRAINABLE:
        fail(f"--policy {policy!r}: not trainable; trainable policies: {', '.join(TRAINABLE)}")
    if not math.isfinite(minutes) or minutes < 0:
        fail(f"--minutes: must be a number >= 0, got {minutes}")
    if policy == "hybrid":
        hybrid_out = Path("runs/hybrid") if out == Path("runs/rl") else out
        _train_hybrid(
            scenario,
            load,
            minutes,
            hybrid_out,
            resume,
            seed,
            tasks,
            eval_seeds,
            eval_tasks,
            eval_every,
            max_updates,
            decision_interval,
            queue,
        )
        return
    from hybridsched.train.objective import Objective
    from hybridsched.train.trainer import TrainConfig, Trainer

    try:
        if resume is not None:
            trainer = Trainer.resume(resume)
            run_dir = resume
        else:
            miss = tuple(float(v) for v in w_miss.split(","))
            if len(miss) == 1:
                miss = miss * 3
            config = TrainConfig(
                scenario=scenario,
                load=load,
                n_tasks=tasks,
                decision_interval=decision_interval,
                queue=queue,
                objective=Objective(response=w_response, miss=miss, energy=w_energy),
                seed=seed,
                minutes=minutes,
                max_updates=max_updates,
                n_envs=envs,
                rollout_steps=steps,
                init=init,
                eval_seeds=eval_seeds,
                eval_tasks=eval_tasks,
                eval_every_s=eval_every,
            )
            config.spec().build(0)  # check scenario, load and options before training
            trainer = Trainer(config, out)
            run_dir = out
        budget = 60.0 * minutes
        with Progress(
            TextColumn("[bold]training[/]"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
        ) as bar:
            task = bar.add_task("starting", total=max(budget, 1e-9))

            def show(p) -> None:
                bar.update(
                    task,
                    completed=min(p.session_s, budget),
                    description=(
                        f"upd {p.updates}  {p.rollout_rate:,.0f} dec/s  "
                        f"val {p.val_objective:.4f}  best {p.best_objective:.4f}  "
                        f"MCT {p.mct_objective:.4f}"
                    ),
                )

            p = trainer.run(minutes, show)
    except (HybridSchedError, ValueError) as exc:
        fail(str(exc))
    table = Table(title=f"rl training in {run_dir}", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("updates", f"{p.updates:,}"),
        ("decisions", f"{p.decisions:,}"),
        ("decisions/s (env + policy, rollouts)", f"{p.rollout_rate:,.0f}"),
        ("decisions/s (rollouts + PPO updates)", f"{p.training_rate:,.0f}"),
        ("decisions/s (overall, evaluation included)", f"{p.overall_rate:,.0f}"),
        ("validation objective per task, best", f"{p.best_objective:.4f}"),
        ("validation objective per task, MCT", f"{p.mct_objective:.4f}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    console.print(
        f"wrote {run_dir / 'best.pt'} (use --policy rl --policy-arg checkpoint=...), "
        f"{run_dir / 'curve.csv'}, {run_dir / 'curve.png'}"
    )


def _train_hybrid(
    scenario: str,
    load: float,
    minutes: float,
    out: Path,
    resume: Path | None,
    seed: int,
    tasks: int,
    eval_seeds: int,
    eval_tasks: int,
    eval_every: float,
    max_updates: int,
    decision_interval: float,
    queue: str,
) -> None:
    """``train --policy hybrid``: REINFORCE through the colony (hybrid_trainer)."""
    from hybridsched.train.hybrid_trainer import HybridTrainConfig, HybridTrainer

    try:
        if resume is not None:
            trainer = HybridTrainer.resume(resume)
            out = resume
        else:
            config = HybridTrainConfig(
                scenario=scenario,
                load=load,
                n_tasks=tasks,
                # the hybrid decides batches: 0 (per arrival) gives the colony nothing to do
                decision_interval=decision_interval if decision_interval > 0 else 0.5,
                queue=queue,
                seed=seed,
                minutes=minutes,
                max_updates=max_updates,
                eval_seeds=eval_seeds,
                eval_tasks=eval_tasks,
                eval_every_s=eval_every,
            )
            trainer = HybridTrainer(config, out)
        budget = 60.0 * minutes
        with Progress(
            TextColumn("[bold]training hybrid[/]"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
        ) as bar:
            task = bar.add_task("collecting batches", total=max(budget, 1e-9))

            def show(tr: HybridTrainer, session_s: float) -> None:
                bar.update(
                    task,
                    completed=session_s,
                    description=(
                        f"upd {tr.updates}  ant cost {tr.train_cost:.3f}  "
                        f"val {tr.last_val:.4f} s  best {tr.best:.4f} s  MCT {tr.mct:.4f} s"
                    ),
                )

            trainer.run(minutes, show)
    except (HybridSchedError, ValueError) as exc:
        fail(str(exc))
    table = Table(title=f"hybrid training in {out}", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in (
        ("updates", f"{trainer.updates:,}"),
        ("validation mean response, best (s)", f"{trainer.best:.4f}"),
        ("validation mean response, MCT (s)", f"{trainer.mct:.4f}"),
    ):
        table.add_row(k, v)
    console.print(table)
    console.print(
        f"wrote {out / 'best.pt'} (use --policy hybrid --policy-arg checkpoint=...), "
        f"{out / 'curve.csv'}, {out / 'curve.png'}"
    )
