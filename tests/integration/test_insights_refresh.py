"""Incremental refresh: new activities recompute only the records they touch; a full recompute comes daily."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devhost.seed import generate
from shared import bootstrap
from shared.clock import FixedClock
from shared.config import AppConfig
from shared.domain.insights.ledger import recent_from, settled_for
from shared.domain.insights.model import RecordInsight, Variant
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.errors import ConcurrencyConflict, StorageUnavailable
from shared.services.background.steps import ask, next_slot
from shared.services.directory_cache import DirectoryCache
from shared.services.ports import IndexKind, SweepProgress
from shared.services.sync import SyncService
from shared.services.timing import FULL_RECOMPUTE_INTERVAL, WRITE_SETTLE
from shared.storage.insights_repository import (
    ATTENTION_PREFIX,
    RISK_PREFIX,
    InsightCache,
    TableInsights,
    index_rows,
)
from shared.storage.ledger_repository import LedgerCache, TableLedgers
from shared.storage.schedule_index import TableScheduleIndex
from shared.tenancy import TenantId
from tests.background import drain, run_background

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture
def world(config: AppConfig) -> bootstrap.Container:
    return bootstrap.build(dataclasses.replace(config, state_table=f"Refresh{(unique := uuid.uuid4().hex[:16])}",
                                               queue_prefix=f"t{unique}"),
                           clock=FixedClock(NOW))


def _seeded(world: bootstrap.Container, *, consent: bool, accounts: int, sellers: int, seed: int,
            ) -> tuple[TenantId, dict[str, list[dict[str, Any]]]]:
    """A tenant with relationship intelligence on (and Exchange consented if asked), holding a generated dataset."""
    tenant = TenantId(str(uuid.uuid4()))
    settings = world.tenant_settings()
    settings.change(tenant, "a", "p", lambda s, now: s.set_prerequisites(True, "US", now))
    settings.change(tenant, "a", "e", lambda s, now: s.enable(
        "a", now, security_role_ids=tuple(r.id for r in STANDARD_SALES_ROLES)))
    if consent:
        settings.change(tenant, "a", "c", lambda s, now: s.record_consent_granted("a", (), now))
    data = generate(accounts=accounts, sellers=sellers, seed=seed, now=NOW)
    sync = world.sync()
    for kind, items in data.items():
        sync.ingest(tenant, kind, items)
    return tenant, data


def test_new_activities_refresh_only_the_records_they_touch(world: bootstrap.Container) -> None:
    tenant, data = _seeded(world, consent=False, accounts=5, sellers=3, seed=3)
    sync = world.sync()
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)  # the sync has settled
    run_background(world)  # the first computation is a full one
    insights = TableInsights(world.insight_tables)
    before = {(i.entity_type, i.id): i for i in insights.iter(tenant)}
    assert len(before) == 5 * 3 + len(data["contacts"])
    due = [e for e in TableScheduleIndex(world.tables).due(IndexKind.INSIGHTS_RECOMPUTE, NOW + timedelta(days=2))
           if e.tenant_id == tenant]
    # Tomorrow's full recompute is due, on the tenant's daily slot (12 to 36 hours from now).
    assert [e.due for e in due] == [next_slot(tenant, FULL_RECOMPUTE_INTERVAL, world.clock.now())]

    world.clock.advance(timedelta(hours=2))
    contact = next(c for c in data["contacts"] if c["accountId"] == "account-3")
    seller = data["users"][1]
    report = sync.ingest(tenant, "activities", [{
        "id": "fresh-1", "version": 1, "source": "crm", "kind": "phoneCall", "sender": seller["email"],
        "to": [contact["email"]], "start": (NOW + timedelta(hours=1)).isoformat(), "durationMinutes": 12}])
    assert report.stored == 1
    outcome = run_background(world)
    assert outcome.count("refreshed") == 1

    after = {(i.entity_type, i.id): i for i in insights.iter(tenant)}
    changed = {key for key in after if after[key].computed_at != before[key].computed_at}
    assert ("contact", contact["id"]) in changed
    assert ("account", "account-3") in changed
    assert ("account", "account-0") not in changed
    assert len(changed) < len(after) / 2
    assert after[("contact", contact["id"])].crm.kpis.team.phone_calls_made == \
        before[("contact", contact["id"])].crm.kpis.team.phone_calls_made + 1


def _content(insight: RecordInsight) -> tuple[object, ...]:
    """What activities decide (the trend also depends on the previous answer, so it is left out)."""
    def variant(v: Variant | None) -> object:
        return None if v is None else (v.kpis, v.health.score, v.health.state, v.health.factors)

    return (variant(insight.crm), variant(insight.with_exchange), insight.introducers_basic,
            insight.introducers_enhanced)


def test_a_refresh_gives_what_a_full_recompute_gives(world: bootstrap.Container) -> None:
    tenant, data = _seeded(world, consent=True, accounts=8, sellers=4, seed=5)
    sync = world.sync()
    insights = world.insights()
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)
    full = insights.recompute(tenant)
    world.clock.advance(timedelta(hours=1))
    contact = next(c for c in data["contacts"] if c["accountId"] == "account-2")
    seller, lead = data["users"][2], data["leads"][5]
    at = (NOW + timedelta(minutes=30)).isoformat()
    delta = [
        {"id": "d-mail", "version": 1, "source": "exchange", "kind": "email", "mailboxOwnerId": seller["id"],
         "sender": contact["email"], "to": [seller["email"]], "start": at, "threadId": "t-d"},
        {"id": "d-task", "version": 1, "source": "crm", "kind": "task", "sender": seller["email"], "start": at,
         "regarding": {"type": "opportunity", "id": "opp-6"}},
        {"id": "d-lead", "version": 1, "source": "crm", "kind": "phoneCall", "sender": seller["email"],
         "to": [lead["email"]], "start": at, "durationMinutes": 7},
        {"id": "d-stranger", "version": 1, "source": "crm", "kind": "email", "sender": seller["email"],
         "to": [f"someone.new@{data['accounts'][3]['emailDomains'][0]}"], "start": at},  # only the company knows
    ]
    assert sync.ingest(tenant, "activities", delta).stored == 4
    refreshed = insights.refresh(tenant)
    assert 0 < refreshed.records < full.records

    after_refresh = {(i.entity_type, i.id): i for i in TableInsights(world.insight_tables).iter(tenant)}
    changed = {k for k, i in after_refresh.items() if i.computed_at == world.clock.now()}
    assert {("contact", contact["id"]), ("account", "account-2"), ("opportunity", "opp-6"),
            ("lead", lead["id"]), ("account", "account-3")} <= changed
    insights.recompute(tenant)
    after_full = {(i.entity_type, i.id): i for i in TableInsights(world.insight_tables).iter(tenant)}
    for key in changed:
        assert _content(after_refresh[key]) == _content(after_full[key]), key
    for key in after_full.keys() - changed:  # the others: nothing new about them (time alone moves scores)
        for old, new in ((after_refresh[key].crm, after_full[key].crm),
                         (after_refresh[key].with_exchange, after_full[key].with_exchange)):
            assert old is not None
            assert new is not None
            assert old.kpis.activities == new.kpis.activities, key

    # What was stored just before a computation began is read once more (a write stamped earlier may commit
    # later), and the writes already applied are known: nothing to apply or compute again.
    world.clock.advance(WRITE_SETTLE)
    assert insights.refresh(tenant).records == 0
    assert insights.refresh(tenant).records == 0


def test_a_call_stamped_before_a_computation_but_stored_after_it_is_not_missed(world: bootstrap.Container,
                                                                              monkeypatch: pytest.MonkeyPatch,
                                                                              ) -> None:
    """A sync call stamps its rows with the moment it began and may commit them long after: a computation that
    reads the log meanwhile must leave its mark before that stamp (the call is registered as under way), so that
    the next refresh finds them; once no call is under way, the mark follows the log."""
    tenant, data = _seeded(world, consent=False, accounts=4, sellers=2, seed=8)
    insights = world.insights()
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(timedelta(hours=1))
    insights.recompute(tenant)
    contact = next(c for c in data["contacts"] if c["accountId"] == "account-1")
    before = insights.record(tenant, "contact", contact["id"]).insight.crm
    stalled, go = threading.Event(), threading.Event()
    records = world.records  # (a new one each time)
    write = records.write

    def slow_write(*args: Any, **kwargs: Any) -> None:
        stalled.set()
        assert go.wait(30)
        write(*args, **kwargs)

    monkeypatch.setattr(records, "write", slow_write)
    sync = SyncService(world.tenant_settings(), records, world.clock, world.index)
    began = world.clock.now()
    with ThreadPoolExecutor(max_workers=1) as pool:
        call = pool.submit(sync.ingest, tenant, "activities", [{
            "id": "late-1", "version": 1, "source": "crm", "kind": "phoneCall", "sender": data["users"][0]["email"],
            "to": [contact["email"]], "start": NOW.isoformat(), "durationMinutes": 5}])
        assert stalled.wait(30)
        world.clock.advance(timedelta(minutes=5))
        assert world.sync().ingest(tenant, "activities", [{  # a later call, stored at once
            "id": "later-1", "version": 1, "source": "crm", "kind": "phoneCall", "sender": data["users"][0]["email"],
            "to": [contact["email"]], "start": NOW.isoformat(), "durationMinutes": 5}]).stored == 1
        insights.recompute(tenant)  # it reads the log while the first call is under way
        mark = TableInsights(world.insight_tables).refreshed_through(tenant)
        assert mark is not None
        assert mark < began
        go.set()
        assert call.result().stored == 1
    world.clock.advance(timedelta(minutes=1))
    assert insights.refresh(tenant).records > 0
    after = insights.record(tenant, "contact", contact["id"]).insight.crm
    assert before is not None
    assert after is not None
    assert after.kpis.team.phone_calls_made == before.kpis.team.phone_calls_made + 2
    # No call is under way: the mark moves up to the newest row read (not WRITE_SETTLE before this refresh).
    assert TableInsights(world.insight_tables).refreshed_through(tenant) == began + timedelta(minutes=5)
    assert world.records.writing_since(tenant, world.clock.now() - WRITE_SETTLE) == []


def test_a_call_registered_as_under_way_reads_back_until_it_ends_or_expires(world: bootstrap.Container) -> None:
    tenant, other = TenantId(str(uuid.uuid4())), TenantId(str(uuid.uuid4()))
    records = world.records
    first = records.begin_writing(tenant, NOW)
    records.begin_writing(tenant, NOW + timedelta(seconds=1))
    records.begin_writing(other, NOW)
    assert records.writing_since(tenant, NOW - WRITE_SETTLE) == [NOW, NOW + timedelta(seconds=1)]
    records.end_writing(tenant, first)
    records.end_writing(tenant, first)  # (ended twice: harmless)
    assert records.writing_since(tenant, NOW - WRITE_SETTLE) == [NOW + timedelta(seconds=1)]
    assert records.writing_since(tenant, NOW + timedelta(seconds=2)) == []  # expired: deleted
    assert records.writing_since(tenant, NOW - WRITE_SETTLE) == []
    assert records.writing_since(other, NOW - WRITE_SETTLE) == [NOW]


def test_needing_attention_pages_from_the_index_in_the_order_a_scan_gives(world: bootstrap.Container) -> None:
    tenant, data = _seeded(world, consent=True, accounts=12, sellers=4, seed=9)
    insights = world.insights()
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)
    insights.recompute(tenant)
    settings = world.tenant_settings()

    def paged() -> list[str]:
        ids, token = [], None
        while True:
            page = insights.list_records(tenant, "contact", needs_attention=True, page_size=3, continuation=token)
            ids += [v.insight.id for v in page.items]
            token = page.continuation
            if token is None:
                return ids

    def scanned() -> list[str]:
        now = settings.current(tenant).settings
        flagged = [i for i in TableInsights(world.insight_tables).iter(tenant, "contact") if i.needs_attention(now)]
        return [i.id for i in sorted(flagged, key=lambda i: i.attention_order(now))]

    assert paged() == scanned()
    assert len(scanned()) > 3
    settings.change(tenant, "a", "roles", lambda s, now: s.select_security_roles(("r-none",)))  # another variant
    assert paged() == scanned()
    world.clock.advance(timedelta(hours=2))
    flagged = scanned()[0]  # a call today lifts the worst record (recency): it moves in the index
    email = next(c["email"] for c in data["contacts"] if c["id"] == flagged)
    assert world.sync().ingest(tenant, "activities", [{
        "id": f"att-{n}", "version": 1, "source": "crm", "kind": "phoneCall", "sender": data["users"][0]["email"],
        "to": [email], "start": (world.clock.now() - timedelta(hours=n)).isoformat(), "durationMinutes": 3}
        for n in range(1, 6)]).stored == 5
    assert insights.refresh(tenant).records > 0
    assert paged() == scanned()
    # The refresh replaced the moved record's index rows (it knew them from the insight it read): none is left over.
    stored = {row for i in TableInsights(world.insight_tables).iter(tenant) for row in index_rows(i)}
    indexed = {e.row_key for prefix in (ATTENTION_PREFIX, RISK_PREFIX)
               for e in world.insight_tables.iter_partition(tenant, row_key_prefix=prefix)}
    assert indexed == stored
    # The daily recompute under the new gates rewrites only the index rows that differ, properties included.
    insights.recompute(tenant)
    assert paged() == scanned()
    expected = {row: p for i in TableInsights(world.insight_tables).iter(tenant) for row, p in index_rows(i).items()}
    kept = {e.row_key: {k: v for k, v in e.properties.items() if k in ("Fp", "HasX")}
            for prefix in (ATTENTION_PREFIX, RISK_PREFIX)
            for e in world.insight_tables.iter_partition(tenant, row_key_prefix=prefix)}
    assert kept == expected


def test_one_query_of_every_ledger_reads_what_an_insight_reads_of_a_record_read_alone(
        world: bootstrap.Container) -> None:
    tenant, _ = _seeded(world, consent=True, accounts=6, sellers=3, seed=4)
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)
    world.insights().recompute(tenant)
    ledgers = TableLedgers(world.insight_tables)
    keys = sorted({(e.row_key.split("|")[1], e.row_key.split("|")[2])
                   for e in world.insight_tables.iter_partition(tenant, row_key_prefix="lg|", select=["Period"])})
    assert len(keys) > 10
    keys.append(("contact", "never-computed"))
    since = recent_from(world.clock.now())
    one_by_one, at_once = ledgers.read_many(tenant, keys, since), ledgers.read_all(tenant, keys, since)
    assert list(at_once) == keys
    for key in keys:
        alone, viewed = one_by_one[key], at_once[key]
        assert alone.complete, key
        assert not viewed.complete, key
        assert not viewed.partials, key
        assert (viewed.months, viewed.etags) == (alone.months, alone.etags), key
        assert viewed.settled_from == since, key
        assert settled_for(viewed, since) == settled_for(alone, since), key
    viewed = at_once[keys[0]]
    assert viewed.layout is not None  # (what an edit of its recent periods writes back)
    viewed.settled = {}
    with pytest.raises(ValueError, match="without its partials"):
        ledgers.write(tenant, keys[0], viewed, [])  # what else a view holds is never written back


def test_a_pass_once_a_quarter_went_by_settles_every_ledger_again(world: bootstrap.Container) -> None:
    tenant, _ = _seeded(world, consent=True, accounts=6, sellers=3, seed=4)
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)
    world.insights().recompute(tenant)
    before = recent_from(world.clock.now())
    world.clock.advance(timedelta(days=92))
    since = recent_from(world.clock.now())
    assert since > before
    settled_from = {e.row_key: json.loads(e.properties["D0"])["f"] for e in  # type: ignore[arg-type]
                    world.insight_tables.iter_partition(tenant, row_key_prefix="lg|", at_least=("Period", "~"))
                    if e.properties["Period"] == "~"}
    assert settled_from
    assert set(settled_from.values()) == {before}
    _, entity_type, record_id, _ = next(iter(settled_from)).split("|")
    key = (entity_type, record_id)
    assert TableLedgers(world.insight_tables).read_all(tenant, [key], since)[key].complete  # read whole: what
    # it settled is a quarter old

    world.insights().recompute(tenant)

    settled_from = {e.row_key: json.loads(e.properties["D0"])["f"] for e in  # type: ignore[arg-type]
                    world.insight_tables.iter_partition(tenant, row_key_prefix="lg|", at_least=("Period", "~"))
                    if e.properties["Period"] == "~"}
    assert set(settled_from.values()) == {since}


def _as_read(state: Any, like: Any = None) -> dict[str, Any]:
    """What a read gives, but how it knows the row's layout; of a record read without its partials (`like`), what
    such a read holds."""
    seen = {name: value for name, value in dataclasses.asdict(state).items() if name != "layout"}
    if like is not None and not like.complete:
        seen |= {"partials": {}, "base": {}, "complete": False}
    return seen


@pytest.mark.parametrize("cached", [False, True])
def test_a_bulk_read_for_an_update_reads_what_a_read_a_record_reads(world: bootstrap.Container, cached: bool,
                                                                      ) -> None:
    tenant, _ = _seeded(world, consent=True, accounts=6, sellers=3, seed=4)
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)
    world.insights().recompute(tenant)
    rows = [e.row_key.split("|") for e in world.insight_tables.iter_partition(tenant, row_key_prefix="lg|",
                                                                              select=["Period"])]
    since = recent_from(world.clock.now())
    # Each record's edits: every quarter it holds facts in, old ones included, and one quarter with none.
    edits: dict[Any, list[str]] = {}
    for _, entity_type, record_id, period in rows:
        edits.setdefault((entity_type, record_id), ["2099Q1"])
        if period not in ("~", "!"):
            edits[(entity_type, record_id)].append(period)
    edits[("contact", "never-computed")] = [since]
    assert any(p < since for periods in edits.values() for p in periods)
    plain = TableLedgers(world.insight_tables)
    expected = {key: plain.read(tenant, key, since, months, for_update=True) for key, months in edits.items()}
    ledgers = TableLedgers(world.insight_tables, LedgerCache() if cached else None)
    if cached:  # what a daily recompute leaves: the recent quarters, kept
        ledgers.read_all(tenant, sorted(edits), since)
    found = ledgers.read_for_update(tenant, edits, since, records=len(edits))  # one query
    assert sorted(found) == sorted(edits)
    for key in edits:
        assert _as_read(found[key]) == _as_read(expected[key], like=found[key]), key
    one_by_one = plain.read_for_update(tenant, edits, since, records=10**6)  # too few of them: point reads
    assert {k: _as_read(v) for k, v in one_by_one.items()} == {k: _as_read(v) for k, v in expected.items()}
    # Only if it edits its recent periods alone may a record come without its partials (read for an insight).
    lean = {key for key, state in found.items() if not state.complete}
    assert all(min(edits[key]) >= since for key in lean)
    recent = {key: [since] for key in sorted(edits) if key[1] != "never-computed"}
    for bulk in (True, False):
        if cached:  # (an update takes what it reads out of the cache)
            ledgers.read_all(tenant, sorted(recent), since)
        found = ledgers.read_for_update(tenant, recent, since, records=len(recent) if bulk else 10**6)
        assert all(not state.complete for state in found.values()) == (cached or bulk)
        for key, state in found.items():
            assert _as_read(state) == _as_read(plain.read(tenant, key, since, [since]), like=state), key
    if cached:  # kept without its partials, then rewritten by another worker: read again, not completed
        key = next(k for k in sorted(edits) if k[1] != "never-computed")
        ledgers.read_all(tenant, [key], since)
        other = plain.read(tenant, key, since, for_update=True)
        plain.write(tenant, key, other, [])
        again = ledgers.read(tenant, key, since, for_update=True)
        assert again.complete
        assert again.etags["~"] == other.etags["~"]


def test_the_ledgers_mark_holds_thousands_of_applied_log_entries(world: bootstrap.Container) -> None:
    tenant = TenantId(str(uuid.uuid4()))
    ledgers = TableLedgers(world.insight_tables)
    seen = {f"log|{i:017d}|{uuid.uuid4().hex[:12]}" for i in range(5_000)}  # past one string property's size
    ledgers.mark_built(tenant, NOW, seen)
    assert ledgers.built_through(tenant) == (NOW, frozenset(seen))
    ledgers.mark_built(tenant, NOW + timedelta(minutes=1), ["log|1"])  # fewer chunks: the others go
    assert ledgers.built_through(tenant) == (NOW + timedelta(minutes=1), frozenset({"log|1"}))
    world.insight_tables.upsert(tenant, "ledgers-meta", {"BuiltThrough": NOW, "Seen": '["log|2"]'})
    assert ledgers.built_through(tenant) == (NOW, frozenset({"log|2"}))  # as marked before the chunks


def _ledger_rows(world: bootstrap.Container, tenant: TenantId) -> dict[str, Any]:
    """Every ledger row's groups of properties (a quarter's facts; a summary's settled partials, horizon and base,
    each period's partial), decoded."""
    def groups(properties: dict[str, Any]) -> dict[str, Any]:
        return {name[:-6]: json.loads("".join(str(properties[f"{name[:-6]}{i}"]) for i in range(count)))
                for name, count in properties.items() if name.endswith("Chunks") and count}

    return {e.row_key: groups(e.properties) for e in world.insight_tables.iter_partition(tenant, row_key_prefix="lg|")}


@pytest.mark.parametrize("after_a_pass", [False, True])
def test_two_workers_with_their_own_cache_of_the_aggregates_keep_them_as_a_rebuild_gives(
        world: bootstrap.Container, after_a_pass: bool) -> None:
    """Each worker process starts an edit from the ledgers it wrote last (or, after a pass over every record, from
    what it read of them for the insights, without their partials); the other's writes make those stale, and the
    ETag-checked write must then fail, read again and apply again: the stored ledgers equal a rebuild's."""
    tenant, data = _seeded(world, consent=True, accounts=6, sellers=3, seed=11)
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)
    world.insights().recompute(tenant)
    if after_a_pass:
        world.clock.advance(timedelta(hours=1))
        world.insights().recompute(tenant)
    one, other = world, dataclasses.replace(world, ledger_cache=LedgerCache(), directory_cache=DirectoryCache(),
                                            insight_cache=InsightCache())
    contacts = [c for c in data["contacts"] if c["accountId"] in ("account-1", "account-2")]
    seller = data["users"][0]

    def calls(n: int) -> list[dict[str, Any]]:
        at = world.clock.now() - timedelta(minutes=5)
        return [{"id": f"w{n}-{c['id']}", "version": 1, "source": "crm", "kind": "phoneCall",
                 "sender": seller["email"], "to": [c["email"]], "start": at.isoformat(), "durationMinutes": n}
                for c in contacts]

    for n, worker in enumerate((one, other, one, one, other, one), 1):
        world.clock.advance(timedelta(minutes=20))
        assert worker.sync().ingest(tenant, "activities", calls(n)).stored == len(contacts)
        assert worker.insights().refresh(tenant).records >= len(contacts)
        stored = TableInsights(world.insight_tables).iter(tenant)
        written = {i.key for i in stored if i.computed_at == world.clock.now()}
        assert {("contact", c["id"]) for c in contacts} <= written  # each round's, over the other worker's
    assert len(one.ledger_cache) > 0  # both started edits from their caches
    assert len(other.ledger_cache) > 0
    assert len(one.insight_cache) > 0
    stored = list(TableInsights(world.insight_tables).iter(tenant))
    indexed = {e.row_key for prefix in (ATTENTION_PREFIX, RISK_PREFIX)
               for e in world.insight_tables.iter_partition(tenant, row_key_prefix=prefix)}
    assert indexed == {row for i in stored for row in index_rows(i)}  # each write replaced the rows it found
    touched = {i.key: _content(i) for i in stored if i.computed_at == world.clock.now()}
    assert len(touched) >= len(contacts)
    kept = _ledger_rows(world, tenant)
    one.insights().recompute(tenant)  # every record from those ledgers, at this moment
    refreshed = {i.key: _content(i) for i in TableInsights(world.insight_tables).iter(tenant)}

    world.insight_tables.delete(tenant, "ledgers-meta")  # never built: the next computation rebuilds them
    fresh = dataclasses.replace(world, ledger_cache=LedgerCache())
    fresh.insights().recompute(tenant)
    assert _ledger_rows(world, tenant) == kept
    rebuilt = {i.key: _content(i) for i in TableInsights(world.insight_tables).iter(tenant)}
    assert rebuilt == refreshed
    assert {key: rebuilt[key] for key in touched} == touched  # the last refresh wrote what a rebuild gives


def test_a_worker_loads_the_directory_again_once_another_has_written_records(world: bootstrap.Container) -> None:
    tenant, data = _seeded(world, consent=False, accounts=3, sellers=2, seed=12)
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)
    world.insights().recompute(tenant)  # this worker keeps the directory it loaded
    other = dataclasses.replace(world, ledger_cache=LedgerCache(), directory_cache=DirectoryCache())
    contact = data["contacts"][0]
    assert other.sync().ingest(tenant, "contacts", [{**contact, "version": 2, "fullName": "Renamed"}]).stored == 1
    world.clock.advance(timedelta(minutes=20))
    world.insights().refresh(tenant)
    renamed = TableInsights(world.insight_tables).get(tenant, "contact", contact["id"])
    assert renamed is not None
    assert renamed.name == "Renamed"


def _race(world: bootstrap.Container, seed: int) -> tuple[TenantId, dict[str, Any], Any, Any]:
    """A built tenant, one of its contacts, a way to log a call to them, and a second worker process."""
    tenant, data = _seeded(world, consent=False, accounts=3, sellers=2, seed=seed)
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)
    world.insights().recompute(tenant)
    contact, seller = data["contacts"][0], data["users"][0]

    def call(n: int) -> list[dict[str, Any]]:
        return [{"id": f"race-{n}", "version": 1, "source": "crm", "kind": "phoneCall", "sender": seller["email"],
                 "to": [contact["email"]], "start": (world.clock.now() - timedelta(minutes=5)).isoformat(),
                 "durationMinutes": n}]

    other = dataclasses.replace(world, ledger_cache=LedgerCache(), directory_cache=DirectoryCache(),
                                insight_cache=InsightCache())
    return tenant, contact, call, other


def _stored_insights(insights: TableInsights, tenant: TenantId) -> dict[Any, Any]:
    """Every stored insight of the tenant, with its ETag (read in one query)."""
    return insights.previous(tenant, [i.key for i in insights.iter(tenant)], records=0)


def _once_after(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, meanwhile: Callable[[], None],
                ) -> list[bool]:
    """Runs `meanwhile` right after the first call of `target.name` returns; the list says whether it ran."""
    original, done = getattr(target, name), []

    def call(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if not done:
            done.append(True)
            meanwhile()
        return result

    monkeypatch.setattr(target, name, call)
    return done


def _calls(world: bootstrap.Container, tenant: TenantId, contact: dict[str, Any]) -> int:
    stored = TableInsights(world.insight_tables).get(tenant, "contact", contact["id"])
    assert stored is not None
    return stored.crm.kpis.team.phone_calls_made


def test_a_refresh_that_computed_from_older_aggregates_does_not_replace_a_newer_insight(
        world: bootstrap.Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between a worker's write of the aggregates and its write of the insights, another applies a newer call and
    writes its insight: the first worker's insight, computed without that call, must not land over it."""
    tenant, contact, call, other = _race(world, 13)
    before = _calls(world, tenant, contact)
    world.clock.advance(timedelta(minutes=20))
    assert world.sync().ingest(tenant, "activities", call(1)).stored == 1
    # a worker that has not computed this tenant yet (nothing of it in its caches)
    slow = dataclasses.replace(world, ledger_cache=LedgerCache(), directory_cache=DirectoryCache(),
                               insight_cache=InsightCache()).insights()

    def meanwhile() -> None:
        assert other.sync().ingest(tenant, "activities", call(2)).stored == 1
        other.insights().refresh(tenant)
        assert _calls(world, tenant, contact) == before + 2

    done = _once_after(monkeypatch, slow._ledgers, "write_many", meanwhile)
    slow.refresh(tenant)
    assert done
    assert _calls(world, tenant, contact) == before + 2


def test_the_daily_recompute_does_not_replace_an_insight_written_from_newer_aggregates_meanwhile(
        world: bootstrap.Container, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant, contact, call, other = _race(world, 14)
    before = _calls(world, tenant, contact)
    world.clock.advance(timedelta(hours=1))
    daily = world.insights()

    def meanwhile() -> None:
        assert other.sync().ingest(tenant, "activities", call(1)).stored == 1
        other.insights().refresh(tenant)

    done = _once_after(monkeypatch, daily._ledgers, "read_all", meanwhile)
    report = daily.recompute(tenant)
    assert done
    assert _calls(world, tenant, contact) == before + 1
    stored = list(TableInsights(world.insight_tables).iter(tenant))
    assert len(stored) == report.records
    indexed = {e.row_key for prefix in (ATTENTION_PREFIX, RISK_PREFIX)
               for e in world.insight_tables.iter_partition(tenant, row_key_prefix=prefix)}
    assert indexed == {row for i in stored for row in index_rows(i)}


def test_an_insight_update_rewrites_an_index_row_whose_name_stays_but_properties_change(
        world: bootstrap.Container) -> None:
    tenant, _, _, _ = _race(world, 15)
    insights = TableInsights(world.insight_tables)
    stored = _stored_insights(insights, tenant)
    key, found = next((k, v) for k, v in stored.items() if any("|c|-|" in r for r in index_rows(v.document)))
    moved = found.document.model_copy(update={"gate_fingerprint": "another"})  # the CRM row's name has no fp
    assert insights.update(tenant, [moved], previous={key: found}) == []
    rows = {e.row_key: e.properties for e in world.insight_tables.iter_partition(
        tenant, row_key_prefix=ATTENTION_PREFIX) if e.row_key.endswith(f"|{key[1]}")}
    assert {r: p["Fp"] for r, p in rows.items() if "|c|-|" in r} == {
        r: "another" for r in index_rows(moved) if "|c|-|" in r}


@pytest.mark.parametrize("cached", [False, True])
def test_a_bulk_read_of_previous_insights_reads_what_point_reads_read(world: bootstrap.Container, cached: bool,
                                                                       ) -> None:
    tenant, _, _, _ = _race(world, 17)
    stored = _stored_insights(TableInsights(world.insight_tables), tenant)
    keys = [*sorted(stored)[::2], ("contact", "never-computed")]
    expected = TableInsights(world.insight_tables).previous(tenant, keys, records=10**6)  # point reads
    insights = TableInsights(world.insight_tables, InsightCache() if cached else None)
    if cached:  # what this worker wrote last stands in for a read
        insights.update(tenant, [stored[k].document for k in keys[:5]])
    found = insights.previous(tenant, keys, records=len(keys))  # one query
    assert list(found) == [k for k in keys if k in stored]
    assert {k: v.document for k, v in found.items()} == {k: v.document for k, v in expected.items()}
    if not cached:
        assert {k: v.etag for k, v in found.items()} == {k: v.etag for k, v in expected.items()}


def test_the_daily_recompute_in_chunks_gives_what_it_gives_at_once(world: bootstrap.Container,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every record is computed in chunks of neighbours (their insights and ledgers read by range): the same
    insights, index and domain rows as in one chunk; a record that is gone loses its rows."""
    import shared.services.insights as service

    tenant, data = _seeded(world, consent=True, accounts=6, sellers=3, seed=18)
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)
    world.insights().recompute(tenant)
    gone = data["contacts"][0]["id"]
    assert world.sync().remove(tenant, "contacts", [gone]).removed == 1

    def stored() -> tuple[dict[Any, Any], set[str], dict[str, Any]]:
        rows = {e.row_key: e.properties for e in world.insight_tables.iter_partition(tenant)}
        insights = {i.key: _content(i) for i in TableInsights(world.insight_tables).iter(tenant)}
        return insights, {r for r in rows if r.startswith((ATTENTION_PREFIX, RISK_PREFIX))}, {
            r: p for r, p in rows.items() if r.startswith("wkw-domain|")}

    world.clock.advance(timedelta(hours=1))
    monkeypatch.setattr(service, "RECOMPUTE_CHUNK", 7)
    report = dataclasses.replace(world, ledger_cache=LedgerCache(), insight_cache=InsightCache()).insights(
        ).recompute(tenant)
    chunked = stored()
    assert ("contact", gone) not in chunked[0]
    assert len(chunked[0]) == report.records > 4 * 7
    assert chunked[1] == {row for i in TableInsights(world.insight_tables).iter(tenant) for row in index_rows(i)}
    assert chunked[2]
    monkeypatch.setattr(service, "RECOMPUTE_CHUNK", 10_000)
    world.insights().recompute(tenant)
    assert stored() == chunked


def test_the_daily_recompute_runs_in_steps_on_the_queue_and_gives_what_one_step_gives(
        world: bootstrap.Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each step computes chunks of records until its time is spent, saves where the pass got to and sends the
    next; the recompute is done after the last, and the insights end as one step gives them."""
    import shared.services.insights as service

    tenant, _ = _seeded(world, consent=True, accounts=6, sellers=3, seed=23)
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)
    world.insights().recompute(tenant)
    world.clock.advance(timedelta(days=1))
    monkeypatch.setattr(service, "RECOMPUTE_CHUNK", 7)
    monkeypatch.setattr(service, "RECOMPUTE_STEP_SECONDS", 0.0)  # one chunk a step
    assert world.insights().request_recompute(tenant).state == "queued"
    outcomes = drain(world, worker=dataclasses.replace(world, ledger_cache=LedgerCache(),
                                                       insight_cache=InsightCache()).worker())
    records = len(_insight_contents(world, tenant))
    assert outcomes.count("recomputeContinues") == -(-records // 7) - 1
    assert outcomes.count("recomputed") == 1
    status = world.insights().recompute_status(tenant)
    assert status.state == "done"
    assert status.records == records
    stepped = _insight_contents(world, tenant)
    monkeypatch.setattr(service, "RECOMPUTE_CHUNK", 10_000)
    monkeypatch.setattr(service, "RECOMPUTE_STEP_SECONDS", 240.0)
    report = dataclasses.replace(world, ledger_cache=LedgerCache(), insight_cache=InsightCache()).insights(
        ).recompute(tenant)
    assert not report.sweeping
    assert report.records == records
    assert _insight_contents(world, tenant) == stepped


def test_a_duplicate_step_of_the_daily_recompute_stops_at_its_save_and_a_pass_under_way_is_never_begun_again(
        world: bootstrap.Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two deliveries of one step compute the same chunk: the one that saves second stops (its writes were
    conditional: what it wrote is computed from the aggregates as they stand). A step asked after the pass began
    continues it; once it ended, a step asked before it began does nothing and one asked after begins another."""
    import shared.services.insights as service

    tenant, _, _, _ = _race(world, 24)
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(timedelta(days=1))
    monkeypatch.setattr(service, "RECOMPUTE_CHUNK", 3)
    monkeypatch.setattr(service, "RECOMPUTE_STEP_SECONDS", 0.0)
    asked = world.clock.now()

    def worker() -> service.InsightsService:
        return dataclasses.replace(world, ledger_cache=LedgerCache(), insight_cache=InsightCache()).insights()

    def progress() -> SweepProgress:
        found, _ = TableInsights(world.insight_tables).sweep_progress(tenant)
        assert found is not None
        return found

    first, duplicate, other = worker(), worker(), worker()
    assert first.recompute(tenant, asked).sweeping
    begun = progress()
    assert begun.began == asked
    assert begun.after is not None

    done = _once_after(monkeypatch, duplicate._insights, "in_range",
                       lambda: other.recompute(tenant, asked))  # the same step, delivered twice
    assert duplicate.recompute(tenant, asked).superseded
    assert done
    moved = progress()
    assert moved.after is not None
    assert moved.after > begun.after

    world.clock.advance(timedelta(minutes=1))
    later = world.clock.now()
    report = first.recompute(tenant, later)  # asked after the pass began: it goes on
    assert report.sweeping
    assert report.pass_began == asked
    assert progress().after > moved.after
    while report.sweeping:
        report = first.recompute(tenant, later)
    assert report.pass_began == asked
    ended = progress()
    assert ended.ended is not None
    assert ended.records == len(_insight_contents(world, tenant))
    assert first.recompute(tenant, asked).records == 0  # (that pass ended: nothing left to do)
    stepped = _insight_contents(world, tenant)
    assert first.recompute(tenant, later).pass_began == later  # a new pass for what was asked after it began
    monkeypatch.setattr(service, "RECOMPUTE_STEP_SECONDS", 240.0)
    assert not worker().recompute(tenant).sweeping  # (a pass in one step, now)
    assert _insight_contents(world, tenant) == stepped


def test_the_insight_cache_is_bounded_by_what_its_insights_take_stored(world: bootstrap.Container) -> None:
    tenant, _, _, _ = _race(world, 19)
    stored = _stored_insights(TableInsights(world.insight_tables), tenant)
    sizes = {key: sum(len(v) for v in TableInsights._properties(found.document).values() if isinstance(v, str))
             for key, found in stored.items()}
    cache = InsightCache(max_stored_chars=sum(sorted(sizes.values())[:10]))
    insights = TableInsights(world.insight_tables, cache)
    insights.update(tenant, [found.document for found in stored.values()])
    assert 0 < len(cache) <= 10
    kept = [key for key in stored if cache.peek((world.insight_tables.table_name, tenant, key)) is not None]
    assert sum(sizes[key] for key in kept) <= cache.capacity
    assert len(kept) == len(cache)


@pytest.mark.parametrize("meanwhile", ["between its reads", "after its reads"])
def test_tidying_deletes_what_no_insight_names_but_not_a_row_an_insight_written_meanwhile_names(
        world: bootstrap.Container, monkeypatch: pytest.MonkeyPatch, meanwhile: str) -> None:
    """The end of the pass over every record: index rows no insight names go, and the insights of records that
    are gone, with their rows; a row that an insight another worker writes meanwhile names stays, whether it
    writes between tidy's reads of the index and of the insights (they must come in that order) or after both
    (the delete is conditional on the ETag read); the email-domain rows follow what they are given."""
    tenant, _, _, _ = _race(world, 20)
    insights = TableInsights(world.insight_tables)
    stored = _stored_insights(insights, tenant)
    key, found = next((k, v) for k, v in stored.items() if any("|c|-|" in r for r in index_rows(v.document)))
    crm = found.document.crm
    moved = found.document.model_copy(update={"crm": crm.model_copy(update={"health": crm.health.model_copy(
        update={"score": (crm.health.score or 0) + 1})})})  # another name for its CRM row
    (renamed,) = set(index_rows(moved)) - set(index_rows(found.document))
    orphan = f"{ATTENTION_PREFIX}contact|c|-|001|no-such-contact"
    for row in (renamed, orphan):  # rows no insight names (yet)
        world.insight_tables.upsert(tenant, row, {"Fp": "-", "HasX": False})
    gone, gone_insight = next((k, v) for k, v in stored.items() if k != key and index_rows(v.document))
    original = world.insight_tables.iter_partition

    def read(partition_key: str, **kwargs: Any) -> Any:
        prefix = kwargs.get("row_key_prefix")
        what = {ATTENTION_PREFIX: "index", RISK_PREFIX: "index", "insight|": "insights"}.get(str(prefix), "domains")
        second = bool(seen) and what not in seen and what != "domains"
        if not ran and (second if meanwhile == "between its reads" else what == "domains"):
            ran.append(True)  # another worker writes
            assert insights.update(tenant, [moved], previous={key: found}) == []
        seen.add(what)
        return original(partition_key, **kwargs)

    ran: list[bool] = []
    seen: set[str] = set()
    monkeypatch.setattr(world.insight_tables, "iter_partition", read)
    insights.tidy(tenant, keep=set(stored) - {gone}, domains={"contoso.example": "acc-1"})
    monkeypatch.undo()
    assert ran
    rows = {e.row_key for prefix in (ATTENTION_PREFIX, RISK_PREFIX)
            for e in world.insight_tables.iter_partition(tenant, row_key_prefix=prefix)}
    now = _stored_insights(insights, tenant)
    assert set(now) == set(stored) - {gone}
    assert rows == {row for v in now.values() for row in index_rows(v.document)}
    assert renamed in rows
    assert orphan not in rows
    assert not set(index_rows(gone_insight.document)) & rows
    assert {e.row_key: e.properties["AccountId"] for e in world.insight_tables.iter_partition(
        tenant, row_key_prefix="wkw-domain|")} == {"wkw-domain|contoso.example": "acc-1"}


def _insight_contents(world: bootstrap.Container, tenant: TenantId) -> dict[Any, Any]:
    return {i.key: _content(i) for i in TableInsights(world.insight_tables).iter(tenant)}


def _to_rebuild(world: bootstrap.Container, *, consent: bool, accounts: int, sellers: int, seed: int,
                ) -> tuple[TenantId, dict[str, list[dict[str, Any]]]]:
    """A seeded tenant, computed once, whose ledgers' mark is then removed: its next computation rebuilds them."""
    tenant, data = _seeded(world, consent=consent, accounts=accounts, sellers=sellers, seed=seed)
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)
    world.insights().recompute(tenant)
    world.insight_tables.delete(tenant, "ledgers-meta")
    return tenant, data


def test_a_rebuild_in_steps_through_the_queue_gives_what_one_step_gives(world: bootstrap.Container,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild that takes a page of activities per step, each step sending the next through the queue: the
    ledgers are cleared first (an activity gone without a trace in the log leaves them), then hold, row for row,
    what a rebuild in one step gives, and so do the insights."""
    import shared.services.insights as service

    tenant, data = _to_rebuild(world, consent=True, accounts=6, sellers=3, seed=21)
    gone = data["activities"][0]
    world.records._activities.delete(tenant, f"activity|{gone['source']}|{gone['id']}")  # (behind the log's back)
    monkeypatch.setattr(service, "REBUILD_PAGE", 40)
    monkeypatch.setattr(service, "MERGE_ROWS", 30)  # merged in many chunks too
    monkeypatch.setattr(service, "REBUILD_STEP_SECONDS", 0.0)  # one chunk a step
    ask(world.index, world.queue, world.clock, IndexKind.INSIGHTS_REFRESH, tenant, world.clock.now())
    outcomes = drain(world, worker=dataclasses.replace(world, ledger_cache=LedgerCache(),
                                                       insight_cache=InsightCache()).worker())
    assert outcomes.count("rebuildContinues") >= len(data["activities"]) / 40
    assert outcomes.count("refreshed") == 1  # the last step ends the rebuild, and the rows that asked for it
    assert outcomes.count("failed") == 0
    assert TableLedgers(world.insight_tables).built_through(tenant) is not None
    stepped, insights_stepped = _ledger_rows(world, tenant), _insight_contents(world, tenant)
    gone_key = json.dumps(f"{gone['source']}|{gone['id']}")
    assert not any(gone_key in json.dumps(rows) for rows in stepped.values())  # the ledgers were cleared first

    world.insight_tables.delete(tenant, "ledgers-meta")
    monkeypatch.setattr(service, "REBUILD_PAGE", 10_000)
    monkeypatch.setattr(service, "REBUILD_STEP_SECONDS", 240.0)
    assert not dataclasses.replace(world, ledger_cache=LedgerCache()).insights().recompute(tenant).rebuilding
    assert _ledger_rows(world, tenant) == stepped
    assert _insight_contents(world, tenant) == insights_stepped


def test_a_rebuild_in_steps_stops_a_duplicate_and_leaves_later_writes_to_the_next_refresh(
        world: bootstrap.Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a rebuild runs, the stored insights are served, every refresh continues it, a duplicate delivery of
    a step stops at its save (what it added twice changed nothing), and what is stored meanwhile (a call, a
    contact that moves to another account) is applied by the refresh after it: the ledgers end as a rebuild in
    one step gives them."""
    import shared.services.insights as service

    tenant, data = _to_rebuild(world, consent=False, accounts=5, sellers=3, seed=22)
    served = _insight_contents(world, tenant)
    monkeypatch.setattr(service, "REBUILD_PAGE", 40)
    monkeypatch.setattr(service, "REBUILD_STEP_SECONDS", 0.0)
    stepper = dataclasses.replace(world, ledger_cache=LedgerCache(), insight_cache=InsightCache()).insights()
    other = dataclasses.replace(world, ledger_cache=LedgerCache(), insight_cache=InsightCache(),
                                directory_cache=DirectoryCache())
    contact, seller = data["contacts"][0], data["users"][0]
    moved = next(c for c in data["contacts"] if c["accountId"] != "account-4")
    ledgers = TableLedgers(world.insight_tables)
    reports = [stepper.refresh(tenant) for _ in range(4)]  # clear, then pages
    assert all(r.rebuilding for r in reports)
    progress, _ = ledgers.rebuild_progress(tenant)
    assert progress is not None
    assert progress.phase == "activities"
    assert progress.activities > 0
    assert ledgers.built_through(tenant) is None
    assert _insight_contents(world, tenant) == served  # still served as they were

    world.clock.advance(timedelta(minutes=3))
    call = {"id": "during-rebuild", "version": 1, "source": "crm", "kind": "phoneCall", "sender": seller["email"],
            "to": [contact["email"]], "start": (world.clock.now() - timedelta(minutes=1)).isoformat(),
            "durationMinutes": 9}
    assert other.sync().ingest(tenant, "activities", [call]).stored == 1
    assert other.sync().ingest(tenant, "contacts", [{**moved, "version": 2, "accountId": "account-4"}]).stored == 1

    done = _once_after(monkeypatch, stepper._records, "activities_page", lambda: other.insights().refresh(tenant))
    duplicate = stepper.refresh(tenant)  # read the same page as the other worker, which saved first
    assert done
    assert duplicate.rebuilding
    assert duplicate.activities == 0
    after_other, _ = ledgers.rebuild_progress(tenant)
    assert after_other is not None
    assert after_other.after is not None
    assert progress.after is not None
    assert after_other.after > progress.after
    for _ in range(100):
        if not stepper.refresh(tenant).rebuilding:
            break
    else:
        raise AssertionError("the rebuild did not end")
    assert ledgers.built_through(tenant) is not None
    world.clock.advance(timedelta(minutes=20))
    stepper.refresh(tenant)  # applies what was stored during the rebuild
    refreshed = TableInsights(world.insight_tables).get(tenant, "contact", contact["id"])
    assert refreshed is not None
    before = served[("contact", contact["id"])][0][0].team.phone_calls_made  # type: ignore[index]
    assert refreshed.crm.kpis.team.phone_calls_made == before + 1
    stepped = _ledger_rows(world, tenant)

    world.insight_tables.delete(tenant, "ledgers-meta")
    monkeypatch.setattr(service, "REBUILD_PAGE", 10_000)
    monkeypatch.setattr(service, "REBUILD_STEP_SECONDS", 240.0)
    assert not dataclasses.replace(world, ledger_cache=LedgerCache()).insights().refresh(tenant).rebuilding
    assert _ledger_rows(world, tenant) == stepped


def test_a_late_duplicate_of_a_rebuilds_clearing_step_clears_nothing_a_later_step_wrote(
        world: bootstrap.Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delivery that read the rebuild's progress while it was clearing, and runs once another delivery has moved
    on and stored fragments, must not delete them (its save would fail only after)."""
    import shared.services.insights as service

    tenant, _ = _to_rebuild(world, consent=False, accounts=3, sellers=2, seed=23)
    monkeypatch.setattr(service, "REBUILD_PAGE", 40)
    monkeypatch.setattr(service, "REBUILD_FACTS", 1)  # a flush of fragments a page
    monkeypatch.setattr(service, "REBUILD_STEP_SECONDS", 0.0)
    first = world.insights()
    assert first.refresh(tenant).rebuilding  # begins: the clearing is next
    late = dataclasses.replace(world, ledger_cache=LedgerCache()).insights()
    other = dataclasses.replace(world, ledger_cache=LedgerCache()).insights()

    def fragments() -> int:
        return sum(1 for _ in world.insight_tables.iter_partition(tenant, row_key_prefix="lgr|"))

    def meanwhile() -> None:  # the other delivery clears, then stores its first fragments
        while fragments() == 0:
            assert other.refresh(tenant).rebuilding

    done = _once_after(monkeypatch, late._ledgers, "rebuild_progress", meanwhile)
    report = late.refresh(tenant)  # read the progress of the clearing phase before the other moved on
    assert done
    assert report.rebuilding
    assert fragments() > 0  # what the other stored is still there
    for _ in range(200):
        if not other.refresh(tenant).rebuilding:
            break
    assert TableLedgers(world.insight_tables).built_through(tenant) is not None
    assert fragments() == 0  # merged


def test_a_rebuild_step_that_fails_after_its_merge_wrote_is_replayed_to_the_same_ledgers(
        world: bootstrap.Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """Storage fails once a merge chunk's ledgers are written but before its progress is saved: the step is
    replayed from the same position, reads the same fragments, and the ledgers end as a rebuild in one step."""
    import shared.services.insights as service

    tenant, _ = _to_rebuild(world, consent=True, accounts=5, sellers=3, seed=24)
    at_once = _ledger_rows(world, tenant)
    monkeypatch.setattr(service, "REBUILD_PAGE", 60)
    monkeypatch.setattr(service, "MERGE_ROWS", 25)
    monkeypatch.setattr(service, "REBUILD_STEP_SECONDS", 0.0)
    stepper = world.insights()
    original, calls = TableLedgers.replace_records, []

    def failing_once(self: TableLedgers, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise StorageUnavailable("the service is busy")

    monkeypatch.setattr(TableLedgers, "replace_records", failing_once)
    failures = 0
    for _ in range(200):
        try:
            if not stepper.refresh(tenant).rebuilding:
                break
        except StorageUnavailable:
            failures += 1  # the queue delivers the step again
    else:
        raise AssertionError("the rebuild did not end")
    assert failures == 1
    assert len(calls) > 3
    assert _ledger_rows(world, tenant) == at_once
    assert not any(True for _ in world.insight_tables.iter_partition(tenant, row_key_prefix="lgr|"))


def test_a_refresh_that_ends_after_a_rebuild_began_leaves_the_rebuild_under_way(
        world: bootstrap.Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh read the ledgers' mark, then a rebuild began: the refresh's mark must not end the rebuild."""
    import shared.services.insights as service

    tenant, contact, call, other = _race(world, 25)
    monkeypatch.setattr(service, "REBUILD_STEP_SECONDS", 0.0)
    world.clock.advance(timedelta(minutes=20))
    assert world.sync().ingest(tenant, "activities", call(1)).stored == 1
    refresh = world.insights()
    rebuilder = other.insights()
    settings = world.tenant_settings().current(tenant).settings

    def meanwhile() -> None:
        assert rebuilder._rebuild(tenant, settings, world.clock.now(), 0.0).rebuilding  # begins, clears a chunk

    done = _once_after(monkeypatch, refresh._ledgers, "built_version", meanwhile)
    refresh.refresh(tenant)
    assert done
    ledgers = TableLedgers(world.insight_tables)
    assert ledgers.rebuild_progress(tenant)[0] is not None
    assert ledgers.built_through(tenant) is None
    for _ in range(100):
        if not rebuilder.refresh(tenant).rebuilding:
            break
    assert ledgers.built_through(tenant) is not None
    world.clock.advance(timedelta(minutes=20))
    world.insights().refresh(tenant)
    assert _calls(world, tenant, contact) >= 1


def test_a_rebuild_that_holds_every_ledger_writes_each_insight_on_the_version_it_replaces(
        world: bootstrap.Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no other worker about, no write of the rebuild's insights may fail on an ETag (they are conditional
    on the stored ones, read first): none is computed again."""
    tenant, _ = _to_rebuild(world, consent=False, accounts=4, sellers=2, seed=26)
    rebuilder = world.insights()
    again: list[list[Any]] = []
    original = rebuilder._again
    monkeypatch.setattr(rebuilder, "_again", lambda tenant_id, ctx, linker, pending: (
        again.append(list(pending)), original(tenant_id, ctx, linker, pending))[1])
    report = rebuilder.recompute(tenant)
    assert not report.rebuilding
    assert report.records > 0
    assert again == [[]]


def test_a_rebuilds_progress_reads_back_as_saved_and_names_its_fragments_alike(world: bootstrap.Container) -> None:
    from shared.services.ports import RebuildProgress

    tenant = TenantId(str(uuid.uuid4()))
    ledgers = TableLedgers(world.insight_tables)
    began = datetime(2026, 11, 26, 3, 4, 5, 678_901, tzinfo=UTC)
    saved = RebuildProgress(began, began - WRITE_SETTLE, frozenset({"ilog|1|a"}), "merge", "lgr|contact|c-1|",
                            1_234, 3)
    etag = ledgers.save_rebuild(tenant, saved, None)
    read, read_etag = ledgers.rebuild_progress(tenant)
    assert read_etag == etag
    assert read is not None
    assert read.name == saved.name
    assert read == saved
    assert ledgers.built_through(tenant) is None
    with pytest.raises(ConcurrencyConflict):
        ledgers.save_rebuild(tenant, saved, None)  # another delivery began it first
