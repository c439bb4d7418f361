"""The local Functions host: serves `function_app.app` like the Functions host does, for development and
tests on machines without Core Tools.

- HTTP functions under `/{routePrefix}/{route}` with route templates and constraints, method filtering
  (405 + Allow), 404 for unknown routes, requests and responses passed as `func.HttpRequest` /
  `func.HttpResponse`. Keys are not enforced locally (Core Tools does not enforce them either).
- Timer functions on their NCRONTAB schedule (`%SETTING%` resolved from settings, then the environment),
  one run at a time per function, `past_due` when started late; and on demand through the host's admin
  endpoint `POST /admin/functions/{name}` (202). Add `x-devhost-wait: true` to wait for the run to end.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions.timer import TimerRequest

from devhost.indexing import index
from devhost.ncrontab import Schedule
from devhost.routing import RouteTemplate

log = logging.getLogger("devhost")

MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's request limit
PAST_DUE_TOLERANCE = timedelta(seconds=1)


@dataclass
class HttpFunction:
    name: str
    template: RouteTemplate
    methods: frozenset[str] | None
    handler: Any


@dataclass
class TimerFunction:
    name: str
    schedule: Schedule
    arg_name: str
    handler: Any
    run_on_startup: bool
    lock: threading.Lock = field(default_factory=threading.Lock)
    runs: int = 0


def _call(handler: Any, *args: Any, **kwargs: Any) -> Any:
    result = handler(*args, **kwargs)
    if inspect.iscoroutine(result):
        return asyncio.run(result)
    return result


def _resolve(schedule: str, settings: Mapping[str, str]) -> str:
    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        value = settings.get(name) or os.environ.get(name)
        if not value:
            raise ValueError(f"the schedule refers to app setting {name}, which is not set")
        return value

    return re.sub(r"%([^%]+)%", lookup, schedule)


class FunctionHost:
    def __init__(self, app: func.FunctionApp, *, host: str = "127.0.0.1", port: int = 7071, route_prefix: str = "api",
                 settings: Mapping[str, str] | None = None, run_timers: bool = True) -> None:
        self.host = host
        self.port = port
        self.route_prefix = route_prefix.strip("/")
        self.run_timers = run_timers
        self.http: list[HttpFunction] = []
        self.timers: dict[str, TimerFunction] = {}
        settings = settings or {}
        for fn in index(app):
            trigger = fn.get_trigger().get_dict_repr()
            name = fn.get_function_name()
            if trigger["type"] == "httpTrigger":
                methods = trigger.get("methods")
                self.http.append(HttpFunction(
                    name, RouteTemplate.parse(trigger.get("route") or name),
                    frozenset(getattr(m, "value", str(m)).upper() for m in methods) if methods else None,
                    fn.get_user_function()))
            elif trigger["type"] == "timerTrigger":
                self.timers[name] = TimerFunction(name, Schedule.parse(_resolve(trigger["schedule"], settings)),
                                                  trigger["name"], fn.get_user_function(),
                                                  bool(trigger.get("runOnStartup")))
        self.http.sort(key=lambda f: f.template.specificity, reverse=True)
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> FunctionHost:
        server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._stop.clear()
        self._threads = [threading.Thread(target=server.serve_forever, name="devhost-http", daemon=True)]
        if self.run_timers:
            for timer in self.timers.values():
                self._threads.append(threading.Thread(target=self._schedule, args=(timer,),
                                                      name=f"devhost-timer-{timer.name}", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FunctionHost:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- timers -----------------------------------------------------------------------------------------

    def run_timer(self, name: str, *, scheduled: datetime | None = None) -> bool:
        """Runs a timer function now (one run at a time per function). False if it was already running."""
        timer = self.timers[name]
        if not timer.lock.acquire(blocking=False):
            log.info("timer %s is still running; this occurrence is skipped", name)
            return False
        try:
            now = datetime.now(UTC)
            past_due = scheduled is not None and now - scheduled > PAST_DUE_TOLERANCE
            request = TimerRequest(past_due=past_due)
            started = time.perf_counter()
            try:
                _call(timer.handler, **{timer.arg_name: request})
                log.info("timer %s ran in %.1f ms (past_due=%s)", name, (time.perf_counter() - started) * 1000,
                         past_due)
            except Exception:
                log.exception("timer %s failed", name)
            timer.runs += 1
            return True
        finally:
            timer.lock.release()

    def _schedule(self, timer: TimerFunction) -> None:
        if timer.run_on_startup:
            self.run_timer(timer.name)
        next_run = timer.schedule.next_after(datetime.now(UTC))
        while not self._stop.is_set():
            wait = (next_run - datetime.now(UTC)).total_seconds()
            if wait > 0 and self._stop.wait(min(wait, 1.0)):
                return
            if datetime.now(UTC) >= next_run:
                self.run_timer(timer.name, scheduled=next_run)
                next_run = timer.schedule.next_after(max(next_run, datetime.now(UTC) - PAST_DUE_TOLERANCE))

    # -- HTTP -------------------------------------------------------------------------------------------

    def dispatch(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes,
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        parts = urlsplit(raw_path)
        path = parts.path
        if path.rstrip("/") == "" and method == "GET":
            listing = {"http": [{"name": f.name, "route": f"/{self.route_prefix}/{f.template.template}",
                                 "methods": sorted(f.methods or [])} for f in self.http],
                       "timers": sorted(self.timers)}
            return _json(200, listing)
        if path == "/admin/host/status":
            return _json(200, {"state": "Running"})
        admin = re.fullmatch(r"/admin/functions/([^/]+)", path)
        if admin:
            name = admin.group(1)
            if method != "POST":
                return _problem(405, "Method Not Allowed", "use POST", [("Allow", "POST")])
            if name not in self.timers:
                return _problem(404, "Not Found", f"no non-HTTP function named {name}")
            if headers.get("x-devhost-wait", "").lower() == "true":
                self.run_timer(name)
            else:
                threading.Thread(target=self.run_timer, args=(name,), daemon=True).start()
            return 202, [], b""
        prefix = f"/{self.route_prefix}/" if self.route_prefix else "/"
        if not path.startswith(prefix):
            return _problem(404, "Not Found", f"no function serves {path}")
        relative = path[len(prefix):]
        allowed: set[str] = set()
        for fn in self.http:
            values = fn.template.match(relative)
            if values is None:
                continue
            if fn.methods is not None and method not in fn.methods:
                allowed |= fn.methods
                continue
            request = func.HttpRequest(method=method, url=f"{self.base_url}{raw_path}", headers=dict(headers),
                                       params=dict(parse_qsl(parts.query, keep_blank_values=True)),
                                       route_params=values, body=body)
            try:
                response = _call(fn.handler, request)
            except Exception:
                log.exception("function %s raised", fn.name)
                return _problem(500, "Internal Server Error", "the function failed")
            return _render(response)
        if allowed:
            return _problem(405, "Method Not Allowed", f"{method} is not allowed on {path}",
                            [("Allow", ", ".join(sorted(allowed)))])
        return _problem(404, "Not Found", f"no function serves {path}")


def _json(status: int, data: Any, headers: list[tuple[str, str]] | None = None,
          content_type: str = "application/json; charset=utf-8") -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", content_type), *(headers or [])], json.dumps(data).encode()


def _problem(status: int, title: str, detail: str, headers: list[tuple[str, str]] | None = None,
             ) -> tuple[int, list[tuple[str, str]], bytes]:
    return _json(status, {"type": "about:blank", "title": title, "status": status, "detail": detail}, headers,
                 "application/problem+json")


def _render(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    if not isinstance(response, func.HttpResponse):
        return _problem(500, "Internal Server Error", "the function did not return an HttpResponse")
    headers = [(k, v) for k, v in response.headers.items()]
    if not any(k.lower() == "content-type" for k, _ in headers) and response.mimetype:
        charset = f"; charset={response.charset}" if response.charset else ""
        headers.append(("Content-Type", f"{response.mimetype}{charset}"))
    return response.status_code, headers, response.get_body() or b""


def _handler_for(host: FunctionHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "devhost"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle + delayed ACK add ~40 ms a request.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _handle(self) -> None:
            started = time.perf_counter()
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                status, headers, body = _problem(413, "Payload Too Large", "the request body is too large")
                self.close_connection = True
            else:
                raw = self.rfile.read(length) if length else b""
                status, headers, body = host.dispatch(self.command, self.path, dict(self.headers.items()), raw)
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            log.info("%s %s -> %d in %.1f ms", self.command, urlsplit(self.path).path, status,
                     (time.perf_counter() - started) * 1000)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815

    return Handler
