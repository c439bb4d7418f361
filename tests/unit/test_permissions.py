from __future__ import annotations

import pytest

from shared.config import AppConfig
from shared.errors import Forbidden
from shared.identity.permissions import Permission, RolePolicy

ENV = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "RI_API_AUDIENCES": "api://x"}


def test_default_roles_follow_the_spec() -> None:
    policy = RolePolicy.from_config(AppConfig.from_env(ENV))
    assert Permission.MANAGE_SETTINGS in policy.permissions_of(["SystemCustomizer"])
    assert policy.permissions_of(["Salesperson"]) == {Permission.READ_INSIGHTS, Permission.READ_WHO_KNOWS_WHOM}
    assert policy.permissions_of(["VicePresidentOfSales"]) == {Permission.READ_INSIGHTS,
                                                               Permission.READ_RELATIONSHIPS_AT_RISK}
    assert Permission.READ_RELATIONSHIPS_AT_RISK in policy.permissions_of(["SalesManager"])
    assert policy.permissions_of(["RelationshipIntelligence.Sync"]) == {Permission.SYNC_DATA}
    assert policy.permissions_of(["Unknown"]) == frozenset()


def test_roles_can_be_remapped_by_settings() -> None:
    policy = RolePolicy.from_config(AppConfig.from_env({**ENV, "RI_ADMIN_ROLES": "SalesOpsAdmin"}))
    assert policy.permissions_of(["SalesOpsAdmin"]) == {Permission.MANAGE_SETTINGS}
    with pytest.raises(Forbidden):
        policy.require(["SystemAdministrator"], Permission.MANAGE_SETTINGS)
