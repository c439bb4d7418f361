"""A tenant's activities spread over partitions of their own (`{tenant}|{n}`), on Azurite: every read, write,
log, page and purge gives what the one-partition layout gives, no row sits outside its shard, and no partition
holds another tenant's rows."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devhost.azurite import Azurite
from devhost.seed import generate
from shared import bootstrap
from shared.clock import FixedClock
from shared.config import AppConfig
from shared.domain.insights.model import RecordInsight, Variant
from shared.domain.records import Activity, Contact
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.services.timing import WRITE_SETTLE
from shared.storage.insights_repository import TableInsights
from shared.storage.records_repository import ACTIVITIES_TABLE_SUFFIX, ActivityShards, TableRecords
from shared.storage.tables import TableStore
from shared.tenancy import TenantId
from tests.builders import mail

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 26, 12, tzinfo=UTC)
SHARDS = 4


def _stores(azurite: Azurite) -> tuple[TableStore, TableStore]:
    return tuple(TableStore.from_connection_string(azurite.connection_string, f"S{uuid.uuid4().hex[:20]}")
                 for _ in range(2))  # type: ignore[return-value]


def _activities(count: int) -> list[Activity]:
    return [mail(f"m{i}", f"seller{i % 3}@contoso.com", f"buyer{i % 11}@fabrikam.com", i % 40,
                 source="exchange" if i % 3 == 0 else "crm") for i in range(count)]


def _logged(records: TableRecords, tenant: TenantId) -> list[tuple[str, str, bool, str]]:
    """What the log says, key by key: the kind, the key, whether removed, the document it replaced."""
    return sorted((w.kind, key, w.removed, w.previous.get(key) or "") for w in records.written_since(tenant, None)
                  for key in w.keys)


def _rows(store: TableStore, partition: str) -> list[Any]:
    return list(store.sibling(store.table_name + ACTIVITIES_TABLE_SUFFIX).iter_partition(partition))


def test_activities_spread_over_the_tenants_shards_read_back_as_on_one_partition(
        azurite: Azurite, tenant_id: TenantId) -> None:
    one_store, sharded_store = _stores(azurite)
    one, sharded = TableRecords(one_store), TableRecords(sharded_store, shards=ActivityShards(SHARDS))
    neighbour = TenantId(str(uuid.uuid4()))
    activities = _activities(230)
    for records in (one, sharded):
        records.write(tenant_id, "contacts", [(Contact(id="c1", version=1, email="buyer1@fabrikam.com"), None)], AT)
        records.write(tenant_id, "activities", [(a, None) for a in activities], AT)
        records.write(neighbour, "activities", [(a, None) for a in activities[:20]], AT)
        newer = [Activity.model_validate({**a.model_dump(mode="json"), "version": 2, "kind": "phoneCall"}, strict=False)
                 for a in activities[:30]]
        stored = records.versions(tenant_id, "activities", newer)
        assert len(stored) == 30
        records.write(tenant_id, "activities", [(a, stored[f"{a.source.value}|{a.id}"]) for a in newer],
                      AT + timedelta(minutes=1))
        assert len(records.remove(tenant_id, "activities", [f"crm|m{i}" for i in range(30, 60)],
                                  AT + timedelta(minutes=2))) == 20  # (a third of them are Exchange's)

    keys = [f"{a.source.value}|{a.id}" for a in activities]
    assert one.activities(tenant_id, keys) == sharded.activities(tenant_id, keys)
    assert len(one.activities(tenant_id, keys)) == 210
    assert one.get_many(tenant_id, "activities", keys[:50]) == sharded.get_many(tenant_id, "activities", keys[:50])
    assert sharded.get(tenant_id, "activities", "crm|m1") == one.get(tenant_id, "activities", "crm|m1")
    assert {k: v.version for k, v in one.versions(tenant_id, "activities", activities).items()} == \
        {k: v.version for k, v in sharded.versions(tenant_id, "activities", activities).items()}
    for removed in (False, True):
        assert sorted(map(repr, one.iter_activities(tenant_id, removed=removed))) == \
            sorted(map(repr, sharded.iter_activities(tenant_id, removed=removed)))
    assert sorted(map(repr, one.iter_records(tenant_id, "activities"))) == \
        sorted(map(repr, sharded.iter_records(tenant_id, "activities")))
    assert _logged(one, tenant_id) == _logged(sharded, tenant_id)

    # Pages of 7 walk every shard once, from positions that name the shard.
    paged: list[str] = []
    position: str | None = None
    positions: set[int] = set()
    while True:
        page, position = sharded.activities_page(tenant_id, position, 7)
        paged += [f"{a.source.value}|{a.id}" for a in page]
        if position is None:
            break
        positions.add(int(position.split(":")[0]))
    assert positions == set(range(SHARDS))
    assert sorted(paged) == sorted(one.activities(tenant_id, keys))

    # Every row in the shard its key names, each log row naming only its shard's keys; none in `{tenant}`, and
    # the neighbour's rows only in the neighbour's partitions.
    shards = ActivityShards(SHARDS)
    assert _rows(sharded_store, tenant_id) == []
    for partition in shards.all(tenant_id):
        rows = _rows(sharded_store, partition)
        assert rows
        for row in rows:
            named = json.loads(str(row.properties["Keys"])) if row.row_key.startswith("ilog|") else [row.row_key]
            assert {shards.of(tenant_id, key) for key in named} == {partition}, row.row_key
    assert sum(len(_rows(sharded_store, p)) for p in shards.all(neighbour)) == 20 + SHARDS  # and a log row each

    # Applied log rows are forgotten in every shard.
    sharded.forget_written(tenant_id, AT + timedelta(minutes=5))
    assert list(sharded.written_since(tenant_id, None)) == []
    assert len(list(sharded.written_since(neighbour, None))) == SHARDS


def test_a_purge_in_bounded_steps_goes_on_from_shard_to_shard_and_deletes_what_one_partition_deletes(
        azurite: Azurite, tenant_id: TenantId) -> None:
    one_store, sharded_store = _stores(azurite)
    one, sharded = TableRecords(one_store), TableRecords(sharded_store, shards=ActivityShards(SHARDS))
    activities = _activities(1200)
    for records in (one, sharded):
        records.write(tenant_id, "activities", [(a, None) for a in activities], AT)

    stopped_in: list[int] = []
    position: str | None = None
    deleted = 0
    while True:  # a step stops after every transaction (of 99 rows) or 500 rows judged
        progress = sharded.purge_exchange(tenant_id, AT, lambda: True, position)
        deleted += progress.deleted
        if progress.finished:
            break
        position = progress.position
        assert position is not None
        stopped_in.append(int(position.split(":")[0]))
    assert len(stopped_in) >= 3
    assert len(set(stopped_in)) >= 2
    assert stopped_in == sorted(stopped_in)
    assert deleted == one.purge_exchange(tenant_id, AT, lambda: False).deleted == 400
    assert sorted(map(repr, one.iter_activities(tenant_id))) == sorted(map(repr, sharded.iter_activities(tenant_id)))
    people = frozenset({"buyer2@fabrikam.com"})
    assert sharded.purge_people(tenant_id, people, frozenset(), lambda: False).deleted == \
        one.purge_people(tenant_id, people, frozenset(), lambda: False).deleted > 0
    assert _logged(one, tenant_id) == _logged(sharded, tenant_id)


def test_positions_name_a_shard_among_the_count_and_anything_else_is_refused() -> None:
    shards = ActivityShards(4)
    assert shards.at(shards.position(3, "activity|crm|x")) == (3, "activity|crm|x")
    assert shards.at(shards.position(2, None)) == (2, None)
    assert shards.at(None) == (0, None)
    for wrong in ("4:activity|crm|x", "activity|crm|x", "-1:x"):
        with pytest.raises(ValueError, match="not a position among 4 shards"):
            shards.at(wrong)
    # The same shard in every process (not Python's salted hash), spread over all of them.
    assert shards.of(TenantId("t"), "crm|m1") == shards.of(TenantId("t"), "activity|crm|m1") == "t|2"
    assert {shards.of(TenantId("t"), f"crm|m{i}") for i in range(100)} == {f"t|{n}" for n in range(4)}
    assert ActivityShards(1).position(0, "activity|crm|x") == "activity|crm|x"  # (the layout before shards)
    with pytest.raises(ValueError, match="at least one partition"):
        ActivityShards(0)


def _content(insight: RecordInsight) -> tuple[object, ...]:
    def variant(v: Variant | None) -> object:
        return None if v is None else (v.kpis, v.health.score, v.health.state, v.health.factors)

    return (variant(insight.crm), variant(insight.with_exchange), insight.introducers_basic,
            insight.introducers_enhanced)


def test_a_tenant_on_shards_gets_the_insights_and_exports_it_gets_on_one_partition(config: AppConfig) -> None:
    """The same data synced into a one-partition and a four-shard deployment: the first computation (a rebuild
    from the stored activities), a refresh after new, changed and removed activities, the daily recompute, and
    a person's export give the same, field by field."""
    tenant = TenantId(str(uuid.uuid4()))
    data = generate(accounts=6, sellers=3, seed=17, now=AT)
    results = []
    for shards in (1, SHARDS):
        world = bootstrap.build(dataclasses.replace(
            config, state_table=f"Shards{(unique := uuid.uuid4().hex[:16])}", queue_prefix=f"t{unique}",
            activity_shards=shards), clock=FixedClock(AT))
        settings = world.tenant_settings()
        settings.change(tenant, "a", "p", lambda s, now: s.set_prerequisites(True, "US", now))
        settings.change(tenant, "a", "e", lambda s, now: s.enable(
            "a", now, security_role_ids=tuple(r.id for r in STANDARD_SALES_ROLES)))
        settings.change(tenant, "a", "c", lambda s, now: s.record_consent_granted("a", (), now))
        sync = world.sync()
        for kind, items in data.items():
            sync.ingest(tenant, kind, items)
        assert isinstance(world.clock, FixedClock)
        world.clock.advance(WRITE_SETTLE)
        insights = world.insights()
        insights.recompute(tenant)
        first = {i.key: _content(i) for i in TableInsights(world.insight_tables).iter(tenant)}

        world.clock.advance(timedelta(hours=1))
        contact = data["contacts"][4]
        changed = [{**a, "version": a["version"] + 1, "to": [contact["email"]]} for a in data["activities"][:25]]
        sync.ingest(tenant, "activities", changed)
        sync.remove(tenant, "activities", [f"{a['source']}|{a['id']}" for a in data["activities"][25:40]])
        refreshed = insights.refresh(tenant)
        assert refreshed.records > 0
        after = {i.key: _content(i) for i in TableInsights(world.insight_tables).iter(tenant)}
        world.clock.advance(WRITE_SETTLE)
        insights.recompute(tenant)
        daily = {i.key: _content(i) for i in TableInsights(world.insight_tables).iter(tenant)}
        export = insights.export(tenant, "contact", contact["id"])
        results.append((first, after, daily, [a.model_dump() for a in export.activities]))
    assert results[0] == results[1]
    assert len(results[0][3]) >= 25
