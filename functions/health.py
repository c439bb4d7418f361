"""GET /api/health: is the service able to serve (storage reachable)?"""

from __future__ import annotations

import azure.functions as func

from functions._http import Call, json_response, respond, route
from shared.api.models import HealthCheck, HealthReport
from shared.api.openapi import Endpoint, declare
from shared.errors import ServiceUnavailable

bp = func.Blueprint()

HEALTH = declare(Endpoint(
    function_name="health", method="GET", route="health", tag="service", auth="anonymous",
    summary="Liveness and readiness: 200 when table storage answers, 503 otherwise.",
    response=HealthReport, errors=(503,),
))


@route(bp, HEALTH)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, HEALTH, _health)


def _health(call: Call) -> func.HttpResponse:
    try:
        call.services.tables.ping()
    except ServiceUnavailable as error:
        report = HealthReport(status="unhealthy", checks={"storage": HealthCheck(status="failing",
                                                                                 detail=error.detail)})
        return json_response(report, status=503, headers=error.headers)
    return json_response(HealthReport(status="healthy", checks={"storage": HealthCheck(status="ok")}))
