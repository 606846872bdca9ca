"""Experiments: run schedulers head to head on identical workloads and summarise."""

from __future__ import annotations

from hybridsched.experiments.compare import CompareConfig, run_compare

__all__ = ["CompareConfig", "run_compare"]
