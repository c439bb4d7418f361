"""The cyclic garbage collector's thresholds for a worker.

A worker holds hundreds of thousands of long-lived objects (the caches of ledgers and insights, the SDKs), and a
computation allocates millions of small, acyclic ones (facts, partials, models) that reference counting frees.
With CPython's default thresholds (a young collection every 700 allocations) the collector ran about 500 times in
a refresh of 1,000 records and took 1.2–2.1 s of its 5.6–8.3 s (`bench/insights.py`, and a profile of the
refresh). Collecting every 50,000 allocations keeps a cycle's memory waiting a little longer, never forever.

Even so the collector's passes over the objects a computation keeps (its ledgers, partials, insights) took a quarter
of a from-scratch computation (`bench/insights.py`, section 6: 1.64 s with these thresholds, 1.21 s without
collections): a computation runs with collections `paused`, and what it leaves is collected once it ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000
OLDER_THRESHOLDS = (20, 20)


def configure() -> None:
    """Idempotent: set the thresholds of the process (they are process-wide)."""
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection while the block runs (its cyclic garbage, if any, waits for the next one, once it
    ends); as it was before when it ends. Nested pauses keep the outermost's state."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
