"""Introducers who consent, on fakes of the ports: each choice (always, askFirst, never), the tenant's default, a
request's answers and its expiry, and who may see or answer what."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.clock import FixedClock
from shared.domain.introductions import REQUEST_LIFETIME
from shared.domain.tenant_settings import TenantSettings
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.services.insights import InsightsService
from shared.services.introductions import IntroductionsService
from shared.services.tenant_settings import TenantSettingsService
from tests.builders import NOW, TENANT, contact, enabled, mail, user
from tests.fakes import (
    FakeInsights,
    FakeIntroductions,
    FakeLedgers,
    FakeRecords,
    FakeScheduleIndex,
    FakeSettingsRepository,
    FakeWorkQueue,
)

LEE = "lee@fabrikam.com"
ANN_OID, BOB_OID, ZOE_OID = "oid-ann", "oid-bob", "oid-zoe"


class World:
    def __init__(self) -> None:
        self.repository = FakeSettingsRepository()
        self.set(enabled(consent=False))
        self.clock = FixedClock(NOW)
        self.records = FakeRecords()
        self.introductions = FakeIntroductions()
        settings = TenantSettingsService(self.repository, self.clock)
        self.insights = InsightsService(settings, self.records, FakeInsights(), self.clock, FakeScheduleIndex(),
                                        FakeWorkQueue(), FakeLedgers(), self.introductions)
        self.service = IntroductionsService(settings, self.insights, self.records, self.introductions, self.clock)
        self.records.put(TENANT, "users", user("ann", entraObjectId=ANN_OID), user("bob", entraObjectId=BOB_OID),
                         user("zoe", entraObjectId=ZOE_OID), at=NOW)
        self.records.put(TENANT, "contacts", contact("lee", LEE), at=NOW)
        self.records.put(TENANT, "activities", *[mail(f"a{n}", "ann@contoso.com", LEE, 3 + n) for n in range(4)],
                         *[mail(f"b{n}", "bob@contoso.com", LEE, 5 + n) for n in range(2)], at=NOW)
        self.insights.recompute(TENANT)

    def set(self, settings: TenantSettings) -> None:
        self.repository.settings[TENANT] = (settings, "e1")

    def listed(self) -> list[str]:
        return [i.user_id for i in self.insights.who_knows_whom(TENANT, "contact", "lee").introducers]

    def ask(self, introducer: str, message: str = "") -> object:
        return self.service.get_introduced(TENANT, "contact", "lee", introducer, requester_id=ZOE_OID,
                                           requester_name="Zoe", message=message)


@pytest.fixture
def world() -> World:
    return World()


def test_always_is_the_default_and_gives_the_draft_at_once(world: World) -> None:
    assert world.service.my_choice(TENANT, ANN_OID).effective == "always"
    result = world.ask("ann")
    assert result.outcome == "draft"  # type: ignore[attr-defined]
    assert result.draft.to == "ann@contoso.com"  # type: ignore[attr-defined]
    assert "Zoe" in result.draft.body  # type: ignore[attr-defined]


def test_ask_first_makes_a_request_and_only_an_accept_gives_the_draft(world: World) -> None:
    world.service.set_my_choice(TENANT, ANN_OID, "askFirst")
    result = world.ask("ann", "We meet Fabrikam next week")
    assert (result.outcome, result.draft) == ("requested", None)  # type: ignore[attr-defined]
    request_id = result.request.request.id  # type: ignore[attr-defined]
    pending = world.service.requests(TENANT, ANN_OID, "introducer", page_size=10, continuation=None)
    assert [(s.request.id, s.status, s.request.message) for s in pending.items] == [
        (request_id, "pending", "We meet Fabrikam next week")]
    assert world.service.request(TENANT, ZOE_OID, request_id).draft is None
    with pytest.raises((Forbidden, NotFound)):
        world.service.decide(TENANT, BOB_OID, request_id, "accepted")  # not the one asked
    accepted = world.service.decide(TENANT, ANN_OID, request_id, "accepted")
    assert accepted.status == "accepted"
    assert accepted.draft is None  # the introducer does not get the requester's draft
    mine = world.service.request(TENANT, ZOE_OID, request_id)
    assert mine.draft is not None
    assert mine.draft.to == "ann@contoso.com"
    assert [e.action for e in mine.request.history] == ["requested", "accepted"]
    with pytest.raises(Conflict):
        world.service.decide(TENANT, ANN_OID, request_id, "declined")  # answered already


def test_a_declined_request_never_gives_the_draft(world: World) -> None:
    world.service.set_my_choice(TENANT, BOB_OID, "askFirst")
    request_id = world.ask("bob").request.request.id  # type: ignore[attr-defined]
    assert world.service.decide(TENANT, BOB_OID, request_id, "declined").status == "declined"
    seen = world.service.request(TENANT, ZOE_OID, request_id)
    assert (seen.status, seen.draft) == ("declined", None)


def test_a_request_expires_after_14_days(world: World) -> None:
    world.service.set_my_choice(TENANT, ANN_OID, "askFirst")
    request_id = world.ask("ann").request.request.id  # type: ignore[attr-defined]
    world.clock.advance(REQUEST_LIFETIME - timedelta(seconds=1))
    assert world.service.request(TENANT, ZOE_OID, request_id).status == "pending"
    world.clock.advance(timedelta(seconds=1))
    assert world.service.request(TENANT, ZOE_OID, request_id).status == "expired"
    with pytest.raises(Conflict):
        world.service.decide(TENANT, ANN_OID, request_id, "accepted")


def test_never_takes_a_colleague_off_every_list_at_once_and_back(world: World) -> None:
    assert world.listed() == ["ann", "bob"]
    world.service.set_my_choice(TENANT, ANN_OID, "never")
    assert world.listed() == ["bob"]
    with pytest.raises(Unprocessable):
        world.ask("ann")
    world.service.set_my_choice(TENANT, ANN_OID, None)  # back to the tenant's default
    assert world.listed() == ["ann", "bob"]


def test_the_admin_s_default_applies_to_those_who_did_not_choose(world: World) -> None:
    world.set(enabled(consent=False).update_who_knows_whom(introducer_default="askFirst"))
    world.service.set_my_choice(TENANT, BOB_OID, "always")
    assert world.ask("ann").outcome == "requested"  # type: ignore[attr-defined]
    assert world.ask("bob").outcome == "draft"  # type: ignore[attr-defined]
    world.set(enabled(consent=False).update_who_knows_whom(introducer_default="never"))
    assert world.listed() == ["bob"]


def test_a_colleague_who_opted_out_since_the_last_computation_is_never_asked(world: World) -> None:
    world.records.put(TENANT, "users", user("ann", entraObjectId=ANN_OID, optedOut=True, version=2), at=NOW)
    with pytest.raises(Unprocessable):
        world.ask("ann")


def test_a_caller_who_is_no_colleague_has_no_choice_to_make(world: World) -> None:
    with pytest.raises(NotFound):
        world.service.my_choice(TENANT, "oid-stranger")
    with pytest.raises(NotFound):
        world.service.request(TENANT, "oid-stranger", "nothing")
