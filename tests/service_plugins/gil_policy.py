"""A test-only policy whose ``assign`` holds the interpreter lock in compiled code.

``hold_gil`` sends every task to node 0; when its batch holds task ``hold_task``
it first writes ``<flag>.started`` and then spins in numba code (no ``nogil``)
until the first byte of the file ``flag`` turns non-zero, which another process
(the test) writes. The spin calls ``usleep`` through ctypes, which keeps the
lock. In a thread of the server this would stop every other thread until the
test releases it; the test releases it only after its requests were answered.
"""

from __future__ import annotations

import ctypes
import dataclasses
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numba
import numpy as np

from hybridsched.policies import register

_libc = ctypes.CDLL(None)
_usleep = _libc.usleep
_usleep.argtypes = [ctypes.c_uint]
_usleep.restype = ctypes.c_int


@numba.njit(cache=False)
def _hold(flag: np.ndarray) -> int:  # pragma: no cover - compiled
    n = 0
    while flag[0] == 0:
        _usleep(1000)
        n += 1
    return n


def _open_flag(path: str) -> np.ndarray:
    return np.memmap(path, dtype=np.uint8, mode="r", shape=(1,))


def _compile() -> None:
    # compile for the read-only memmap type now, so that the spin starts at once
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "f"
        np.ones(1, np.uint8).tofile(p)
        _hold(_open_flag(str(p)))


_compile()


@register
@dataclasses.dataclass
class HoldGil:
    """Test only: every task to node 0; holds the interpreter lock on task ``hold_task``."""

    name: ClassVar[str] = "hold_gil"
    hold_task: int = -1
    flag: str = ""

    def reset(self, cluster: Any, rng: np.random.Generator) -> None:
        """Nothing to reset."""

    def assign(self, tasks: Any, view: Any) -> np.ndarray:
        """Node 0 for every task, after the spin when the batch holds ``hold_task``."""
        if self.flag and np.any(np.asarray(tasks.task_id) == self.hold_task):
            Path(self.flag + ".started").write_text("1")
            _hold(_open_flag(self.flag))
        return np.zeros(len(tasks), dtype=np.int64)
