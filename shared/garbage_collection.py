"""The cyclic garbage collector's thresholds for a worker.

A worker holds hundreds of thousands of long-lived objects (the caches of ledgers and insights, the SDKs), and a
computation allocates millions of small, acyclic ones (facts, partials, models) that reference counting frees.
With CPython's default thresholds (a young collection every 700 allocations) the collector ran about 500 times in
a refresh of 1,000 records and took 1.2–2.1 s of its 5.6–8.3 s (`bench/insights.py`, and a profile of the
refresh). Collecting every 50,000 allocations keeps a cycle's memory waiting a little longer, never forever.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
OLDER_THRESHOLDS = (20, 20)


def configure() -> None:
    """Idempotent: set the thresholds of the process (they are process-wide)."""
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
