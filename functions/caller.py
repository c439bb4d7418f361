"""GET /api/me: who the bearer token says the caller is and what they may do (the portal uses it to
show or hide the admin pages)."""

from __future__ import annotations

import azure.functions as func

from functions._http import Call, json_response, respond, route
from shared.api.models import Caller
from shared.api.openapi import Endpoint, declare

bp = func.Blueprint()

ME = declare(Endpoint(
    function_name="me", method="GET", route="me", tag="service", auth="user",
    summary="The calling user's tenant, id, roles and the permissions they grant.",
    response=Caller,
))


@route(bp, ME)
def me(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, ME, _me)


def _me(call: Call) -> func.HttpResponse:
    principal = call.caller
    permissions = sorted(p.value for p in call.services.roles.permissions_of(principal.roles))
    return json_response(Caller(tenant_id=principal.tenant_id, object_id=principal.object_id,
                                roles=sorted(principal.roles), permissions=permissions, is_app=principal.is_app))
