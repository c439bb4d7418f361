"""Security roles whose members' Exchange data may be used (SPEC 2.3)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict

_NAMESPACE = uuid.UUID("3b0e4f0e-6a43-4d0b-9a52-7d8f0c1e2a11")


class SecurityRole(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str


def _standard(name: str, template_id: str | None = None) -> SecurityRole:
    return SecurityRole(id=template_id or str(uuid.uuid5(_NAMESPACE, name)), name=name)


# The standard Sales catalogue, used by a tenant that has not synced its own. System Administrator and
# System Customizer keep Dataverse's fixed role template ids; the others get stable ids of ours.
STANDARD_SALES_ROLES: tuple[SecurityRole, ...] = (
    _standard("System Administrator", "627090ff-40a3-4053-8790-584edc5be201"),
    _standard("System Customizer", "119f245c-3cc8-4b62-b31c-d1a046ced15d"),
    _standard("Sales Manager"),
    _standard("Salesperson"),
    _standard("Vice President of Sales"),
    _standard("Vice President of Marketing"),
    _standard("Sales Professional Manager"),
    _standard("Sales Professional"),
    _standard("Marketing Manager"),
    _standard("Marketing Professional"),
)
