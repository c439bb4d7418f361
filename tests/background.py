"""Running the background work in a test, through the real queues: the timer's scheduler sends, then every
message (and every follow-up it sends) is handed to the worker until the queues are empty, as the host's queue
triggers would. A failing step is counted and its message dropped (the host would retry it; its index rows stay
due and leased, as after a failure in Azure)."""

from __future__ import annotations

import base64
import logging
import time
from collections import Counter
from dataclasses import dataclass

from devhost.queues import queue_client
from shared import bootstrap
from shared.services.background.worker import BackgroundWorker
from shared.services.ports import WorkKind, WorkMessage
from shared.storage.queues import StorageWorkQueue


@dataclass(frozen=True)
class Outcomes:
    counted: Counter[str]

    def count(self, outcome: str) -> int:
        return self.counted[outcome]


def run_background(world: bootstrap.Container) -> Outcomes:
    world.scheduler().run()
    return drain(world)


def drain(world: bootstrap.Container, *, worker: BackgroundWorker | None = None, rounds: int = 200,
          patience: float = 0.0) -> Outcomes:
    """`patience`: how long to keep looking once the queues seem empty, for messages sent with a delay (a step
    that continues after a source's Retry-After)."""
    queue = world.queue
    assert isinstance(queue, StorageWorkQueue)
    assert world.config.queue_connection is not None
    clients = [queue_client(world.config.queue_connection, queue.name(kind)) for kind in WorkKind]
    counted: Counter[str] = Counter()
    quiet_since: float | None = None
    for _ in range(rounds):
        handled = 0
        for client in clients:
            try:
                received = list(client.receive_messages(max_messages=32, visibility_timeout=60))
            except Exception:
                received = []
            for stored in received:
                message = WorkMessage.from_json(base64.b64decode(str(stored.content)).decode())
                try:
                    counted[(worker or world.worker()).handle(message)] += 1
                except Exception:
                    logging.getLogger("tests.background").exception("a %s step failed", message.kind.value)
                    counted["failed"] += 1
                client.delete_message(stored)
                handled += 1
        if handled:
            quiet_since = None
            continue
        quiet_since = quiet_since or time.monotonic()
        if time.monotonic() - quiet_since >= patience:
            return Outcomes(counted)
        time.sleep(0.2)
    raise AssertionError("the background work did not settle")
