"""The rules of SPEC 2, on the aggregate alone (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.tenant_settings import (
    ConsentStatus,
    Grading,
    Prerequisites,
    Status,
    TenantSettings,
    days_left,
)
from shared.errors import Conflict, ValidationFailed

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ADMIN = "0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a11"


def ready(location: str = "FR") -> TenantSettings:
    return TenantSettings(tenant_id="t").set_prerequisites(True, location, NOW)


def enabled(location: str = "FR") -> TenantSettings:
    return ready(location).enable(ADMIN, NOW)


def test_enabling_needs_premium_sales_insights() -> None:
    settings = TenantSettings(tenant_id="t").set_prerequisites(False, "FR", NOW)
    with pytest.raises(Conflict) as refused:
        settings.enable(ADMIN, NOW)
    assert refused.value.extensions["missingPrerequisite"] == "salesInsightsPremium"
    assert "Premium Sales Insights" in refused.value.detail


def test_enabling_needs_a_data_location() -> None:
    settings = TenantSettings(tenant_id="t", prerequisites=Prerequisites(sales_insights_premium=True))
    with pytest.raises(Conflict) as refused:
        settings.enable(ADMIN, NOW)
    assert refused.value.extensions["missingPrerequisite"] == "office365DataLocation"


def test_enable_turns_both_features_and_exchange_on_and_opens_a_14_day_window() -> None:
    settings = enabled()
    assert settings.status is Status.ENABLED
    assert settings.enabled_at == NOW
    assert settings.relationship_analytics.enabled
    assert settings.who_knows_whom.enabled
    assert settings.exchange.integration_enabled
    assert settings.consent_status() is ConsentStatus.PENDING
    assert settings.consent_deadline == NOW + timedelta(days=14)
    banner = settings.banner(NOW)
    assert banner is not None
    assert (banner.kind, banner.days_left) == ("consentPending", 14)
    assert settings.who_knows_whom_mode == "basic"


def test_enabling_an_enabled_tenant_changes_nothing() -> None:
    settings = enabled()
    assert settings.enable(ADMIN, NOW + timedelta(days=3)) == settings


@pytest.mark.parametrize("location", ["AT", "FI", "FR", "GB", "IE", "NL", "HK", "JP", "MY", "SG", "KR", "BR", "CL",
                                      "US"])
def test_the_14_supported_locations_can_use_exchange(location: str) -> None:
    assert enabled(location).exchange_eligible


@pytest.mark.parametrize("location", ["DE", "CH", "NO", "AU", "CA", "IN"])
def test_other_locations_work_on_crm_data_only(location: str) -> None:
    settings = enabled(location)
    assert settings.enabled
    assert not settings.exchange.integration_enabled
    assert settings.consent_status() is ConsentStatus.NOT_REQUIRED
    assert settings.consent_deadline is None
    banner = settings.banner(NOW)
    assert banner is not None
    assert banner.kind == "exchangeUnavailable"
    with pytest.raises(Conflict, match="outside the supported"):
        settings.set_exchange_integration(True, NOW)


@pytest.mark.parametrize("code", ["XX", "FRA", "", "1", "zz"])
def test_an_unknown_location_is_a_validation_error(code: str) -> None:
    with pytest.raises(ValidationFailed):
        TenantSettings(tenant_id="t").set_prerequisites(True, code, NOW)


def test_location_codes_are_normalised() -> None:
    assert ready("fr").prerequisites.office365_data_location == "FR"


def test_moving_to_an_unsupported_location_turns_exchange_off_and_purges() -> None:
    settings = enabled("FR").set_prerequisites(True, "DE", NOW + timedelta(hours=1))
    assert not settings.exchange.integration_enabled
    assert settings.exchange.purge_requested_at == NOW + timedelta(hours=1)


def test_premium_cannot_be_turned_off_while_enabled() -> None:
    with pytest.raises(Conflict):
        enabled().set_prerequisites(False, "FR", NOW)


def test_exchange_off_ends_the_window_and_needs_no_consent() -> None:
    settings = enabled().set_exchange_integration(False, NOW + timedelta(days=1))
    assert settings.consent_status() is ConsentStatus.NOT_REQUIRED
    assert settings.consent_deadline is None
    assert settings.banner(NOW) is None
    assert settings.who_knows_whom_mode == "basic"
    assert settings.exchange.purge_requested_at == NOW + timedelta(days=1)


def test_exchange_on_again_opens_a_new_window_from_that_moment() -> None:
    later = NOW + timedelta(days=5)
    settings = enabled().set_exchange_integration(False, NOW).set_exchange_integration(True, later)
    assert settings.consent_status() is ConsentStatus.PENDING
    assert settings.consent_deadline == later + timedelta(days=14)


def test_banner_days_left_counts_down() -> None:
    settings = enabled()
    banner = settings.banner(NOW + timedelta(days=13, hours=1))
    assert banner is not None
    assert banner.days_left == 1
    assert days_left(NOW, NOW + timedelta(seconds=1)) == 0


def test_consent_granted_closes_the_window_and_makes_who_knows_whom_enhanced() -> None:
    settings = enabled().record_consent_granted(ADMIN, ("Mail.ReadBasic.All",), NOW + timedelta(days=1))
    assert settings.consent_status() is ConsentStatus.GRANTED
    assert settings.consent_deadline is None
    assert settings.banner(NOW) is None
    assert settings.who_knows_whom_mode == "enhanced"
    assert settings.exchange_data_usable


def test_a_declined_consent_keeps_the_deadline_and_shows_its_banner() -> None:
    settings = enabled().record_consent_declined("access_denied", NOW + timedelta(days=1))
    banner = settings.banner(NOW + timedelta(days=1))
    assert banner is not None
    assert (banner.kind, banner.days_left) == ("consentDeclined", 13)


@pytest.mark.parametrize(("offset", "disabled"), [(timedelta(seconds=-1), False), (timedelta(0), True),
                                                  (timedelta(days=30), True)])
def test_the_deadline_is_exactly_14_times_24_hours(offset: timedelta, disabled: bool) -> None:
    settings = enabled()
    after = settings.auto_disable(NOW + timedelta(days=14) + offset)
    assert (after != settings) is disabled


def test_auto_disable_turns_off_who_knows_whom_and_exchange_but_not_analytics() -> None:
    at = NOW + timedelta(days=14)
    settings = enabled().auto_disable(at)
    assert not settings.who_knows_whom.enabled
    assert not settings.exchange.integration_enabled
    assert settings.relationship_analytics.enabled
    assert settings.consent_status() is ConsentStatus.EXPIRED
    assert settings.auto_disabled_at == at
    assert settings.exchange.purge_requested_at == at
    banner = settings.banner(at)
    assert banner is not None
    assert banner.kind == "autoDisabled"
    assert settings.auto_disable(at + timedelta(hours=1)) == settings  # idempotent


def test_consent_after_auto_disable_switches_nothing_back_on() -> None:
    at = NOW + timedelta(days=14)
    settings = enabled().auto_disable(at).record_consent_granted(ADMIN, (), at + timedelta(days=1))
    assert not settings.who_knows_whom.enabled
    assert not settings.exchange.integration_enabled
    assert settings.consent_status() is ConsentStatus.GRANTED
    banner = settings.banner(at)
    assert banner is not None
    assert banner.kind == "autoDisabled"
    assert "Consent is now in place" in banner.message


def test_consent_before_the_deadline_prevents_the_auto_disable() -> None:
    deadline = NOW + timedelta(days=14)
    settings = enabled().record_consent_granted(ADMIN, (), deadline - timedelta(seconds=1))
    assert settings.auto_disable(deadline) == settings


def test_withdrawal_stops_exchange_use_and_purges() -> None:
    at = NOW + timedelta(days=20)
    settings = enabled().record_consent_granted(ADMIN, (), NOW).record_consent_withdrawn(at)
    assert settings.consent_status() is ConsentStatus.WITHDRAWN
    assert not settings.exchange_data_usable
    assert settings.exchange.purge_requested_at == at
    banner = settings.banner(at)
    assert banner is not None
    assert banner.kind == "consentWithdrawn"
    resumed = settings.set_exchange_integration(True, at)
    assert resumed.consent_status() is ConsentStatus.PENDING


def test_disable_keeps_settings_for_a_later_enable() -> None:
    settings = enabled().update_relationship_analytics(health_display=False, good_min=70, fair_min=30
                                                       ).select_security_roles(("r1",))
    disabled = settings.disable(NOW + timedelta(days=1))
    assert disabled.status is Status.DISABLED
    assert disabled.consent_deadline is None
    assert disabled.banner(NOW) is None
    again = disabled.enable(ADMIN, NOW + timedelta(days=2))
    assert again.relationship_analytics.grading.good_min == 70
    assert again.exchange.security_role_ids == ("r1",)
    assert again.consent_deadline == NOW + timedelta(days=16)


@pytest.mark.parametrize(("good", "fair"), [(40, 60), (50, 50), (60, 0)])
def test_grading_bands_must_be_ordered(good: int, fair: int) -> None:
    with pytest.raises(ValueError, match=r"fairMin|greater"):
        Grading(good_min=good, fair_min=fair)
