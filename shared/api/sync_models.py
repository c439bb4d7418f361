"""Requests and responses of the sync API (SPEC 7): what a connector sends and what it is told back."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model

from shared.api.models import ApiModel
from shared.domain.records import RECORD_KINDS
from shared.services.sync import MAX_ITEMS, SyncReport


class SyncBatchRequest(ApiModel):
    """What the route parses for every kind: the items stay plain objects here, because the service validates
    each one on its own (one bad item is refused in the report, not with the batch)."""

    items: list[dict[str, object]] = Field(min_length=1, max_length=MAX_ITEMS, description=(
        "Records of the kind in the path, camelCase, each with `id` and the source's `version`."))


def _batch_model(kind: str, item: type[BaseModel]) -> type[ApiModel]:
    """The documented body of `POST /api/sync/{kind}` for one kind: its items are that kind's domain model, so
    the document shows every field and limit the service checks item by item."""
    name = f"{kind[0].upper()}{kind[1:]}SyncBatch"
    description = (f"1 to {MAX_ITEMS:,} {kind}, camelCase, each with `id` and the source's `version`; an item that "
                   "does not match this schema is listed in the answer's `rejected`, the others are stored.")
    items: Any = list[item]  # type: ignore[valid-type]  # a type made at run time, one per kind
    fields: dict[str, Any] = {"items": (items, Field(min_length=1, max_length=MAX_ITEMS, description=description))}
    return create_model(name, __base__=ApiModel, __doc__=f"A batch of {kind} from a data connector.",
                        __module__=__name__, **fields)


# The endpoint catalogue names these as "sync_models:UsersSyncBatch" and so on (see `__getattr__`).
BATCHES: dict[str, type[ApiModel]] = {kind: _batch_model(kind, model) for kind, model in RECORD_KINDS.items()}
_BY_NAME = {model.__name__: model for model in BATCHES.values()}


def __getattr__(name: str) -> type[ApiModel]:
    if name in _BY_NAME:
        return _BY_NAME[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SyncRejectionView(ApiModel):
    index: int
    id: str | None
    reason: str
    detail: str | None


class SyncReportView(ApiModel):
    kind: str
    received: int
    stored: int
    unchanged: int
    rejected: list[SyncRejectionView]
    rejected_by_reason: dict[str, int]


def report_view(report: SyncReport) -> SyncReportView:
    return SyncReportView(
        kind=report.kind, received=report.received, stored=report.stored, unchanged=report.unchanged,
        rejected=[SyncRejectionView(index=r.index, id=r.id, reason=r.reason, detail=r.detail)
                  for r in report.rejected],
        rejected_by_reason=report.rejected_by_reason)
