"""Test-wide settings.

Hypothesis runs derandomized (a fixed example sequence) so that a CI run is
reproducible: the same commit gives the same examples. Set HYPOTHESIS_PROFILE=explore
to draw fresh random examples locally and hunt for new counterexamples.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
