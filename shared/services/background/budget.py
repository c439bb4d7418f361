"""A time budget for long work, so that one step ends well inside the host's 10-minute functionTimeout."""

from __future__ import annotations

import time
from collections.abc import Callable

PURGE_SECONDS_PER_STEP = 300.0


def deadline_in(seconds: float, monotonic: Callable[[], float] = time.monotonic) -> Callable[[], bool]:
    """A test that says when the budget is spent."""
    until = monotonic() + seconds
    return lambda: monotonic() >= until
