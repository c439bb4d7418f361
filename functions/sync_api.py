"""POST /api/sync/{kind}: a data connector (app-only token with the sync role) upserts records and activity
metadata in batches of up to 1,000. Exchange items pass the data gates or are refused, item by item."""

from __future__ import annotations

import azure.functions as func

from functions._http import Call, json_response, respond, route
from shared.api.openapi import Endpoint, declare
from shared.api.requests import MAX_SYNC_BODY_BYTES
from shared.api.settings_models import SyncBatchRequest, SyncRejectionView, SyncReportView
from shared.domain.records import RECORD_KINDS
from shared.identity.permissions import Permission

bp = func.Blueprint()

SYNC = declare(Endpoint(
    function_name="sync_records", method="POST", route="sync/{kind}", tag="data", auth="app",
    permission=Permission.SYNC_DATA, request=SyncBatchRequest, response=SyncReportView, errors=(404, 409),
    summary="Upsert a batch of records or activities (idempotent by id and version).",
    description="Kinds: securityRoles, users, accounts, contacts, leads, opportunities, activities. Items are "
                "validated one by one; invalid ones and Exchange items whose data gates are closed are listed in "
                "`rejected`. A batch is stored in transactions of up to 100 items: after a 503 or 409 some of "
                "them may be stored, and sending the same batch again is always safe (a stored version is "
                "never stored twice).",
    path_values=(("kind", tuple(RECORD_KINDS)),),
))


@route(bp, SYNC)
def sync_records(req: func.HttpRequest) -> func.HttpResponse:
    def work(call: Call) -> func.HttpResponse:
        batch = call.body(SyncBatchRequest, max_bytes=MAX_SYNC_BODY_BYTES)
        report = call.services.sync_service().ingest(call.caller.tenant_id, req.route_params["kind"], batch.items)
        return json_response(SyncReportView(
            kind=report.kind, received=report.received, stored=report.stored, unchanged=report.unchanged,
            rejected=[SyncRejectionView(index=r.index, id=r.id, reason=r.reason, detail=r.detail)
                      for r in report.rejected],
            rejected_by_reason=report.rejected_by_reason))

    return respond(req, SYNC, work)
