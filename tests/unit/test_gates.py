"""The data gates of SPEC 3, one by one: each closed gate is named, and CRM data needs only the first."""

from __future__ import annotations

import pytest

from shared.domain.gates import closed_gate, gate_fingerprint
from shared.domain.tenant_settings import TenantSettings
from tests.builders import NOW, TENANT, enabled, mail, user

EXCHANGE = mail("x1", "ann@contoso.com", "lee@fabrikam.com", 1, source="exchange", owner="ann")
CRM = mail("c1", "ann@contoso.com", "lee@fabrikam.com", 1)


def test_every_gate_open_lets_an_exchange_item_through() -> None:
    assert closed_gate(enabled(), EXCHANGE, user("ann")) is None


@pytest.mark.parametrize(("settings", "owner", "reason"), [
    (TenantSettings(tenant_id=TENANT), user("ann"), "relationshipIntelligenceNotEnabled"),
    (enabled(location="DE"), user("ann"), "dataLocationNotEligible"),
    (enabled().set_exchange_integration(False, NOW), user("ann"), "exchangeIntegrationOff"),
    (enabled(consent=False), user("ann"), "consentNotGranted"),
    (enabled(), None, "mailboxOwnerUnknown"),
    (enabled(), user("ann", active=False), "mailboxOwnerUnknown"),
    (enabled(), user("ann", securityRoleIds=["r-other"]), "mailboxOwnerNotInSelectedRole"),
    (enabled(groups=("g-exec",)), user("ann", groupIds=["G-EXEC"]), "mailboxOwnerInExcludedGroup"),
    (enabled(), user("ann", optedOut=True), "mailboxOwnerOptedOut"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_a_closed_gate_is_named(settings: TenantSettings, owner: object, reason: str) -> None:
    assert closed_gate(settings, EXCHANGE, owner) == reason  # type: ignore[arg-type]


def test_crm_data_needs_only_relationship_intelligence_enabled() -> None:
    assert closed_gate(enabled(consent=False).set_exchange_integration(False, NOW), CRM, None) is None
    assert closed_gate(TenantSettings(tenant_id=TENANT), CRM, None) == "relationshipIntelligenceNotEnabled"


def test_the_fingerprint_changes_with_every_tenant_level_gate() -> None:
    base = enabled()
    changed = [base.select_security_roles(("r-other",)), base.set_excluded_security_groups(("g-1",)),
               base.set_exchange_integration(False, NOW)]
    assert len({gate_fingerprint(s) for s in [base, *changed]}) == 4
    assert gate_fingerprint(base) == gate_fingerprint(base.select_security_roles((("R-SALES"),)))
