"""The ``tune`` command: a policy's arguments tuned in simulation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hybridsched.cli.app import app, console, err_console, fail
from hybridsched.cli.compare import _progress, _stop_on_sigterm
from hybridsched.cli.options import Backend, Interval, Loads, Queue, RayAddress, Scenario, Workers
from hybridsched.errors import HybridSchedError

TUNE_EXAMPLE = """Example:

  hybridsched tune --policy aco --scenario iot-bursty --load 0.9 --trials 40
  --out results/tune-aco

  hybridsched simulate --policy aco --policy-args results/tune-aco/best_args.yaml ...

  (interrupted? the same command again goes on with the study in --out)"""


@app.command(epilog=TUNE_EXAMPLE)
def tune(
    policy: Annotated[str, typer.Option(help="The policy tuned: aco or hybrid.")],
    scenario: Scenario = "iot-default",
    load: Loads = None,
    tasks: Annotated[int, typer.Option(help="Tasks per workload.")] = 2_000,
    trials: Annotated[int, typer.Option(help="Trials of the study.")] = 20,
    train_seeds: Annotated[int, typer.Option(help="Training workloads per load.")] = 3,
    test_seeds: Annotated[
        int, typer.Option(help="Held-out workloads per load, for the final comparison.")
    ] = 5,
    metric: Annotated[str, typer.Option(help="Objective, minimised.")] = "mean_response_s",
    batch: Annotated[
        int, typer.Option(help="Trials run in parallel (part of the search: keep it to resume).")
    ] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    decision_interval: Interval = 0.5,
    queue: Queue = "priority",
    workers: Workers = None,
    backend: Backend = "local",
    ray_address: RayAddress = None,
    out: Annotated[Path, typer.Option(help="Study folder.")] = Path("results/tune"),
) -> None:
    """Tune a scheduler's arguments in simulation (Optuna), then check them on held-out seeds.

    Writes OUT/best_args.yaml, a file that simulate and compare take with --policy-args.
    """
    from hybridsched.experiments.backends import make_backend
    from hybridsched.experiments.tune import TuneConfig, run_tune
    from hybridsched.sim import SimConfig
    from hybridsched.workload import get_scenario

    runner = None
    try:
        SimConfig(decision_interval=decision_interval, queue=queue)
        get_scenario(scenario)
        kw: dict[str, Any] = {} if workers is None else {"workers": workers}
        cfg = TuneConfig(
            policy=policy,
            scenario=scenario,
            loads=tuple(load or (0.9,)),
            tasks=tasks,
            trials=trials,
            train_seeds=train_seeds,
            test_seeds=test_seeds,
            metric=metric,
            batch=batch,
            seed=seed,
            decision_interval=decision_interval,
            queue=queue,
            backend=backend,
            **kw,
        )
        runner = make_backend(cfg.backend, cfg.workers, ray_address)
        with _stop_on_sigterm(), _progress(transient=True) as bar:
            jobs: dict[str, Any] = {}

            def show(phase: str, k: int, n: int) -> None:
                if phase not in jobs:
                    jobs[phase] = bar.add_task(f"{policy}: {phase}", total=n)
                bar.update(jobs[phase], completed=k, total=n)

            result = run_tune(cfg, out, backend=runner, progress=show)
    except HybridSchedError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the study in {out}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        err_console.print(
            f"interrupted: the finished trials are kept in {out}/study.db; "
            "the same command again goes on with the study",
            highlight=False,
        )
        raise typer.Exit(130) from None
    finally:
        if runner is not None:
            runner.close()
    table = Table(
        title=f"{policy}: tuned minus defaults on {cfg.test_seeds * len(cfg.loads)} held-out "
        "workloads (paired, 95% CI)",
        header_style="bold",
    )
    for c in ("metric", "defaults", "tuned", "difference", "relative", "significant"):
        table.add_column(c, justify="left" if c == "metric" else "right")
    for d in result["tuned_minus_defaults"]:
        m = d["metric"]
        significant = d["half_ci"] == d["half_ci"] and abs(d["mean"]) > d["half_ci"]
        table.add_row(
            m,
            f"{result['held_out']['defaults'][m]:.4g}",
            f"{result['held_out']['tuned'][m]:.4g}",
            f"{d['mean']:+.4g} ± {d['half_ci']:.2g}",
            f"{100 * d['relative']:+.1f}%",
            "yes" if significant else "no",
        )
    console.print(table)
    console.print(
        f"best of {result['trials']} trials: {out}/best_args.yaml "
        f"(use with --policy-args); trials in {out}/trials.csv"
    )
