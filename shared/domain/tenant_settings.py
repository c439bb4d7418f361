"""A tenant's relationship-intelligence settings: the aggregate behind every admin action (SPEC 2).

Each admin action is a method that returns the next state (the model is immutable) or raises a problem
that says why the action is refused. Everything the Overview shows is derived from the state and "now".
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from shared.domain.crm_environment import InvalidEnvironmentUrl, validate_environment_url
from shared.domain.geography import Geography, geography_of, is_country_code
from shared.domain.introductions import IntroducerChoice
from shared.errors import Conflict, ValidationFailed

CONSENT_WINDOW = timedelta(days=14)


class Status(StrEnum):
    NOT_ENABLED = "notEnabled"
    ENABLED = "enabled"
    DISABLED = "disabled"


class ConsentStatus(StrEnum):
    NOT_REQUIRED = "notRequired"
    PENDING = "pending"
    GRANTED = "granted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class CommunicationFrequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    EVERY_TWO_WEEKS = "everyTwoWeeks"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"


class _State(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


Influence = Annotated[int, Field(ge=-50, le=50, description="percent, -50 to +50")]
GoodMin = Annotated[int, Field(ge=2, le=100, description="lowest score graded Good")]
FairMin = Annotated[int, Field(ge=1, le=99, description="lowest score graded Fair (below it: Poor)")]
TEMPLATE_PLACEHOLDERS = frozenset({"introducer", "target", "requester"})


def check_template_text(text: str) -> str:
    """An introduction template may use only our placeholders, and a lone brace must be doubled."""
    unknown = set(re.findall(r"\{([^{}]*)\}", text)) - TEMPLATE_PLACEHOLDERS
    if unknown:
        raise ValueError(f"unknown placeholders {sorted(unknown)}; use {{introducer}}, {{target}}, {{requester}}")
    try:
        text.format_map(dict.fromkeys(TEMPLATE_PLACEHOLDERS, ""))
    except (ValueError, IndexError) as exc:
        raise ValueError("a lone '{' or '}' must be doubled ('{{' or '}}')") from exc
    return text


TemplateSubject = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(check_template_text)]
TemplateBody = Annotated[str, Field(min_length=1, max_length=10_000), AfterValidator(check_template_text)]


class ActivityInfluence(_State):
    email: Influence = 0
    meeting: Influence = 0
    phone_call: Influence = 0
    task: Influence = 0


class Grading(_State):
    good_min: GoodMin = 60
    fair_min: FairMin = 40

    @model_validator(mode="after")
    def _ordered(self) -> Grading:
        if not self.good_min > self.fair_min > 0:
            raise ValueError("goodMin must be greater than fairMin, and fairMin greater than 0")
        return self


class RelationshipAnalytics(_State):
    enabled: bool = True
    health_display: bool = True
    activity_influence: ActivityInfluence = ActivityInfluence()
    communication_frequency: CommunicationFrequency = CommunicationFrequency.WEEKLY
    grading: Grading = Grading()


class EmailTemplate(_State):
    subject: TemplateSubject = "Introduction to {target}"
    body: TemplateBody = ("Hi {introducer},\n\nCould you introduce me to {target}? I think we have something "
                          "valuable to discuss, and a word from you would help.\n\nThanks,\n{requester}")

    def render(self, *, introducer: str, target: str, requester: str) -> tuple[str, str]:
        values = {"introducer": introducer, "target": target, "requester": requester}
        return self.subject.format_map(values), self.body.format_map(values)


class WhoKnowsWhom(_State):
    enabled: bool = True
    introduction_email_template: EmailTemplate = EmailTemplate()
    introducer_default: IntroducerChoice = "always"  # for colleagues who did not choose (shared.domain.introductions)


class Prerequisites(_State):
    sales_insights_premium: bool = False
    office365_data_location: str | None = None


class ConsentRecord(_State):
    """What is known of the Microsoft 365 admin's consent, independent of whether Exchange is on now."""

    status: ConsentStatus = ConsentStatus.NOT_REQUIRED
    granted_at: datetime | None = None
    granted_by: str | None = None
    scopes: tuple[str, ...] = ()
    declined_at: datetime | None = None
    declined_reason: str | None = None
    withdrawn_at: datetime | None = None


class Exchange(_State):
    integration_enabled: bool = False
    window_opened_at: datetime | None = None  # when Exchange integration was last turned on without consent
    security_role_ids: tuple[str, ...] = ()
    excluded_security_group_ids: tuple[str, ...] = ()
    consent: ConsentRecord = ConsentRecord()
    purge_requested_at: datetime | None = None  # Exchange-derived data must be gone within 24 h of this
    purged_through: datetime | None = None  # everything ingested up to this moment has been deleted


class CrmConnection(_State):
    """Where the tenant's CRM lives (SPEC 7): its Dataverse environment, in canonical form."""

    environment_url: str | None = None
    changed_at: datetime | None = None  # the CRM sync state of an earlier URL is reset from this moment


BannerKind = Literal["consentPending", "consentDeclined", "autoDisabled", "consentWithdrawn", "exchangeUnavailable"]


class Banner(_State):
    kind: BannerKind
    deadline: datetime | None
    days_left: int | None
    message: str


class TenantSettings(_State):
    tenant_id: str
    revision: int = 0  # +1 with every stored change; orders the audit trail
    status: Status = Status.NOT_ENABLED
    enabled_at: datetime | None = None
    enabled_by: str | None = None
    disabled_at: datetime | None = None
    prerequisites: Prerequisites = Prerequisites()
    relationship_analytics: RelationshipAnalytics = RelationshipAnalytics()
    who_knows_whom: WhoKnowsWhom = WhoKnowsWhom()
    exchange: Exchange = Exchange()
    auto_disabled_at: datetime | None = None
    crm: CrmConnection = CrmConnection()

    # -- derived facts --------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self.status is Status.ENABLED

    @property
    def geography(self) -> Geography | None:
        location = self.prerequisites.office365_data_location
        return geography_of(location) if location else None

    @property
    def exchange_eligible(self) -> bool:
        return self.geography is not None

    @property
    def consent_required(self) -> bool:
        return self.enabled and self.exchange_eligible and self.exchange.integration_enabled

    @property
    def consent_granted(self) -> bool:
        return self.exchange.consent.status is ConsentStatus.GRANTED

    @property
    def exchange_data_usable(self) -> bool:
        """Gates 1 to 4 of SPEC 3 (the per-mailbox gates 5 and 6 are checked with the owner)."""
        return self.consent_required and self.consent_granted

    @property
    def who_knows_whom_mode(self) -> Literal["enhanced", "basic"]:
        return "enhanced" if self.exchange_data_usable else "basic"

    @property
    def consent_deadline(self) -> datetime | None:
        """Set while a consent window runs: Exchange on, consent not granted."""
        if not self.consent_required or self.consent_granted or self.exchange.window_opened_at is None:
            return None
        return self.exchange.window_opened_at + CONSENT_WINDOW

    def consent_status(self) -> ConsentStatus:
        stored = self.exchange.consent.status
        if not self.enabled or not self.exchange_eligible:
            return ConsentStatus.NOT_REQUIRED
        if stored in (ConsentStatus.GRANTED, ConsentStatus.EXPIRED, ConsentStatus.WITHDRAWN):
            return stored  # facts worth showing even while Exchange integration is off
        if not self.exchange.integration_enabled:
            return ConsentStatus.NOT_REQUIRED
        return stored

    def banner(self, now: datetime) -> Banner | None:
        if not self.enabled:
            return None
        if not self.exchange_eligible:
            return Banner(kind="exchangeUnavailable", deadline=None, days_left=None, message=(
                "Your Office 365 data location is outside the supported geographies: relationship intelligence "
                "runs on CRM data only, and Exchange data cannot be used."))
        status = self.consent_status()
        if self.auto_disabled_at is not None:
            recovery = ("Consent is now in place: turn Exchange integration and who knows whom back on."
                        if status is ConsentStatus.GRANTED else
                        "Turn Exchange integration back on to start a new 14-day consent window.")
            return Banner(kind="autoDisabled", deadline=None, days_left=None, message=(
                f"Microsoft 365 consent did not arrive within 14 days, so who knows whom and Exchange integration "
                f"were turned off automatically on {self.auto_disabled_at:%Y-%m-%d %H:%M} UTC. Relationship "
                f"analytics keeps running on CRM data. {recovery}"))
        if status is ConsentStatus.WITHDRAWN:
            return Banner(kind="consentWithdrawn", deadline=None, days_left=None, message=(
                "Microsoft 365 consent was withdrawn: Exchange data is no longer used and is being deleted. Ask "
                "your Microsoft 365 admin to consent again, then turn Exchange integration back on."))
        deadline = self.consent_deadline
        if deadline is None:
            return None
        days = days_left(deadline, now)
        if status is ConsentStatus.DECLINED:
            return Banner(kind="consentDeclined", deadline=deadline, days_left=days, message=(
                f"The Microsoft 365 admin declined consent. Ask again before {deadline:%Y-%m-%d %H:%M} UTC "
                f"({days} days left), or who knows whom and Exchange integration will be turned off."))
        return Banner(kind="consentPending", deadline=deadline, days_left=days, message=(
            f"Your Microsoft 365 admin must consent to the use of Exchange data before {deadline:%Y-%m-%d %H:%M} "
            f"UTC ({days} days left). Otherwise who knows whom and Exchange integration will be turned off."))

    # -- admin actions --------------------------------------------------------------------------------

    def set_prerequisites(self, premium: bool, location: str, now: datetime) -> TenantSettings:
        code = location.strip().upper()
        if len(code) != 2 or not is_country_code(code):
            raise ValidationFailed(
                "office365DataLocation must be an ISO 3166-1 alpha-2 country code",
                errors=[{"field": "office365DataLocation", "reason": f"'{location}' is not a country code"}])
        if not premium and self.enabled:
            raise Conflict("relationship intelligence is enabled: disable it before turning Premium Sales "
                           "Insights off")
        after = self.model_copy(update={"prerequisites": Prerequisites(sales_insights_premium=premium,
                                                                        office365_data_location=code)})
        if self.enabled and self.exchange_eligible and not after.exchange_eligible:
            after = after._exchange_off(now)  # the new location cannot use Exchange data
        return after

    def enable(self, actor: str, now: datetime, *, security_role_ids: tuple[str, ...] | None = None,
               exchange_integration: bool | None = None) -> TenantSettings:
        if not self.prerequisites.sales_insights_premium:
            raise Conflict("Premium Sales Insights features must be turned on before relationship intelligence "
                           "can be enabled", extensions={"missingPrerequisite": "salesInsightsPremium"})
        if self.prerequisites.office365_data_location is None:
            raise Conflict("set the Office 365 data location before enabling",
                           extensions={"missingPrerequisite": "office365DataLocation"})
        if exchange_integration and not self.exchange_eligible:
            raise Conflict(_UNAVAILABLE)
        if self.enabled:
            after = self
            if security_role_ids is not None:
                after = after.select_security_roles(security_role_ids)
            if exchange_integration is not None:
                after = after.set_exchange_integration(exchange_integration, now)
            return after
        exchange_on = self.exchange_eligible if exchange_integration is None else exchange_integration
        after = self.model_copy(update={
            "status": Status.ENABLED, "enabled_at": now, "enabled_by": actor, "disabled_at": None,
            "relationship_analytics": self.relationship_analytics.model_copy(update={"enabled": True}),
            "who_knows_whom": self.who_knows_whom.model_copy(update={"enabled": True}),
            "auto_disabled_at": None,
            "exchange": self.exchange.model_copy(update={"integration_enabled": False, "window_opened_at": None}),
        })
        if security_role_ids is not None:
            after = after.select_security_roles(security_role_ids)
        return after._exchange_on(now) if exchange_on else after

    def disable(self, now: datetime) -> TenantSettings:
        if not self.enabled:
            return self
        after = self._exchange_off(now) if self.exchange.integration_enabled else self
        return after.model_copy(update={"status": Status.DISABLED, "disabled_at": now})

    def set_crm_environment(self, url: str | None, now: datetime, *, allow_loopback: bool = False,
                            ) -> TenantSettings:
        """The Dataverse environment the CRM data comes from (None or empty: none, the CRM rounds stop). Only an
        https URL on Dataverse's organisation host pattern is accepted; loopback only where development allows it.
        A different URL starts the CRM sync over (its state belongs to the old environment)."""
        value = None
        if url is not None and url.strip():
            try:
                value = validate_environment_url(url, allow_loopback=allow_loopback)
            except InvalidEnvironmentUrl as exc:
                raise ValidationFailed("environmentUrl is not a Dataverse environment URL", errors=[
                    {"field": "environmentUrl", "reason": str(exc)}]) from exc
        if value == self.crm.environment_url:
            return self
        return self.model_copy(update={"crm": CrmConnection(environment_url=value, changed_at=now)})

    def select_security_roles(self, role_ids: tuple[str, ...]) -> TenantSettings:
        return self.model_copy(update={"exchange": self.exchange.model_copy(update={"security_role_ids": role_ids})})

    def set_excluded_security_groups(self, group_ids: tuple[str, ...]) -> TenantSettings:
        return self.model_copy(update={"exchange": self.exchange.model_copy(
            update={"excluded_security_group_ids": group_ids})})

    def set_exchange_integration(self, enabled: bool, now: datetime) -> TenantSettings:
        if not self.enabled:
            raise Conflict("enable relationship intelligence first")
        if enabled == self.exchange.integration_enabled:
            return self
        if enabled:
            if not self.exchange_eligible:
                raise Conflict(_UNAVAILABLE)
            return self._exchange_on(now)
        return self._exchange_off(now)

    def update_relationship_analytics(self, *, enabled: bool | None = None, health_display: bool | None = None,
                                      activity_influence: ActivityInfluence | None = None,
                                      communication_frequency: CommunicationFrequency | None = None,
                                      good_min: int | None = None, fair_min: int | None = None,
                                      ) -> TenantSettings:
        """The options given change; those left out (None) keep their value."""
        current = self.relationship_analytics
        try:
            grading = Grading(good_min=current.grading.good_min if good_min is None else good_min,
                              fair_min=current.grading.fair_min if fair_min is None else fair_min)
        except ValidationError as exc:
            raise ValidationFailed("the health grading bands are inconsistent", errors=[
                {"field": "grading", "reason": "goodMin must be greater than fairMin, and fairMin greater than 0"}],
            ) from exc
        options = RelationshipAnalytics(
            enabled=current.enabled if enabled is None else enabled,
            health_display=current.health_display if health_display is None else health_display,
            activity_influence=current.activity_influence if activity_influence is None else activity_influence,
            communication_frequency=communication_frequency or current.communication_frequency,
            grading=grading,
        )
        return self.model_copy(update={"relationship_analytics": options})

    def update_who_knows_whom(self, *, enabled: bool | None = None,
                              introduction_email_template: EmailTemplate | None = None,
                              introducer_default: IntroducerChoice | None = None) -> TenantSettings:
        """The options given change; those left out (None) keep their value."""
        current = self.who_knows_whom
        options = WhoKnowsWhom(
            enabled=current.enabled if enabled is None else enabled,
            introduction_email_template=introduction_email_template or current.introduction_email_template,
            introducer_default=introducer_default or current.introducer_default)
        if options.enabled and not self.enabled:
            raise Conflict("enable relationship intelligence first")
        return self.model_copy(update={"who_knows_whom": options})

    # -- consent and the 14-day rule ------------------------------------------------------------------

    def record_consent_granted(self, admin: str, scopes: tuple[str, ...], now: datetime) -> TenantSettings:
        consent = ConsentRecord(status=ConsentStatus.GRANTED, granted_at=now, granted_by=admin, scopes=scopes)
        # Consent after an auto-disable switches nothing back on (SPEC 2.5): only the record changes.
        return self.model_copy(update={"exchange": self.exchange.model_copy(update={
            "consent": consent, "window_opened_at": None})})

    def record_consent_declined(self, reason: str, now: datetime) -> TenantSettings:
        if self.consent_granted:
            return self  # a late failure of another attempt does not undo a proven grant
        consent = self.exchange.consent.model_copy(update={
            "status": ConsentStatus.DECLINED, "declined_at": now, "declined_reason": reason})
        return self.model_copy(update={"exchange": self.exchange.model_copy(update={"consent": consent})})

    def deadline_passed(self, now: datetime) -> bool:
        deadline = self.consent_deadline
        return deadline is not None and now >= deadline

    def auto_disable(self, now: datetime) -> TenantSettings:
        """The 14-day rule: who knows whom and Exchange integration off, analytics on CRM data."""
        if not self.deadline_passed(now):
            return self
        consent = self.exchange.consent.model_copy(update={"status": ConsentStatus.EXPIRED})
        return self.model_copy(update={
            "who_knows_whom": self.who_knows_whom.model_copy(update={"enabled": False}),
            "exchange": self.exchange.model_copy(update={
                "integration_enabled": False, "window_opened_at": None, "consent": consent,
                "purge_requested_at": now}),
            "auto_disabled_at": now,
        })

    def record_consent_withdrawn(self, now: datetime) -> TenantSettings:
        if not self.consent_granted:
            return self
        consent = self.exchange.consent.model_copy(update={"status": ConsentStatus.WITHDRAWN, "withdrawn_at": now})
        return self.model_copy(update={"exchange": self.exchange.model_copy(update={
            "integration_enabled": False, "window_opened_at": None, "consent": consent,
            "purge_requested_at": now})})

    def record_exchange_purged(self, through: datetime) -> TenantSettings:
        if self.exchange.purged_through is not None and self.exchange.purged_through >= through:
            return self
        return self.model_copy(update={"exchange": self.exchange.model_copy(update={"purged_through": through})})

    # -- transitions ----------------------------------------------------------------------------------

    def _exchange_on(self, now: datetime) -> TenantSettings:
        consent = self.exchange.consent
        if consent.status is not ConsentStatus.GRANTED:
            consent = consent.model_copy(update={"status": ConsentStatus.PENDING, "declined_at": None,
                                                 "declined_reason": None})
        window = None if consent.status is ConsentStatus.GRANTED else now
        return self.model_copy(update={
            "exchange": self.exchange.model_copy(update={"integration_enabled": True, "window_opened_at": window,
                                                         "consent": consent}),
            "auto_disabled_at": None,
        })

    def _exchange_off(self, now: datetime) -> TenantSettings:
        consent = self.exchange.consent
        if consent.status is not ConsentStatus.GRANTED:
            consent = consent.model_copy(update={"status": ConsentStatus.NOT_REQUIRED})
        return self.model_copy(update={"exchange": self.exchange.model_copy(update={
            "integration_enabled": False, "window_opened_at": None, "consent": consent,
            "purge_requested_at": now})})


_UNAVAILABLE = ("Exchange data cannot be used: the Office 365 data location is outside the supported global "
                "geographies (EMEA, Asia-Pacific, Americas)")


def days_left(deadline: datetime, now: datetime) -> int:
    """Whole days left, rounded up (13 days and 1 hour is 14 days left), never negative."""
    seconds = (deadline - now).total_seconds()
    return max(0, math.ceil(seconds / 86400))
