"""What a scheduler may observe of the nodes: realized over nominal times (docs/MODEL.md 12.1).

:class:`NodeObservations` holds, per node, the time-decayed means of realized over
nominal execution and transfer times that completed tasks revealed, and how long
running tasks have run against their estimate; :func:`decayed_mean` is the one
update rule (the simulator runs it compiled, the live service as it is);
:func:`believe` turns observations into the estimates a view shows with
``estimates="observed"``. Never the conditions themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridsched.errors import ConfigError
from hybridsched.model import Cluster


def read_only_column(name: str, value: Any, dtype: type, ndim: int = 1) -> np.ndarray:
    """``value`` as a read-only contiguous array of ``dtype`` with ``ndim`` dimensions."""
    a = np.array(value, dtype=dtype, copy=True, ndmin=ndim)
    if a.ndim != ndim:
        raise ConfigError(f"{name}: must be a {ndim}-dimensional array, got shape {a.shape}")
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


OBS_TAU_S = 30.0
"""Time constant of the decayed averages of observations, s (docs/MODEL.md section 13)."""
OBS_PRIOR_WEIGHT = 1.0
"""Weight of the nominal value (a ratio of 1) in an observed estimate: one observation's."""


def decayed_mean(
    mean: float, weight: float, last: float, count: int, x: float, t: float
) -> tuple[float, float]:
    """The decayed mean ``(mean, weight)`` after ratio ``x`` observed at ``t``.

    ``(mean, weight)`` was last updated at ``last``, after ``count`` observations.
    Weight ``w * exp(-(t - last) / OBS_TAU_S) + 1``, mean ``m + (x - m) / w``; the
    first observation is the mean, with weight 1. Plain Python: the simulator runs
    it compiled (``fault_kernels.observe``), the live service as it is, so both
    record the same numbers.
    """
    if count == 0:
        return x, 1.0
    w = weight * math.exp(-(t - last) / OBS_TAU_S) + 1.0
    return mean + (x - mean) / w, w


ESTIMATES = ("nominal", "observed")
"""What the view's execution and transfer estimates are: the cluster file's values, or
those values corrected by the observations (:meth:`NodeObservations.exec_factor`)."""

_OBS_FIELDS = (
    ("exec_ratio", np.float64),
    ("exec_weight", np.float64),
    ("exec_time_s", np.float64),
    ("exec_count", np.int64),
    ("transfer_ratio", np.float64),
    ("transfer_weight", np.float64),
    ("transfer_time_s", np.float64),
    ("transfer_count", np.int64),
    ("running_ratio", np.float64),
)


@dataclass(frozen=True, eq=False)
class NodeObservations:
    """What each node's tasks revealed: realized over nominal times, with their timestamps.

    Per node, arrays ``(N,)``. A ratio is realized over nominal: for an execution,
    ``(finish - start) / (work estimate / nominal speed)``; for a transfer,
    ``(ready - decision) / (nominal ready - decision)`` (transfers of no time are
    not observed). Each ratio is an exponentially time-decayed mean (time
    constant :data:`OBS_TAU_S`): at an observation ``x`` at ``t``, the weight
    becomes ``w * exp(-(t - time) / tau) + 1`` and the mean ``m + (x - m) / w``.
    Never the conditions themselves: only what completed (and running) tasks show.
    """

    exec_ratio: np.ndarray
    """Decayed mean of realized / nominal execution time (NaN: none observed)."""
    exec_weight: np.ndarray
    """Its weight as of :attr:`exec_time_s` (decayed count of observations)."""
    exec_time_s: np.ndarray
    """Time of the last execution observed, s (-inf: none)."""
    exec_count: np.ndarray
    """Executions observed, int64."""
    transfer_ratio: np.ndarray
    """Decayed mean of realized / nominal transfer time (NaN: none observed)."""
    transfer_weight: np.ndarray
    """Its weight as of :attr:`transfer_time_s`."""
    transfer_time_s: np.ndarray
    """Time of the last transfer observed, s (-inf: none)."""
    transfer_count: np.ndarray
    """Transfers observed, int64."""
    running_ratio: np.ndarray
    """Largest elapsed / nominal execution time over the node's running tasks at the
    snapshot's time (0: none running)."""

    def __post_init__(self) -> None:
        n = None
        for name, dt in _OBS_FIELDS:
            a = read_only_column(f"observations.{name}", getattr(self, name), dt)
            object.__setattr__(self, name, a)
            if n is None:
                n = a.shape[0]
            elif a.shape[0] != n:
                raise ConfigError(f"observations.{name}: has {a.shape[0]} nodes, expected {n}")

    @property
    def n_nodes(self) -> int:
        """Number of nodes ``N``."""
        return int(self.exec_ratio.shape[0])

    @classmethod
    def empty(cls, n_nodes: int) -> NodeObservations:
        """Nothing observed yet."""
        nan, zero = np.full(n_nodes, np.nan), np.zeros(n_nodes)
        never, none = np.full(n_nodes, -np.inf), np.zeros(n_nodes, dtype=np.int64)
        return cls(nan, zero, never, none, nan, zero, never, none, zero)

    def exec_factor(self, time: float) -> np.ndarray:
        """The observed estimate of execution time over nominal per node, at ``time``.

        ``(W * m + w0) / (W + w0)`` with ``m`` the mean ratio, ``W`` its weight
        decayed to ``time`` and ``w0`` = :data:`OBS_PRIOR_WEIGHT` (the nominal
        value as one observation), so that an estimate returns to nominal when
        nothing is observed for a while; then at least :attr:`running_ratio`
        (a running task already took that long). Exactly 1 when every ratio was 1.
        """
        f = _shrunk(self.exec_ratio, self.exec_weight, self.exec_time_s, self.exec_count, time)
        return np.maximum(f, self.running_ratio)

    def transfer_factor(self, time: float) -> np.ndarray:
        """The observed estimate of transfer time over nominal per node, at ``time``
        (as :meth:`exec_factor`, without a running part)."""
        return _shrunk(
            self.transfer_ratio, self.transfer_weight, self.transfer_time_s,
            self.transfer_count, time,
        )  # fmt: skip

    def check(self, n_nodes: int) -> None:
        """Refuse observations of another number of nodes, or ratios that are not > 0.

        Raises:
            ConfigError: naming the field and the node.
        """
        if self.n_nodes != n_nodes:
            raise ConfigError(
                f"snapshot.observations: has {self.n_nodes} nodes, the cluster has {n_nodes}"
            )
        for name in ("exec_ratio", "transfer_ratio"):
            a = getattr(self, name)
            bad = np.flatnonzero(~(np.isnan(a) | ((a > 0) & np.isfinite(a))))
            if bad.size:
                j = int(bad[0])
                raise ConfigError(
                    f"snapshot.observations.{name}: node {j}: must be a finite ratio > 0 or NaN "
                    f"(none), got {a[j]!r}"
                )


def shrunk_factor(mean: float, weight: float, last: float, count: int, time: float) -> float:
    """One node's decayed mean ratio shrunk towards 1 (the nominal value) by the prior
    weight, at ``time``. Plain Python: the training rollouts run it compiled; the
    array form over every node is :func:`_shrunk` (the same formula)."""
    if count > 0:
        w = weight * math.exp(-max(time - last, 0.0) / OBS_TAU_S)
        m = mean
    else:
        w = 0.0
        m = 1.0
    return (w * m + OBS_PRIOR_WEIGHT) / (w + OBS_PRIOR_WEIGHT)


def _shrunk(
    mean: np.ndarray, weight: np.ndarray, last: np.ndarray, count: np.ndarray, time: float
) -> np.ndarray:
    """:func:`shrunk_factor` of every node at once."""
    seen = count > 0
    w = np.where(seen, weight * np.exp(-np.maximum(time - last, 0.0) / OBS_TAU_S), 0.0)
    m = np.where(seen, mean, 1.0)
    return (w * m + OBS_PRIOR_WEIGHT) / (w + OBS_PRIOR_WEIGHT)


def believe(st: Any, cluster: Cluster, obs: NodeObservations, time: float) -> None:
    """Write the observed estimates at ``time`` into state ``st``'s speed, latency, bandwidth.

    Nominal values (``cluster``'s) times :meth:`NodeObservations.transfer_factor`
    (latency; bandwidth divided) and divided by :meth:`NodeObservations.exec_factor`
    (speed). With every ratio 1 they are the nominal values exactly.
    """
    fe = obs.exec_factor(time)
    fx = obs.transfer_factor(time)
    st.speed[:] = cluster.speed / fe
    st.bandwidth[:] = cluster.bandwidth_mb_s / fx
    st.latency[:] = cluster.latency_s * fx[:, None]
