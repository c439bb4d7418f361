"""The settings service on a fake repository (our own port): read-apply-write, If-Match, retries, audit."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from shared.clock import FixedClock
from shared.domain.audit import AuditEvent
from shared.domain.security_roles import STANDARD_SALES_ROLES, SecurityRole
from shared.domain.tenant_settings import TenantSettings
from shared.errors import ConcurrencyConflict, Conflict, PreconditionFailed, Unprocessable
from shared.services.settings import AuditPage, Current, SettingsService
from shared.tenancy import TenantId

TENANT = TenantId("5b8f3c0e-2b1a-4f7e-9a55-0c2d1e3f4a5b")
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class FakeRepository:
    def __init__(self) -> None:
        self.settings: dict[str, tuple[TenantSettings, str]] = {}
        self.events: list[AuditEvent] = []
        self.catalogue: list[SecurityRole] | None = None
        self.conflicts_to_raise = 0
        self._etags = itertools.count(1)

    def load(self, tenant_id: TenantId) -> Current:
        stored = self.settings.get(tenant_id)
        return Current(TenantSettings(tenant_id=tenant_id), None) if stored is None else Current(*stored)

    def save(self, tenant_id: TenantId, settings: TenantSettings, etag: str | None, event: AuditEvent) -> str:
        if self.conflicts_to_raise:
            self.conflicts_to_raise -= 1
            raise ConcurrencyConflict("simulated")
        current = self.settings.get(tenant_id)
        if (current[1] if current else None) != etag:
            raise ConcurrencyConflict("stale")
        new = f"e{next(self._etags)}"
        self.settings[tenant_id] = (settings, new)
        self.events.insert(0, event)
        return new

    def audit(self, tenant_id: TenantId, page_size: int, continuation: str | None) -> AuditPage:
        return AuditPage(self.events[:page_size], None)

    def role_catalogue(self, tenant_id: TenantId) -> Sequence[SecurityRole] | None:
        return self.catalogue


@pytest.fixture
def repository() -> FakeRepository:
    return FakeRepository()


@pytest.fixture
def service(repository: FakeRepository) -> SettingsService:
    return SettingsService(repository, FixedClock(NOW))


def _ready(service: SettingsService) -> str | None:
    return service.change(TENANT, "admin", "setPrerequisites", lambda s, now: s.set_prerequisites(True, "FR", now)).etag


def test_a_change_is_stored_with_an_audit_event_of_its_fields(service: SettingsService,
                                                              repository: FakeRepository) -> None:
    _ready(service)
    outcome = service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now))
    assert outcome.changed
    event = repository.events[0]
    assert (event.actor, event.action, event.at) == ("admin", "enable", NOW)
    fields = {c.field: (c.old, c.new) for c in event.changes}
    assert fields["status"] == ("notEnabled", "enabled")
    assert fields["exchange.integrationEnabled"] == (False, True)


def test_a_change_that_changes_nothing_writes_nothing(service: SettingsService, repository: FakeRepository) -> None:
    _ready(service)
    service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now))
    before = len(repository.events)
    outcome = service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now))
    assert not outcome.changed
    assert len(repository.events) == before


def test_a_stale_if_match_is_412_and_changes_nothing(service: SettingsService, repository: FakeRepository) -> None:
    first = _ready(service)
    service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now), if_match=first)
    with pytest.raises(PreconditionFailed):
        service.change(TENANT, "admin", "disable", lambda s, now: s.disable(now), if_match=first)
    assert repository.load(TENANT).settings.enabled


def test_without_if_match_a_concurrent_change_is_re_read_and_re_decided(
        service: SettingsService, repository: FakeRepository) -> None:
    _ready(service)
    repository.conflicts_to_raise = 2
    assert service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now)).changed


def test_with_if_match_a_write_conflict_is_412(service: SettingsService, repository: FakeRepository) -> None:
    etag = _ready(service)
    repository.conflicts_to_raise = 1
    with pytest.raises(PreconditionFailed):
        service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now), if_match=etag)


def test_persistent_contention_ends_in_409(service: SettingsService, repository: FakeRepository) -> None:
    _ready(service)
    repository.conflicts_to_raise = 10
    with pytest.raises(Conflict):
        service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now))


def test_the_rule_sees_the_clock(repository: FakeRepository) -> None:
    clock = FixedClock(NOW)
    service = SettingsService(repository, clock)
    _ready(service)
    clock.advance(timedelta(days=2))
    outcome = service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now))
    assert outcome.settings.enabled_at == NOW + timedelta(days=2)


def test_role_ids_are_checked_against_the_standard_catalogue(service: SettingsService) -> None:
    salesperson = next(r.id for r in STANDARD_SALES_ROLES if r.name == "Salesperson")
    assert service.known_role_ids(TENANT, [salesperson.upper()]) == (salesperson,)
    with pytest.raises(Unprocessable) as refused:
        service.known_role_ids(TENANT, [salesperson, "nope"])
    assert refused.value.errors == [{"field": "securityRoleIds/1", "reason": "not in the tenant's security-role "
                                                                             "catalogue"}]


def test_a_synced_catalogue_replaces_the_standard_one(service: SettingsService, repository: FakeRepository) -> None:
    repository.catalogue = [SecurityRole(id="custom-1", name="Key account manager")]
    assert service.known_role_ids(TENANT, ["custom-1"]) == ("custom-1",)
    with pytest.raises(Unprocessable):
        service.known_role_ids(TENANT, [STANDARD_SALES_ROLES[0].id])
