"""What a caller may do (SPEC 2.8); which app roles grant it is the identity layer's mapping (`RolePolicy`)."""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    MANAGE_SETTINGS = "settings.manage"
    READ_INSIGHTS = "insights.read"
    READ_WHO_KNOWS_WHOM = "whoKnowsWhom.read"
    SYNC_DATA = "data.sync"
