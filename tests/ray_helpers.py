"""Shared by the Ray tests: import Ray, skipping only outside CI."""

from __future__ import annotations

import os
from typing import Any

import pytest


def import_ray() -> Any:
    """Ray, or a skip; in CI (``CI=true``) a missing Ray fails instead."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        import ray  # must be there: .ci/run installs the ray extra

        return ray
    return pytest.importorskip("ray")


RAY_INIT: dict[str, Any] = {
    "include_dashboard": False,
    "object_store_memory": 80 * 1024 * 1024,
    "configure_logging": False,
    "log_to_driver": False,
}
"""ray.init options of the tests: small and quiet."""
