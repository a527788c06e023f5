"""Defaults shared by the operator, the trigger and the poll decision.

Import-free on purpose: the operator module reads these at DAG-parse time, and the dag-processor
parses DAG files all day, so everything heavier is imported inside the methods that run a task.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_CONN_ID",
    "DEFAULT_INITIAL_POLL_DELAYS",
    "DEFAULT_JOB_TIMEOUT_SECONDS",
    "DEFAULT_MAX_CONSECUTIVE_FAILURES",
    "DEFAULT_POLL_INTERVAL_SECONDS",
]

DEFAULT_CONN_ID = "openrouter_default"
DEFAULT_POLL_INTERVAL_SECONDS = 30.0
DEFAULT_INITIAL_POLL_DELAYS = (30.0, 10.0, 20.0)
"""Default schedule: checks 30 s and 40 s after submission, then on the 30 s grid (60, 90, ...).
Videos take 30 s to minutes. Against a fixed 30 s interval this finds a 30 s job about 5 s after
it completes instead of about 24 s, with the same number of polls; longer jobs cost one extra
poll (measured in ``benchmarks/completion_detection.py``)."""
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5
DEFAULT_JOB_TIMEOUT_SECONDS = 3600.0
