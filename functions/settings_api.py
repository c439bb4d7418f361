"""The admin's settings API (SPEC 6): Overview, prerequisites, enable/disable, roles, Exchange toggle,
excluded groups, feature options and the audit trail."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._http import Call, json_response, lazy_module, respond, route
from shared.api import endpoints as e

if TYPE_CHECKING:
    from shared.api import settings_models as m
    from shared.services.tenant_settings import Outcome
else:
    m = lazy_module("shared.api.settings_models")

bp = func.Blueprint()


def _overview(call: Call, outcome: Outcome) -> func.HttpResponse:
    headers = {"ETag": outcome.etag} if outcome.etag else None
    sources = call.container.data_sources().status(call.tenant)
    return json_response(m.overview_of(outcome, call.container.clock.now(), sources), headers=headers)


@route(bp, e.OVERVIEW)
def get_overview(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        current = call.container.tenant_settings().current(call.tenant)
        sources = call.container.data_sources().status(call.tenant)
        overview = m.overview(current.settings, call.container.clock.now(), current.etag, sources=sources)
        return json_response(overview, headers={"ETag": current.etag} if current.etag else None)

    return respond(req, e.OVERVIEW, work)


@route(bp, e.PREREQUISITES)
def put_prerequisites(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body: m.PrerequisitesRequest = call.body()
        return _overview(call, call.container.tenant_settings().set_prerequisites(
            call.tenant, call.actor, body.sales_insights_premium, body.office365_data_location,
            if_match=call.if_match))

    return respond(req, e.PREREQUISITES, work)


@route(bp, e.ENABLE)
def enable(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body: m.EnableRequest = call.body(optional=True) or m.EnableRequest()
        return _overview(call, call.container.tenant_settings().enable(
            call.tenant, call.actor, security_role_ids=body.security_role_ids,
            exchange_integration=body.exchange_integration, if_match=call.if_match))

    return respond(req, e.ENABLE, work)


@route(bp, e.DISABLE)
def disable(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        return _overview(call, call.container.tenant_settings().disable(call.tenant, call.actor,
                                                                        if_match=call.if_match))

    return respond(req, e.DISABLE, work)


@route(bp, e.ROLE_CATALOGUE)
def get_security_roles(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        return json_response(m.roles_view(call.container.tenant_settings().role_catalogue(call.tenant)))

    return respond(req, e.ROLE_CATALOGUE, work)


@route(bp, e.SECURITY_ROLES)
def put_security_roles(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body: m.SecurityRolesRequest = call.body()
        return _overview(call, call.container.tenant_settings().select_security_roles(
            call.tenant, call.actor, body.security_role_ids, if_match=call.if_match))

    return respond(req, e.SECURITY_ROLES, work)


@route(bp, e.EXCHANGE)
def put_exchange_integration(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body: m.ExchangeIntegrationRequest = call.body()
        return _overview(call, call.container.tenant_settings().set_exchange_integration(
            call.tenant, call.actor, body.enabled, if_match=call.if_match))

    return respond(req, e.EXCHANGE, work)


@route(bp, e.EXCLUDED_GROUPS)
def put_excluded_security_groups(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body: m.ExcludedGroupsRequest = call.body()
        return _overview(call, call.container.tenant_settings().set_excluded_security_groups(
            call.tenant, call.actor, body.group_ids, if_match=call.if_match))

    return respond(req, e.EXCLUDED_GROUPS, work)


@route(bp, e.CRM_ENVIRONMENT)
def put_crm_environment(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body: m.CrmEnvironmentRequest = call.body()
        return _overview(call, call.container.tenant_settings().set_crm_environment(
            call.tenant, call.actor, body.environment_url, if_match=call.if_match))

    return respond(req, e.CRM_ENVIRONMENT, work)


@route(bp, e.ANALYTICS)
def put_relationship_analytics(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body: m.RelationshipAnalyticsRequest = call.body()
        return _overview(call, call.container.tenant_settings().update_relationship_analytics(
            call.tenant, call.actor, body.changes(), if_match=call.if_match))

    return respond(req, e.ANALYTICS, work)


@route(bp, e.WHO_KNOWS_WHOM_OPTIONS)
def put_who_knows_whom(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        body: m.WhoKnowsWhomRequest = call.body()
        return _overview(call, call.container.tenant_settings().update_who_knows_whom(
            call.tenant, call.actor, enabled=body.enabled, template=body.template(),
            introducer_default=body.introducer_default, if_match=call.if_match))

    return respond(req, e.WHO_KNOWS_WHOM_OPTIONS, work)


@route(bp, e.AUDIT)
def get_audit(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        query = call.query()
        page = call.container.tenant_settings().audit(call.tenant, query.integer("pageSize"),
                                                      query.text("continuationToken"))
        return json_response(m.audit_view(page.events, page.continuation))

    return respond(req, e.AUDIT, work)
