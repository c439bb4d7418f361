"""GET /api/me: who the bearer token says the caller is and what they may do (the portal uses it to
show or hide the admin pages)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._http import Call, json_response, lazy_module, respond, route
from shared.api import endpoints as e

if TYPE_CHECKING:
    from shared.api import models as m
else:
    m = lazy_module("shared.api.models")

bp = func.Blueprint()


@route(bp, e.ME)
def me(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, e.ME, _me)


def _me(call: Call) -> func.HttpResponse:
    principal = call.caller
    permissions = sorted(p.value for p in call.container.roles.permissions_of(principal.roles))
    return json_response(m.Caller(tenant_id=principal.tenant_id, object_id=principal.object_id,
                                  roles=sorted(principal.roles), permissions=permissions, is_app=principal.is_app))
