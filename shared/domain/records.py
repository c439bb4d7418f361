"""CRM records and activity metadata, as a sync connector sends them (SPEC 4, 4.4: metadata only, no bodies).

Every record carries the source's `version` (a number that grows with each change, like Dataverse's
versionnumber): a record is stored only if its version is newer than the stored one, so replays and
out-of-order batches never move data backwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, model_validator
from pydantic.alias_generators import to_camel

from shared.domain.vocabulary import EMAIL_DOMAIN_PATTERN, RECORD_KIND_NAMES

RecordId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
_ADDRESS_PART = r"[^@\s/\\#?\x00-\x1f\x7f-\x9f]+"  # also what a Table Storage key may hold
Email = Annotated[str, StringConstraints(min_length=3, max_length=320, pattern=rf"^{_ADDRESS_PART}@{_ADDRESS_PART}$",
                                         to_lower=True, strip_whitespace=True)]
Version = Annotated[int, Field(ge=0, le=2**62)]
EmailDomain = Annotated[str, StringConstraints(max_length=253, to_lower=True, pattern=EMAIL_DOMAIN_PATTERN)]


def _with_zone(value: datetime, info: ValidationInfo) -> datetime:
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is not None:
        # The same instant and rendering; arithmetic with `datetime.UTC` is twice as fast as with the parser's zone
        # (the insights' computation converts every activity's start).
        return value.replace(tzinfo=UTC) if value.utcoffset() == _NO_OFFSET else value
    if info.context and info.context.get("stored"):  # a row stored before zones were required: it meant UTC
        return value.replace(tzinfo=UTC)
    raise ValueError("a time needs its zone (for example 2026-11-26T09:30:00Z)")


_NO_OFFSET = timedelta(0)
Moment = Annotated[datetime, AfterValidator(_with_zone)]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True,
                              strict=True)

    id: RecordId
    version: Version


class InternalUser(_Record):
    email: Email
    display_name: str = Field(default="", max_length=200)
    security_role_ids: tuple[Annotated[str, StringConstraints(max_length=64)], ...] = Field(default=(),
                                                                                           max_length=100)
    group_ids: tuple[Annotated[str, StringConstraints(max_length=64)], ...] = Field(default=(), max_length=1000)
    opted_out: bool = False
    active: bool = True
    entra_object_id: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="the user's Microsoft Entra object id: which Microsoft 365 mailbox is theirs")
    deactivated_on: Moment | None = Field(
        default=None, description="when the user's account was deactivated (a departure), when the source knows")


class SecurityRoleRecord(_Record):
    """A role of the tenant's security-role catalogue (SPEC 2.3); once any is synced, it replaces the standard one."""

    name: str = Field(min_length=1, max_length=200)


class Account(_Record):
    name: str = Field(max_length=200)
    primary_contact_id: RecordId | None = None
    email_domains: tuple[EmailDomain, ...] = ()


class Contact(_Record):
    email: Email | None = None
    full_name: str = Field(default="", max_length=200)
    account_id: RecordId | None = None
    opted_out: bool = False


class LeadState(StrEnum):
    ACTIVE = "active"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"


class Lead(_Record):
    owner_id: RecordId
    email: Email | None = None
    full_name: str = Field(default="", max_length=200)
    stakeholder_contact_ids: tuple[RecordId, ...] = Field(default=(), max_length=200)
    state: LeadState = LeadState.ACTIVE
    created_on: Moment
    opted_out: bool = False


class OpportunityState(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class Opportunity(_Record):
    name: str = Field(default="", max_length=200)
    owner_id: RecordId
    sales_team_ids: tuple[RecordId, ...] = Field(default=(), max_length=200)
    customer_contact_id: RecordId | None = None
    stakeholder_contact_ids: tuple[RecordId, ...] = Field(default=(), max_length=200)
    account_id: RecordId | None = None
    state: OpportunityState = OpportunityState.OPEN
    created_on: Moment
    estimated_revenue: float | None = Field(default=None, ge=0, le=1e15, allow_inf_nan=False)


class ActivityKind(StrEnum):
    EMAIL = "email"
    APPOINTMENT = "appointment"
    PHONE_CALL = "phoneCall"
    TASK = "task"


class Source(StrEnum):
    CRM = "crm"
    EXCHANGE = "exchange"


class Regarding(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    type: Literal["account", "contact", "lead", "opportunity"]
    id: RecordId


class Activity(_Record):
    """Metadata of one email, appointment, phone call or task. Parties are email addresses."""

    source: Source
    kind: ActivityKind
    mailbox_owner_id: RecordId | None = Field(default=None, description="internal user whose mailbox it came "
                                                                          "from (Exchange items)")
    thread_id: Annotated[str, StringConstraints(max_length=200)] | None = None
    sender: Email | None = Field(default=None, description="email From, call caller, meeting organizer")
    to: tuple[Email, ...] = Field(default=(), max_length=500)
    cc: tuple[Email, ...] = Field(default=(), max_length=500)
    optional_attendees: tuple[Email, ...] = Field(default=(), max_length=500)
    regarding: Regarding | None = None
    start: Moment = Field(description="sent time of an email, start of a meeting or call, due time of a task")
    duration_minutes: float | None = Field(default=None, ge=0, le=60 * 24 * 7)
    completed: bool = True
    in_reply_to_sent_at: Moment | None = Field(default=None, description="for a reply: when the message it "
                                                                            "answers was sent")

    @model_validator(mode="after")
    def _exchange_items_name_their_mailbox(self) -> Activity:
        if self.source is Source.EXCHANGE and self.mailbox_owner_id is None:
            raise ValueError("an Exchange item needs mailboxOwnerId")
        return self

    @cached_property
    def parties(self) -> tuple[str, ...]:
        addresses = ([self.sender] if self.sender else []) + [*self.to, *self.cc, *self.optional_attendees]
        return tuple(dict.fromkeys(addresses))


class RemovedActivity(Activity):
    """An activity its source deleted, as a tombstone: the row keeps its last document with a newer version and
    the moment of removal, so that a late replay of an older version does not bring it back and incremental
    readers see the removal as a change. Only readers that ask for tombstones are given these."""


def record_key(record: BaseModel) -> str:
    """What identifies a record within its kind: its id, and for an activity its source too (a CRM email and
    an Exchange message may share an id)."""
    if isinstance(record, Activity):
        return f"{record.source.value}|{record.id}"
    return str(record.id)  # type: ignore[attr-defined]


RECORD_KINDS: dict[str, type[_Record]] = dict(zip(
    RECORD_KIND_NAMES, (SecurityRoleRecord, InternalUser, Account, Contact, Lead, Opportunity, Activity), strict=True))
