"""One base error for the library, with specific subclasses.

Every error that a user can cause (a bad file, a bad option, a bad API call)
is a :class:`HybridSchedError`; the CLI turns it into a one-paragraph message
and exit code 2, never a traceback.
"""

from __future__ import annotations


class HybridSchedError(Exception):
    """Base class of every error this library raises on purpose."""


class ValidationError(HybridSchedError, ValueError):
    """An input file or in-memory object breaks a rule of the reference model.

    The message names the source (file), the row or field, the bad value and
    the rule that was broken.
    """


class ConfigError(HybridSchedError, ValueError):
    """A configuration value or option is unknown, ill-typed or out of range."""


class PolicyError(HybridSchedError):
    """A policy returned an assignment that breaks the contract (bad index, infeasible node)."""


class SimulationError(HybridSchedError, RuntimeError):
    """The simulator was used out of order (for example committing twice)."""


class OutputError(HybridSchedError, OSError):
    """An output file or folder cannot be written (read-only, full disk, not a folder)."""
