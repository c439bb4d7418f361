"""The read API of sellers' apps: KPIs and health of a record, the records that need attention, who knows whom
and the introduction draft (SPEC 4, 2.8). A feature that is off answers 409 with a problem naming it."""

from __future__ import annotations

import base64
import binascii
import re

import azure.functions as func

from functions._http import Call, json_response, respond, route
from shared.api import insights_models as m
from shared.api.openapi import Endpoint, QueryParam, declare
from shared.domain.insights.directory import ENTITY_TYPES, EntityType
from shared.domain.insights.snapshot import RecordInsight
from shared.domain.insights.who_knows_whom import introduction_email
from shared.domain.tenant_settings import TenantSettings
from shared.errors import NotFound, Unprocessable, ValidationFailed
from shared.identity.permissions import Permission

bp = func.Blueprint()

_TYPES = (("entityType", ENTITY_TYPES),)
_PEOPLE = (("entityType", ("lead", "contact")),)

RECORD = declare(Endpoint(
    function_name="get_record_insights", method="GET", route="insights/{entityType}/{id}", tag="insights",
    auth="user", permission=Permission.READ_INSIGHTS, response=m.InsightView, errors=(404, 409), path_values=_TYPES,
    summary="Relationship KPIs and health of one account, contact, lead or opportunity."))
LIST = declare(Endpoint(
    function_name="list_insights", method="GET", route="insights/{entityType}", tag="insights", auth="user",
    permission=Permission.READ_INSIGHTS, response=m.InsightPage, errors=(400, 404, 409), path_values=_TYPES,
    summary="Records of a type with their health; with needsAttention=true only Poor or Declining, worst first.",
    query=(QueryParam("needsAttention", "only records whose grade is Poor or trend Declining", "boolean"),
           QueryParam("pageSize", "1 to 100 (default 50)", "integer", minimum=1, maximum=100),
           QueryParam("continuationToken", "from the previous page", max_length=64))))
WHO = declare(Endpoint(
    function_name="get_who_knows_whom", method="GET", route="who-knows-whom/{entityType}/{id}",
    tag="insights", auth="user", permission=Permission.READ_WHO_KNOWS_WHOM, response=m.IntroducersView,
    errors=(404, 409), path_values=_PEOPLE,
    summary="Up to five colleagues best placed to introduce you to a lead or contact."))
WHO_AT_DOMAIN = declare(Endpoint(
    function_name="get_who_knows_whom_at_domain", method="GET", route="who-knows-whom", tag="insights",
    auth="user", permission=Permission.READ_WHO_KNOWS_WHOM, response=m.IntroducersView, errors=(400, 404, 409),
    query=(QueryParam("domain", "an email domain of the company, e.g. fabrikam.com", required=True,
                      max_length=253),),
    summary="Up to five colleagues best placed to introduce you to a company (by its email domain)."))
INTRODUCE = declare(Endpoint(
    function_name="draft_introduction", method="POST", route="who-knows-whom/{entityType}/{id}/introductions",
    tag="insights", auth="user", permission=Permission.READ_WHO_KNOWS_WHOM, request=m.IntroductionRequest,
    response=m.IntroductionDraft, errors=(404, 409, 422), path_values=_PEOPLE,
    summary="A draft email asking an introducer for an introduction, from the tenant's template."))


RECOMPUTE = declare(Endpoint(
    function_name="recompute_insights", method="POST", route="relationship-intelligence/insights/recompute",
    tag="insights", auth="user", permission=Permission.MANAGE_SETTINGS, response=m.RecomputeView,
    summary="Recompute every insight of the tenant now (the timer does it after data or settings change)."))


EXPORT = declare(Endpoint(
    function_name="export_data_subject", method="GET", route="data-subjects/{entityType}/{id}", tag="privacy",
    auth="user", permission=Permission.MANAGE_SETTINGS, response=m.DataSubjectExport, errors=(404,),
    path_values=(("entityType", ("contact", "lead", "user")),),
    summary="Everything stored about one person: record, activity metadata, computed insights (SPEC 4.4)."))


def _entity_type(req: func.HttpRequest, allowed: tuple[EntityType, ...] = ENTITY_TYPES) -> EntityType:
    value = str(req.route_params.get("entityType", ""))
    for entity_type in allowed:
        if value == entity_type:
            return entity_type
    raise NotFound(f"unknown entity type '{value}'; use one of {', '.join(allowed)}")


def _summary(insight: RecordInsight, settings: TenantSettings) -> m.InsightSummary:
    health = insight.variant(settings)[0].health
    hidden = not settings.relationship_analytics.health_display
    return m.InsightSummary(entity_type=insight.entity_type, id=insight.id, name=insight.name,
                            score=None if hidden else health.score, grade=None if hidden else health.grade,
                            trend="hidden" if hidden else health.trend, state=health.state)


def _introducers_view(insight: RecordInsight, settings: TenantSettings) -> m.IntroducersView:
    return m.IntroducersView(entity_type=insight.entity_type, id=insight.id, name=insight.name,
                             mode=settings.who_knows_whom_mode, computed_at=insight.computed_at,
                             introducers=insight.introducers(settings))


@route(bp, RECORD)
def get_record_insights(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        insight, settings = call.services.insights_service().record(call.caller.tenant_id, _entity_type(req),
                                                                    req.route_params["id"])
        variant, completeness = insight.variant(settings)
        hidden = not settings.relationship_analytics.health_display
        return json_response(m.InsightView(
            entity_type=insight.entity_type, id=insight.id, name=insight.name, computed_at=insight.computed_at,
            completeness=completeness, sources=variant.kpis.sources, kpis=variant.kpis,
            health=None if hidden else variant.health, health_hidden=hidden))

    return respond(req, RECORD, work)


@route(bp, LIST)
def list_insights(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        entity_type = _entity_type(req)
        flag = req.params.get("needsAttention", "false").lower()
        size = req.params.get("pageSize", "50")
        if flag not in ("true", "false") or not size.isdigit() or not 1 <= int(size) <= 100:
            raise ValidationFailed("needsAttention is true or false; pageSize a whole number from 1 to 100",
                                   errors=[{"field": "query", "reason": "invalid value"}])
        offset = _offset(req.params.get("continuationToken"))
        service = call.services.insights_service()
        tenant = call.caller.tenant_id
        if flag == "true":
            items, settings = service.needing_attention(tenant, entity_type)
        else:
            items, settings = service.all_of_type(tenant, entity_type)
        page = items[offset:offset + int(size)]
        more = offset + int(size) < len(items)
        return json_response(m.InsightPage(items=[_summary(i, settings) for i in page],
                                           continuation_token=_token(offset + int(size)) if more else None))

    return respond(req, LIST, work)


@route(bp, WHO)
def get_who_knows_whom(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        insight, settings = call.services.insights_service().who_knows_whom(
            call.caller.tenant_id, _entity_type(req, ("lead", "contact")), req.route_params["id"])
        return json_response(_introducers_view(insight, settings))

    return respond(req, WHO, work)


@route(bp, WHO_AT_DOMAIN)
def get_who_knows_whom_at_domain(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        domain = req.params.get("domain", "")
        if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", domain) or len(domain) > 253:
            raise ValidationFailed("domain must be an email domain such as fabrikam.com",
                                   errors=[{"field": "domain", "reason": "not a domain"}])
        insight, settings = call.services.insights_service().who_knows_whom_at(call.caller.tenant_id, domain)
        return json_response(_introducers_view(insight, settings))

    return respond(req, WHO_AT_DOMAIN, work)


@route(bp, INTRODUCE)
def draft_introduction(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body = call.body(m.IntroductionRequest)
        insight, settings = call.services.insights_service().who_knows_whom(
            call.caller.tenant_id, _entity_type(req, ("lead", "contact")), req.route_params["id"])
        introducer = next((i for i in insight.introducers(settings) if i.user_id == body.introducer_id), None)
        if introducer is None:
            raise Unprocessable("that colleague is not among the introducers of this person",
                                errors=[{"field": "introducerId", "reason": "not an introducer"}])
        subject, text = introduction_email(
            settings.who_knows_whom.introduction_email_template, introducer=introducer.name or introducer.email,
            target=insight.name, requester=call.caller.display_name or "a colleague")
        return json_response(m.IntroductionDraft(to=introducer.email, subject=subject, body=text))

    return respond(req, INTRODUCE, work)


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        value = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not value.isdigit():
        raise ValidationFailed("the continuation token is not one this API issued",
                               errors=[{"field": "continuationToken", "reason": "malformed"}])
    return int(value)


@route(bp, RECOMPUTE)
def recompute_insights(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        report = call.services.insights_service().recompute(call.caller.tenant_id)
        return json_response(m.RecomputeView(records=report.records, activities=report.activities,
                                             seconds=round(report.seconds, 3)))

    return respond(req, RECOMPUTE, work)


@route(bp, EXPORT)
def export_data_subject(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        entity_type = str(req.route_params.get("entityType", ""))
        if entity_type not in ("contact", "lead", "user"):
            raise NotFound(f"unknown entity type '{entity_type}'; use contact, lead or user")
        record, activities, insight = call.services.insights_service().export(
            call.caller.tenant_id, entity_type, req.route_params["id"])
        return json_response(m.DataSubjectExport(
            entity_type=entity_type, id=record.id,  # type: ignore[arg-type]
            record=record.model_dump(mode="json", by_alias=True),
            activities=[a.model_dump(mode="json", by_alias=True) for a in activities],
            insights=None if insight is None else insight.model_dump(mode="json", by_alias=True)))

    return respond(req, EXPORT, work)
