"""What the CRM and mailbox rounds share: source problems in words for the admin, and cutting work in batches
the ingestion path takes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Literal, TypeVar

from shared.domain.source_state import RoundError
from shared.services.ports import SourceBusy, SourcePositionLost, SourceProblem, SourceRefused
from shared.services.sync import MAX_ITEMS

T = TypeVar("T")

Source = Literal["Dataverse", "Microsoft Graph"]

_KNOWN: dict[str, str] = {
    # Dataverse: the token's app has no (enabled) application user in the environment.
    "0x80072560": "our application user is missing or disabled in the Dataverse environment: create it (see the "
                  "README) and give it the relationship-intelligence security role",
    # Entra: the app is not in the tenant (no consent) or its secret is wrong.
    "AADSTS700016": "our app is not registered in your tenant: the Microsoft 365 admin must consent first",
    "AADSTS7000215": "the app's credential was refused by Microsoft Entra ID: the service's operator must renew it",
    "ErrorAccessDenied": "Microsoft Graph refused access to this mailbox (an application access policy?)",
    "ErrorInvalidUser": "this mailbox does not exist (any more) in Microsoft 365",
    "MailboxNotEnabledForRESTAPI": "this user has no Exchange Online mailbox",
    "Authorization_RequestDenied": "Microsoft Graph refused to list group members: consent to GroupMember.Read.All",
}


def in_words(problem: SourceProblem, source: Source, at: datetime) -> RoundError:
    """A source problem as the admin reads it: our words and the source's code, never the source's message."""
    code = problem.code or (str(problem.status) if problem.status else type(problem).__name__)
    known = _KNOWN.get(code)
    if isinstance(problem, SourceBusy):
        wait = f" (it asked to wait {problem.retry_after:.0f} s)" if problem.retry_after else ""
        message = f"{source} is throttling or unavailable{wait}; the round goes on later"
    elif isinstance(problem, SourcePositionLost):
        message = f"{source} no longer knows where the last round ended: everything is read again"
    elif isinstance(problem, SourceRefused) and known:
        message = known[0].upper() + known[1:]
    elif isinstance(problem, SourceRefused) and problem.status in (401, 403, None):
        message = f"{source} refused our access ({code}): is consent in place and our application allowed in?"
    else:
        message = f"{source} refused a request ({code}); the next round tries again"
    return RoundError(code=code, message=message, at=at)


def batches(items: Sequence[T], size: int = MAX_ITEMS) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
