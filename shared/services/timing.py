"""When background work is due, relative to the events that ask for it."""

from __future__ import annotations

from datetime import timedelta

RECHECK_INTERVAL = timedelta(days=1)  # a granted consent is proven again daily (withdrawal, SPEC 2.5)
FULL_RECOMPUTE_INTERVAL = timedelta(days=1)  # scores move with time even without new data (recency)
# A sync call stamps its rows with the moment it began, before it read the data gates, and may commit them until
# the host stops it (host.json functionTimeout, 10 minutes). Whoever needs every row stamped up to a moment —
# the insights refresh mark, a purge's cut-off — waits this long past that moment before trusting a scan.
WRITE_SETTLE = timedelta(minutes=15)
# The log's readers need not wait that long: a sync call registers itself (its stamp) before it reads the gates,
# and ends its registration once its writes have ended. A reader trusts every row stamped before the oldest call
# registered, and at most up to this margin before its own moment: a registration still committing when the
# reader looked (a call gives up, 503, when its own took over half the margin) and clock skew between hosts fit in
# it. A crashed call holds the mark back until WRITE_SETTLE past its stamp.
IN_FLIGHT_MARGIN = timedelta(seconds=30)
# A settings change takes its moment before it is saved: a sync call that starts in between still reads the gates
# open and stamps its rows a little after that moment. A purge deletes rows stamped up to this much later (a save
# with its retries, and clock skew between hosts, take seconds).
CUTOFF_MARGIN = timedelta(minutes=1)
# The data rounds (SPEC 7). Their intervals are app settings (AppConfig); these are the rounds' own rules.
BACKFILL = timedelta(days=365)  # a mailbox's first round reads 12 months back
CALENDAR_HORIZON = timedelta(days=90)  # a calendar delta window reaches this far ahead when it opens
CALENDAR_ROLL = timedelta(days=30)  # it rolls (a new window) once its end is this close; a new one starts as far back
ROUND_STALLED = timedelta(minutes=15)  # a mailbox round with no step for this long lost its message: the plan resends
