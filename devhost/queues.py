"""Queue triggers as the Functions host runs them, on Azure Storage queues (Azurite locally).

- Options come from host.json `extensions.queues`, with the host's defaults: `batchSize` 16 (at most 32),
  `newBatchThreshold` batchSize/2, `maxPollingInterval` one minute, `visibilityTimeout` zero, `maxDequeueCount`
  5, `messageEncoding` base64.
- A listener per function polls its queue: at once while messages come, then backing off, doubling up to
  `maxPollingInterval`. It fetches a new batch when the messages in flight fall to `newBatchThreshold`.
- A received message stays invisible to others for a lease (10 minutes, as the host), renewed at half-time while
  the function runs; a worker that dies mid-message lets it come back when the lease ends.
- Success deletes the message. A failure makes it visible again after `visibilityTimeout`, unless it has been
  dequeued `maxDequeueCount` times: then it moves to `{queue}-poison` and the failure is logged with the
  message's tenant and operation id. One bad message blocks nobody.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from azure.functions.queue import QueueMessage

from devhost.invocation import Invoker

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient
    from azure.storage.queue import QueueMessage as StoredMessage

log = logging.getLogger("devhost")

DEFAULT_LEASE_SECONDS = 600.0
MIN_POLLING_SECONDS = 0.1


def _seconds(value: object, default: float) -> float:
    """A host.json TimeSpan ("00:00:02", "1.00:00:00") in seconds."""
    if value is None:
        return default
    parts = str(value).split(":")
    if len(parts) != 3:
        raise ValueError(f"host.json: {value!r} is not a TimeSpan like 00:00:02")
    days, _, hours = parts[0].rpartition(".")
    return int(days or 0) * 86400 + int(hours) * 3600 + int(parts[1]) * 60 + float(parts[2])


@dataclass(frozen=True)
class QueueOptions:
    batch_size: int = 16
    new_batch_threshold: int | None = None
    max_polling_seconds: float = 60.0
    visibility_timeout_seconds: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: Literal["base64", "none"] = "base64"

    @property
    def threshold(self) -> int:
        return self.batch_size // 2 if self.new_batch_threshold is None else self.new_batch_threshold

    @classmethod
    def from_host_json(cls, path: Path) -> QueueOptions:
        queues: Mapping[str, Any] = json.loads(path.read_text()).get("extensions", {}).get("queues", {})
        encoding = str(queues.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"host.json: unknown messageEncoding {encoding!r}")
        batch = int(queues.get("batchSize", 16))
        if not 1 <= batch <= 32:
            raise ValueError("host.json: batchSize is 1 to 32")
        return cls(batch_size=batch, new_batch_threshold=queues.get("newBatchThreshold"),
                   max_polling_seconds=_seconds(queues.get("maxPollingInterval"), 60.0),
                   visibility_timeout_seconds=_seconds(queues.get("visibilityTimeout"), 0.0),
                   max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
                   message_encoding=encoding)  # type: ignore[arg-type]


@dataclass(eq=False)
class QueueFunction:
    name: str
    queue_name: str  # with %SETTINGS% resolved
    connection: str  # the connection string the `connection` setting names
    arg_name: str
    handler: Callable[..., object]


@dataclass(eq=False)
class _InFlight:
    stored: StoredMessage
    pop_receipt: str
    renew_at: float
    lock: threading.Lock


def queue_client(connection: str, queue_name: str) -> QueueClient:
    """A client that sends and receives the text exactly as stored (encoding is ours to apply)."""
    from azure.storage.queue import QueueClient

    from shared.storage.queues import client_options

    return QueueClient.from_connection_string(connection, queue_name, **client_options())


class QueueListener:
    def __init__(self, function: QueueFunction, options: QueueOptions, invoker: Invoker, *,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.function = function
        self._options = options
        self._invoker = invoker
        self._lease = lease_seconds
        self._queue = queue_client(function.connection, function.queue_name)
        self._poison = queue_client(function.connection, f"{function.queue_name}-poison")
        self._executor = ThreadPoolExecutor(max_workers=options.batch_size,
                                            thread_name_prefix=f"devhost-{function.name}")
        self._in_flight: dict[str, _InFlight] = {}
        self._state = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.processed = 0
        self.failed = 0

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._poll, "poll"), (self._renew, "renew")):
            thread = threading.Thread(target=target, name=f"devhost-{self.function.name}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float) -> None:
        """Stops fetching; messages in flight finish (or come back after their lease if they outlast `timeout`)."""
        self._stopping.set()
        with self._state:
            self._state.notify_all()
            self._state.wait_for(lambda: not self._in_flight, timeout)
        for thread in self._threads:
            thread.join(timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def busy(self) -> int:
        with self._state:
            return len(self._in_flight)

    def visible(self) -> int:
        """How many messages wait in the queue (an estimate, as the service's count is)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return int(self._queue.get_queue_properties().approximate_message_count or 0)
        except ResourceNotFoundError:
            return 0

    # -- polling ------------------------------------------------------------------------------------------

    def _poll(self) -> None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        wait = MIN_POLLING_SECONDS
        while not self._stopping.is_set():
            with self._state:
                self._state.wait_for(lambda: len(self._in_flight) <= self._options.threshold
                                     or self._stopping.is_set())
                room = self._options.batch_size - len(self._in_flight)
            if self._stopping.is_set():
                return
            try:
                received = list(self._queue.receive_messages(messages_per_page=min(32, room), max_messages=room,
                                                             visibility_timeout=int(self._lease)))
            except ResourceNotFoundError:
                received = []  # no queue yet: nothing was ever sent
            except AzureError as exc:
                log.warning("queue %s: receive failed (%s); retrying", self.function.queue_name, type(exc).__name__)
                received = []
            if not received:
                self._stopping.wait(wait)
                wait = min(wait * 2, self._options.max_polling_seconds)
                continue
            wait = MIN_POLLING_SECONDS
            for stored in received:
                flight = _InFlight(stored, str(stored.pop_receipt), time.monotonic() + self._lease / 2,
                                   threading.Lock())
                with self._state:
                    self._in_flight[str(stored.id)] = flight
                self._executor.submit(self._process, flight)

    def _renew(self) -> None:
        from azure.core.exceptions import AzureError

        while not self._stopping.wait(min(1.0, self._lease / 4)):
            with self._state:
                due = [f for f in self._in_flight.values() if f.renew_at <= time.monotonic()]
            for flight in due:
                with flight.lock:
                    try:
                        receipt = self._queue.update_message(flight.stored.id, flight.pop_receipt,
                                                             visibility_timeout=int(self._lease))
                        flight.pop_receipt = str(receipt.pop_receipt)
                        flight.renew_at = time.monotonic() + self._lease / 2
                    except AzureError as exc:
                        log.warning("queue %s: could not renew a message's lease (%s)", self.function.queue_name,
                                    type(exc).__name__)

    # -- one message --------------------------------------------------------------------------------------

    def _process(self, flight: _InFlight) -> None:
        stored = flight.stored
        try:
            body = self._decode(str(stored.content))
            message = QueueMessage(id=stored.id, body=body, dequeue_count=stored.dequeue_count,
                                   expiration_time=stored.expires_on, insertion_time=stored.inserted_on,
                                   time_next_visible=stored.next_visible_on, pop_receipt=flight.pop_receipt)
            outcome = "Succeeded"
            started = time.perf_counter()
            try:
                self._invoker.call(self.function.handler, {self.function.arg_name: message})
            except Exception:
                outcome = "Failed"
                log.exception("queue function %s raised (dequeue count %s)", self.function.name,
                              stored.dequeue_count)
            log.info("Executed 'Functions.%s' (%s, Id=%s, Duration=%.0fms)", self.function.name, outcome, stored.id,
                     (time.perf_counter() - started) * 1000)
            with flight.lock:
                if outcome == "Succeeded":
                    self._settle(lambda: self._queue.delete_message(stored.id, flight.pop_receipt))
                    self.processed += 1
                else:
                    self.failed += 1
                    self._after_failure(flight, body)
        except _Undecodable:
            log.error("queue %s: message %s is not %s-encoded; moved to the poison queue", self.function.queue_name,
                      stored.id, self._options.message_encoding)
            with flight.lock:
                self._to_poison(flight)
        finally:
            with self._state:
                self._in_flight.pop(str(stored.id), None)
                self._state.notify_all()

    def _after_failure(self, flight: _InFlight, body: bytes) -> None:
        stored = flight.stored
        if int(stored.dequeue_count or 0) >= self._options.max_dequeue_count:
            self._to_poison(flight)
            tenant, operation = _ids(body)
            log.error("queue %s: message %s failed %s times and moved to %s-poison (tenant %s, operation %s)",
                      self.function.queue_name, stored.id, stored.dequeue_count, self.function.queue_name, tenant,
                      operation)
            return
        seconds = int(self._options.visibility_timeout_seconds)
        self._settle(lambda: self._queue.update_message(stored.id, flight.pop_receipt, visibility_timeout=seconds))

    def _to_poison(self, flight: _InFlight) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self._poison.create_queue()
        self._poison.send_message(str(flight.stored.content))
        self._settle(lambda: self._queue.delete_message(flight.stored.id, flight.pop_receipt))

    def _settle(self, action: Callable[[], object]) -> None:
        from azure.core.exceptions import AzureError

        try:
            action()
        except AzureError as exc:  # the lease ran out, or the service is gone: the message comes back
            log.warning("queue %s: could not settle a message (%s); it will be delivered again",
                        self.function.queue_name, type(exc).__name__)

    def _decode(self, content: str) -> bytes:
        if self._options.message_encoding == "none":
            return content.encode("utf-8")
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _Undecodable from exc


class _Undecodable(Exception):
    pass


def _ids(body: bytes) -> tuple[str, str]:
    """The tenant and operation a message of ours names, for the log of a poisoned one."""
    try:
        data = json.loads(body)
        return str(data.get("tenantId", "?")), str(data.get("operationId", "?"))
    except (ValueError, AttributeError):
        return "?", "?"
