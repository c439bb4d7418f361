"""What a caller may do (SPEC 2.8); which app roles grant it is the identity layer's mapping (`RolePolicy`)."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    MANAGE_SETTINGS = "settings.manage"
    READ_INSIGHTS = "insights.read"
    READ_WHO_KNOWS_WHOM = "whoKnowsWhom.read"
    READ_RELATIONSHIPS_AT_RISK = "relationshipsAtRisk.read"
    SYNC_DATA = "data.sync"
