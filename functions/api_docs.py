"""GET /api/openapi.json: the OpenAPI 3.1 document, generated from the endpoint catalogue and the models."""

from __future__ import annotations

import functools
from typing import Any

import azure.functions as func

from functions._http import Call, json_response, respond, route
from shared.api import endpoints as e

bp = func.Blueprint()


@route(bp, e.OPENAPI)
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, e.OPENAPI, _document)


def _document(call: Call) -> func.HttpResponse:
    return json_response(_built())


@functools.cache
def _built() -> dict[str, Any]:
    from shared.api import openapi  # builds every model's schema: only when the document is first asked for

    return openapi.document(e.ALL)
