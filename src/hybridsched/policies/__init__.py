"""Schedulers: a registry of policies selectable by name.

The classic heuristics live one per module, each with its rule as a compiled
function, and share one batch loop (:mod:`hybridsched.policies.kernels`); the
colony, the exact oracle and the learned policies register themselves the same way.
"""

from __future__ import annotations

from hybridsched.policies.base import (
    ESTIMATE_CHOICES,
    KernelPolicy,
    add_policy_module,
    available_policies,
    make_policy,
    parse_policy_args,
    policy_class,
    policy_params,
    preferred_estimates,
    register,
    resolve_estimates,
)

# plugins (entry points, $HYBRIDSCHED_PLUGINS) load lazily, with the built-in policies
add_policy_module("hybridsched.policies.plugins")

LISTING_NOTES: dict[str, str] = {
    "rl": "at its defaults, where nothing drifts, it places tasks as mct does (the same "
    "nodes, up to rare float32 near ties: one task in two of 75 measured runs): choose mct "
    "for speed there; once it observes drift "
    "(observed estimates, the default under --estimates auto) it places batches with the "
    "shipped rl-drift.pt (the hybrid distilled, docs/RL.md); or train your own",
}
"""Notes the ``policies`` listing and the README add to a policy's one-line description.

Kept true by ``tests/test_cli.py::test_rl_listing_note_matches_behaviour``.
"""


def get_policy(name: str, **args: object) -> object:
    """Build the policy registered as ``name`` (see :func:`make_policy`)."""
    return make_policy(name, args)


__all__ = [
    "ESTIMATE_CHOICES",
    "LISTING_NOTES",
    "KernelPolicy",
    "add_policy_module",
    "available_policies",
    "get_policy",
    "make_policy",
    "parse_policy_args",
    "policy_class",
    "policy_params",
    "preferred_estimates",
    "register",
    "resolve_estimates",
]
