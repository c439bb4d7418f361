"""The tenant settings service on a fake repository (our own port): read-apply-write, If-Match, retries, audit,
the admin's actions and the index rows they schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.clock import FixedClock
from shared.domain.security_roles import STANDARD_SALES_ROLES, SecurityRole
from shared.errors import Conflict, PreconditionFailed, Unprocessable, ValidationFailed
from shared.services.ports import IndexKind
from shared.services.tenant_settings import AnalyticsChanges, TenantSettingsService
from shared.services.timing import WRITE_SETTLE
from shared.tenancy import TenantId
from tests.fakes import FakeScheduleIndex, FakeSettingsRepository

TENANT = TenantId("5b8f3c0e-2b1a-4f7e-9a55-0c2d1e3f4a5b")
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.fixture
def repository() -> FakeSettingsRepository:
    return FakeSettingsRepository()


@pytest.fixture
def service(repository: FakeSettingsRepository) -> TenantSettingsService:
    return TenantSettingsService(repository, FixedClock(NOW))


def _ready(service: TenantSettingsService) -> str | None:
    return service.change(TENANT, "admin", "setPrerequisites", lambda s, now: s.set_prerequisites(True, "FR", now)).etag


def test_a_change_is_stored_with_an_audit_event_of_its_fields(service: TenantSettingsService,
                                                              repository: FakeSettingsRepository) -> None:
    _ready(service)
    outcome = service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now))
    assert outcome.changed
    event = repository.events[0]
    assert (event.actor, event.action, event.at) == ("admin", "enable", NOW)
    fields = {c.field: (c.old, c.new) for c in event.changes}
    assert fields["status"] == ("notEnabled", "enabled")
    assert fields["exchange.integrationEnabled"] == (False, True)


def test_a_change_that_changes_nothing_writes_nothing(service: TenantSettingsService,
                                                      repository: FakeSettingsRepository) -> None:
    _ready(service)
    service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now))
    before = len(repository.events)
    outcome = service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now))
    assert not outcome.changed
    assert len(repository.events) == before


def test_a_stale_if_match_is_412_and_changes_nothing(service: TenantSettingsService,
                                                     repository: FakeSettingsRepository) -> None:
    first = _ready(service)
    service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now), if_match=first)
    with pytest.raises(PreconditionFailed):
        service.change(TENANT, "admin", "disable", lambda s, now: s.disable(now), if_match=first)
    assert repository.load(TENANT).settings.enabled


def test_without_if_match_a_concurrent_change_is_re_read_and_re_decided(
        service: TenantSettingsService, repository: FakeSettingsRepository) -> None:
    _ready(service)
    repository.conflicts_to_raise = 2
    assert service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now)).changed


def test_with_if_match_a_write_conflict_is_412(service: TenantSettingsService,
                                               repository: FakeSettingsRepository) -> None:
    etag = _ready(service)
    repository.conflicts_to_raise = 1
    with pytest.raises(PreconditionFailed):
        service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now), if_match=etag)


def test_persistent_contention_ends_in_409_with_retry_after(service: TenantSettingsService,
                                                           repository: FakeSettingsRepository) -> None:
    _ready(service)
    repository.conflicts_to_raise = 10
    with pytest.raises(Conflict) as contended:
        service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now))
    assert int(contended.value.headers["Retry-After"]) > 0


def test_the_rule_sees_the_clock(repository: FakeSettingsRepository) -> None:
    clock = FixedClock(NOW)
    service = TenantSettingsService(repository, clock)
    _ready(service)
    clock.advance(timedelta(days=2))
    outcome = service.change(TENANT, "admin", "enable", lambda s, now: s.enable("admin", now))
    assert outcome.settings.enabled_at == NOW + timedelta(days=2)


def test_role_ids_are_checked_against_the_standard_catalogue(service: TenantSettingsService) -> None:
    salesperson = next(r.id for r in STANDARD_SALES_ROLES if r.name == "Salesperson")
    assert service.known_role_ids(TENANT, [salesperson.upper()]) == (salesperson,)
    with pytest.raises(Unprocessable) as refused:
        service.known_role_ids(TENANT, [salesperson, "nope"])
    assert refused.value.errors == [{"field": "securityRoleIds/1", "reason": "not in the tenant's security-role "
                                                                             "catalogue"}]


def test_a_synced_catalogue_replaces_the_standard_one(service: TenantSettingsService,
                                                      repository: FakeSettingsRepository) -> None:
    repository.catalogue = [SecurityRole(id="custom-1", name="Key account manager")]
    assert service.known_role_ids(TENANT, ["custom-1"]) == ("custom-1",)
    assert service.role_catalogue(TENANT).source == "tenant"
    with pytest.raises(Unprocessable):
        service.known_role_ids(TENANT, [STANDARD_SALES_ROLES[0].id])


def test_without_a_synced_catalogue_the_standard_one_is_offered(service: TenantSettingsService) -> None:
    catalogue = service.role_catalogue(TENANT)
    assert (catalogue.source, tuple(catalogue.roles)) == ("standard", STANDARD_SALES_ROLES)


def test_enabling_with_an_unknown_role_is_refused_and_changes_nothing(service: TenantSettingsService,
                                                                     repository: FakeSettingsRepository) -> None:
    _ready(service)
    with pytest.raises(Unprocessable):
        service.enable(TENANT, "admin", security_role_ids=["not-a-role"])
    assert not repository.load(TENANT).settings.enabled


def test_analytics_options_left_out_keep_their_value(service: TenantSettingsService) -> None:
    _ready(service)
    service.enable(TENANT, "admin")
    service.update_relationship_analytics(TENANT, "admin", AnalyticsChanges(good_min=70, fair_min=30,
                                                                            health_display=False))
    after = service.update_relationship_analytics(TENANT, "admin", AnalyticsChanges(fair_min=50)).settings
    options = after.relationship_analytics
    assert (options.grading.good_min, options.grading.fair_min, options.health_display) == (70, 50, False)


def test_inverted_grade_bands_are_a_field_problem_and_change_nothing(service: TenantSettingsService,
                                                                    repository: FakeSettingsRepository) -> None:
    _ready(service)
    service.enable(TENANT, "admin")
    events = len(repository.events)
    with pytest.raises(ValidationFailed) as refused:
        service.update_relationship_analytics(TENANT, "admin", AnalyticsChanges(good_min=40, fair_min=60))
    assert refused.value.errors[0]["field"] == "grading"
    assert len(repository.events) == events


def test_a_bad_audit_continuation_is_a_field_problem(service: TenantSettingsService) -> None:
    class Refusing(FakeSettingsRepository):
        def audit(self, tenant_id: TenantId, page_size: int, continuation: str | None):  # type: ignore[no-untyped-def]
            raise ValueError("not ours")

    with pytest.raises(ValidationFailed) as refused:
        TenantSettingsService(Refusing(), FixedClock(NOW)).audit(TENANT, 10, "junk")
    assert refused.value.errors == [{"field": "continuationToken", "reason": "malformed"}]


def test_the_index_rows_a_change_needs_are_written_and_the_old_window_removed(
        repository: FakeSettingsRepository) -> None:
    index = FakeScheduleIndex()
    clock = FixedClock(NOW)
    service = TenantSettingsService(repository, clock, index)
    _ready(service)
    deadline = service.enable(TENANT, "admin").settings.consent_deadline
    assert index.of(IndexKind.CONSENT_DEADLINE, TENANT) == [deadline]
    assert index.of(IndexKind.INSIGHTS_RECOMPUTE, TENANT) == [NOW]
    clock.advance(timedelta(hours=1))
    service.set_exchange_integration(TENANT, "admin", False)
    assert index.of(IndexKind.CONSENT_DEADLINE, TENANT) == []  # the window closed with Exchange off
    assert index.of(IndexKind.EXCHANGE_PURGE, TENANT) == [clock.now() + WRITE_SETTLE]
    service.change(TENANT, "admin", "consentGranted", lambda s, now: s.record_consent_granted("admin", (), now))
    assert index.of(IndexKind.CONSENT_RECHECK, TENANT) == [clock.now() + timedelta(days=1)]
