"""Names and patterns the rules and the API share, kept apart from the models so that the endpoint catalogue can
declare them without building any (cold start)."""

from __future__ import annotations

from typing import Literal, get_args

EntityType = Literal["account", "contact", "lead", "opportunity"]
ENTITY_TYPES: tuple[EntityType, ...] = get_args(EntityType)
PEOPLE: tuple[EntityType, ...] = ("lead", "contact")  # who knows whom introduces to people

DataSubjectType = Literal["contact", "lead", "user"]
DATA_SUBJECT_TYPES: tuple[DataSubjectType, ...] = get_args(DataSubjectType)

# What a connector syncs, in the order a connector should send them (roles and users before what refers to them).
RECORD_KIND_NAMES = ("securityRoles", "users", "accounts", "contacts", "leads", "opportunities", "activities")

EMAIL_DOMAIN_PATTERN = r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
