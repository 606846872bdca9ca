"""hybridsched: scheduling IoT data-processing tasks on edge/fog/cloud clusters.

The public API in one place:

* :class:`~hybridsched.model.Cluster`, :class:`~hybridsched.model.Workload`: validated inputs.
* :mod:`hybridsched.io`: read and write cluster, workload and result files.
* :func:`~hybridsched.sim.simulate` and :class:`~hybridsched.sim.Engine`: the simulator.
* :func:`~hybridsched.policies.get_policy`, :func:`~hybridsched.policies.available_policies`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
