"""GET /api/status: can the service serve (is table storage reachable)? Liveness and readiness for probes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._http import Call, json_response, lazy_module, respond, route
from shared.api import endpoints as e
from shared.errors import ServiceUnavailable

if TYPE_CHECKING:
    from shared.api import models as m
else:
    m = lazy_module("shared.api.models")

bp = func.Blueprint()


@route(bp, e.SERVICE_STATUS)
def service_status(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, e.SERVICE_STATUS, _status)


def _status(call: Call) -> func.HttpResponse:
    try:
        call.container.tables.ping()
    except ServiceUnavailable as error:
        failing = m.ServiceStatus(status="unavailable",
                                  checks={"storage": m.DependencyCheck(status="failing", detail=error.detail)})
        return json_response(failing, status=503, headers=error.headers)
    return json_response(m.ServiceStatus(status="serving", checks={"storage": m.DependencyCheck(status="ok")}))
