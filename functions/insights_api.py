"""The read API of sellers' apps: KPIs and health of a record, the records that need attention, who knows whom
and the introduction draft (SPEC 4, 2.8). A feature that is off answers 409 with a problem naming it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._http import Call, json_response, lazy_module, respond, route
from shared.api import endpoints as e

if TYPE_CHECKING:
    from shared.api import insights_models as m
else:
    m = lazy_module("shared.api.insights_models")

bp = func.Blueprint()


@route(bp, e.RECORD_INSIGHTS)
def get_record_insights(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        view = call.container.insights().record(call.tenant, call.path_choice("entityType"), call.path("id"))
        return json_response(m.insight_view(view))

    return respond(req, e.RECORD_INSIGHTS, work)


@route(bp, e.LIST_INSIGHTS)
def list_insights(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        entity_type, query = call.path_choice("entityType"), call.query()
        page = call.container.insights().list_records(
            call.tenant, entity_type, needs_attention=query.flag("needsAttention"),
            page_size=query.integer("pageSize"), continuation=query.text("continuationToken"))
        return json_response(m.page_view(page))

    return respond(req, e.LIST_INSIGHTS, work)


@route(bp, e.RELATIONSHIPS_AT_RISK)
def list_relationships_at_risk(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        query = call.query()
        page = call.container.insights().relationships_at_risk(
            call.tenant, page_size=query.integer("pageSize"), continuation=query.text("continuationToken"))
        return json_response(m.at_risk_page(page))

    return respond(req, e.RELATIONSHIPS_AT_RISK, work)


@route(bp, e.WHO_KNOWS_WHOM)
def get_who_knows_whom(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        found = call.container.insights().who_knows_whom(call.tenant, call.path_choice("entityType"),
                                                         call.path("id"))
        return json_response(m.introducers_view(found))

    return respond(req, e.WHO_KNOWS_WHOM, work)


@route(bp, e.WHO_KNOWS_WHOM_AT_DOMAIN)
def get_who_knows_whom_at_domain(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        domain = call.query().text("domain") or ""
        return json_response(m.introducers_view(call.container.insights().who_knows_whom_at(call.tenant, domain)))

    return respond(req, e.WHO_KNOWS_WHOM_AT_DOMAIN, work)


@route(bp, e.RECOMPUTE)
def recompute_insights(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        status = call.container.insights().request_recompute(call.tenant)
        return json_response(m.recompute_view(status), status=202, headers={"Location": e.RECOMPUTE_STATUS.path})

    return respond(req, e.RECOMPUTE, work)


@route(bp, e.RECOMPUTE_STATUS)
def get_recompute_status(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        return json_response(m.recompute_view(call.container.insights().recompute_status(call.tenant)))

    return respond(req, e.RECOMPUTE_STATUS, work)


@route(bp, e.EXPORT)
def export_data_subject(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        entity_type = call.path_choice("entityType")
        subject = call.container.insights().export(call.tenant, entity_type, call.path("id"))
        return json_response(m.export_view(entity_type, subject))

    return respond(req, e.EXPORT, work)
