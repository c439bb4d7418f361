"""Domain objects for tests, built the way a connector would send them (camelCase, lax types)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.records import Account, Activity, Contact, InternalUser, Lead
from shared.domain.tenant_settings import TenantSettings
from shared.tenancy import TenantId

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TENANT = TenantId("5b8f3c0e-2b1a-4f7e-9a55-0c2d1e3f4a5b")
SELLERS = "r-sales"


def user(uid: str, **extra: Any) -> InternalUser:
    return InternalUser.model_validate({"id": uid, "version": 1, "email": f"{uid}@contoso.com",
                                        "displayName": uid.title(), "securityRoleIds": [SELLERS], **extra},
                                       strict=False)


def contact(cid: str, email: str, **extra: Any) -> Contact:
    return Contact.model_validate({"id": cid, "version": 1, "email": email, "fullName": cid.title(), **extra},
                                  strict=False)


def lead(lid: str, email: str, owner: str, **extra: Any) -> Lead:
    return Lead.model_validate({"id": lid, "version": 1, "email": email, "ownerId": owner, "fullName": lid.title(),
                                "createdOn": NOW - timedelta(days=400), **extra}, strict=False)


def account(aid: str, *domains: str, **extra: Any) -> Account:
    return Account.model_validate({"id": aid, "version": 1, "name": aid.title(), "emailDomains": list(domains),
                                   **extra}, strict=False)


def mail(aid: str, sender: str, to: str, days_ago: float, *, source: str = "crm", **extra: Any) -> Activity:
    owner = {"mailboxOwnerId": extra.pop("owner", sender.split("@")[0])} if source == "exchange" else {}
    return Activity.model_validate({"id": aid, "version": extra.pop("version", 1), "source": source,
                                    "kind": extra.pop("kind", "email"), "sender": sender, "to": [to],
                                    "start": NOW - timedelta(days=days_ago), **owner, **extra}, strict=False)


def enabled(*, consent: bool = True, roles: tuple[str, ...] = (SELLERS,), groups: tuple[str, ...] = (),
            location: str = "FR") -> TenantSettings:
    """A tenant with relationship intelligence on, Exchange integration on (when eligible), consent if asked."""
    settings = TenantSettings(tenant_id=TENANT).set_prerequisites(True, location, NOW).enable("admin", NOW)
    settings = settings.select_security_roles(roles).set_excluded_security_groups(groups)
    return settings.record_consent_granted("admin", (), NOW) if consent else settings
