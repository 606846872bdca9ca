"""hybridsched: scheduling IoT data-processing tasks on edge/fog/cloud clusters.

The public API in one place:

* :class:`~hybridsched.model.Cluster`, :class:`~hybridsched.model.Workload`: validated inputs.
* :mod:`hybridsched.io`: read and write cluster, workload and result files.
* :func:`~hybridsched.sim.simulate` and :class:`~hybridsched.sim.Engine`: the simulator.
* :func:`~hybridsched.policies.get_policy`, :func:`~hybridsched.policies.available_policies`.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__"]


ENV_ID = "hybridsched/IoTCloud-v0"


def _register_env() -> None:
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="hybridsched.train.env:IoTCloudEnv")


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``then()`` right after the module ``name`` is first imported.

    Importing gymnasium costs about 0.25 s and numba about 0.3 s, which every
    CLI call (and the simulator's throughput) would pay if this package
    imported them eagerly; so ``import hybridsched`` acts at once only on what
    is already loaded, and otherwise right after the module's own import.
    """

    def __init__(self, name: str, then: Callable[[], object]) -> None:
        self.name = name
        self.then = then

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            self.then()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _install_jit_cache() -> None:
    from hybridsched import jitcache

    jitcache.install()


def _after_import(name: str, then: Callable[[], object]) -> None:
    if name in sys.modules:
        then()
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, then))


# numba's cache locator must be in place before the first kernel is declared (docs/PERFORMANCE.md)
_after_import("numba", _install_jit_cache)
_after_import("gymnasium", _register_env)
