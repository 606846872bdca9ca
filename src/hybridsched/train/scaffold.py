"""What every training run shares: seeds, the loop, save/resume, the curve, progress.

A trainer (:mod:`hybridsched.train.trainer` for ``rl``,
:mod:`hybridsched.train.hybrid_trainer` for ``hybrid``) subclasses
:class:`TrainingRun` and supplies four steps: :meth:`~TrainingRun.prepare`
(what the loop needs before the first update), :meth:`~TrainingRun.update`
(one gradient step), :meth:`~TrainingRun.validate` (a row of the learning
curve, with the validation score) and its run-specific state. The scaffold
runs them: *prepare -> (evaluate) -> update ... (every ``eval_every_s``:
evaluate and checkpoint) -> evaluate*, until the time budget or
``max_updates`` is reached, on ``threads`` torch threads.

Each evaluation appends a row to ``curve.csv``, redraws ``curve.png``, keeps
``best.pt`` when the score improves (lower is better) and writes ``last.pt``
and ``state.pt``: the weights, the optimizer, the progress, and the state of
every generator the run draws from, so that a resumed run takes the same
draws, and reaches the same weights, as one that was never stopped (tested).

Seeds: training instances use seeds >= :data:`TRAIN_SEED_BASE`, validation
:data:`VALIDATION_SEED_BASE` on, benchmarks 20,000 on; they never overlap.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from hybridsched.errors import ConfigError
from hybridsched.interrupts import StopRequest, interrupts_outside_numba, stop_on_interrupt
from hybridsched.learn.network import save_checkpoint
from hybridsched.train.config import check_budget

log = logging.getLogger(__name__)

TRAIN_SEED_BASE = 1_000_000
"""Training episodes use seeds >= this; validation and benchmark seeds lie below."""
VALIDATION_SEED_BASE = 10_000
"""First validation seed (held out from training; benchmarks use 20_000 on)."""


def validation_seeds(n: int) -> list[int]:
    """The ``n`` held-out seeds a run evaluates on."""
    return [VALIDATION_SEED_BASE + k for k in range(n)]


def training_seeds(rng: np.random.Generator) -> Iterator[int]:
    """An endless stream of training-instance seeds drawn from ``rng``."""
    while True:
        yield int(rng.integers(TRAIN_SEED_BASE, 2**31 - 1))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch threads, then restore the previous count."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class Progress:
    """Where a run stands; handed to the progress callback after every update.

    Trainers extend it with their own figures; :meth:`status` is the one-line
    summary a progress bar shows.
    """

    elapsed_s: float = 0.0
    """Wall-clock seconds of training, this session and earlier ones."""
    budget_s: float = 0.0
    """This session's wall-clock budget, s."""
    session_s: float = 0.0
    """Seconds spent in this session."""
    updates: int = 0
    """Gradient updates so far."""
    train: float = float("nan")
    """The training figure of the latest update (each trainer says what it is)."""
    val: float = float("nan")
    """Latest validation score (lower is better)."""
    best: float = float("inf")
    """Best validation score so far."""
    mct: float = float("nan")
    """MCT's validation score (the reference)."""

    LEGACY: ClassVar[dict[str, str]] = {}
    """Older names of the fields in a saved ``state.pt`` (old -> current)."""

    def status(self) -> str:
        """One line for a progress bar."""
        return f"upd {self.updates}  val {self.val:.4f}  best {self.best:.4f}  MCT {self.mct:.4f}"

    @classmethod
    def restore(cls, saved: Mapping[str, Any]) -> Progress:
        """The progress a ``state.pt`` saved, its legacy field names renamed."""
        return cls(**{cls.LEGACY.get(k, k): v for k, v in saved.items()})


ProgressCallback = Callable[[Progress], None]
"""``progress(p)``: called after every update and once at the end of a session."""


class CurveLog:
    """The learning curve, ``curve.csv``: one row per evaluation, appended.

    Args:
        path: the CSV file; its header is the first row's keys, in their order.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one row; its keys, in order, must be the file's columns.

        Raises:
            ValueError: the file's header names other columns.
        """
        columns = list(row)
        header = None
        if self.path.is_file():
            with self.path.open(newline="") as fh:
                header = next(csv.reader(fh), None)
        if header is not None and header != columns:
            raise ValueError(f"{self.path}: columns {header}, not the row's {columns}")
        new = header is None
        with self.path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=columns)
            if new:
                w.writeheader()
            w.writerow(row)

    def rows(self) -> list[dict[str, str]]:
        """The rows written so far (strings, as in the file)."""
        if not self.path.is_file():
            return []
        with self.path.open() as fh:
            return list(csv.DictReader(fh))


def plot_curve(
    csv_path: Path,
    png_path: Path,
    *,
    series: Sequence[tuple[str, str]],
    reference: tuple[str, str],
    ylabel: str,
    title: str,
    log_scale: bool = False,
) -> None:
    """Draw the columns ``series`` of ``curve.csv`` against training time.

    Args:
        csv_path, png_path: the curve and the image to write.
        series: ``(column, label)`` pairs; the first is drawn with markers.
        reference: ``(column, label)`` of a horizontal reference line (its last value).
        ylabel, title: the axis label and title.
        log_scale: a logarithmic y axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = CurveLog(csv_path).rows()
    if not rows:
        return
    t = [float(r["elapsed_s"]) / 60 for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for k, (column, label) in enumerate(series):
        style = {"marker": "o"} if k == 0 else {"alpha": 0.6}
        ax.plot(t, [float(r[column]) for r in rows], label=label, **style)
    column, label = reference
    ax.axhline(float(rows[-1][column]), color="k", ls="--", lw=1, label=label)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("training time, min")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


class TrainingRun:
    """The loop, checkpoints and save/resume that every trainer shares.

    :attr:`config` is a :class:`~hybridsched.train.config.RunConfig` (``seed``,
    ``minutes``, ``max_updates``, ``eval_every_s``, ``threads``, ``to_dict`` /
    ``from_dict``). Subclasses call ``super().__init__(config, out)``, set
    :attr:`model` and :attr:`optim`, and implement the methods below that raise
    ``NotImplementedError``.
    """

    config_class: ClassVar[type]
    """The config dataclass (for :meth:`resume`)."""
    progress_class: ClassVar[type[Progress]] = Progress
    """The progress dataclass (for :meth:`resume`)."""

    config: Any
    out: Path
    model: torch.nn.Module
    optim: torch.optim.Optimizer
    progress: Progress

    def __init__(self, config: Any, out: Path) -> None:
        self.config = config
        self.out = Path(out)
        self.progress = self.progress_class()
        self.seeds = np.random.SeedSequence(config.seed)
        """The run's root seed sequence. A trainer spawns its random streams from it once,
        in ``__init__``: ``spawn`` counts its children, so an earlier call would shift them."""
        self.ray_address: str | None = None
        """The Ray cluster's address (ray backend; None: ``RAY_ADDRESS``, else a local Ray)."""
        self.interrupted = False
        """Whether the last :meth:`run` was stopped by Ctrl-C (its state saved)."""
        self.saved_at: int | None = None
        """The update count of the state this object last wrote to, or read from, ``state.pt``
        (None: neither: a ``state.pt`` in ``out`` is another run's)."""

    # ------------------------------------------------------------ the trainer's part

    def generators(self) -> Sequence[np.random.Generator]:
        """The generators whose states ``state.pt`` keeps (restored on resume)."""
        raise NotImplementedError

    def resolved_config(self) -> dict[str, Any]:
        """The config as run, with what training resolved (``config.json``, checkpoints)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Before the first update of a session (references, data, simulator copies)."""

    def update(self) -> None:
        """One gradient update."""
        raise NotImplementedError

    def validate(self) -> tuple[float, Any]:
        """Evaluate on the validation seeds: ``(score, details for the curve row)``.

        Lower scores are better.
        """
        raise NotImplementedError

    def record_score(self, score: float) -> bool:
        """Store the latest validation score in :attr:`progress`; True when it is the best."""
        p = self.progress
        p.val = score
        best = score < p.best
        if best:
            p.best = score
        return best

    def curve_row(self, details: Any) -> dict[str, Any]:
        """The curve row of the evaluation just recorded: column -> value, ``elapsed_s`` first."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """Run-specific state for ``state.pt`` (JSON-able)."""
        return {}

    def load_extra_state(self, meta: Mapping[str, Any]) -> None:
        """Restore what :meth:`extra_state` saved."""

    @classmethod
    def upgrade_state(cls, meta: dict[str, Any]) -> dict[str, Any]:
        """``state.pt``'s metadata in the current layout (a trainer converts older ones)."""
        return meta

    # ------------------------------------------------------------ save / resume

    def save_state(self) -> None:
        """Write ``last.pt`` (weights + config) and ``state.pt`` (what resuming needs)."""
        save_checkpoint(self.out / "last.pt", self.model, self.resolved_config())
        meta = {
            "config": self.config.to_dict(),
            "progress": asdict(self.progress),
            "rng": [g.bit_generator.state for g in self.generators()],
            **self.extra_state(),
        }
        blob = {
            "model": self.model.state_dict(),
            "optim": self.optim.state_dict(),
            "meta": json.dumps(meta),
        }
        tmp = self.out / "state.pt.tmp"
        torch.save(blob, tmp)
        tmp.replace(self.out / "state.pt")
        self.saved_at = self.progress.updates

    @classmethod
    def resume(cls, out: Path) -> Any:
        """Rebuild a run from ``out/state.pt``; it continues where it stopped.

        Raises:
            ConfigError: no ``state.pt`` in ``out``.
        """
        path = Path(out) / "state.pt"
        if not path.is_file():
            raise ConfigError(f"--resume {out}: no state.pt there (not a training folder?)")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            meta = cls.upgrade_state(json.loads(blob["meta"]))
            config = cls.config_class.from_dict(meta["config"])
        except ConfigError:
            raise
        except Exception as exc:
            # torch.load of a truncated or foreign file raises whatever its unpickler hits
            raise ConfigError(
                f"--resume {out}: {path} is not a training state this version can read "
                f"({type(exc).__name__}: {exc})"
            ) from None
        run = cls(config, Path(out))
        run.model.load_state_dict(blob["model"])
        run.optim.load_state_dict(blob["optim"])
        run.progress = cls.progress_class.restore(meta["progress"])
        for g, state in zip(run.generators(), meta["rng"], strict=True):
            g.bit_generator.state = state
        run.load_extra_state(meta)
        run.saved_at = run.progress.updates
        return run

    # ------------------------------------------------------------ the loop

    def write_config(self) -> None:
        """Write ``config.json``, the resolved config."""
        (self.out / "config.json").write_text(json.dumps(self.resolved_config(), indent=2) + "\n")

    def evaluate_and_keep(self) -> dict[str, Any]:
        """Validate, append to the curve, keep ``best.pt`` and save the state."""
        score, details = self.validate()
        if self.record_score(score):
            save_checkpoint(self.out / "best.pt", self.model, self.resolved_config())
        row = self.curve_row(details)
        CurveLog(self.out / "curve.csv").append(row)
        self.save_state()
        self.plot()
        log.info("update %d: validation %.4f", self.progress.updates, score)
        return row

    def plot(self) -> None:
        """Redraw ``curve.png`` from ``curve.csv``."""

    def run(
        self,
        minutes: float | None = None,
        progress: ProgressCallback | None = None,
        *,
        graceful: bool = False,
    ) -> Any:
        """Train for ``minutes`` (default: the config's) and return the progress.

        Ctrl-C (SIGINT, in the main thread) raises ``KeyboardInterrupt``, never
        inside numba's own code (:mod:`hybridsched.interrupts`); the state of the
        last save is kept. With ``graceful`` (the ``train`` commands) the first
        Ctrl-C only stops the run once the update or validation in progress ends,
        and saves its state without a last validation: :attr:`interrupted` is
        then True and a resumed run goes on as if never stopped. A second Ctrl-C
        raises ``KeyboardInterrupt``.

        Args:
            minutes: wall-clock budget of this session, evaluation included.
            progress: called with the :class:`Progress` after every update and
                once at the end.
            graceful: stop and save on the first Ctrl-C instead of raising.
        """
        c = self.config
        budget = 60.0 * (c.minutes if minutes is None else minutes)
        check_budget(budget / 60.0)
        self.out.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self.interrupted = False
        notice = "stopping once the update in progress ends, then saving (Ctrl-C again: at once)"
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch_threads(c.threads))
            if graceful:
                stop = stack.enter_context(stop_on_interrupt(notice))
            else:
                stack.enter_context(interrupts_outside_numba())
                stop = StopRequest()  # never set
            self._loop(budget, progress, stop)
        return self.progress

    def _loop(self, budget: float, progress: ProgressCallback | None, stop: StopRequest) -> None:
        c = self.config
        p = self.progress
        p.budget_s = budget
        start = time.perf_counter()
        base_elapsed = p.elapsed_s

        def tick() -> None:
            p.session_s = time.perf_counter() - start
            p.elapsed_s = base_elapsed + p.session_s

        self.prepare()
        if p.updates == 0:
            self.evaluate_and_keep()
        last_eval = time.perf_counter()
        while True:
            tick()
            if stop.requested:
                # Ctrl-C: save where the run stands, without the validation (it can take
                # minutes); a resumed run goes on from here as if never stopped
                self.save_state()
                self.write_config()
                self.interrupted = True
                if progress is not None:
                    progress(p)
                return
            if p.session_s >= budget or (c.max_updates and p.updates >= c.max_updates):
                break
            self.update()
            p.updates += 1
            tick()
            if not stop.requested and time.perf_counter() - last_eval >= c.eval_every_s:
                self.evaluate_and_keep()
                last_eval = time.perf_counter()
            if progress is not None:
                progress(p)
        tick()
        self.evaluate_and_keep()
        self.write_config()
        if progress is not None:
            progress(p)
