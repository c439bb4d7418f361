"""POST /api/sync/{kind}: a data connector (app-only token with the sync role) upserts records and activity
metadata in batches of up to 1,000. Exchange items pass the data gates or are refused, item by item."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._http import Call, json_response, lazy_module, respond, route
from shared.api import endpoints as e

if TYPE_CHECKING:
    from shared.api import sync_models as m
else:
    m = lazy_module("shared.api.sync_models")

bp = func.Blueprint()

MAX_SYNC_BODY_BYTES = 8 * 1024 * 1024


@route(bp, e.SYNC)
def sync_records(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        batch: m.SyncBatchRequest = call.body(max_bytes=MAX_SYNC_BODY_BYTES)
        report = call.container.sync().ingest(call.tenant, call.path("kind"), batch.items)
        return json_response(m.report_view(report))

    return respond(req, e.SYNC, work)
