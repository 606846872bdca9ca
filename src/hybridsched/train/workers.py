"""Where a training run's simulator work executes: in this process, or in Ray actors.

A trainer splits its simulator work into fixed *shards* (the ``rl`` trainer's
groups of simulator copies, the ``hybrid`` trainer's collection runs) and
hands them to a :class:`WorkerGroup`: ``workers`` objects of one class, each
holding a contiguous share of the shards (:func:`share`). The learner stays
in the driver; :meth:`WorkerGroup.call` calls one method on every worker and
returns their answers in worker order, so the driver gathers them in a fixed
order whatever the number of workers.

* ``backend="local"``: one worker, in this process (a method call, no copy
  of the arguments). More than one local worker is refused: on one machine
  the simulator copies already run in one batched kernel, and a process pool
  would add only transfer costs (docs/SCALE.md).
* ``backend="ray"``: one Ray actor per worker (one CPU each), on the cluster
  at ``address`` (else ``RAY_ADDRESS``, else a local Ray started for the run,
  with ``workers`` CPUs, and stopped by :meth:`WorkerGroup.close`). Connecting
  is :class:`~hybridsched.experiments.backends.RayBackend`'s.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.experiments.backends import RayBackend, ray_get
from hybridsched.train.config import check_workers


def share(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into ``parts`` contiguous pieces whose sizes differ by at most one."""
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


class WorkerGroup:
    """``workers`` objects of one class, local or Ray actors (see the module docstring).

    Args:
        backend: ``local`` or ``ray``.
        workers: how many workers.
        address: the Ray cluster's address (ray backend only).

    Attributes:
        nodes: alive Ray nodes when the group started (1 for the local backend).
    """

    def __init__(
        self, backend: str = "local", workers: int = 1, address: str | None = None
    ) -> None:
        check_workers(backend, workers)
        if backend == "local" and address:
            raise ConfigError("--ray-address: goes with --backend ray")
        self.backend = backend
        self.workers = workers
        self.address = address
        self.nodes = 1
        self._ray: RayBackend | None = None
        self._members: list[Any] = []

    def start(self, cls: type, args: Sequence[tuple]) -> None:
        """Create one ``cls(*args[w])`` per worker (replacing any earlier ones)."""
        if len(args) != self.workers:
            raise ValueError(f"{len(args)} argument tuples for {self.workers} workers")
        if self.backend == "local":
            self._members = [cls(*a) for a in args]
            return
        if self._ray is None:
            self._ray = RayBackend(self.address, self.workers)
            self.nodes = self._ray.start()
        import ray

        actor = ray.remote(num_cpus=1)(cls)
        self._members = [actor.remote(*a) for a in args]

    def call(self, method: str, *args: Any) -> list[Any]:
        """``method(*args)`` on every worker at once; their answers in worker order."""
        return self.call_each(method, [args] * len(self._members))

    def call_each(self, method: str, args: Sequence[tuple]) -> list[Any]:
        """``method(*args[w])`` on worker ``w``, all at once; their answers in worker order."""
        if self.backend == "local":
            return [getattr(m, method)(*a) for m, a in zip(self._members, args, strict=True)]
        refs = [getattr(m, method).remote(*a) for m, a in zip(self._members, args, strict=True)]
        return [ray_get(r, f"{method} on worker {w}") for w, r in enumerate(refs)]

    def put(self, value: Any) -> Any:
        """``value`` as handed to every worker: itself locally, one object-store copy on Ray."""
        if self.backend == "local":
            return value
        import ray

        return ray.put(value)

    def close(self) -> None:
        """End the actors and stop a local Ray started here (idempotent)."""
        if self._ray is not None:
            import ray

            for m in self._members:
                ray.kill(m)
            self._ray.close()
            self._ray = None
        self._members = []
