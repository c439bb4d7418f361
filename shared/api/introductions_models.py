"""Requests and responses of the introductions API: "Get introduced", each colleague's introducer choice, and
the introduction requests of colleagues who ask first."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.api.models import ApiModel
from shared.domain.introductions import MAX_MESSAGE_CHARS, IntroducerChoice, RequestStatus
from shared.services.introductions import Choice, Draft, GetIntroduced, RequestSeen
from shared.services.paging import Page

# -- requests -------------------------------------------------------------------------------------------


class GetIntroducedRequest(ApiModel):
    introducer_id: str = Field(min_length=1, max_length=100)
    message: str = Field(default="", max_length=MAX_MESSAGE_CHARS, description=(
        "for a colleague who asks first: a word on why you ask (shown with the request)"))


class IntroducerChoiceRequest(ApiModel):
    choice: IntroducerChoice | None = Field(description="null: the tenant's default applies")


# -- responses ------------------------------------------------------------------------------------------


class DraftView(ApiModel):
    to: str
    subject: str
    body: str


class PartyView(ApiModel):
    id: str
    name: str
    email: str | None = None


class TargetView(ApiModel):
    entity_type: str
    id: str
    name: str


class RequestEventView(ApiModel):
    at: datetime
    actor: str
    action: str


class IntroductionRequestView(ApiModel):
    id: str
    status: RequestStatus
    requester: PartyView
    introducer: PartyView
    target: TargetView
    message: str
    created_at: datetime
    expires_at: datetime
    history: list[RequestEventView]
    draft: DraftView | None = Field(description="for the requester, once the introducer accepted")


class IntroductionRequestPage(ApiModel):
    items: list[IntroductionRequestView]
    continuation_token: str | None


class GetIntroducedView(ApiModel):
    outcome: Literal["draft", "requested"] = Field(description=(
        "draft: the email to send, at once; requested: the colleague asks first, and answers a request"))
    draft: DraftView | None
    request: IntroductionRequestView | None


class IntroducerChoiceView(ApiModel):
    user_id: str
    choice: IntroducerChoice | None = Field(description="yours; null when the tenant's default applies")
    default: IntroducerChoice
    effective: IntroducerChoice


# -- mapping --------------------------------------------------------------------------------------------


def draft_view(draft: Draft | None) -> DraftView | None:
    return None if draft is None else DraftView(to=draft.to, subject=draft.subject, body=draft.body)


def request_view(seen: RequestSeen) -> IntroductionRequestView:
    r = seen.request
    return IntroductionRequestView(
        id=r.id, status=seen.status, requester=PartyView(id=r.requester_id, name=r.requester_name),
        introducer=PartyView(id=r.introducer_id, name=r.introducer_name, email=r.introducer_email),
        target=TargetView(entity_type=r.target_type, id=r.target_id, name=r.target_name), message=r.message,
        created_at=r.created_at, expires_at=r.expires_at,
        history=[RequestEventView(at=e.at, actor=e.actor, action=e.action) for e in r.history],
        draft=draft_view(seen.draft))


def get_introduced_view(result: GetIntroduced) -> GetIntroducedView:
    return GetIntroducedView(outcome=result.outcome, draft=draft_view(result.draft),
                             request=None if result.request is None else request_view(result.request))


def page_view(page: Page[RequestSeen]) -> IntroductionRequestPage:
    return IntroductionRequestPage(items=[request_view(s) for s in page.items], continuation_token=page.continuation)


def choice_view(choice: Choice) -> IntroducerChoiceView:
    return IntroducerChoiceView(user_id=choice.user_id, choice=choice.own, default=choice.default,
                                effective=choice.effective)
