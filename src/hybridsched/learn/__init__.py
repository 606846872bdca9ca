"""What the learned schedulers share: (task, node) pair features and the pair-scoring network.

:mod:`hybridsched.learn.features` is NumPy (and a compiled twin) only;
:mod:`hybridsched.learn.network` imports torch and is loaded only when a learned
policy is used.
"""

from __future__ import annotations

from hybridsched.learn.features import FEATURE_NAMES, N_FEATURES, node_table, pair_features

__all__ = ["FEATURE_NAMES", "N_FEATURES", "node_table", "pair_features"]
