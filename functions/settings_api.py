"""The admin's settings API (SPEC 6): Overview, prerequisites, enable/disable, roles, Exchange toggle,
excluded groups, feature options and the audit trail. Rules live in shared.domain.tenant_settings."""

from __future__ import annotations

import azure.functions as func

from functions._http import Call, json_response, respond, route
from shared.api import settings_models as m
from shared.api.openapi import Endpoint, QueryParam, declare
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.domain.tenant_settings import (
    ActivityInfluence,
    EmailTemplate,
    Grading,
    RelationshipAnalytics,
    TenantSettings,
    WhoKnowsWhom,
)
from shared.errors import ValidationFailed
from shared.identity.permissions import Permission
from shared.services.settings import Rule

bp = func.Blueprint()

ADMIN = Permission.MANAGE_SETTINGS
BASE = "relationship-intelligence"


def _admin(name: str, method: str, route_: str, summary: str, **facts: object) -> Endpoint:
    return declare(Endpoint(function_name=name, method=method, route=route_, summary=summary, tag="settings",
                            auth="user", permission=ADMIN, **facts))  # type: ignore[arg-type]


OVERVIEW = _admin("get_overview", "GET", BASE, "The Overview: state, prerequisites, features, Exchange, consent, "
                  "banner.", response=m.Overview, etag=True)
PREREQUISITES = _admin("put_prerequisites", "PUT", f"{BASE}/prerequisites",
                       "Set the organisation profile: Premium Sales Insights and Office 365 data location.",
                       request=m.PrerequisitesRequest, response=m.Overview, etag=True, errors=(409, 412))
ENABLE = _admin("enable", "POST", f"{BASE}/enable", "Enable relationship intelligence (idempotent).",
                request=m.EnableRequest, response=m.Overview, etag=True, errors=(409, 412, 422),
                description="The body is optional. Both features start on; Exchange integration starts on "
                            "when the data location allows it, opening the 14-day consent window.")
DISABLE = _admin("disable", "POST", f"{BASE}/disable", "Disable relationship intelligence; settings are kept.",
                 response=m.Overview, etag=True, errors=(412,))
ROLE_CATALOGUE = _admin("get_security_roles", "GET", "security-roles", "The tenant's security-role catalogue.",
                        response=m.SecurityRolesView)
SECURITY_ROLES = _admin("put_security_roles", "PUT", f"{BASE}/security-roles",
                        "Select the security roles whose members' Exchange data is used.",
                        request=m.SecurityRolesRequest, response=m.Overview, etag=True, errors=(412, 422))
EXCHANGE = _admin("put_exchange_integration", "PUT", f"{BASE}/exchange-integration",
                  "Turn Exchange integration on (new consent window if consent is missing) or off.",
                  request=m.ExchangeIntegrationRequest, response=m.Overview, etag=True, errors=(409, 412))
EXCLUDED_GROUPS = _admin("put_excluded_security_groups", "PUT", f"{BASE}/excluded-security-groups",
                         "Security groups whose members never contribute Exchange data.",
                         request=m.ExcludedGroupsRequest, response=m.Overview, etag=True, errors=(412,))
ANALYTICS = _admin("put_relationship_analytics", "PUT", f"{BASE}/features/relationship-analytics",
                   "Relationship analytics and health options; fields left out keep their value.",
                   request=m.RelationshipAnalyticsRequest, response=m.Overview, etag=True, errors=(409, 412))
WHO_KNOWS_WHOM = _admin("put_who_knows_whom", "PUT", f"{BASE}/features/who-knows-whom",
                        "Who knows whom: on/off and the introduction email template.",
                        request=m.WhoKnowsWhomRequest, response=m.Overview, etag=True, errors=(409, 412))
AUDIT = _admin("get_audit", "GET", f"{BASE}/audit", "Audit events, newest first, paged.",
               response=m.AuditPageView, errors=(400,), query=(
                   QueryParam("pageSize", "events per page, 1 to 100 (default 20)", "integer", minimum=1, maximum=100),
                   QueryParam("continuationToken", "from the previous page", max_length=2048)))


def _respond_overview(call: Call, settings: TenantSettings, etag: str | None, changed: bool | None,
                      ) -> func.HttpResponse:
    body = m.overview(settings, call.services.clock.now(), etag, changed)
    return json_response(body, headers={"ETag": etag} if etag else None)


def _mutate(call: Call, action: str, rule: Rule) -> func.HttpResponse:
    caller = call.caller
    outcome = call.services.settings_service().change(
        caller.tenant_id, caller.object_id, action, rule, if_match=call.req.headers.get("If-Match"))
    return _respond_overview(call, outcome.settings, outcome.etag, outcome.changed)


@route(bp, OVERVIEW)
def get_overview(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        current = call.services.settings_service().current(call.caller.tenant_id)
        return _respond_overview(call, current.settings, current.etag, None)

    return respond(req, OVERVIEW, work)


@route(bp, PREREQUISITES)
def put_prerequisites(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body = call.body(m.PrerequisitesRequest)
        return _mutate(call, "setPrerequisites", lambda s, now: s.set_prerequisites(
            body.sales_insights_premium, body.office365_data_location, now))

    return respond(req, PREREQUISITES, work)


@route(bp, ENABLE)
def enable(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body = call.body(m.EnableRequest) if req.get_body() else m.EnableRequest()
        service = call.services.settings_service()
        roles = (None if body.security_role_ids is None
                 else service.known_role_ids(call.caller.tenant_id, body.security_role_ids))
        actor = call.caller.object_id
        return _mutate(call, "enable", lambda s, now: s.enable(
            actor, now, security_role_ids=roles, exchange_integration=body.exchange_integration))

    return respond(req, ENABLE, work)


@route(bp, DISABLE)
def disable(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, DISABLE, lambda call: _mutate(call, "disable", lambda s, now: s.disable(now)))


@route(bp, ROLE_CATALOGUE)
def get_security_roles(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        synced = call.services.settings_service().synced_role_catalogue(call.caller.tenant_id)
        return json_response(m.roles_view(list(synced or STANDARD_SALES_ROLES), synced is not None))

    return respond(req, ROLE_CATALOGUE, work)


@route(bp, SECURITY_ROLES)
def put_security_roles(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body = call.body(m.SecurityRolesRequest)
        roles = call.services.settings_service().known_role_ids(call.caller.tenant_id, body.security_role_ids)
        return _mutate(call, "selectSecurityRoles", lambda s, now: s.select_security_roles(roles))

    return respond(req, SECURITY_ROLES, work)


@route(bp, EXCHANGE)
def put_exchange_integration(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body = call.body(m.ExchangeIntegrationRequest)
        return _mutate(call, "setExchangeIntegration",
                       lambda s, now: s.set_exchange_integration(body.enabled, now))

    return respond(req, EXCHANGE, work)


@route(bp, EXCLUDED_GROUPS)
def put_excluded_security_groups(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body = call.body(m.ExcludedGroupsRequest)
        groups = tuple(body.group_ids)
        return _mutate(call, "setExcludedSecurityGroups", lambda s, now: s.set_excluded_security_groups(groups))

    return respond(req, EXCLUDED_GROUPS, work)


@route(bp, ANALYTICS)
def put_relationship_analytics(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body = call.body(m.RelationshipAnalyticsRequest)

        def rule(s: TenantSettings, _now: object) -> TenantSettings:
            current = s.relationship_analytics
            try:
                grading = (current.grading if body.grading is None
                           else Grading(good_min=body.grading.good_min, fair_min=body.grading.fair_min))
            except ValueError as exc:
                raise ValidationFailed("the health grading bands are inconsistent", errors=[
                    {"field": "grading", "reason": "goodMin must be greater than fairMin"}]) from exc
            options = RelationshipAnalytics(
                enabled=current.enabled if body.enabled is None else body.enabled,
                health_display=current.health_display if body.health_display is None else body.health_display,
                activity_influence=(current.activity_influence if body.activity_influence is None
                                    else ActivityInfluence(**body.activity_influence.model_dump())),
                communication_frequency=body.communication_frequency or current.communication_frequency,
                grading=grading,
            )
            return s.set_relationship_analytics(options)

        return _mutate(call, "setRelationshipAnalytics", rule)

    return respond(req, ANALYTICS, work)


@route(bp, WHO_KNOWS_WHOM)
def put_who_knows_whom(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body = call.body(m.WhoKnowsWhomRequest)

        def rule(s: TenantSettings, _now: object) -> TenantSettings:
            current = s.who_knows_whom
            template = (current.introduction_email_template if body.introduction_email_template is None
                        else EmailTemplate(**body.introduction_email_template.model_dump()))
            return s.set_who_knows_whom(WhoKnowsWhom(
                enabled=current.enabled if body.enabled is None else body.enabled,
                introduction_email_template=template))

        return _mutate(call, "setWhoKnowsWhom", rule)

    return respond(req, WHO_KNOWS_WHOM, work)


@route(bp, AUDIT)
def get_audit(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        raw_size = req.params.get("pageSize", "20")
        if not raw_size.isdigit() or not 1 <= int(raw_size) <= 100:
            raise ValidationFailed("pageSize must be a whole number from 1 to 100",
                                   errors=[{"field": "pageSize", "reason": "expected 1 to 100"}])
        token = req.params.get("continuationToken") or None
        try:
            page = call.services.settings_service().audit(call.caller.tenant_id, int(raw_size), token)
        except ValueError as exc:
            raise ValidationFailed("the continuation token is not one this API issued",
                                   errors=[{"field": "continuationToken", "reason": "malformed"}]) from exc
        return json_response(m.audit_view(page.events, page.continuation))

    return respond(req, AUDIT, work)
