"""Structured logs: every record carries the tenant id and the operation id of the work in progress.

The ids live in context variables, so they follow the current invocation (thread or task) without
being passed around; a log record factory stamps them on every record, whichever logger emits it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_tenant_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant_id", default=None)
_operation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("operation_id", default=None)

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
# Anything shaped like a JWT or a bearer credential is cut out of log lines, whatever logged it.
_SECRET_SHAPES = re.compile(r"(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|Bearer\s+\S+)")

_installed = False


def operation_id_from(traceparent: str | None) -> str:
    """The W3C trace id when the caller sent one (the Functions host does), else a fresh id."""
    if traceparent:
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match:
            return match.group(1)
    return uuid.uuid4().hex


@contextmanager
def log_context(*, tenant_id: str | None = None, operation_id: str | None = None) -> Iterator[None]:
    """Scope of one operation: on exit both ids return to what they were, whatever was bound inside."""
    tenant_token = _tenant_id.set(tenant_id)
    operation_token = _operation_id.set(operation_id or _operation_id.get())
    try:
        yield
    finally:
        _operation_id.reset(operation_token)
        _tenant_id.reset(tenant_token)


def bind_tenant(tenant_id: str) -> None:
    """Attach the tenant to the rest of the current operation (once the token has been validated)."""
    _tenant_id.set(tenant_id)


def current_operation_id() -> str | None:
    return _operation_id.get()


def install() -> None:
    """Stamp tenant_id and operation_id on every log record. Idempotent."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.tenant_id = _tenant_id.get()
        record.operation_id = _operation_id.get()
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def redact(text: str) -> str:
    return _SECRET_SHAPES.sub("[redacted]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for the local host and anything reading stdout."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "tenantId": getattr(record, "tenant_id", None),
            "operationId": getattr(record, "operation_id", None),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)
