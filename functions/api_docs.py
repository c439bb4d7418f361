"""GET /api/openapi.json: the OpenAPI 3.1 document, generated from the endpoint catalogue and the models."""

from __future__ import annotations

import azure.functions as func

from functions._http import Call, json_response, respond, route
from shared.api import openapi
from shared.api.openapi import Endpoint, declare

bp = func.Blueprint()

OPENAPI = declare(Endpoint(
    function_name="openapi_document", method="GET", route="openapi.json", tag="service", auth="anonymous",
    summary="The OpenAPI 3.1 document of this API.",
))


@route(bp, OPENAPI)
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, OPENAPI, _document)


def _document(call: Call) -> func.HttpResponse:
    return json_response(openapi.document())
