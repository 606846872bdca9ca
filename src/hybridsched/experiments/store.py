"""A results folder of ``compare``: checked writable first, one durable file per finished run.

A comparison writes ``config.json`` before its first run and then each run's
row, as soon as the run ends, to ``runs/<run>.json`` (written to a temporary
file, flushed to disk, then renamed: a file there is always whole). An
interrupted comparison therefore keeps its finished runs, and
``compare --resume`` takes them back instead of running them again.

The folder's own files, which a fresh (not resumed) run into the same folder
deletes before its first run so that nothing stale survives::

    config.json  results.parquet  results.csv  report.md
    runs/*.json
    plots/cdf_*.png  plots/bar_*.png  plots/energy_vs_response_*.png

Other files are left alone; but a fresh run refuses a folder that has entries
and no ``config.json`` of ``compare`` (it is someone else's folder, and nothing
of it is deleted).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from hybridsched.errors import ConfigError, HybridSchedError
from hybridsched.experiments.compare import CompareConfig, changed_inputs, resolved_config

log = logging.getLogger(__name__)

OWNED_FILES: tuple[str, ...] = ("config.json", "results.parquet", "results.csv", "report.md")
"""Files at the top of a results folder that ``compare`` writes."""

PLOT_PREFIXES: tuple[str, ...] = ("cdf_", "bar_", "energy_vs_response_")
"""Names of the plots ``compare`` and ``report`` write under ``plots/``."""

IGNORED_ON_RESUME: tuple[str, ...] = ("workers", "focus", "backend", "ray_nodes")
"""Configuration keys that change no run's result: they may differ on ``--resume``."""


class OutputError(HybridSchedError):
    """A results folder cannot be written, or is not one that ``compare`` may write into."""


class ResultsFolder:
    """A results folder on disk: its configuration and its finished runs."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        """The folder."""
        self.runs = self.path / "runs"
        """One JSON file per finished run."""

    @classmethod
    def start(
        cls,
        path: str | os.PathLike[str],
        cfg: CompareConfig,
        record: dict[str, Any] | None = None,
        *,
        resume: bool = False,
    ) -> ResultsFolder:
        """Check that ``path`` is writable and ready it for the comparison ``cfg``.

        A fresh comparison deletes the files a previous comparison left there;
        with ``resume``, the finished runs are kept. Either way ``config.json`` is
        written, with ``record``: facts of the run such as ``ray_nodes``.

        Raises:
            OutputError: the folder cannot be created or written, or (fresh) it has
                entries but is not a results folder of ``compare``.
            ConfigError: resuming a folder that holds no comparison (no
                ``config.json``: a mistyped --out would otherwise start a new
                comparison there), or whose configuration differs from ``cfg`` in
                a key that changes results (every key but those of
                ``IGNORED_ON_RESUME``); the message names each such key with both values.
        """
        folder = cls(path)
        folder.check_writable()
        recorded = resumable_config(folder.path) if resume else None
        if recorded is None:
            folder._clear()
        else:
            changed = changed_inputs(recorded, cfg)
            if changed:
                raise ConfigError(
                    f"--resume: the contents of {'; '.join(changed)} changed since the runs in "
                    f"{folder.path} were made, and the runs would mix both. Put the files "
                    "back as they were, give another --out, or leave out --resume to start "
                    "over (which deletes the folder's results)"
                )
            diffs = config_differences(recorded, cfg)
            if diffs:
                what = "; ".join(f"{k} (folder: {old!r}, now: {new!r})" for k, old, new in diffs)
                raise ConfigError(
                    f"--resume: {folder.path / 'config.json'} differs from this run in {what}. "
                    f"Resume with the folder's settings (`--resume --out {folder.path}` alone "
                    "takes them from its config.json), give another --out, or leave out "
                    "--resume to start over (which deletes the folder's results)"
                )
        # on resume too: workers, focus or the backend may have changed
        folder._write_config(cfg, record)
        return folder

    def check_writable(self) -> None:
        """Create the folder if needed and write (then delete) a file in it.

        Raises:
            OutputError: either fails (read-only file system, no permission, a
                file in the way), with the reason.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"--out {self.path}: cannot create the folder: {_reason(exc)}"
            ) from None
        try:
            fd, name = tempfile.mkstemp(prefix=".write-test.", dir=self.path)
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise OutputError(
                f"--out {self.path}: cannot write there: {_reason(exc)}; give a writable folder"
            ) from None

    def finished(self) -> dict[str, dict[str, Any]]:
        """The saved runs, by name. A file that cannot be read is skipped (its run
        is run again)."""
        out: dict[str, dict[str, Any]] = {}
        if not self.runs.is_dir():
            return out
        for f in sorted(self.runs.glob("*.json")):
            if f.name.startswith("."):
                continue
            try:
                row = json.loads(f.read_text())
            except (OSError, ValueError) as exc:
                log.warning("%s: unreadable, its run is run again (%s)", f, exc)
                continue
            if isinstance(row, dict) and "seed" in row and "load" in row:
                out[f.stem] = row
        return out

    def save(self, name: str, row: dict[str, Any]) -> None:
        """Save one finished run durably as ``runs/<name>.json``.

        Raises:
            OutputError: the file cannot be written (disk full, folder removed).
        """
        self.runs.mkdir(exist_ok=True)
        _write_durably(self.runs / f"{name}.json", json.dumps(row))

    def _write_config(self, cfg: CompareConfig, record: dict[str, Any] | None = None) -> None:
        text = json.dumps(resolved_config(cfg, record), indent=2) + "\n"
        _write_durably(self.path / "config.json", text)

    def _clear(self) -> None:
        entries = [e for e in self.path.iterdir() if not e.name.startswith(".")]
        if not entries:
            return
        if recorded_config(self.path) is None:
            raise OutputError(
                f"--out {self.path}: the folder is not empty and has no config.json of "
                f"`compare` ({', '.join(sorted(e.name for e in entries)[:5])}"
                f"{', ...' if len(entries) > 5 else ''}); give an empty or new folder"
            )
        try:
            for name in OWNED_FILES:
                (self.path / name).unlink(missing_ok=True)
            for f in self.runs.glob("*") if self.runs.is_dir() else ():
                if f.suffix in (".json", ".tmp"):
                    f.unlink()
            plots = self.path / "plots"
            for f in plots.glob("*.png") if plots.is_dir() else ():
                if f.name.startswith(PLOT_PREFIXES):
                    f.unlink()
            for d in (self.runs, plots):
                with contextlib.suppress(OSError):
                    d.rmdir()  # only when empty: files of others stay
        except OSError as exc:
            raise OutputError(
                f"--out {self.path}: cannot remove old results: {_reason(exc)}"
            ) from None


def recorded_config(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``config.json`` of a results folder as recorded; None when there is none.

    Raises:
        OutputError: a ``config.json`` that is not a configuration of ``compare``.
    """
    p = Path(path) / "config.json"
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise OutputError(f"{p}: not a configuration written by `compare`: {exc}") from None
    if not isinstance(data, dict) or not {"scenario", "policies", "seeds"} <= set(data):
        raise OutputError(
            f"{p}: not a configuration written by `compare` (no scenario, policies and "
            "seeds); give an empty or new --out"
        )
    return data


def resumable_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of a results folder that ``--resume`` goes on with.

    Raises:
        ConfigError: the folder holds no comparison (a mistyped ``--out`` would
            otherwise start a new one there).
        OutputError: its ``config.json`` is not a configuration of ``compare``.
    """
    recorded = recorded_config(path)
    if recorded is None:
        raise ConfigError(
            f"--resume: {path} holds no comparison to resume (no config.json there); "
            "check --out, or leave out --resume to start a comparison there"
        )
    return recorded


def config_differences(recorded: dict[str, Any], cfg: CompareConfig) -> list[tuple[str, Any, Any]]:
    """(key, recorded value, value in ``cfg``) for each key that differs and changes results."""
    now = json.loads(json.dumps(resolved_config(cfg)))
    ignored = set(IGNORED_ON_RESUME) | {"input_sha256"}  # changed_inputs says which file
    if "estimates_by_policy" not in recorded:
        # a folder from before auto estimates: its ``estimates`` (compared) says it all
        ignored.add("estimates_by_policy")
    keys = sorted((set(recorded) | set(now)) - ignored)
    return [(k, recorded.get(k), now.get(k)) for k in keys if recorded.get(k) != now.get(k)]


def _write_durably(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"{path}: cannot write: {_reason(exc)}") from None
    # the rename itself survives a crash (some file systems cannot sync a folder)
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
