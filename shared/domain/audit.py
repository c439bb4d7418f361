"""Audit events: who changed what, when, old → new (SPEC 2.9)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

SYSTEM_ACTOR = "system"


class Change(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    old: Any = None
    new: Any = None


class AuditEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    sequence: int  # the settings revision this change produced: a strict per-tenant order
    at: datetime
    actor: str  # the caller's object id, or "system" for the timer
    action: str
    changes: tuple[Change, ...]


def diff(before: BaseModel, after: BaseModel, *, ignore: frozenset[str] = frozenset({"revision"}),
         ) -> tuple[Change, ...]:
    """Changed leaves between two states, as dotted camelCase paths; lists compare whole."""
    old = _flatten(before.model_dump(mode="json", by_alias=True, exclude=set(ignore)))
    new = _flatten(after.model_dump(mode="json", by_alias=True, exclude=set(ignore)))
    return tuple(Change(field=key, old=old.get(key), new=new.get(key))
                 for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key))


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat
