"""Per-record aggregates in the tenant's partition (see `shared.domain.insights.ledger`).

Rows: `lg|{entity type}|{id}|{yyyy}Q{n}` hold the facts of one record's quarter, `lg|{entity type}|{id}|~` the
partials of its quarters since its horizon and the earlier ones folded (its base), `lg|{entity type}|{id}|!`
the earlier quarters' own partials (read only to change one of them, or to move the horizon); while a rebuild runs,
`lgr|{entity type}|{id}|{yyyy}Q{n}|{rebuild}|{flush}|{token}` the facts of a quarter that one of its flushes
found. What an insight
needs now (the summary and the quarters since `recent_from`, which the summary's partials name) is a few point
reads per record, bounded however old the record is; `ledgers-meta` says up to when the ledgers were built from
the log, or where a rebuild under way is.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from pydantic_core import from_json, to_json

from shared.caching import BoundedCache
from shared.domain.insights.directory import EntityType
from shared.errors import ConcurrencyConflict
from shared.services.ports import BULK_SHARE, LEDGER_ARCHIVE, LEDGER_SUMMARY, LedgerState, RebuildProgress
from shared.storage.documents import split_text
from shared.storage.tables import (
    MAX_BATCH_OPERATIONS,
    WRITER_BATCH_BYTES,
    Operation,
    Properties,
    StoredEntity,
    TableStore,
    cut_into_transactions,
    operation_bytes,
    prefix_upper_bound,
    transactions,
)
from shared.tenancy import TenantId

PREFIX = "lg|"
FRAGMENT_PREFIX = "lgr|"  # a rebuild's facts of a record's quarter from one flush, until it has merged them
META_ROW = "ledgers-meta"
_READERS = 8
_WRITERS = 4
_SLICE = 200  # records whose rows a rebuild encodes together
Key = tuple[EntityType, str]
_Named = tuple[LedgerState, str, Operation]  # a row to write, the state it comes from, the period it holds


def _fragment_base(key: Key) -> str:
    return f"{FRAGMENT_PREFIX}{key[0]}|{key[1]}|"


def _ledger_base(fragment_base: str) -> str:
    return PREFIX + fragment_base.removeprefix(FRAGMENT_PREFIX)


def _row(key: Key, month: str) -> str:
    return f"{PREFIX}{key[0]}|{key[1]}|{month}"


def _properties(value: Any, period: str, name: str = "D") -> Properties:
    # (pydantic-core's encoder: several times faster than the json module's, and floats round-trip exactly)
    chunks = split_text(to_json(value).decode())
    # `Period` (the quarter, or the summary's "~", the archive's "!", as in the key) lets one query of the tenant's
    # ledgers leave out the rows an insight does not read.
    properties: Properties = {"Period": period, f"{name}Chunks": len(chunks)}
    for index, chunk in enumerate(chunks):
        properties[f"{name}{index}"] = chunk
    return properties


def _chunks(entity: StoredEntity, name: str) -> int:
    return int(entity.properties.get(f"{name}Chunks") or 0)  # type: ignore[arg-type]


def _value(entity: StoredEntity, name: str = "D") -> Any:
    text = "".join(str(entity.properties[f"{name}{i}"]) for i in range(_chunks(entity, name)))
    return from_json(text) if text else None


def summary_of(state: LedgerState) -> dict[str, Any]:
    """What a ledger's summary row holds: its partials (the horizon, the base, each period's) and, apart, what an
    insight reads of them (the settled partials, for the period they were settled from)."""
    return {"h": state.horizon, "b": state.base, "p": state.partials, **_settled_of(state)}


def _settled_of(state: LedgerState) -> dict[str, Any]:
    return {"f": state.settled_from, "s": state.settled} if state.settled is not None else {"f": "", "s": {}}


# A summary as stored, by property group (`B`: the horizon and the base; `D`: the settled partials; `P{period}_`:
# one period's partial): what each group holds as written (the objects, compared by identity: an edit replaces
# what it changes, never changes one in place) and how many chunks it took. None: not stored by groups, written
# whole.
Layout = dict[str, tuple[tuple[Any, ...], int]]


def _groups(state: LedgerState) -> dict[str, tuple[Any, ...]]:
    return {"B": (state.base, state.horizon), "D": (state.settled, state.settled_from),
            **{f"P{period}_": (partial,) for period, partial in state.partials.items()}}


def _group_value(state: LedgerState, name: str) -> Any:
    if name == "B":
        return {"h": state.horizon, "b": state.base}
    return _settled_of(state) if name == "D" else state.partials[name[1:-1]]


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) == len(b) and all(x is y or (isinstance(x, str) and x == y) for x, y in zip(a, b, strict=True))


def _summary_write(state: LedgerState, *, whole: bool, edited: Iterable[str] = ()) -> tuple[Properties, Layout]:
    """The summary's properties to write and the layout they leave: the settled partials in `D…` (where the other
    rows keep their facts: one query selecting `D…` reads what an insight needs of every row of a record), the
    horizon and base in `B…` (the horizon also alone, for a query to select), each period's partial in its own
    `P{period}_…`. Whole: every group (a create or a replace); else only the groups whose content changed since
    the layout was stored (a merge), the chunks a group no longer takes blanked and a group gone counted empty: an
    edit of one period writes that period's partial, not the record's history of them. A state read without its
    partials (for an insight, with its layout) writes only the partials of the periods `edited`."""
    if not state.complete and (whole or state.layout is None):
        raise ValueError("a ledger read without its partials cannot be written whole")
    stored = {} if whole or state.layout is None else state.layout
    properties: Properties = {"Period": LEDGER_SUMMARY} if whole else {}
    layout: Layout = {}
    groups = _groups(state)
    for name, held in groups.items():
        was = stored.get(name)
        if was is not None and _same(was[0], held):
            layout[name] = was
            continue
        if not state.complete and name in ("B", "D"):
            raise ValueError("a ledger read without its partials cannot change its horizon, base or settled partials")
        group = _properties(_group_value(state, name), LEDGER_SUMMARY, name)
        del group["Period"]
        chunks = len(group) - 1
        properties |= group
        properties |= {f"{name}{i}": "" for i in range(chunks, was[1] if was is not None else 0)}
        if name == "B":
            properties["Horizon"] = state.horizon
        layout[name] = (held, chunks)
    edited = set(edited)
    for name, kept in stored.items():
        if name in groups:
            continue
        if state.complete or name[1:-1] in edited:
            properties |= {f"{name}Chunks": 0, **{f"{name}{i}": "" for i in range(kept[1])}}
        else:  # (not read: as stored)
            layout[name] = kept
    return properties, layout


# What a query reads of each row for an insight: the facts, or the settled partials (an entity holds at most 1 MiB,
# 16 properties of 32 Ki characters); and of a summary what an edit of its recent periods needs besides: its
# horizon and how many chunks its groups take (the periods from `recent_from` on: those such an edit writes).
_VIEW = ["Period", "DChunks", *(f"D{i}" for i in range(16)), "Horizon", "BChunks"]
_LATER_PERIODS = 12  # (quarters from `recent_from` on whose layout a view reads: tasks due years ahead are rare)


def _later_periods(recent_from: str) -> list[str]:
    year, quarter = int(recent_from[:4]), int(recent_from[5:])
    return [f"{year + (quarter - 1 + n) // 4:04d}Q{(quarter - 1 + n) % 4 + 1}" for n in range(_LATER_PERIODS)]


def _view(recent_from: str) -> list[str]:
    return _VIEW + [f"P{period}_Chunks" for period in _later_periods(recent_from)]


def _take_layout(state: LedgerState, entity: StoredEntity) -> None:
    """What a view read of a summary stored by groups gives an edit of its recent periods (`needs_partials`):
    its horizon, and its layout, the partials of the periods not read kept as stored."""
    horizon = entity.properties.get("Horizon")
    if not isinstance(horizon, str):
        return  # (stored before: completed from the summary before an edit)
    state.horizon = horizon
    unread = object()
    state.layout = _kept_layout(state, entity) | {group: ((unread,), n) for group, n in _partial_groups(entity)}


def _kept_layout(state: LedgerState, entity: StoredEntity) -> Layout:
    """The layout of a summary's horizon and base and of its settled partials, as the state now holds them."""
    return {"B": ((state.base, state.horizon), _chunks(entity, "B")),
            "D": ((state.settled, state.settled_from), _chunks(entity, "D"))}


def _partial_groups(entity: StoredEntity) -> Iterator[tuple[str, int]]:
    """A summary's groups of one period's partial that hold one, with their chunks."""
    for name in entity.properties:
        if name.startswith("P") and name.endswith("_Chunks") and (chunks := _chunks(entity, name[:-6])):
            yield name[:-6], chunks


class LedgerCache(BoundedCache[tuple[str, TenantId, Key], LedgerState]):
    """The ledgers this process wrote last, with the ETags they were written with (the recent quarters only), so
    that the next edit of a record starts from them instead of reading them again. Never trusted alone: the write
    that follows is conditional on those ETags, so a ledger another worker changed meanwhile fails it, leaves the
    cache, and is read again. One read for insights only (without its partials) is completed from its summary
    before an edit, if that has not changed. Bounded by the facts it holds; an entry is taken out while in use."""

    def __init__(self, max_facts: int = 100_000) -> None:
        super().__init__(max_facts)

    def keep(self, scope: str, tenant_id: TenantId, key: Key, state: LedgerState, recent_from: str) -> None:
        """Keeps a copy of the state (the caller goes on reading its own; an edit replaces what it changes, never
        changes a list in place), without the periods before `recent_from` and the archive."""
        months = {m: entries for m, entries in state.months.items() if m >= recent_from}
        etags = {name: etag for name, etag in state.etags.items()
                 if name == LEDGER_SUMMARY or (name != LEDGER_ARCHIVE and name >= recent_from)}
        copy = LedgerState(months=months, partials=dict(state.partials), etags=etags, base=state.base,
                           horizon=state.horizon, settled=state.settled, settled_from=state.settled_from,
                           complete=state.complete, layout=state.layout)
        self.put((scope, tenant_id, key), copy, sum(len(entries) for entries in months.values()) + 1)


class TableLedgers:
    """Implements the LedgerRepository port."""

    def __init__(self, tables: TableStore, cache: LedgerCache | None = None) -> None:
        self._tables = tables
        self._cache = cache
        self._scope = tables.table_name

    def read(self, tenant_id: TenantId, key: Key, recent_from: str, months: Iterable[str] = (), *,
             with_archive: bool = False, for_update: bool = False) -> LedgerState:
        # Point reads only: the summary names the periods since its horizon that hold facts (their partials), so
        # the recent ones are read by key. (A range query costs Azurite a scan of the whole table.)
        base = _row(key, "")
        cached = self._cached(tenant_id, key) if for_update else None
        if cached is not None:
            state = cached
        else:
            state = LedgerState()
            summary = self._tables.get(tenant_id, base + LEDGER_SUMMARY)
            if summary is not None:
                self._take(state, LEDGER_SUMMARY, summary)
            state.etags.setdefault(LEDGER_SUMMARY, None)
        self._complete(tenant_id, key, state, recent_from, months)
        if with_archive and state.archive is None:
            archive = self._tables.get(tenant_id, base + LEDGER_ARCHIVE)
            state.archive = {} if archive is None else _value(archive) or {}
            state.etags[LEDGER_ARCHIVE] = None if archive is None else archive.etag
        return state

    def read_for_update(self, tenant_id: TenantId, edits: Mapping[Key, Iterable[str]], recent_from: str, *,
                        records: int) -> dict[Key, LedgerState]:
        keys = sorted(edits)
        edited = {key: set(edits[key]) for key in keys}
        later = set(_later_periods(recent_from))

        def recent_only(key: Key, state: LedgerState | None = None) -> bool:
            # An edit of the periods from `recent_from` on needs none of the partials (`needs_partials`): a view
            # read (the settled partials, the facts, the layout of those periods) will do, unless the horizon
            # moves (the service reads those again, whole).
            return edited[key] <= later and (
                state is None or (state.layout is not None and state.settled_from == recent_from))

        taken = {key: state for key in keys if self._cache is not None
                 and (state := self._cache.take((self._scope, tenant_id, key))) is not None}
        cached = {key: state for key, state in taken.items() if state.complete or recent_only(key, state)}
        partial = sorted(key for key in taken if key not in cached)  # kept by `read_all`, without partials
        if partial and (len(keys) - len(cached)) * BULK_SHARE < records:  # (else the query reads them whole)
            with ThreadPoolExecutor(max_workers=_READERS) as pool:
                completed = list(pool.map(lambda key: self._completed(tenant_id, key, taken[key]), partial))
            cached |= {key: state for key, state in zip(partial, completed, strict=True) if state is not None}
        rest = [key for key in keys if key not in cached]
        if rest and len(rest) * BULK_SHARE >= records:
            # One query of the tenant's ledgers (summaries and recent quarters), then point reads of the edited
            # periods it leaves out that hold facts (older quarters): a few round trips instead of ~3 a record.
            # The records edited in their recent periods only are read as for an insight: no partials.
            lean = [key for key in rest if recent_only(key)]
            whole = [key for key in rest if not recent_only(key)]
            states = cached | (self._query(tenant_id, lean, recent_from, view=True) if lean else {})
            states |= self._query(tenant_id, whole, recent_from) if whole else {}

            def complete(key: Key) -> tuple[Key, LedgerState]:
                state = states[key]
                if not state.complete and not recent_only(key, state):
                    # (a summary stored before its groups, or settled for another `recent_from`: read whole)
                    return key, self.read(tenant_id, key, recent_from, edits[key])
                self._complete(tenant_id, key, state, recent_from, edits[key])
                return key, state

            with ThreadPoolExecutor(max_workers=_READERS) as pool:
                return dict(pool.map(complete, keys))
        for key, state in cached.items():
            self._complete(tenant_id, key, state, recent_from, edits[key])

        def read(key: Key) -> tuple[Key, LedgerState]:
            return key, self.read(tenant_id, key, recent_from, edits[key])

        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            return cached | dict(pool.map(read, rest))

    def _cached(self, tenant_id: TenantId, key: Key) -> LedgerState | None:
        if self._cache is None:
            return None
        state = self._cache.take((self._scope, tenant_id, key))
        return None if state is None else self._completed(tenant_id, key, state)

    def _completed(self, tenant_id: TenantId, key: Key, state: LedgerState) -> LedgerState | None:
        """A cached state whole: one read for insights only (by `read_all`) gets its partials from the summary,
        if that is still the version it read (else None: read it again)."""
        if state.complete:
            return state
        summary = self._tables.get(tenant_id, _row(key, LEDGER_SUMMARY))
        if summary is None or summary.etag != state.etags.get(LEDGER_SUMMARY):
            return None
        self._take(state, LEDGER_SUMMARY, summary)
        state.complete = True
        return state

    def _complete(self, tenant_id: TenantId, key: Key, state: LedgerState, recent_from: str,
                  months: Iterable[str]) -> None:
        """Reads the periods from `recent_from` on that hold facts and these others, those the state lacks."""
        base = _row(key, "")
        held = set(state.partials)
        wanted = {m for m in held if m >= recent_from} | set(months)
        for month in sorted(wanted - set(state.months)):
            if month >= state.horizon and month not in held:  # no facts: no row
                state.months[month], state.etags[month] = [], None
                continue
            stored = self._tables.get(tenant_id, base + month)
            if stored is None:
                state.months[month], state.etags[month] = [], None
            else:
                self._take(state, month, stored)

    @staticmethod
    def _take(state: LedgerState, month: str, entity: StoredEntity) -> None:
        state.etags[month] = entity.etag
        if month != LEDGER_SUMMARY:
            state.months[month] = _value(entity) or []
            return
        properties = entity.properties
        settled = _value(entity) or {}
        if "BChunks" not in properties:  # as written before: the partials in one group (`P…`; `D…` before that)
            summary = (_value(entity, "P") or {}) if "PChunks" in properties else settled
            settled = settled if "PChunks" in properties else {}
            state.partials, state.base, state.horizon = summary.get("p", {}), summary.get("b", {}), summary.get("h", "")
            state.settled, state.settled_from = settled.get("s"), settled.get("f", "")
            state.layout = None
            return
        kept = _value(entity, "B") or {}
        state.base, state.horizon = kept.get("b", {}), kept.get("h", "")
        state.settled, state.settled_from = settled.get("s"), settled.get("f", "")
        state.partials = {}
        layout = _kept_layout(state, entity)
        for group, chunks in _partial_groups(entity):
            state.partials[group[1:-1]] = partial = _value(entity, group)
            layout[group] = ((partial,), chunks)
        state.layout = layout

    def read_many(self, tenant_id: TenantId, keys: Sequence[Key], recent_from: str) -> dict[Key, LedgerState]:
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            states = list(pool.map(lambda key: self.read(tenant_id, key, recent_from), keys))
        found = dict(zip(keys, states, strict=True))
        for key, state in found.items():
            self._kept(tenant_id, key, state, recent_from)
        return found

    def read_all(self, tenant_id: TenantId, keys: Sequence[Key], recent_from: str) -> dict[Key, LedgerState]:
        """What an insight reads of these records' ledgers (the settled partials and the facts from `recent_from`
        on), from one query of the tenant's ledgers in pages that selects only that (the service leaves out the
        archives and the quarters before `recent_from`): for a computation of most records, a few round trips
        instead of one a record, and a fraction of the rows' text. A record whose settled partials are for another
        `recent_from` (a quarter went by) is read whole, to be settled again."""
        states = self._query(tenant_id, keys, recent_from, view=True)
        stale = [key for key, state in states.items() if state.settled_from != recent_from]
        if stale and len(stale) * BULK_SHARE >= len(keys):  # (the first pass of a quarter: most of them)
            states.update(self._query(tenant_id, stale, recent_from))
        elif stale:
            with ThreadPoolExecutor(max_workers=_READERS) as pool:
                states.update(zip(stale, pool.map(lambda key: self.read(tenant_id, key, recent_from), stale),
                                  strict=True))
        for key in keys:  # (what the next edit of each record starts from, its partials read then)
            self._kept(tenant_id, key, states[key], recent_from)
        return states

    def _query(self, tenant_id: TenantId, keys: Sequence[Key], recent_from: str, *,
               view: bool = False) -> dict[Key, LedgerState]:
        """`view`: only what an insight reads (`read_all`); a record's state is then incomplete, and its settled
        partials are those stored only if settled from `recent_from`."""
        wanted = set(keys)
        states: dict[Key, LedgerState] = {}
        rows = sorted(_row(key, "") for key in keys)  # the rows from the first record's to the last's
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=PREFIX, at_least=("Period", recent_from),
                                                  start=rows[0] if rows else None,
                                                  before=prefix_upper_bound(rows[-1]) if rows else None,
                                                  select=_view(recent_from) if view else None):
            _, entity_type, record_id, period = entity.row_key.split("|", 3)
            key: Key = (entity_type, record_id)  # type: ignore[assignment]
            if key not in wanted:
                continue
            state = states.get(key)
            if state is None:
                state = states[key] = LedgerState(complete=not view)
            if not view:
                self._take(state, period, entity)
            elif period == LEDGER_SUMMARY:
                settled = _value(entity) or {}
                state.etags[period] = entity.etag
                if isinstance(settled, dict) and settled.get("f") == recent_from:  # (not a summary of before)
                    state.settled, state.settled_from = settled["s"], recent_from
                    _take_layout(state, entity)
            else:
                state.months[period], state.etags[period] = _value(entity) or [], entity.etag
        for key in keys:
            state = states.setdefault(key, LedgerState(complete=not view))
            state.etags.setdefault(LEDGER_SUMMARY, None)
            if view and state.etags[LEDGER_SUMMARY] is None:  # no ledger: nothing to settle
                state.settled, state.settled_from = {}, recent_from
        return {key: states[key] for key in keys}

    def write(self, tenant_id: TenantId, key: Key, state: LedgerState, changed: Iterable[str],
              recent_from: str | None = None) -> None:
        if self.write_many(tenant_id, [(key, state, set(changed))], recent_from):
            raise ConcurrencyConflict(f"the aggregates of {key} changed since they were read")

    def _kept(self, tenant_id: TenantId, key: Key, state: LedgerState, recent_from: str | None) -> None:
        if self._cache is not None and recent_from is not None:
            self._cache.keep(self._scope, tenant_id, key, state, recent_from)

    def write_many(self, tenant_id: TenantId, writes: Sequence[tuple[Key, LedgerState, set[str]]],
                   recent_from: str | None = None) -> list[Key]:
        groups: list[tuple[list[Key], list[_Named]]] = [([], [])]
        states = {key: state for key, state, _ in writes}
        size = 0  # the last group's payload
        layouts: dict[Key, Layout] = {}
        for key, state, changed in writes:
            named, layouts[key] = self._operations(key, state, changed)
            operations = [(state, name, o) for name, o in named]
            weight = sum(operation_bytes(o) for _, _, o in operations)
            keys, batch = groups[-1]
            if batch and (len(batch) + len(operations) > MAX_BATCH_OPERATIONS or size + weight > WRITER_BATCH_BYTES):
                groups.append(([], []))
                keys, batch = groups[-1]
                size = 0
            keys.append(key)
            batch.extend(operations)
            size += weight
        failed: list[Key] = []

        def submit(group: tuple[list[Key], list[_Named]]) -> None:
            keys, batch = group
            if not batch:
                return
            try:
                # (more than 100 rows: one record's, alone in its group, in several transactions)
                for transaction in (cut_into_transactions(batch, lambda named: operation_bytes(named[2]))
                                    if len(batch) > MAX_BATCH_OPERATIONS else [batch]):
                    etags = self._tables.transact(tenant_id, [o for _, _, o in transaction])
                    for (state, name, _), etag in zip(transaction, etags, strict=True):
                        state.etags[name] = etag
            except ConcurrencyConflict:
                failed.extend(keys)
                return
            for key in keys:
                states[key].layout = layouts[key]
                self._kept(tenant_id, key, states[key], recent_from)

        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            list(pool.map(submit, groups))
        return failed

    @staticmethod
    def _operations(key: Key, state: LedgerState, changed: Iterable[str],
                    ) -> tuple[list[tuple[str, Operation]], Layout]:
        """The rows to write, each with the period (or document) it stores, and the summary's layout after."""
        operations: list[tuple[str, Operation]] = []
        changed = set(changed)
        for month in sorted(changed):
            etag = state.etags.get(month)
            entries = state.months.get(month) or []
            if not entries:
                if etag is not None:
                    operations.append((month, Operation("delete", _row(key, month), etag=etag)))
                continue
            properties = _properties(entries, month)
            operations.append((month, Operation("create", _row(key, month), properties) if etag is None
                               else Operation("replace", _row(key, month), properties, etag)))
        # (always written, if only its ETag's condition: a write that lands was computed from this record's partials
        # as they still stand)
        etag = state.etags.get(LEDGER_SUMMARY)
        whole = etag is None or state.layout is None
        properties, layout = _summary_write(state, whole=whole, edited=changed)
        operations.append((LEDGER_SUMMARY, Operation("create", _row(key, LEDGER_SUMMARY), properties) if etag is None
                           else Operation("replace" if whole else "merge", _row(key, LEDGER_SUMMARY),
                                          properties, etag)))
        if state.archive is not None:
            etag = state.etags.get(LEDGER_ARCHIVE)
            properties = _properties(state.archive, LEDGER_ARCHIVE)
            operations.append((LEDGER_ARCHIVE, Operation("create", _row(key, LEDGER_ARCHIVE), properties)
                               if etag is None else Operation("replace", _row(key, LEDGER_ARCHIVE), properties, etag)))
        return operations, layout

    def clear(self, tenant_id: TenantId, limit: int) -> int:
        if self._cache is not None:
            self._cache.forget(lambda entry: entry[:2] == (self._scope, tenant_id))
        found = list(itertools.islice(self._tables.iter_partition(tenant_id, row_key_prefix=FRAGMENT_PREFIX,
                                                                  select=["Period"]), limit))

        def submit(batch: list[Operation]) -> None:
            with contextlib.suppress(ConcurrencyConflict):  # another step deleted some meanwhile: the next
                self._tables.transact(tenant_id, batch)          # query finds what is left

        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            list(pool.map(submit, transactions([Operation("delete", e.row_key) for e in found])))
        return len(found)

    def write_fragments(self, tenant_id: TenantId, rebuild: str, flush: int,
                        facts: Mapping[Key, Mapping[str, list[Any]]]) -> None:
        keys = sorted(facts)
        # Named apart from any other delivery's flush (two may stop at different activities): the merge counts an
        # activity that two rows hold once.
        token = uuid.uuid4().hex[:8]
        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            for at in range(0, len(keys), _SLICE):  # (encoded a slice at a time: memory follows the facts)
                operations = [Operation("upsert", f"{_fragment_base(key)}{period}|{rebuild}|{flush:06d}|{token}",
                                        _properties(entries, period))
                              for key in keys[at:at + _SLICE] for period, entries in sorted(facts[key].items())
                              if entries]
                list(pool.map(lambda batch: self._tables.transact(tenant_id, batch), transactions(operations)))

    def read_fragments(self, tenant_id: TenantId, rebuild: str, after: str | None, limit: int,
                       ) -> tuple[dict[Key, dict[str, list[Any]]], str | None]:
        facts: dict[Key, dict[str, list[Any]]] = {}
        rows = 0
        last: Key | None = None
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=FRAGMENT_PREFIX,
                                                  start=prefix_upper_bound(after) if after else None):
            entity_type, rest = entity.row_key.removeprefix(FRAGMENT_PREFIX).split("|", 1)
            record_id, period, made_by, _, _ = rest.rsplit("|", 4)
            if made_by != rebuild:
                continue  # an earlier rebuild's, left by a late step: the cleanup takes it
            key: Key = (entity_type, record_id)  # type: ignore[assignment]
            if key != last and rows >= limit and last is not None:
                return facts, _fragment_base(last)  # whole records only
            last = key
            facts.setdefault(key, {}).setdefault(period, []).extend(_value(entity) or [])
            rows += 1
        return facts, None

    def replace_records(self, tenant_id: TenantId, ledgers: dict[Key, LedgerState], recent_from: str | None = None,
                        *, after: str | None = None, through: str | None = None) -> None:
        keys = sorted(ledgers)

        def named(key: Key) -> Iterator[str]:
            state = ledgers[key]
            yield from (month for month, entries in sorted(state.months.items()) if entries)
            yield LEDGER_SUMMARY
            if state.archive:
                yield LEDGER_ARCHIVE

        layouts: dict[Key, Layout] = {}

        def properties_of(key: Key, name: str) -> Properties:
            state = ledgers[key]
            if name == LEDGER_SUMMARY:
                properties, layouts[key] = _summary_write(state, whole=True)
                return properties
            return _properties(state.archive if name == LEDGER_ARCHIVE else state.months[name], name)

        names = {_row(key, name): (key, name) for key in keys for name in named(key)}

        def submit(batch: list[Operation]) -> list[tuple[str, str | None]]:
            return [(o.row_key, etag) for o, etag in zip(batch, self._tables.transact(tenant_id, batch), strict=True)]

        # The rows of the range that these ledgers do not hold go: the records' periods without facts now, and the
        # records in the range without any.
        start = prefix_upper_bound(_ledger_base(after)) if after is not None else PREFIX
        before = prefix_upper_bound(_ledger_base(through)) if through is not None else prefix_upper_bound(PREFIX)
        stale = [Operation("delete", e.row_key) for e in self._tables.iter_partition(
            tenant_id, row_key_prefix=PREFIX, start=start, before=before, select=["Period"]) if e.row_key not in names]
        written: list[tuple[str, str | None]] = []
        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            for at in range(0, len(keys), _SLICE):  # (encoded a slice at a time)
                operations = [Operation("upsert", _row(key, name), properties_of(key, name))
                              for key in keys[at:at + _SLICE] for name in named(key)]
                written += [pair for batch in pool.map(submit, transactions(operations)) for pair in batch]
            list(pool.map(submit, transactions(stale)))
        if self._cache is None or recent_from is None:
            return
        for row, etag in written:  # what the next edit of each record starts from
            key, name = names[row]
            ledgers[key].etags[name] = etag
        for key, state in ledgers.items():
            state.layout = layouts[key]
            self._kept(tenant_id, key, state, recent_from)

    def about(self, tenant_id: TenantId, key: Key) -> list[str]:
        base = _row(key, "")
        keys: list[str] = []
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=base):
            period = entity.row_key.removeprefix(base)
            if period in (LEDGER_SUMMARY, LEDGER_ARCHIVE):
                continue
            keys.extend(fact[0] for bits, fact in _value(entity) or [] if bits & 2)
        return keys

    def built_through(self, tenant_id: TenantId) -> tuple[datetime, frozenset[str]] | None:
        return self.built_version(tenant_id)[0]

    def built_version(self, tenant_id: TenantId) -> tuple[tuple[datetime, frozenset[str]] | None, str | None]:
        entity = self._tables.get(tenant_id, META_ROW)
        if entity is None:
            return None, None
        value = entity.properties.get("BuiltThrough")
        return (value, _seen_in(entity)) if isinstance(value, datetime) else None, entity.etag

    def mark_built(self, tenant_id: TenantId, through: datetime, seen: Iterable[str], *,
                   etag: str | None = None) -> None:
        properties: Properties = {"BuiltThrough": through, **_seen(seen)}
        if etag is None:
            self._tables.upsert(tenant_id, META_ROW, properties)
        else:
            self._tables.replace(tenant_id, META_ROW, properties, etag)

    def rebuild_progress(self, tenant_id: TenantId) -> tuple[RebuildProgress | None, str | None]:
        entity = self._tables.get(tenant_id, META_ROW)
        if entity is None:
            return None, None
        began, settled = entity.properties.get("RebuildBegan"), entity.properties.get("RebuildSettled")
        if not isinstance(began, datetime) or not isinstance(settled, datetime):
            return None, entity.etag
        after = entity.properties.get("RebuildAfter")
        phase = str(entity.properties.get("RebuildPhase"))
        if phase not in ("clear", "activities", "merge", "cleanup", "insights"):
            raise ValueError(f"unknown rebuild phase {phase!r}")
        return RebuildProgress(began, settled, _seen_in(entity), phase,  # type: ignore[arg-type]
                               after if isinstance(after, str) else None,
                               int(entity.properties.get("RebuildActivities") or 0),  # type: ignore[arg-type]
                               int(entity.properties.get("RebuildFlushes") or 0)), entity.etag  # type: ignore[arg-type]

    def save_rebuild(self, tenant_id: TenantId, progress: RebuildProgress, etag: str | None) -> str:
        properties: Properties = {"RebuildBegan": progress.began, "RebuildSettled": progress.settled,
                                  "RebuildPhase": progress.phase, "RebuildActivities": progress.activities,
                                  "RebuildFlushes": progress.flushes,
                                  **_seen(progress.seen)}
        if progress.after is not None:
            properties["RebuildAfter"] = progress.after
        if etag is None:
            return self._tables.create(tenant_id, META_ROW, properties)
        return self._tables.replace(tenant_id, META_ROW, properties, etag)


def _seen(seen: Iterable[str]) -> Properties:
    chunks = split_text(json.dumps(sorted(seen), separators=(",", ":")))  # up to ~5,000 log entries' keys
    return {"SeenChunks": len(chunks), **{f"Seen{i}": chunk for i, chunk in enumerate(chunks)}}


def _seen_in(entity: StoredEntity) -> frozenset[str]:
    count = int(entity.properties.get("SeenChunks") or 0)  # type: ignore[arg-type]
    text = "".join(str(entity.properties[f"Seen{i}"]) for i in range(count)) if count else \
        str(entity.properties.get("Seen") or "[]")  # as marked before the list was cut into chunks
    return frozenset(json.loads(text))
