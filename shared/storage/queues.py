"""Azure Storage queues as the work bus (implements the WorkQueue port).

One queue per kind of work, created on first use. Messages are JSON naming ids only (a message holds 64 KiB),
base64-encoded as the Functions host expects by default (host.json `extensions.queues.messageEncoding`).
Faults of the service are StorageUnavailable, like the table adapter's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.errors import StorageUnavailable
from shared.services.ports import WorkKind, WorkMessage
from shared.services.work import QUEUE_PREFIX, queue_name
from shared.storage.transport import storage_transport

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient, QueueServiceClient

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024


def client_options() -> dict[str, Any]:
    """Fail fast, as the table client does: a couple of quick retries, then the caller decides. (The storage SDK's
    own retry policy waits 15 s, then 45 s, by default: a send would hang for a minute.)"""
    from azure.storage.queue import LinearRetry

    return {"retry_policy": LinearRetry(backoff=1, random_jitter_range=0, retry_total=2),
            "transport": storage_transport(connection_timeout=3, read_timeout=10)}


class StorageWorkQueue:
    def __init__(self, service_factory: Callable[[], QueueServiceClient], prefix: str = QUEUE_PREFIX) -> None:
        """`prefix` names the queues; only tests change it, to keep worlds that share an emulator apart."""
        self._service_factory = service_factory
        self.prefix = prefix
        self._service: QueueServiceClient | None = None
        self._created: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_connection_string(cls, connection_string: str, prefix: str = QUEUE_PREFIX) -> StorageWorkQueue:
        def factory() -> QueueServiceClient:
            from azure.storage.queue import QueueServiceClient

            return QueueServiceClient.from_connection_string(connection_string, **client_options())

        return cls(factory, prefix)

    @classmethod
    def from_endpoint(cls, endpoint: str, credential: Any) -> StorageWorkQueue:
        def factory() -> QueueServiceClient:
            from azure.storage.queue import QueueServiceClient

            return QueueServiceClient(account_url=endpoint, credential=credential, **client_options())

        return cls(factory)

    def _queue(self, name: str) -> QueueClient:
        with self._lock:
            if self._service is None:
                self._service = self._service_factory()
            from azure.storage.queue import BinaryBase64DecodePolicy, TextBase64EncodePolicy

            # The policies belong to each queue client: the service client's are not passed on.
            client = self._service.get_queue_client(name, message_encode_policy=TextBase64EncodePolicy(),
                                                    message_decode_policy=BinaryBase64DecodePolicy())
            if name not in self._created:
                _create(client)
                self._created.add(name)
        return client

    def send(self, message: WorkMessage, *, delay: timedelta | None = None) -> None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        text = message.to_json()
        if len(text.encode()) * 4 // 3 > MAX_MESSAGE_BYTES:
            raise ValueError(f"a {message.kind.value} message of {len(text)} characters is too large for a queue")
        seconds = None if delay is None else max(0, int(delay.total_seconds()))
        name = self.name(message.kind)
        try:
            try:
                self._queue(name).send_message(text, visibility_timeout=seconds)
            except ResourceNotFoundError:  # the queue went (emulator restarted): create it again
                self._created.discard(name)
                self._queue(name).send_message(text, visibility_timeout=seconds)
        except AzureError as exc:
            log.warning("queue storage fault: %s", type(exc).__name__)
            raise StorageUnavailable("queue storage is busy or failing; try again shortly") from exc

    def name(self, kind: WorkKind) -> str:
        return queue_name(kind, self.prefix)

    def ensure_queues(self, kinds: tuple[WorkKind, ...] = tuple(WorkKind)) -> None:
        """Creates every queue (and its poison queue) now, so that listeners find them."""
        for kind in kinds:
            self._queue(self.name(kind))
            self._queue(f"{self.name(kind)}-poison")


def _create(client: QueueClient) -> None:
    from azure.core.exceptions import AzureError, ResourceExistsError

    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    except AzureError as exc:
        raise StorageUnavailable("queue storage is unreachable; try again shortly") from exc
