"""Training the learned scheduler: a Gymnasium environment and a policy-gradient trainer.

Importing :mod:`hybridsched` registers the environment id ``hybridsched/IoTCloud-v0``
(entry point ``hybridsched.train.env:IoTCloudEnv``), so ``gymnasium.make`` works
without importing this package first. The trainer (torch) is in
:mod:`hybridsched.train.trainer`, loaded on use.
"""

from __future__ import annotations

ENV_ID = "hybridsched/IoTCloud-v0"
"""The Gymnasium id of :class:`hybridsched.train.env.IoTCloudEnv`."""
ENV_ENTRY_POINT = "hybridsched.train.env:IoTCloudEnv"


def register_env() -> None:
    """Register :data:`ENV_ID` with Gymnasium (idempotent; imports neither torch nor the env)."""
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point=ENV_ENTRY_POINT)


# Not called here: importing gymnasium costs about 0.25 s, and the CLI reads the
# training configs of this package at start-up; ``import hybridsched`` already
# registers the environment as soon as gymnasium is imported.

__all__ = ["ENV_ENTRY_POINT", "ENV_ID", "register_env"]
