"""The mailbox rounds through the local Microsoft Graph, on a private Azurite and its queues: the back-fill of N
mailboxes x M messages end to end into insights, and the cost of an incremental round with a few changes, in
requests and table operations, for two mailbox sizes. One worker handles one message at a time (each step reads its
three collections at once), as one instance with a batch of one would: the platform runs many at once.

    .venv/bin/python bench/data_rounds.py [--mailboxes 50] [--messages 2000] [--changes 10]
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._support import CountingTableStore, services_for
from devhost.azurite import Azurite
from devhost.graph import LocalGraph, graph_time
from devhost.idp import DEFAULT_GRAPH_PERMISSIONS, IdentityProvider, RegisteredApp
from devhost.queues import queue_client
from shared import bootstrap
from shared.clock import SystemClock
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.services.background.steps import ask
from shared.services.ports import IndexKind, WorkKind, WorkMessage
from shared.tenancy import TenantId

SALESPERSON = next(r.id for r in STANDARD_SALES_ROLES if r.name == "Salesperson")
NOW = datetime.now(UTC)


def _message(tenant_index: int, mailbox: int, n: int, user: str, customer: str) -> tuple[str, dict[str, Any]]:
    incoming = n % 2 == 0
    sent = NOW - timedelta(days=360 * (n + 1) / 2100, minutes=n % 7)
    sender, reader = (customer, user) if incoming else (user, customer)
    return ("inbox" if incoming else "sentitems"), {
        "internetMessageId": f"<{tenant_index}.{mailbox}.{n}@bench>", "conversationId": f"conv-{mailbox}-{n // 4}",
        "subject": "Quarterly review", "bodyPreview": "confidential figures", "isDraft": False,
        "body": {"contentType": "html", "content": "<p>confidential figures</p>"},
        "from": {"emailAddress": {"address": sender}}, "sender": {"emailAddress": {"address": sender}},
        "toRecipients": [{"emailAddress": {"address": reader}}], "ccRecipients": [],
        "sentDateTime": graph_time(sent), "receivedDateTime": graph_time(sent + timedelta(seconds=3))}


def _tenant(container: bootstrap.Container, graph: LocalGraph, idp: IdentityProvider, index: int, mailboxes: int,
            messages: int) -> tuple[TenantId, list[str]]:
    """A tenant enabled and consented, its sellers and customers as records, their mailboxes in the local Graph."""
    tenant = TenantId(str(uuid.uuid4()))
    idp.grants.grant(tenant, idp.app.client_id, DEFAULT_GRAPH_PERMISSIONS)
    settings = container.tenant_settings()
    settings.set_prerequisites(tenant, "bench", True, "FR")
    settings.enable(tenant, "bench", security_role_ids=[SALESPERSON])
    settings.change(tenant, "bench", "consent", lambda s, now: s.record_consent_granted("bench", (), now))
    sync = container.sync()
    entra = [str(uuid.uuid4()) for _ in range(mailboxes)]
    sync.ingest(tenant, "users", [{"id": f"u{i}", "version": 1, "email": f"seller{i}@contoso.com",
                                   "securityRoleIds": [SALESPERSON], "entraObjectId": entra[i]}
                                  for i in range(mailboxes)])
    sync.ingest(tenant, "accounts", [{"id": f"a{i}", "version": 1, "name": f"Customer {i}",
                                      "emailDomains": [f"customer{i}.com"], "primaryContactId": f"c{i}"}
                                     for i in range(mailboxes)])
    sync.ingest(tenant, "contacts", [{"id": f"c{i}", "version": 1, "email": f"buyer@customer{i}.com",
                                      "accountId": f"a{i}"} for i in range(mailboxes)])
    for i, mailbox in enumerate(entra):
        graph.add_user(tenant, {"id": mailbox, "mail": f"seller{i}@contoso.com"})
        for n in range(messages):
            folder, message = _message(index, i, n, f"seller{i}@contoso.com", f"buyer@customer{i}.com")
            graph.put_message(tenant, mailbox, folder, message)
    return tenant, entra


def _plan_now(container: bootstrap.Container, tenant: TenantId) -> None:
    """What the timer does when the tenant's plan is due (for this tenant only)."""
    ask(container.index, container.queue, container.clock, IndexKind.MAILBOX_PLAN, tenant, container.clock.now())


def _drain(container: bootstrap.Container, kinds: tuple[WorkKind, ...] = tuple(WorkKind)) -> Counter[str]:
    """Hands every message of these queues (and the follow-ups, delayed ones included) to the worker in this
    process, one at a time; a step that fails is delivered again after the visibility timeout, as the host would."""
    assert container.config.queue_connection is not None
    clients = [queue_client(container.config.queue_connection, kind.queue) for kind in kinds]
    worker = container.worker()
    outcomes: Counter[str] = Counter()
    while True:
        batch = [(client, m) for client in clients
                 for m in _received(client)]
        if not batch:
            if all(_count(client) == 0 for client in clients):
                return outcomes
            time.sleep(0.5)
            continue
        for client, stored in batch:
            try:
                outcomes[worker.handle(WorkMessage.from_json(base64.b64decode(str(stored.content)).decode()))] += 1
            except Exception as exc:  # the host would deliver it again: so does this loop, after 30 s
                outcomes[f"failed:{type(exc).__name__}"] += 1
                continue
            client.delete_message(stored)


def _received(client: Any) -> list[Any]:
    try:
        return list(client.receive_messages(max_messages=16, visibility_timeout=30))
    except Exception:  # the queue does not exist yet
        return []


def _count(client: Any) -> int:
    try:
        return int(client.get_queue_properties().approximate_message_count or 0)
    except Exception:
        return 0


def _incremental(container: bootstrap.Container, counting: CountingTableStore, graph: LocalGraph,
                 tenant: TenantId, entra: list[str], changes: int, label: str) -> None:
    """An incremental round measured alone (plan and mailbox rounds), then the insights' update it asks for."""
    for n in range(changes):
        i = n % len(entra)
        folder, message = _message(9, i, 100_000 + n, f"seller{i}@contoso.com", f"buyer@customer{i}.com")
        now = graph_time(datetime.now(UTC))
        graph.put_message(tenant, entra[i], folder, {**message, "sentDateTime": now, "receivedDateTime": now})
    graph.reset_calls()
    counting.reset()
    started = time.perf_counter()
    _plan_now(container, tenant)
    _drain(container, (WorkKind.MAILBOX_PLAN, WorkKind.MAILBOX_ROUND))
    elapsed = time.perf_counter() - started
    per_kind = dict(sorted(counting.calls.items()))
    print(f"incremental round, {len(entra)} mailboxes of {label} messages, {changes} new: "
          f"{graph.calls(tenant)} Graph requests ({graph.calls(tenant) / len(entra):.1f} a mailbox), "
          f"{counting.total} table operations {per_kind}, {elapsed:.1f} s")
    counting.reset()
    started = time.perf_counter()
    _drain(container, (WorkKind.INSIGHTS_UPDATE,))
    print(f"  the insights' update it asked for: {counting.total} table operations, "
          f"{time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mailboxes", type=int, default=50)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state, Azurite() as azurite, IdentityProvider(
            Path(state), RegisteredApp("bench", "bench", ("http://127.0.0.1/cb",)), api_audience="api://bench",
            port=0) as idp, LocalGraph(idp) as graph:
        container, counting = services_for(
            azurite.connection_string, "Rounds", SystemClock(), authority_host=idp.base_url,
            api_audiences=("api://bench",), ca_bundle=str(idp.tls.ca_cert), client_id="bench",
            client_secret="bench", graph_url=graph.base_url, queue_connection=azurite.connection_string)  # noqa: S106
        bootstrap.install(container)
        started = time.perf_counter()
        big, big_boxes = _tenant(container, graph, idp, 1, args.mailboxes, args.messages)
        small, small_boxes = _tenant(container, graph, idp, 2, args.mailboxes, max(1, args.messages // 20))
        print(f"set-up: {args.mailboxes} mailboxes x {args.messages} messages (and x {args.messages // 20}) in the "
              f"local Graph in {time.perf_counter() - started:.0f} s")
        _drain(container)  # the users' and records' own work (a recompute)
        counting.reset()
        started = time.perf_counter()
        _plan_now(container, big)
        rounds = _drain(container, (WorkKind.MAILBOX_PLAN, WorkKind.MAILBOX_ROUND))
        through_rounds = time.perf_counter() - started
        operations = counting.total
        insights = _drain(container)
        total = time.perf_counter() - started
        stored = sum(1 for _ in container.records.iter_activities(big, with_ingested_at=False))
        count = args.mailboxes * args.messages
        print(f"back-fill: {count} messages in {through_rounds:.0f} s through the rounds ({count / through_rounds:.0f} "
              f"messages/s; {operations} table operations, {operations / count:.2f} a message; {dict(rounds)}), "
              f"{total:.0f} s into insights ({count / total:.0f} messages/s end to end; {dict(insights)}); "
              f"{stored} activities stored")
        _plan_now(container, small)
        _drain(container)
        _incremental(container, counting, graph, big, big_boxes, args.changes, str(args.messages))
        _incremental(container, counting, graph, small, small_boxes, args.changes, str(max(1, args.messages // 20)))
        bootstrap.install(None)


if __name__ == "__main__":
    main()
