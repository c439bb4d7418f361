"""Introducers who consent (ours, beyond SPEC 4.3): each colleague chooses how they appear in who knows whom, and
a colleague who asks first decides on each introduction request.

- `always`: listed, and "Get introduced" hands the requester the drafted email at once (the product's behaviour);
- `askFirst`: listed, but "Get introduced" makes a request; the requester gets the draft only once they accept;
- `never`: not listed anywhere, from the next read on.
The tenant's admin sets the default for colleagues who did not choose. A request lives 14 days, then expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.vocabulary import EntityType
from shared.errors import Conflict, Forbidden

IntroducerChoice = Literal["always", "askFirst", "never"]
INTRODUCER_CHOICES: tuple[IntroducerChoice, ...] = ("always", "askFirst", "never")
REQUEST_LIFETIME = timedelta(days=14)
MAX_MESSAGE_CHARS = 1000

RequestStatus = Literal["pending", "accepted", "declined", "expired"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RequestEvent(_Model):
    """A step of a request's life, kept with it: who did what, when (its audit trail)."""

    at: datetime
    actor: str  # an object id, or "system" for the expiry
    action: Literal["requested", "accepted", "declined", "expired"]


class IntroductionRequest(_Model):
    id: str
    requester_id: str  # the requester's object id (the token's oid)
    requester_name: str
    introducer_id: str  # the CRM user id of the colleague asked
    introducer_name: str
    introducer_email: str
    target_type: EntityType
    target_id: str
    target_name: str
    message: str = Field(default="", max_length=MAX_MESSAGE_CHARS)
    created_at: datetime
    expires_at: datetime
    decided: Literal["accepted", "declined"] | None = None
    history: tuple[RequestEvent, ...] = ()

    def status(self, now: datetime) -> RequestStatus:
        if self.decided is not None:
            return self.decided
        return "expired" if now >= self.expires_at else "pending"

    def decide(self, decision: Literal["accepted", "declined"], actor_user_id: str, actor: str,
               now: datetime) -> IntroductionRequest:
        """The introducer's answer; nobody else may give it, and only while the request is pending."""
        if actor_user_id != self.introducer_id:
            raise Forbidden("only the colleague who was asked can answer this request")
        status = self.status(now)
        if status != "pending":
            raise Conflict(f"this request is {status}: it can no longer be answered")
        event = RequestEvent(at=now, actor=actor, action=decision)
        return self.model_copy(update={"decided": decision, "history": (*self.history, event)})


def new_request(request_id: str, *, requester_id: str, requester_name: str, introducer_id: str,
                introducer_name: str, introducer_email: str, target_type: EntityType, target_id: str,
                target_name: str, message: str, now: datetime) -> IntroductionRequest:
    return IntroductionRequest(
        id=request_id, requester_id=requester_id, requester_name=requester_name, introducer_id=introducer_id,
        introducer_name=introducer_name, introducer_email=introducer_email, target_type=target_type,
        target_id=target_id, target_name=target_name, message=message, created_at=now,
        expires_at=now + REQUEST_LIFETIME, history=(RequestEvent(at=now, actor=requester_id, action="requested"),))


def effective_choice(own: IntroducerChoice | None, default: IntroducerChoice) -> IntroducerChoice:
    return default if own is None else own
