"""The kinds of background work and the queue each runs on. Plain names only (no models), so that the function
modules can register their queue triggers without loading anything else."""

from __future__ import annotations

from enum import StrEnum

QUEUE_PREFIX = "ri"  # the queues the app's queue triggers listen to: ri-consent-deadline, ...


class IndexKind(StrEnum):
    """What an index row asks for (a hint: the work re-reads the tenant's state and decides)."""

    CONSENT_DEADLINE = "consent-deadline"
    CONSENT_RECHECK = "consent-recheck"
    EXCHANGE_PURGE = "exchange-purge"
    INSIGHTS_RECOMPUTE = "insights-recompute"  # everything: data of every kind or settings changed, or a day passed
    INSIGHTS_REFRESH = "insights-refresh"  # only the records that new activities touch
    OPT_OUT_PURGE = "opt-out-purge"
    CRM_ROUND = "crm-round"  # a round of the tenant's CRM (Dataverse change tracking) is due
    MAILBOX_PLAN = "mailbox-plan"  # a round of the tenant's mailboxes (Microsoft Graph delta) is due


class WorkKind(StrEnum):
    """A kind of background work: one queue, one queue-triggered function, one module of the service layer."""

    CONSENT_DEADLINE = "consent-deadline"
    CONSENT_RECHECK = "consent-recheck"
    EXCHANGE_PURGE = "exchange-purge"
    OPT_OUT_PURGE = "opt-out-purge"
    INSIGHTS_UPDATE = "insights-update"
    CRM_ROUND = "crm-round"  # one step of the tenant's CRM round, continuing in a new message
    MAILBOX_PLAN = "mailbox-plan"  # which mailboxes pass the gates: one message per mailbox round
    MAILBOX_ROUND = "mailbox-round"  # one step of one mailbox's round (the message names the mailbox)

    @property
    def queue(self) -> str:
        return queue_name(self)


def queue_name(kind: WorkKind, prefix: str = QUEUE_PREFIX) -> str:
    return f"{prefix}-{kind.value}"


WORK_OF_INDEX: dict[IndexKind, WorkKind] = {
    IndexKind.CONSENT_DEADLINE: WorkKind.CONSENT_DEADLINE,
    IndexKind.CONSENT_RECHECK: WorkKind.CONSENT_RECHECK,
    IndexKind.EXCHANGE_PURGE: WorkKind.EXCHANGE_PURGE,
    IndexKind.OPT_OUT_PURGE: WorkKind.OPT_OUT_PURGE,
    IndexKind.INSIGHTS_RECOMPUTE: WorkKind.INSIGHTS_UPDATE,
    IndexKind.INSIGHTS_REFRESH: WorkKind.INSIGHTS_UPDATE,
    IndexKind.CRM_ROUND: WorkKind.CRM_ROUND,
    IndexKind.MAILBOX_PLAN: WorkKind.MAILBOX_PLAN,
}
# MAILBOX_ROUND has no index rows of its own: the plan fans it out, naming the plan's rows that asked for it.


def index_kinds(work: WorkKind) -> tuple[IndexKind, ...]:
    return tuple(kind for kind, of in WORK_OF_INDEX.items() if of is work)
