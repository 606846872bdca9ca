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
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__"]


ENV_ID = "hybridsched/IoTCloud-v0"


def _register_env() -> None:
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="hybridsched.train.env:IoTCloudEnv")


class _RegisterOnGymnasiumImport(importlib.abc.MetaPathFinder):
    """Registers the environment as soon as gymnasium is imported.

    Importing gymnasium costs about 0.25 s, which every CLI call (and the
    simulator's throughput) would pay if this package imported it eagerly; so
    ``import hybridsched`` only registers at once when gymnasium is already
    loaded, and otherwise right after gymnasium's own import completes.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            _register_env()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if "gymnasium" in sys.modules:
    _register_env()
elif not any(isinstance(f, _RegisterOnGymnasiumImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterOnGymnasiumImport())
