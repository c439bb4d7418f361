"""Requests and responses of the admin settings API (SPEC 6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator

from shared.api.models import ApiModel
from shared.domain.audit import AuditEvent
from shared.domain.introductions import IntroducerChoice
from shared.domain.source_state import RoundError
from shared.domain.tenant_settings import (
    ActivityInfluence,
    CommunicationFrequency,
    ConsentStatus,
    EmailTemplate,
    FairMin,
    GoodMin,
    Grading,
    Influence,
    Status,
    TemplateBody,
    TemplateSubject,
    TenantSettings,
)
from shared.services.data_sources import DataSources
from shared.services.tenant_settings import AnalyticsChanges, Outcome, RoleCatalogue
from shared.tenancy import GUID_PATTERN_ANY_CASE

RoleId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
GroupId = Annotated[str, Field(pattern=f"^{GUID_PATTERN_ANY_CASE}$")]


def _no_duplicates(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value.lower() in seen:
            raise ValueError(f"'{value}' is listed twice")
        seen.add(value.lower())
    return values


# -- requests -------------------------------------------------------------------------------------------


class PrerequisitesRequest(ApiModel):
    sales_insights_premium: bool
    office365_data_location: str = Field(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$",
                                         description="ISO 3166-1 alpha-2 code of the Office 365 data location")


class EnableRequest(ApiModel):
    security_role_ids: list[RoleId] | None = Field(default=None, min_length=1, max_length=100)
    exchange_integration: bool | None = None

    _unique = field_validator("security_role_ids")(lambda v: None if v is None else _no_duplicates(v))


class SecurityRolesRequest(ApiModel):
    security_role_ids: list[RoleId] = Field(min_length=1, max_length=100, description=(
        "Roles whose members' Exchange data is used. To use nobody's, turn Exchange integration off."))

    _unique = field_validator("security_role_ids")(_no_duplicates)


class ExchangeIntegrationRequest(ApiModel):
    enabled: bool


class ExcludedGroupsRequest(ApiModel):
    """Group ids are deduplicated (case-insensitively); at most 500 distinct ones."""

    group_ids: list[GroupId] = Field(max_length=1000)

    @field_validator("group_ids")
    @classmethod
    def _at_most_500_distinct(cls, values: list[str]) -> list[str]:
        distinct = list(dict.fromkeys(v.lower() for v in values))
        if len(distinct) > 500:
            raise ValueError("at most 500 distinct security groups")
        return distinct


class CrmEnvironmentRequest(ApiModel):
    environment_url: str | None = Field(max_length=300, description=(
        "https://{organisation}.crm{N}.dynamics.com, the Dataverse environment of the tenant's CRM; null: none"))


class RelationshipAnalyticsRequest(ApiModel):
    """Fields left out keep their current value."""

    enabled: bool | None = None
    health_display: bool | None = None
    activity_influence: ActivityInfluenceBody | None = None
    communication_frequency: CommunicationFrequency | None = None
    grading: GradingBody | None = None

    def changes(self) -> AnalyticsChanges:
        influence = self.activity_influence
        return AnalyticsChanges(
            enabled=self.enabled, health_display=self.health_display,
            activity_influence=None if influence is None else ActivityInfluence(**influence.model_dump()),
            communication_frequency=self.communication_frequency,
            good_min=None if self.grading is None else self.grading.good_min,
            fair_min=None if self.grading is None else self.grading.fair_min)


class ActivityInfluenceBody(ApiModel):
    email: Influence = 0
    meeting: Influence = 0
    phone_call: Influence = 0
    task: Influence = 0


class GradingBody(ApiModel):
    good_min: GoodMin
    fair_min: FairMin


class EmailTemplateBody(ApiModel):
    subject: TemplateSubject
    body: TemplateBody


class WhoKnowsWhomRequest(ApiModel):
    """Fields left out keep their current value."""

    enabled: bool | None = None
    introduction_email_template: EmailTemplateBody | None = None
    introducer_default: IntroducerChoice | None = Field(default=None, description=(
        "how colleagues who did not choose appear: always (the draft at once), askFirst (a request they answer), "
        "never (not listed)"))

    def template(self) -> EmailTemplate | None:
        body = self.introduction_email_template
        return None if body is None else EmailTemplate(subject=body.subject, body=body.body)


RelationshipAnalyticsRequest.model_rebuild()

# -- responses ------------------------------------------------------------------------------------------


class PrerequisitesView(ApiModel):
    sales_insights_premium: bool
    office365_data_location: str | None
    geography: str | None
    exchange_data_eligible: bool


class RelationshipAnalyticsView(ApiModel):
    enabled: bool
    health_display: bool
    activity_influence: ActivityInfluence
    communication_frequency: CommunicationFrequency
    grading: Grading


class WhoKnowsWhomView(ApiModel):
    enabled: bool
    mode: Literal["enhanced", "basic"]
    introduction_email_template: EmailTemplate
    introducer_default: IntroducerChoice


class FeaturesView(ApiModel):
    relationship_analytics: RelationshipAnalyticsView
    who_knows_whom: WhoKnowsWhomView


class ConsentView(ApiModel):
    status: ConsentStatus
    deadline: datetime | None
    granted_at: datetime | None
    granted_by: str | None
    scopes: list[str]
    declined_reason: str | None = None
    withdrawn_at: datetime | None = None


class ExchangeView(ApiModel):
    integration_enabled: bool
    security_role_ids: list[str]
    excluded_security_group_ids: list[str]
    consent: ConsentView


class BannerView(ApiModel):
    kind: Literal["consentPending", "consentDeclined", "autoDisabled", "consentWithdrawn", "exchangeUnavailable"]
    deadline: datetime | None
    days_left: int | None
    message: str


class SourceErrorView(ApiModel):
    code: str
    message: str = Field(description="in words, for the admin")
    at: datetime


class CrmSourceView(ApiModel):
    environment_url: str | None
    round_running: bool
    last_success_at: datetime | None
    items_in_last_round: int | None = Field(description="records and activities that changed (or went)")
    last_error: SourceErrorView | None


class ExchangeSourceView(ApiModel):
    as_of: datetime | None = Field(description="when the mailboxes were last planned (every round interval)")
    mailboxes: int = Field(description="mailboxes whose data gates are open")
    mailboxes_synced: int = Field(description="of them, with at least one successful round")
    mailboxes_failing: int = Field(description="of them, whose latest round failed")
    last_success_at: datetime | None
    items_in_last_round: int = Field(description="items changed or removed in their latest rounds")
    last_error: SourceErrorView | None


class DataSourcesView(ApiModel):
    crm: CrmSourceView
    exchange: ExchangeSourceView


class Overview(ApiModel):
    tenant_id: str
    status: Status
    enabled_at: datetime | None
    disabled_at: datetime | None
    prerequisites: PrerequisitesView
    features: FeaturesView
    exchange: ExchangeView
    auto_disabled_at: datetime | None
    banner: BannerView | None
    crm_environment_url: str | None = Field(description="where the tenant's CRM lives (Dataverse)")
    data_sources: DataSourcesView | None = Field(default=None, description=(
        "per source: the last successful round, what it covered, the last error in words"))
    etag: str | None
    changed: bool | None = Field(default=None, description="on mutations: false when the request changed nothing")


class SecurityRoleView(ApiModel):
    id: str
    name: str


class SecurityRolesView(ApiModel):
    source: Literal["tenant", "standard"]
    roles: list[SecurityRoleView]


class AuditChangeView(ApiModel):
    field: str
    old: object = None
    new: object = None


class AuditEventView(ApiModel):
    id: str
    sequence: int
    at: datetime
    actor: str
    action: str
    changes: list[AuditChangeView]


class AuditPageView(ApiModel):
    events: list[AuditEventView]
    continuation_token: str | None


# -- mapping --------------------------------------------------------------------------------------------


def overview_of(outcome: Outcome, now: datetime, sources: DataSources | None = None) -> Overview:
    """The Overview a mutation answers with: the new settings, their ETag, and whether anything changed."""
    return overview(outcome.settings, now, outcome.etag, outcome.changed, sources)


def _error(error: RoundError | None) -> SourceErrorView | None:
    return None if error is None else SourceErrorView(code=error.code, message=error.message, at=error.at)


def sources_view(settings: TenantSettings, sources: DataSources) -> DataSourcesView:
    crm, exchange = sources.crm, sources.exchange
    current = crm if crm is not None and crm.environment_url == settings.crm.environment_url else None
    return DataSourcesView(
        crm=CrmSourceView(
            environment_url=settings.crm.environment_url,
            round_running=current is not None and current.round is not None,
            last_success_at=current.last_success_at if current else None,
            items_in_last_round=(current.last_round_items or 0) + (current.last_round_removed or 0)
            if current and current.last_round_items is not None else None,
            last_error=_error(current.last_error if current else None)),
        exchange=ExchangeSourceView(
            as_of=exchange.as_of if exchange else None, mailboxes=exchange.mailboxes if exchange else 0,
            mailboxes_synced=exchange.synced if exchange else 0, mailboxes_failing=exchange.failing if exchange else 0,
            last_success_at=exchange.last_success_at if exchange else None,
            items_in_last_round=exchange.items_in_last_rounds if exchange else 0,
            last_error=_error((exchange.plan_error or exchange.last_error) if exchange else None)))


def overview(settings: TenantSettings, now: datetime, etag: str | None, changed: bool | None = None,
             sources: DataSources | None = None) -> Overview:
    consent = settings.exchange.consent
    banner = settings.banner(now)
    return Overview(
        tenant_id=settings.tenant_id,
        status=settings.status,
        enabled_at=settings.enabled_at,
        disabled_at=settings.disabled_at,
        prerequisites=PrerequisitesView(
            sales_insights_premium=settings.prerequisites.sales_insights_premium,
            office365_data_location=settings.prerequisites.office365_data_location,
            geography=settings.geography.value if settings.geography else None,
            exchange_data_eligible=settings.exchange_eligible,
        ),
        features=FeaturesView(
            relationship_analytics=RelationshipAnalyticsView(
                enabled=settings.relationship_analytics.enabled and settings.enabled,
                health_display=settings.relationship_analytics.health_display,
                activity_influence=settings.relationship_analytics.activity_influence,
                communication_frequency=settings.relationship_analytics.communication_frequency,
                grading=settings.relationship_analytics.grading,
            ),
            who_knows_whom=WhoKnowsWhomView(
                enabled=settings.who_knows_whom.enabled and settings.enabled,
                mode=settings.who_knows_whom_mode,
                introduction_email_template=settings.who_knows_whom.introduction_email_template,
                introducer_default=settings.who_knows_whom.introducer_default,
            ),
        ),
        exchange=ExchangeView(
            integration_enabled=settings.exchange.integration_enabled and settings.enabled,
            security_role_ids=list(settings.exchange.security_role_ids),
            excluded_security_group_ids=list(settings.exchange.excluded_security_group_ids),
            consent=ConsentView(
                status=settings.consent_status(), deadline=settings.consent_deadline,
                granted_at=consent.granted_at, granted_by=consent.granted_by, scopes=list(consent.scopes),
                declined_reason=consent.declined_reason, withdrawn_at=consent.withdrawn_at,
            ),
        ),
        auto_disabled_at=settings.auto_disabled_at,
        banner=None if banner is None else BannerView(kind=banner.kind, deadline=banner.deadline,
                                                      days_left=banner.days_left, message=banner.message),
        crm_environment_url=settings.crm.environment_url,
        data_sources=None if sources is None else sources_view(settings, sources),
        etag=etag,
        changed=changed,
    )


def roles_view(catalogue: RoleCatalogue) -> SecurityRolesView:
    return SecurityRolesView(source=catalogue.source,
                             roles=[SecurityRoleView(id=r.id, name=r.name) for r in catalogue.roles])


def audit_view(events: list[AuditEvent], continuation: str | None) -> AuditPageView:
    return AuditPageView(
        events=[AuditEventView(id=e.id, sequence=e.sequence, at=e.at, actor=e.actor, action=e.action,
                               changes=[AuditChangeView(field=c.field, old=c.old, new=c.new) for c in e.changes])
                for e in events],
        continuation_token=continuation,
    )
