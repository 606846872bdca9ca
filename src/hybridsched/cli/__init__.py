"""The ``hybridsched`` command line: a thin layer over the library.

Each command parses its options, calls the library and renders with rich.
Library errors (:class:`~hybridsched.errors.HybridSchedError`) become a
one-paragraph message and exit code 2, never a traceback.
"""

from __future__ import annotations

from hybridsched.cli.app import app, main

__all__ = ["app", "main"]
