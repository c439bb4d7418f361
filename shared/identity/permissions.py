"""Which app roles (the `roles` claim) grant which permissions. Defaults follow SPEC 2.8; settings may remap."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.config import AppConfig
from shared.domain.permissions import Permission
from shared.errors import Forbidden


@dataclass(frozen=True)
class RolePolicy:
    grants: dict[str, frozenset[Permission]]

    @classmethod
    def from_config(cls, settings: AppConfig) -> RolePolicy:
        grants: dict[str, set[Permission]] = {}
        for roles, permission in (
            (settings.admin_roles, Permission.MANAGE_SETTINGS),
            (settings.seller_roles, Permission.READ_INSIGHTS),
            (settings.who_knows_whom_roles, Permission.READ_WHO_KNOWS_WHOM),
            (settings.manager_roles, Permission.READ_RELATIONSHIPS_AT_RISK),
            (settings.sync_roles, Permission.SYNC_DATA),
        ):
            for role in roles:
                grants.setdefault(role, set()).add(permission)
        return cls({role: frozenset(permissions) for role, permissions in grants.items()})

    def permissions_of(self, roles: Iterable[str]) -> frozenset[Permission]:
        result: set[Permission] = set()
        for role in roles:
            result |= self.grants.get(role, frozenset())
        return frozenset(result)

    def require(self, roles: Iterable[str], permission: Permission) -> None:
        if permission not in self.permissions_of(roles):
            raise Forbidden(f"this action needs the '{permission.value}' permission, which the caller's roles lack")
