"""Introducers who consent: each colleague's choice, "Get introduced" (a draft, or a request when the introducer
asks first), and the introducer's answers (shared.domain.introductions has the rules)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.clock import Clock
from shared.domain.introductions import (
    IntroducerChoice,
    IntroductionRequest,
    RequestStatus,
    effective_choice,
    new_request,
)
from shared.domain.records import InternalUser
from shared.domain.tenant_settings import TenantSettings
from shared.domain.vocabulary import EntityType
from shared.errors import ConcurrencyConflict, Conflict, NotFound, Unprocessable, ValidationFailed
from shared.services.insights import InsightsService
from shared.services.paging import Page
from shared.services.ports import IntroductionRepository, RecordRepository
from shared.services.tenant_settings import TenantSettingsService
from shared.tenancy import TenantId

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Draft:
    to: str
    subject: str
    body: str


@dataclass(frozen=True)
class Choice:
    user_id: str
    own: IntroducerChoice | None  # None: the tenant's default applies
    default: IntroducerChoice

    @property
    def effective(self) -> IntroducerChoice:
        return effective_choice(self.own, self.default)


@dataclass(frozen=True)
class RequestSeen:
    """A request as one of its two parties sees it now; the requester gets the draft once it is accepted."""

    request: IntroductionRequest
    status: RequestStatus
    draft: Draft | None


@dataclass(frozen=True)
class GetIntroduced:
    outcome: Literal["draft", "requested"]
    draft: Draft | None = None
    request: RequestSeen | None = None


def _request_id(now: datetime) -> str:
    """Newest first in key order: an inverted time, then randomness."""
    return f"{10**13 - int(now.timestamp() * 1000):013d}{uuid.uuid4().hex[:12]}"


class IntroductionsService:
    def __init__(self, settings: TenantSettingsService, insights: InsightsService, records: RecordRepository,
                 introductions: IntroductionRepository, clock: Clock) -> None:
        self._settings = settings
        self._insights = insights
        self._records = records
        self._introductions = introductions
        self._clock = clock

    # -- who the caller is among the tenant's colleagues ---------------------------------------------------

    def colleague(self, tenant_id: TenantId, object_id: str) -> InternalUser:
        """The CRM user a signed-in caller is: by Entra object id (or a user whose id is that object id)."""
        for user in self._records.iter_records(tenant_id, "users"):
            if object_id in (user.entra_object_id, user.id):
                return user  # type: ignore[no-any-return]
        raise NotFound("you are not a colleague known to relationship intelligence (no CRM user has your "
                       "Microsoft Entra object id)")

    # -- choices --------------------------------------------------------------------------------------------

    def my_choice(self, tenant_id: TenantId, object_id: str) -> Choice:
        user = self.colleague(tenant_id, object_id)
        stored = self._introductions.choices(tenant_id)
        return Choice(user.id, (stored.document if stored else {}).get(user.id), self._defaults(tenant_id))

    def set_my_choice(self, tenant_id: TenantId, object_id: str, choice: IntroducerChoice | None) -> Choice:
        """`None` goes back to the tenant's default. Takes effect on the next read of who knows whom."""
        user = self.colleague(tenant_id, object_id)
        for _ in range(MAX_ATTEMPTS):
            stored = self._introductions.choices(tenant_id)
            choices = dict(stored.document) if stored else {}
            if choice is None:
                choices.pop(user.id, None)
            else:
                choices[user.id] = choice
            try:
                self._introductions.save_choices(tenant_id, choices, stored.etag if stored else None)
            except ConcurrencyConflict:
                continue  # another colleague chose at the same moment: read again
            return Choice(user.id, choice, self._defaults(tenant_id))
        raise Conflict("introducer choices are being changed by others right now; try again",
                       headers={"Retry-After": "1"})

    def _defaults(self, tenant_id: TenantId) -> IntroducerChoice:
        return self._settings.current(tenant_id).settings.who_knows_whom.introducer_default

    # -- get introduced -------------------------------------------------------------------------------------

    def get_introduced(self, tenant_id: TenantId, entity_type: EntityType, record_id: str, introducer_id: str, *,
                       requester_id: str, requester_name: str | None, message: str = "") -> GetIntroduced:
        found, introducer, settings = self._insights.introducer(tenant_id, entity_type, record_id, introducer_id)
        colleague = self._records.get(tenant_id, "users", introducer_id)
        excluded = {g.lower() for g in settings.exchange.excluded_security_group_ids}
        if (colleague is None or not colleague.active or colleague.opted_out
                or excluded.intersection(g.lower() for g in colleague.group_ids)):
            # Listed by insights computed before they left, opted out or joined an excluded group: never asked.
            raise Unprocessable("that colleague can no longer be asked for an introduction",
                                errors=[{"field": "introducerId", "reason": "not an introducer any more"}])
        stored = self._introductions.choices(tenant_id)
        choice = effective_choice((stored.document if stored else {}).get(introducer_id),
                                  settings.who_knows_whom.introducer_default)
        name = requester_name or "a colleague"
        if choice == "always":
            return GetIntroduced("draft", draft=_draft(settings, introducer.name or introducer.email,
                                                       introducer.email, found.insight.name, name))
        now = self._clock.now()
        request = new_request(_request_id(now), requester_id=requester_id, requester_name=name,
                              introducer_id=introducer_id, introducer_name=introducer.name,
                              introducer_email=introducer.email, target_type=found.insight.entity_type,
                              target_id=found.insight.id, target_name=found.insight.name, message=message, now=now)
        self._introductions.create(tenant_id, request)
        return GetIntroduced("requested", request=RequestSeen(request, "pending", None))

    # -- requests -------------------------------------------------------------------------------------------

    def requests(self, tenant_id: TenantId, object_id: str, side: Literal["introducer", "requester"], *,
                 page_size: int, continuation: str | None) -> Page[RequestSeen]:
        """The requests to me (as an introducer) or from me, newest first."""
        try:
            if side == "introducer":
                found, token = self._introductions.page(
                    tenant_id, introducer_id=self.colleague(tenant_id, object_id).id, page_size=page_size,
                    continuation=continuation)
            else:
                found, token = self._introductions.page(tenant_id, requester_id=object_id, page_size=page_size,
                                                        continuation=continuation)
        except ValueError as exc:
            raise ValidationFailed("the continuation token is not one this API issued",
                                   errors=[{"field": "continuationToken", "reason": "malformed"}]) from exc
        settings = self._settings.current(tenant_id).settings
        return Page([self._seen(r, object_id, settings) for r in found], token)

    def request(self, tenant_id: TenantId, object_id: str, request_id: str) -> RequestSeen:
        stored = self._introductions.get(tenant_id, request_id)
        if stored is None or not self._party(tenant_id, stored.document, object_id):
            raise NotFound("no such introduction request of yours")
        return self._seen(stored.document, object_id, self._settings.current(tenant_id).settings)

    def decide(self, tenant_id: TenantId, object_id: str, request_id: str,
               decision: Literal["accepted", "declined"]) -> RequestSeen:
        user = self.colleague(tenant_id, object_id)
        for _ in range(MAX_ATTEMPTS):
            stored = self._introductions.get(tenant_id, request_id)
            if stored is None or not self._party(tenant_id, stored.document, object_id):
                raise NotFound("no such introduction request of yours")
            decided = stored.document.decide(decision, user.id, object_id, self._clock.now())
            try:
                self._introductions.replace(tenant_id, decided, stored.etag)
            except ConcurrencyConflict:
                continue  # answered twice at once: read again, and the second finds it decided
            return self._seen(decided, object_id, self._settings.current(tenant_id).settings)
        raise Conflict("this request is being answered right now; reload it", headers={"Retry-After": "1"})

    def _party(self, tenant_id: TenantId, request: IntroductionRequest, object_id: str) -> bool:
        if request.requester_id == object_id:
            return True
        try:
            return self.colleague(tenant_id, object_id).id == request.introducer_id
        except NotFound:
            return False

    def _seen(self, request: IntroductionRequest, object_id: str, settings: TenantSettings) -> RequestSeen:
        status = request.status(self._clock.now())
        draft = None
        if status == "accepted" and request.requester_id == object_id:
            draft = _draft(settings, request.introducer_name or request.introducer_email, request.introducer_email,
                           request.target_name, request.requester_name)
        return RequestSeen(request, status, draft)


def _draft(settings: TenantSettings, introducer: str, email: str, target: str, requester: str) -> Draft:
    subject, body = settings.who_knows_whom.introduction_email_template.render(
        introducer=introducer, target=target, requester=requester)
    return Draft(to=email, subject=subject, body=body)
