"""A data connector feeds records and activity metadata; the data gates of SPEC 3 decide what Exchange data may
be kept, and the purge removes it when its use ends (issue 6, first part)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider
from shared import bootstrap
from shared.domain.records import Source
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.services.timing import WRITE_SETTLE
from shared.storage.records_repository import TableRecords
from shared.tenancy import TenantId
from tests.e2e.conftest import Api, ok, run_timer

pytestmark = pytest.mark.e2e

SALESPERSON = next(r.id for r in STANDARD_SALES_ROLES if r.name == "Salesperson")
MARKETING = next(r.id for r in STANDARD_SALES_ROLES if r.name == "Marketing Manager")
EXCLUDED_GROUP = "7d4f5a8e-2c1b-4e6f-9a3d-5b8c7e1f0a2d"
NOW = datetime.now(UTC)



@pytest.fixture
def connector(function_host: FunctionHost, idp: IdentityProvider, tenant_id: str) -> Api:
    return Api(function_host.base_url, idp.app_token(tenant_id, "connector", ["RelationshipIntelligence.Sync"]))


def users() -> list[dict[str, Any]]:
    return [
        {"id": "u-seller", "version": 1, "email": "seller@contoso.com", "securityRoleIds": [SALESPERSON]},
        {"id": "u-marketer", "version": 1, "email": "marketer@contoso.com", "securityRoleIds": [MARKETING]},
        {"id": "u-excluded", "version": 1, "email": "cfo@contoso.com", "securityRoleIds": [SALESPERSON],
         "groupIds": [EXCLUDED_GROUP]},
        {"id": "u-optout", "version": 1, "email": "private@contoso.com", "securityRoleIds": [SALESPERSON],
         "optedOut": True},
    ]


def email(item_id: str, source: str, owner: str | None, when: datetime = NOW) -> dict[str, Any]:
    item: dict[str, Any] = {"id": item_id, "version": 1, "source": source, "kind": "email",
                            "sender": "seller@contoso.com", "to": ["buyer@fabrikam.com"],
                            "start": when.isoformat(), "regarding": {"type": "account", "id": "a-fabrikam"}}
    if owner:
        item["mailboxOwnerId"] = owner
    return item


def enable(admin: Api, container: bootstrap.Container, tenant: str, *, consent: bool) -> None:
    ok(admin.put("relationship-intelligence/prerequisites",
                 {"salesInsightsPremium": True, "office365DataLocation": "FR"}))
    ok(admin.post("relationship-intelligence/enable", {"securityRoleIds": [SALESPERSON]}))
    ok(admin.put("relationship-intelligence/excluded-security-groups", {"groupIds": [EXCLUDED_GROUP]}))
    if consent:
        container.tenant_settings().change(TenantId(tenant), "admin", "consentGranted",
                                           lambda s, now: s.record_consent_granted("admin", (), now))


def test_no_data_is_accepted_before_enabling(connector: Api) -> None:
    refused = connector.post("sync/users", {"items": users()})
    assert refused.status_code == 409


def test_only_app_tokens_with_the_sync_role_may_sync(function_host: FunctionHost, idp: IdentityProvider,
                                                     tenant_id: str) -> None:
    admin_user = Api(function_host.base_url, idp.user_token(tenant_id, str(uuid.uuid4()),
                                                            ["SystemAdministrator", "RelationshipIntelligence.Sync"]))
    assert admin_user.post("sync/users", {"items": users()}).status_code == 403
    other_app = Api(function_host.base_url, idp.app_token(tenant_id, "x", ["SomethingElse"]))
    assert other_app.post("sync/users", {"items": users()}).status_code == 403


def test_the_gates_decide_item_by_item(admin: Api, connector: Api, container: bootstrap.Container,
                                       tenant_id: str) -> None:
    enable(admin, container, tenant_id, consent=False)
    report = ok(connector.post("sync/users", {"items": users()}))
    assert (report["stored"], report["rejected"]) == (4, [])

    pending = ok(connector.post("sync/activities", {"items": [email("x1", "exchange", "u-seller"),
                                                              email("c1", "crm", None)]}))
    assert pending["stored"] == 1
    assert pending["rejectedByReason"] == {"consentNotGranted": 1}

    container.tenant_settings().change(TenantId(tenant_id), "admin", "consentGranted",
                                       lambda s, now: s.record_consent_granted("admin", (), now))
    report = ok(connector.post("sync/activities", {"items": [
        email("x1", "exchange", "u-seller"),
        email("x2", "exchange", "u-marketer"),
        email("x3", "exchange", "u-excluded"),
        email("x4", "exchange", "u-optout"),
        email("x5", "exchange", "u-nobody"),
    ]}))
    assert report["stored"] == 1
    assert {r["id"]: r["reason"] for r in report["rejected"]} == {
        "x2": "mailboxOwnerNotInSelectedRole", "x3": "mailboxOwnerInExcludedGroup",
        "x4": "mailboxOwnerOptedOut", "x5": "mailboxOwnerUnknown"}
    stored = {a.id for a in TableRecords(container.tables).iter_records(TenantId(tenant_id), "activities")}
    assert stored == {"x1", "c1"}


def test_batches_are_idempotent_by_id_and_version(admin: Api, connector: Api, container: bootstrap.Container,
                                                  tenant_id: str) -> None:
    enable(admin, container, tenant_id, consent=False)
    batch = {"items": [{"id": "c-1", "version": 5, "email": "buyer@fabrikam.com", "fullName": "Buyer"}]}
    assert ok(connector.post("sync/contacts", batch))["stored"] == 1
    assert ok(connector.post("sync/contacts", batch))["unchanged"] == 1
    older = {"items": [{"id": "c-1", "version": 4, "email": "old@fabrikam.com"}]}
    assert ok(connector.post("sync/contacts", older))["unchanged"] == 1
    newer = {"items": [{"id": "c-1", "version": 7, "email": "newest@fabrikam.com"}]}
    assert ok(connector.post("sync/contacts", newer))["stored"] == 1
    contact = TableRecords(container.tables).get(TenantId(tenant_id), "contacts", "c-1")
    assert (contact.version, contact.email) == (7, "newest@fabrikam.com")


def test_a_batch_that_names_a_record_twice_refuses_the_repeat(admin: Api, connector: Api,
                                                              container: bootstrap.Container, tenant_id: str) -> None:
    enable(admin, container, tenant_id, consent=False)
    twice = {"items": [{"id": "c-2", "version": 1, "email": "first@fabrikam.com"},
                       {"id": "c-2", "version": 1, "email": "second@fabrikam.com"}]}
    report = ok(connector.post("sync/contacts", twice))
    assert (report["stored"], report["unchanged"]) == (1, 0)
    assert [(r["index"], r["id"], r["reason"]) for r in report["rejected"]] == [(1, "c-2", "duplicateId")]
    assert "item 0" in report["rejected"][0]["detail"]
    contact = TableRecords(container.tables).get(TenantId(tenant_id), "contacts", "c-2")
    assert contact.email == "first@fabrikam.com"


def test_invalid_items_are_listed_and_the_rest_is_stored(admin: Api, connector: Api, container: bootstrap.Container,
                                                         tenant_id: str) -> None:
    enable(admin, container, tenant_id, consent=False)
    report = ok(connector.post("sync/activities", {"items": [
        email("good", "crm", None),
        {**email("naive", "crm", None), "start": "2026-01-01T10:00:00"},
        {**email("no-owner", "exchange", None)},
        {"id": "body", "version": 1, "source": "crm", "kind": "email", "start": NOW.isoformat(), "body": "secret"},
        {**email("control", "crm", None), "to": ["lee\u0001@fabrikam.com"]},
    ]}))
    assert report["stored"] == 1
    reasons = {r["index"]: (r["reason"], r["detail"] or "") for r in report["rejected"]}
    assert set(reasons) == {1, 2, 3, 4}
    assert "start: Value error, a time needs its zone" in reasons[1][1]
    assert "mailboxOwnerId" in reasons[2][1]
    assert "body: unknown field" in reasons[3][1]  # metadata only: no message bodies, ever
    assert reasons[4][0] == "invalid"  # a control character is no address (nor a valid table key)


def test_versions_beyond_32_bits_and_times_without_a_zone(admin: Api, connector: Api, container: bootstrap.Container,
                                                           tenant_id: str) -> None:
    enable(admin, container, tenant_id, consent=False)
    big = 2**31 + 5  # Dataverse's versionnumber is a 64-bit counter
    assert ok(connector.post("sync/contacts", {"items": [{"id": "c-big", "version": big,
                                                           "email": "big@fabrikam.com"}]}))["stored"] == 1
    assert ok(connector.post("sync/contacts", {"items": [{"id": "c-big", "version": big - 1,
                                                           "email": "older@fabrikam.com"}]}))["unchanged"] == 1
    contact = TableRecords(container.tables).get(TenantId(tenant_id), "contacts", "c-big")
    assert (contact.version, contact.email) == (big, "big@fabrikam.com")
    report = ok(connector.post("sync/leads", {"items": [
        {"id": "l-naive", "version": 1, "ownerId": "u-1", "createdOn": "2026-01-01T10:00:00"}]}))
    assert [(r["reason"], "createdOn: Value error, a time needs its zone" in r["detail"])
            for r in report["rejected"]] == [("invalid", True)]


def test_heavy_items_are_stored_in_transactions_the_service_accepts(admin: Api, connector: Api,
                                                                    container: bootstrap.Container,
                                                                    tenant_id: str) -> None:
    enable(admin, container, tenant_id, consent=False)
    light = [{"id": f"s{i}", "version": 1, "email": f"s{i}@contoso.com"} for i in range(100)]
    heavy = [{"id": f"h{i}", "version": 1, "email": f"h{i}@contoso.com",
              "groupIds": [str(uuid.uuid4()) for _ in range(1000)],
              "securityRoleIds": [str(uuid.uuid4()) for _ in range(100)]} for i in range(100)]
    assert ok(connector.post("sync/users", {"items": light + heavy}))["stored"] == 200  # over 4 MiB in 100 heavy
    assert len(list(TableRecords(container.tables).iter_records(TenantId(tenant_id), "users"))) == 200

    def crowd(field: str) -> list[str]:  # 500 addresses of 200 emoji: each emoji is two UTF-16 units
        return [f"{chr(0x1F600) * 200}.{field}{i}@fabrikam.com" for i in range(500)]

    huge = {**email("huge", "crm", None), "to": crowd("to"), "cc": crowd("cc"), "optionalAttendees": crowd("opt")}
    report = ok(connector.post("sync/activities", {"items": [huge, email("fine", "crm", None)]}))
    assert report["stored"] == 1
    assert [(r["id"], r["reason"]) for r in report["rejected"]] == [("huge", "tooLarge")]


@pytest.mark.parametrize(("path", "body", "status"), [
    ("sync/widgets", {"items": [{"id": "x", "version": 1}]}, 404),
    ("sync/users", {"items": []}, 400),
    ("sync/users", {"items": [{"id": f"u{i}", "version": 1, "email": f"u{i}@c.com"} for i in range(1001)]}, 400),
    ("sync/users", {"rows": []}, 400),
    ("sync/users", {"items": ["not an object"]}, 400),
])
def test_bad_batches(admin: Api, connector: Api, container: bootstrap.Container, tenant_id: str, path: str,
                     body: dict[str, Any], status: int) -> None:
    enable(admin, container, tenant_id, consent=False)
    assert connector.post(path, body).status_code == status


def test_exchange_data_is_purged_when_its_use_ends_and_crm_data_stays(
        admin: Api, connector: Api, container: bootstrap.Container, function_host: FunctionHost,
        tenant_id: str) -> None:
    enable(admin, container, tenant_id, consent=True)
    ok(connector.post("sync/users", {"items": users()}))
    report = ok(connector.post("sync/activities", {"items": [
        email(f"x{i}", "exchange", "u-seller", NOW - timedelta(days=i)) for i in range(150)] + [
        email(f"c{i}", "crm", None, NOW - timedelta(days=i)) for i in range(20)]}))
    assert report["stored"] == 170
    records = TableRecords(container.tables)
    tenant = TenantId(tenant_id)

    ok(admin.put("relationship-intelligence/exchange-integration", {"enabled": False}))
    rejected = ok(connector.post("sync/activities", {"items": [email("late", "exchange", "u-seller")]}))
    assert rejected["rejectedByReason"] == {"exchangeIntegrationOff": 1}

    run_timer(function_host, container, at=container.clock.now() + WRITE_SETTLE)
    assert list(records.iter_records(tenant, "activities", Source.EXCHANGE)) == []
    assert len(list(records.iter_records(tenant, "activities", Source.CRM))) == 20
    every_row = [*container.tables.iter_partition(tenant_id), *container.activity_tables.iter_partition(tenant_id)]
    assert not [e.row_key for e in every_row if e.properties.get("Source") == "exchange"
                or "|exchange|" in e.row_key or '"source":"exchange"' in str(e.properties.get("Doc0", ""))]
    overview = ok(admin.get("relationship-intelligence"))
    assert overview["exchange"]["consent"]["status"] == "granted"
    actions = [e["action"] for e in ok(admin.get("relationship-intelligence/audit"))["events"]]
    assert actions[0] == "exchangeDataPurged"


def test_a_synced_role_catalogue_replaces_the_standard_one(admin: Api, connector: Api,
                                                           container: bootstrap.Container, tenant_id: str) -> None:
    enable(admin, container, tenant_id, consent=False)
    assert ok(admin.get("security-roles"))["source"] == "standard"
    custom = "9A1B2C3D-0000-4000-8000-00000000AB01"
    ok(connector.post("sync/securityRoles", {"items": [{"id": custom, "version": 1, "name": "Key account manager"}]}))
    catalogue = ok(admin.get("security-roles"))
    assert catalogue == {"source": "tenant", "roles": [{"id": custom.lower(), "name": "Key account manager"}]}
    overview = ok(admin.put("relationship-intelligence/security-roles", {"securityRoleIds": [custom]}))
    assert overview["exchange"]["securityRoleIds"] == [custom.lower()]
    assert admin.put("relationship-intelligence/security-roles",
                     {"securityRoleIds": [SALESPERSON]}).status_code == 422
