"""Calling user functions as the Python worker does: `async def` ones on one shared event loop, others on the
calling thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from inspect import isawaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


class Invoker:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, handler: Callable[..., Any], arguments: dict[str, Any]) -> Any:
        result = handler(**arguments)
        if isawaitable(result):
            return asyncio.run_coroutine_threadsafe(_awaited(result), self._event_loop()).result()
        return result

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="devhost-asyncio", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def close(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._loop.close()
