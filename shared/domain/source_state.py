"""What the data rounds remember in the tenant's partition (SPEC 7): per source, where the last round ended (the
delta links to replay), the round in progress (its next link, so that any message can resume it), and what the
admin sees in the Overview (the last successful round, counts, the last error in words).

Plain immutable documents with the few rules about rounds that need no I/O; the kinds of background work in
`shared/services/background/` read them, decide, and write them back with the ETag they read.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

MAIL_FOLDERS = ("inbox", "sentitems")
CALENDAR = "calendar"
COLLECTIONS = (*MAIL_FOLDERS, CALENDAR)


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True)


class RoundError(_Doc):
    """The last thing that went wrong, for the admin: our code, words of ours (never the source's message text,
    which may quote data) and when."""

    code: str
    message: str
    at: datetime


# -- the CRM (Dataverse) --------------------------------------------------------------------------------------


class CrmRound(_Doc):
    """A CRM round in progress: the entity sets are read in a fixed order; `link` is where the current one goes
    on (None: from its stored delta link, or a full read)."""

    started_at: datetime
    set_index: int = 0
    link: str | None = None
    items: int = 0
    removed: int = 0
    records_changed: bool = False
    activities_changed: bool = False
    users_changed: bool = False


class CrmState(_Doc):
    environment_url: str | None = None
    environment_set_at: datetime | None = None  # the settings' moment for this URL: another moment resets
    links: dict[str, str] = Field(default_factory=dict)  # entity set -> delta link its last round ended with
    round: CrmRound | None = None
    last_started_at: datetime | None = None
    last_success_at: datetime | None = None
    last_round_items: int | None = None
    last_round_removed: int | None = None
    last_error: RoundError | None = None

    def for_environment(self, url: str, set_at: datetime | None) -> CrmState:
        """This state if it belongs to that environment URL as last set, else a fresh one (a full round)."""
        if self.environment_url == url and self.environment_set_at == set_at:
            return self
        return CrmState(environment_url=url, environment_set_at=set_at)


# -- the mailboxes (Microsoft Graph) --------------------------------------------------------------------------


class Collection(_Doc):
    """One mail folder or the calendar of a mailbox. `link` is the next link of the round in progress, or the
    delta link its last round ended with (None: the next round reads everything again)."""

    link: str | None = None
    done: bool = True
    full: bool = False  # this round started without a link
    reconcile: bool = False  # at the end of this full round, items held from before and not seen again are gone
    window_start: datetime | None = None  # calendar: the window the delta round was opened on
    window_end: datetime | None = None


class MailboxRound(_Doc):
    id: str  # marks the copies seen in this round (a full round's reconciliation)
    started_at: datetime
    stepped_at: datetime
    items: int = 0
    removed: int = 0
    failed: RoundError | None = None


class MailboxState(_Doc):
    mailbox_id: str  # the Entra object id of the mailbox's owner
    owner_id: str  # the CRM user id (InternalUser.id): activities from here carry it as mailboxOwnerId
    since: datetime | None = None  # the back-fill's start, kept for every later full round of mail
    collections: dict[str, Collection] = Field(default_factory=dict)
    round: MailboxRound | None = None
    last_started_at: datetime | None = None
    last_success_at: datetime | None = None
    last_round_items: int | None = None
    last_error: RoundError | None = None
    dropping: bool = False  # its gates closed: its delta state and item map are being deleted

    def collection(self, name: str) -> Collection:
        return self.collections.get(name) or Collection()

    def start_round(self, round_id: str, now: datetime, *, backfill: timedelta, horizon: timedelta,
                    roll_before: timedelta) -> MailboxState:
        """A new round of every collection: incremental from its delta link, or full when it has none. The
        calendar's window rolls (a full round on a new window) when its end comes within `roll_before`."""
        synced_before = self.last_success_at is not None
        collections: dict[str, Collection] = {}
        for name in COLLECTIONS:
            current = self.collection(name)
            if name == CALENDAR and current.link is not None and (
                    current.window_end is None or current.window_end - now < roll_before):
                current = current.model_copy(update={"link": None})
            if current.link is None:
                start, end = (self.since or now - backfill, now + horizon) if name == CALENDAR else (None, None)
                if name == CALENDAR and synced_before:
                    start = now - roll_before  # a later window: the past before it is history, it stays as is
                collections[name] = Collection(done=False, full=True, reconcile=synced_before,
                                               window_start=start, window_end=end)
            else:
                collections[name] = current.model_copy(update={"done": False, "full": False, "reconcile": False})
        return self.model_copy(update={
            "since": self.since or now - backfill, "collections": collections, "last_started_at": now,
            "round": MailboxRound(id=round_id, started_at=now, stepped_at=now)})

    def restarted(self, name: str, now: datetime, *, horizon: timedelta, roll_before: timedelta) -> MailboxState:
        """The collection's stored position is gone (410): it reads everything again in this round."""
        window: tuple[datetime | None, datetime | None] = (None, None)
        if name == CALENDAR:
            window = (now - roll_before if self.last_success_at else self.since, now + horizon)
        fresh = Collection(done=False, full=True, reconcile=True, window_start=window[0], window_end=window[1])
        return self.model_copy(update={"collections": {**self.collections, name: fresh}})

    @property
    def round_done(self) -> bool:
        return all(self.collection(name).done for name in COLLECTIONS)


class ExchangeSummary(_Doc):
    """The mailboxes as the latest plan found them, moved on by each round that ended since: what the Overview
    shows."""

    as_of: datetime
    mailboxes: int = 0  # mailboxes whose gates are open
    synced: int = 0  # of them, with at least one successful round
    failing: int = 0  # of them, whose latest round failed
    last_success_at: datetime | None = None
    items_in_last_rounds: int = 0
    last_error: RoundError | None = None
    plan_error: RoundError | None = None  # the plan itself could not run (e.g. an excluded group unreadable)
