"""EDF-MCT: earliest deadline first, placed for the largest slack.

The batch is ordered by absolute deadline, then priority; each task goes to the
node maximising slack = deadline - estimated finish, that is the MCT node.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@njit(cache=True)
def order(st, idx):
    """Positions in ``idx``, most urgent first: earliest absolute deadline, then
    priority, then decision order (two stable sorts)."""
    b = idx.shape[0]
    out = np.arange(b)
    keys_p = st.priority[idx].astype(np.float64)
    out = out[np.argsort(keys_p, kind="mergesort")]
    dl = st.abs_deadline[idx][out]
    return out[np.argsort(dl, kind="mergesort")]


@register
class EDFMCT(KernelPolicy):
    """Most urgent first (earliest deadline), each where its deadline slack is largest."""

    name = "edf-mct"
    rule = kernels.EDF_MCT
