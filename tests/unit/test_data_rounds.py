"""The CRM round, the mailbox plan and the mailbox rounds on fakes of their ports: gates before fetching, bounded
steps that continue, at-least-once delivery, deletions, lost positions, throttling, a source that refuses."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from shared.clock import FixedClock
from shared.domain.records import InternalUser, Source
from shared.domain.source_mapping import message_activity_id
from shared.domain.source_state import CrmState, ExchangeSummary, MailboxState, RoundError
from shared.errors import ValidationFailed
from shared.services.background.crm_round import CrmRound
from shared.services.background.mailboxes import MailboxPlan, MailboxRound, mailbox_key
from shared.services.background.scheduler import BackgroundScheduler
from shared.services.background.worker import BackgroundWorker
from shared.services.data_sources import CRM_KEY, SUMMARY_KEY, DataSources
from shared.services.ports import IndexKind, SourceBusy, SourceRefused, WorkKind, WorkMessage
from shared.services.sync import SyncService
from shared.services.tenant_settings import TenantSettingsService
from shared.tenancy import TenantId
from tests.builders import NOW, SELLERS, TENANT, enabled
from tests.fakes import (
    FakeCrmSource,
    FakeMailSource,
    FakeRecords,
    FakeScheduleIndex,
    FakeSettingsRepository,
    FakeSourceState,
    FakeWorkQueue,
)

ENV = "https://contoso.crm4.dynamics.com"
ANN, BOB, CY = "aaaaaaaa-0000-0000-0000-00000000000a", "bbbbbbbb-0000-0000-0000-00000000000b", \
    "cccccccc-0000-0000-0000-00000000000c"
EXCLUDED = "eeeeeeee-0000-0000-0000-00000000000e"


class World:
    def __init__(self, *, groups: tuple[str, ...] = ()) -> None:
        self.clock = FixedClock(NOW)
        self.index = FakeScheduleIndex()
        self.repository = FakeSettingsRepository()
        self.repository.settings[TENANT] = (enabled(groups=groups), "e0")
        self.settings = TenantSettingsService(self.repository, self.clock, self.index)
        self.records = FakeRecords()
        self.queue = FakeWorkQueue()
        self.state = FakeSourceState()
        self.mail = FakeMailSource(page_size=2)
        self.crm = FakeCrmSource(page_size=2)
        self.sync = SyncService(self.settings, self.records, self.clock, self.index)
        args = (self.settings, self.records, self.sync, self.state)
        self.plan = MailboxPlan(*args, lambda: self.mail, self.index, self.queue, self.clock,
                                interval=timedelta(minutes=15))
        self.round = MailboxRound(*args, lambda: self.mail, self.index, self.queue, self.clock, pages_per_step=1,
                                  drop_batch=2)
        self.crm_round = CrmRound(*args, lambda: self.crm, self.index, self.queue, self.clock,
                                  interval=timedelta(hours=1), pages_per_step=3)
        self.worker = BackgroundWorker({w.kind: w for w in (self.plan, self.round, self.crm_round)},
                                       {self.round.kind: self.round})

    def users(self, *users: InternalUser) -> None:
        self.records.put(TENANT, "users", *users, at=NOW)

    def timer(self) -> Counter[str]:
        """The timer's run, then every message (and follow-up) delivered, as the queue triggers would."""
        BackgroundScheduler(self.index, self.queue, self.clock).run()
        return self.pump()

    def pump(self, *, twice: bool = False) -> Counter[str]:
        outcomes: Counter[str] = Counter()
        while self.queue.sent:
            message, _ = self.queue.sent.pop(0)
            if message.kind not in self.worker.works:
                continue  # the insights' update: not these tests' business
            outcomes[self.worker.handle(message)] += 1
            if twice and message.target is not None:
                outcomes["again:" + self.worker.handle(message)] += 1
        return outcomes

    def later(self, minutes: float = 31) -> None:
        self.clock.advance(timedelta(minutes=minutes))

    def mailbox(self, mailbox: str) -> MailboxState | None:
        found = self.state.load(TENANT, mailbox_key(mailbox), MailboxState)
        return None if found is None else found.document

    def exchange(self) -> set[str]:
        return {key.split("|", 1)[1] for key in self.records.live(TENANT, "activities") if key.startswith("exchange|")}


def seller(uid: str, entra: str, **extra: Any) -> InternalUser:
    return InternalUser.model_validate({"id": uid, "version": 1, "email": f"{uid}@contoso.com",
                                        "securityRoleIds": [SELLERS], "entraObjectId": entra, **extra}, strict=False)


def message(item_id: str, internet_id: str, sender: str, to: str, *, minute: int = 0) -> dict[str, Any]:
    sent = (NOW - timedelta(days=3, minutes=-minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"id": item_id, "internetMessageId": internet_id, "subject": "SECRET", "bodyPreview": "SECRET",
            "from": {"emailAddress": {"address": sender}}, "toRecipients": [{"emailAddress": {"address": to}}],
            "sentDateTime": sent, "receivedDateTime": sent, "lastModifiedDateTime": sent, "isDraft": False}


@pytest.fixture
def world() -> World:
    w = World(groups=(EXCLUDED,))
    w.users(seller("ann", ANN), seller("bob", BOB), seller("cy", CY), seller("dee", "d" * 8, optedOut=True),
            seller("max", "m" * 8, securityRoleIds=["r-marketing"]), seller("ned", "n" * 8, active=False))
    w.mail.members[EXCLUDED] = {CY}
    w.index.add(IndexKind.MAILBOX_PLAN, TENANT, NOW)
    return w


# -- the plan -------------------------------------------------------------------------------------------------


def test_the_plan_reads_only_mailboxes_whose_every_gate_is_open(world: World) -> None:
    world.mail.put(ANN, "inbox", message("a1", "<1@x>", "lee@fabrikam.com", "ann@contoso.com"))
    outcomes = world.timer()
    assert outcomes["planned"] == 1
    assert outcomes["mailboxRoundDone"] == 2  # ann and bob
    assert set(world.mail.calls) == {ANN, BOB, "groups"}  # no call for the excluded, opted-out, other role, disabled
    cy = world.records.get(TENANT, "users", "cy")
    assert (cy.group_ids, cy.version) == ((EXCLUDED,), 2)  # the read-time gate knows it too
    summary = world.state.load(TENANT, SUMMARY_KEY, ExchangeSummary)
    assert summary is not None
    assert (summary.document.as_of, summary.document.mailboxes) == (NOW, 2)
    assert (summary.document.synced, summary.document.last_success_at) == (2, NOW)  # the rounds moved it on
    assert summary.document.items_in_last_rounds == 1
    [due] = world.index.of(IndexKind.MAILBOX_PLAN, TENANT)
    assert NOW + timedelta(minutes=7, seconds=30) <= due <= NOW + timedelta(minutes=22, seconds=30)
    assert world.exchange() == {message_activity_id("<1@x>")}


def test_an_unreadable_excluded_group_reads_nobody_and_says_why(world: World) -> None:
    world.mail.fail("groups", SourceRefused("no", status=403, code="Authorization_RequestDenied"))
    assert world.timer()["planFailed"] == 1
    assert world.mail.calls[ANN] == 0
    summary = world.state.load(TENANT, SUMMARY_KEY, ExchangeSummary)
    assert summary is not None
    assert summary.document.plan_error is not None
    assert "GroupMember.Read.All" in summary.document.plan_error.message


def test_a_late_or_repeated_plan_message_changes_nothing(world: World) -> None:
    world.timer()
    calls = dict(world.mail.calls)
    world.index.add(IndexKind.MAILBOX_PLAN, TENANT, NOW - timedelta(minutes=1))  # asked before the plan ran
    assert world.timer()["alreadyDone"] == 1
    assert dict(world.mail.calls) == calls


def test_a_plan_asked_at_the_instant_one_ran_plans_again(world: World) -> None:
    """The CRM round that brings a new seller asks for a plan; one that began at that very instant may have read the
    users before the seller was stored, so it does not count as done."""
    world.timer()
    world.users(seller("eve", "e" * 8))
    world.index.add(IndexKind.MAILBOX_PLAN, TENANT, NOW)
    assert world.timer()["planned"] == 1
    summary = world.state.load(TENANT, SUMMARY_KEY, ExchangeSummary)
    assert summary is not None
    assert summary.document.mailboxes == 3


def test_closed_gates_drop_the_mailboxes_state_in_bounded_steps_and_call_nothing(world: World) -> None:
    for n in range(5):
        world.mail.put(ANN, "inbox", message(f"a{n}", f"<{n}@x>", "lee@fabrikam.com", "ann@contoso.com"))
    world.timer()
    assert len(list(world.state.copies(TENANT, ANN))) == 5
    world.settings.set_exchange_integration(TENANT, "admin", False)
    calls = sum(world.mail.calls.values())
    world.later()
    outcomes = world.timer()
    assert outcomes["dropContinues"] == 2  # two item-map rows a step here
    assert outcomes["dropped"] == 2
    assert world.mailbox(ANN) is None
    assert list(world.state.copies(TENANT, ANN)) == []
    assert sum(world.mail.calls.values()) == calls
    assert len(world.exchange()) == 5  # the data itself goes with the Exchange purge, hidden meanwhile
    world.later()
    world.timer()
    assert world.index.of(IndexKind.MAILBOX_PLAN, TENANT) == []  # nothing left to plan or drop


# -- a mailbox's round ----------------------------------------------------------------------------------------


def test_a_back_fill_goes_in_bounded_steps_and_stores_each_email_once(world: World) -> None:
    shared = message("s1", "<shared@x>", "ann@contoso.com", "bob@contoso.com")
    world.mail.put(ANN, "sentitems", shared)
    world.mail.put(BOB, "inbox", {**shared, "id": "b1", "lastModifiedDateTime": "2026-11-23T12:01:00Z"})
    for n in range(5):
        world.mail.put(ANN, "inbox", message(f"a{n}", f"<{n}@x>", "lee@fabrikam.com", "ann@contoso.com", minute=n))
    outcomes = world.timer()
    assert outcomes["mailboxRoundContinues"] >= 2  # a page of two a step here
    assert len(world.exchange()) == 6
    ann = world.mailbox(ANN)
    assert ann is not None
    assert ann.last_round_items == 6
    assert ann.since == NOW - timedelta(days=365)
    owner = world.records.get(TENANT, "activities", f"exchange|{message_activity_id('<shared@x>')}")
    assert owner.mailbox_owner_id == "bob"  # the newest copy


def test_every_step_delivered_twice_counts_nothing_twice(world: World) -> None:
    for n in range(5):
        world.mail.put(ANN, "inbox", message(f"a{n}", f"<{n}@x>", "lee@fabrikam.com", "ann@contoso.com"))
    BackgroundScheduler(world.index, world.queue, world.clock).run()
    outcomes = world.pump(twice=True)
    assert outcomes["again:alreadyDone"] + outcomes["again:mailboxRoundContinues"] >= 1
    ann = world.mailbox(ANN)
    assert ann is not None
    assert ann.last_round_items == 5
    assert len(world.exchange()) == 5


def test_an_email_leaves_only_when_no_open_mailbox_holds_it_any_more(world: World) -> None:
    shared = message("s1", "<shared@x>", "ann@contoso.com", "bob@contoso.com")
    world.mail.put(ANN, "sentitems", shared)
    world.mail.put(BOB, "inbox", {**shared, "id": "b1"})
    world.timer()
    world.mail.delete(ANN, "sentitems", "s1")
    world.later()
    world.timer()
    assert len(world.exchange()) == 1  # bob still holds it
    world.mail.delete(BOB, "inbox", "b1")
    world.later()
    outcomes = world.timer()
    assert world.exchange() == set()
    assert outcomes["mailboxRoundDone"] == 2
    tombstones = [a for a, _ in world.records.iter_activities(TENANT, removed=True) if a.source is Source.EXCHANGE]
    assert [type(a).__name__ for a in tombstones] == ["RemovedActivity"]


def test_a_copy_held_by_a_mailbox_whose_gates_closed_does_not_keep_an_email(world: World) -> None:
    shared = message("s1", "<shared@x>", "ann@contoso.com", "bob@contoso.com")
    world.mail.put(ANN, "sentitems", shared)
    world.mail.put(BOB, "inbox", {**shared, "id": "b1"})
    world.timer()
    world.users(seller("bob", BOB, version=2, optedOut=True))  # bob opts out: his copy counts for nothing
    world.mail.delete(ANN, "sentitems", "s1")
    world.later()
    world.timer()
    assert world.exchange() == set()


def test_a_lost_position_reads_again_without_duplicates_and_notices_what_went(world: World) -> None:
    for n in range(3):
        world.mail.put(ANN, "inbox", message(f"a{n}", f"<{n}@x>", "lee@fabrikam.com", "ann@contoso.com"))
    world.timer()
    world.mail.delete(ANN, "inbox", "a0")
    world.mail.expire(ANN, "inbox")  # 410: the delta link is refused, the deletion is never reported
    world.later()
    outcomes = world.timer()
    assert outcomes["mailboxRoundDone"] == 2
    assert len(world.exchange()) == 2
    ann = world.mailbox(ANN)
    assert ann is not None
    assert ann.last_error is None
    assert ann.collection("inbox").link is not None


def test_throttling_continues_after_retry_after_and_loses_nothing(world: World) -> None:
    for n in range(3):
        world.mail.put(ANN, "inbox", message(f"a{n}", f"<{n}@x>", "lee@fabrikam.com", "ann@contoso.com"))
    world.mail.fail(ANN, SourceBusy("slow down", status=429, code="ApplicationThrottled", retry_after=30))
    BackgroundScheduler(world.index, world.queue, world.clock).run()
    delays: list[tuple[str | None, timedelta | None]] = []
    while world.queue.sent:
        sent, delay = world.queue.sent.pop(0)
        delays.append((sent.target, delay))
        if sent.kind in world.worker.works:
            world.worker.handle(sent)
    assert (ANN, timedelta(seconds=30)) in delays  # its next step waits as long as Graph asked
    assert len(world.exchange()) == 3
    ann = world.mailbox(ANN)
    assert ann is not None
    assert ann.last_round_items == 3
    assert ann.last_error is None  # the round ended well


def test_a_mailbox_graph_refuses_fails_its_round_in_words_and_the_others_go_on(world: World) -> None:
    world.mail.put(BOB, "inbox", message("b1", "<1@x>", "lee@fabrikam.com", "bob@contoso.com"))
    world.mail.fail(ANN, *[SourceRefused("no", status=403, code="ErrorAccessDenied")] * 3)
    outcomes = world.timer()
    assert outcomes["mailboxRoundFailed"] == 1
    assert outcomes["mailboxRoundDone"] == 1
    ann = world.mailbox(ANN)
    assert ann is not None
    assert ann.last_success_at is None
    assert ann.last_error is not None
    assert ann.last_error.message == "Microsoft Graph refused access to this mailbox (an application access policy?)"
    assert "SECRET" not in ann.model_dump_json()
    assert len(world.exchange()) == 1


# -- the CRM round --------------------------------------------------------------------------------------------

ROOT, COPY = "11111111-0000-0000-0000-000000000001", "11111111-0000-0000-0000-000000000002"
USER, ACCOUNT, OPPORTUNITY = "22222222-0000-0000-0000-000000000001", "33333333-0000-0000-0000-000000000001", \
    "44444444-0000-0000-0000-000000000001"
EMAIL = "55555555-0000-0000-0000-000000000001"


@pytest.fixture
def crm() -> World:
    w = World()
    w.repository.settings[TENANT] = (enabled().set_crm_environment(ENV, NOW), "e1")
    lookup = "@Microsoft.Dynamics.CRM.lookuplogicalname"
    w.crm.put("roles", "roles", {"roleid": ROOT, "name": "Salesperson", "_parentrootroleid_value": ROOT,
                                 "versionnumber": 1}, key="roleid")
    w.crm.put("roles", "roles", {"roleid": COPY, "name": "Salesperson", "_parentrootroleid_value": ROOT,
                                 "versionnumber": 2}, key="roleid")
    w.crm.put("systemuserrolescollection", "systemuserrolescollection", {
        "systemuserroleid": "a1", "systemuserid": USER, "roleid": COPY, "versionnumber": 3}, key="systemuserroleid")
    w.crm.put("systemusers", "systemusers", {
        "systemuserid": USER, "fullname": "Ann", "internalemailaddress": "ann@contoso.com", "isdisabled": False,
        "azureactivedirectoryobjectid": ANN, "versionnumber": 4}, key="systemuserid")
    w.crm.put("accounts", "accounts", {"accountid": ACCOUNT, "name": "Fabrikam", "websiteurl": "fabrikam.com",
                                       "description": "SECRET", "versionnumber": 5}, key="accountid")
    w.crm.put("connections", "connections", {
        "connectionid": "c1", "_record1id_value": OPPORTUNITY, "_record1id_value" + lookup: "opportunity",
        "_record2id_value": USER, "_record2id_value" + lookup: "systemuser", "statecode": 0, "versionnumber": 6},
        key="connectionid")
    w.crm.put("opportunities", "opportunities", {
        "opportunityid": OPPORTUNITY, "_ownerid_value": "99999999-0000-0000-0000-000000000009",
        "_parentaccountid_value": ACCOUNT, "statecode": 0, "createdon": "2026-01-01T00:00:00Z",
        "versionnumber": 7}, key="opportunityid")
    w.crm.put("activityparties", "activityparties", {
        "activitypartyid": "p1", "_activityid_value": EMAIL, "addressused": "ann@contoso.com",
        "participationtypemask": 1, "versionnumber": 8}, key="activitypartyid")
    w.crm.put("activityparties", "activityparties", {
        "activitypartyid": "p2", "_activityid_value": EMAIL, "addressused": "lee@fabrikam.com",
        "participationtypemask": 2, "versionnumber": 9}, key="activitypartyid")
    w.crm.put("emails", "emails", {"activityid": EMAIL, "subject": "SECRET", "senton": "2026-11-20T10:00:00Z",
                                   "statecode": 1, "versionnumber": 10}, key="activityid")
    w.index.add(IndexKind.CRM_ROUND, TENANT, NOW)
    return w


def test_a_crm_round_reads_every_table_in_order_and_derives_what_depends_on_other_rows(crm: World) -> None:
    outcomes = crm.timer()
    assert outcomes["crmRoundContinues"] >= 2  # three pages a step here
    assert outcomes["crmRoundDone"] == 1
    user = crm.records.get(TENANT, "users", USER)
    assert (user.security_role_ids, user.entra_object_id) == ((ROOT,), ANN)  # the business unit's copy: its root
    assert crm.records.get(TENANT, "opportunities", OPPORTUNITY).sales_team_ids == (USER,)
    email = crm.records.get(TENANT, "activities", f"crm|{EMAIL}")
    assert (email.sender, email.to) == ("ann@contoso.com", ("lee@fabrikam.com",))
    assert [r.id for r in crm.records.iter_records(TENANT, "securityRoles")] == [ROOT]
    state = crm.state.load(TENANT, CRM_KEY, CrmState)
    assert state is not None
    assert state.document.last_success_at == NOW
    assert "SECRET" not in str(crm.records.rows) + str(crm.state.docs) + str(crm.state.children)
    assert crm.index.of(IndexKind.CRM_ROUND, TENANT)  # the next round


def test_child_rows_derive_their_records_again_and_deletions_remove(crm: World) -> None:
    crm.timer()
    crm.crm.delete("systemuserrolescollection", "systemuserrolescollection", "a1")
    crm.crm.delete("connections", "connections", "c1")
    crm.crm.put("activityparties", "activityparties", {
        "activitypartyid": "p3", "_activityid_value": EMAIL, "addressused": "kim@fabrikam.com",
        "participationtypemask": 3, "versionnumber": 11}, key="activitypartyid")
    crm.crm.delete("accounts", "accounts", ACCOUNT)
    crm.later(91)
    assert crm.timer()["crmRoundDone"] == 1
    user = crm.records.get(TENANT, "users", USER)
    assert (user.security_role_ids, user.version) == ((), 5)  # a version above the stored one
    assert crm.records.get(TENANT, "opportunities", OPPORTUNITY).sales_team_ids == ()
    assert crm.records.get(TENANT, "activities", f"crm|{EMAIL}").cc == ("kim@fabrikam.com",)
    assert crm.records.get(TENANT, "accounts", ACCOUNT) is None
    state = crm.state.load(TENANT, CRM_KEY, CrmState)
    assert state is not None
    assert (state.document.last_round_items, state.document.last_round_removed) == (3, 1)


def test_an_expired_change_token_reads_the_table_whole_and_stores_nothing_again(crm: World) -> None:
    crm.timer()
    crm.crm.expire("accounts", "accounts")
    crm.later(91)
    assert crm.timer()["crmRoundDone"] == 1
    state = crm.state.load(TENANT, CRM_KEY, CrmState)
    assert state is not None
    assert (state.document.last_round_items, state.document.last_error) == (0, None)
    assert crm.crm.calls["accounts"] == 3  # the full round, the refused link, the full read again


def test_a_crm_step_that_finds_its_state_changed_stops_and_a_late_message_finds_the_round_done(crm: World) -> None:
    BackgroundScheduler(crm.index, crm.queue, crm.clock).run()
    first, _ = crm.queue.sent.pop(0)
    crm.state.conflicts_to_raise = 1
    assert crm.worker.handle(first) == "superseded"
    assert crm.queue.sent == []  # no follow-up from the one that lost
    crm.worker.handle(first)
    crm.pump()
    assert crm.worker.handle(first) == "alreadyDone"


def test_throttled_dataverse_continues_after_retry_after(crm: World) -> None:
    crm.crm.fail("roles", SourceBusy("busy", status=429, code="429", retry_after=12))
    BackgroundScheduler(crm.index, crm.queue, crm.clock).run()
    first, _ = crm.queue.sent.pop(0)
    assert crm.worker.handle(first) == "crmThrottled"
    [(follow_up, delay)] = crm.queue.sent
    assert (follow_up.kind, delay) == (WorkKind.CRM_ROUND, timedelta(seconds=12))
    state = crm.state.load(TENANT, CRM_KEY, CrmState)
    assert state is not None
    assert state.document.last_error is not None
    assert "throttling" in state.document.last_error.message


def test_a_new_environment_url_starts_the_crm_sync_over(crm: World) -> None:
    crm.timer()
    crm.settings.set_crm_environment(TENANT, "admin", "https://fabrikam.crm.dynamics.com/")
    assert crm.index.of(IndexKind.CRM_ROUND, TENANT)[0] == NOW  # asked for at once
    calls = crm.crm.calls["accounts"]
    crm.timer()
    state = crm.state.load(TENANT, CRM_KEY, CrmState)
    assert state is not None
    assert state.document.environment_url == "https://fabrikam.crm.dynamics.com"
    assert crm.crm.calls["accounts"] == calls + 1  # read whole again (one page)


@pytest.mark.parametrize(("url", "loopback", "stored"), [
    ("https://Contoso.crm4.dynamics.com/", False, "https://contoso.crm4.dynamics.com"),
    ("https://127.0.0.1:7074/contoso", True, "https://127.0.0.1:7074/contoso"),
    (None, False, None),
])
def test_the_environment_url_is_validated_and_audited(url: str | None, loopback: bool, stored: str | None) -> None:
    w = World()
    service = TenantSettingsService(w.repository, w.clock, w.index, allow_loopback_sources=loopback)
    if url is None:
        service.set_crm_environment(TENANT, "admin", ENV)
    outcome = service.set_crm_environment(TENANT, "admin", url)
    assert outcome.settings.crm.environment_url == stored
    assert outcome.event is not None
    assert {c.field for c in outcome.event.changes} >= {"crm.environmentUrl"}


@pytest.mark.parametrize("url", ["http://contoso.crm.dynamics.com", "https://contoso.example.com",
                                 "https://127.0.0.1:7074/contoso", "https://contoso.crm.dynamics.com/x?y=1"])
def test_other_environment_urls_are_refused(url: str) -> None:
    w = World()
    with pytest.raises(ValidationFailed) as refused:
        w.settings.set_crm_environment(TENANT, "admin", url)
    assert refused.value.errors[0]["field"] == "environmentUrl"


def test_settings_that_decide_the_rounds_ask_for_them() -> None:
    w = World()
    w.settings.set_crm_environment(TENANT, "admin", ENV)
    assert w.index.of(IndexKind.CRM_ROUND, TENANT) == [NOW]
    w.settings.select_security_roles(TENANT, "admin", [])
    assert w.index.of(IndexKind.MAILBOX_PLAN, TENANT) == [NOW]


def test_the_overview_states_the_sources_in_words() -> None:
    from shared.api.settings_models import overview

    settings = enabled().set_crm_environment(ENV, NOW)
    crm = CrmState(environment_url=ENV, environment_set_at=NOW, last_success_at=NOW, last_round_items=4,
                   last_round_removed=1)
    exchange = ExchangeSummary(as_of=NOW, mailboxes=3, synced=2, failing=1, items_in_last_rounds=7,
                               last_error=RoundError(code="ErrorAccessDenied", message="in words", at=NOW))
    view = overview(settings, NOW, "e1", sources=DataSources(crm, exchange)).model_dump(by_alias=True)
    assert view["crmEnvironmentUrl"] == ENV
    assert view["dataSources"]["crm"]["itemsInLastRound"] == 5
    assert view["dataSources"]["exchange"]["mailboxesSynced"] == 2
    assert view["dataSources"]["exchange"]["lastError"]["message"] == "in words"
    stale = overview(settings.set_crm_environment("https://other.crm.dynamics.com", NOW), NOW, "e2",
                     sources=DataSources(crm, None)).model_dump(by_alias=True)
    assert stale["dataSources"]["crm"]["lastSuccessAt"] is None  # that round was of the previous environment


def test_a_message_naming_a_mailbox_survives_the_queue() -> None:
    sent = WorkMessage(WorkKind.MAILBOX_ROUND, TenantId(TENANT), ((IndexKind.MAILBOX_PLAN, NOW),), "op", ANN)
    assert WorkMessage.from_json(sent.to_json()) == sent
    assert "target" not in WorkMessage(WorkKind.CRM_ROUND, TenantId(TENANT), ()).to_json()


def test_a_message_asking_after_the_last_round_began_gets_a_round_even_with_older_rows(crm: World) -> None:
    crm.timer()
    crm.index.rows.clear()
    crm.index.add(IndexKind.CRM_ROUND, TENANT, NOW - timedelta(minutes=1))  # satisfied by the round that ran
    crm.index.add(IndexKind.CRM_ROUND, TENANT, NOW + timedelta(minutes=1))  # consent came after it began
    crm.later(2)
    assert crm.timer()["crmRoundDone"] == 1
