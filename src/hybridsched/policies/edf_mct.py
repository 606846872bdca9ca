"""EDF-MCT: earliest deadline first, placed for the largest slack.

The batch is ordered by absolute deadline, then priority; each task goes to the
node maximising slack = deadline - estimated finish, that is the MCT node.
"""

from __future__ import annotations

from hybridsched.policies import kernels
from hybridsched.policies.base import KernelPolicy, register


@register
class EDFMCT(KernelPolicy):
    """Most urgent first (earliest deadline), each where its deadline slack is largest."""

    name = "edf-mct"
    rule = kernels.EDF_MCT
