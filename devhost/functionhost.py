"""A local Functions host: serves a `func.FunctionApp` (Python v2 model) with the host's semantics, for
development and tests on machines without Core Tools. The socket server is `http_server`, timers are `timers`,
queue triggers are `queues`; this module loads the app and dispatches to its functions.

HTTP functions
- Served under `/{route_prefix}/{route}` (`devhost.routing`); a function without a route is served at its name.
  Two functions with the same route and overlapping methods are refused when the host is built.
- No function for the path: 404. The path matches but not the method: 405 with `Allow`. Both as
  `application/problem+json`. (The deployed host matches the method as part of the route, so it answers 404.)
- Keys are not checked, whatever the auth level: Core Tools does not check them locally either.
- The request reaches the function as the worker builds it: header names lower-cased and repeated headers
  joined with ',', query values joined with ',' per key with empty values left out (ASP.NET's query collection
  as the host forwards it), route values percent-decoded, body bytes unchanged.
- The response goes out as the worker encodes it: status, body, headers (the last value per name, every
  `Set-Cookie`), and `Content-Type` from mimetype (plus charset for text/*) unless set. A function that raises,
  or returns something other than an HttpResponse or str, gives a 500 problem without details; the traceback
  goes to the log.

Host endpoints
- `POST /admin/functions/{name}` with an optional JSON body `{"input": "..."}` runs a timer function now, or a
  queue function with `input` as the message, and answers 202 without waiting, like Core Tools. With the header
  `x-devhost-wait: true` the 202 comes only after the run ended (the devhost's addition, for tests and scripts).
  Unknown function: 404; HTTP function: 400.
- `GET /admin/host/status` answers `{"state": "Running"}`; `GET /` lists the functions as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions.http import HttpRequest as WorkerHttpRequest
from azure.functions.queue import QueueMessage

from devhost import cors
from devhost.http_server import HttpServer, Response, json_response, problem
from devhost.indexing import index
from devhost.invocation import Invoker
from devhost.ncrontab import Schedule
from devhost.queues import DEFAULT_LEASE_SECONDS, QueueFunction, QueueListener, QueueOptions
from devhost.routing import RouteTemplate, function_route
from devhost.timers import PAST_DUE_TOLERANCE, TimerFunction, TimerRunner, is_sub_minute
from shared.api.requests import nesting_exceeds

log = logging.getLogger("devhost")

Clock = Callable[[], datetime]
WAIT_HEADER = "x-devhost-wait"
HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"

__all__ = ["PAST_DUE_TOLERANCE", "WAIT_HEADER", "FunctionHost"]

_ADMIN_STATUS = RouteTemplate.parse("admin/host/status")
_ADMIN_FUNCTION = RouteTemplate.parse("admin/functions/{name}")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_FRAMING_HEADERS = {"content-length", "transfer-encoding", "connection"}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class HttpFunction:
    name: str
    template: RouteTemplate  # includes the route prefix
    methods: frozenset[str] | None  # None: every method
    auth_level: str
    arg_name: str
    handler: Callable[..., Any]


class _ResponseError(Exception):
    pass


def _enum_value(value: object) -> str:
    return str(getattr(value, "value", value))


def _joined_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else str(value)
    return joined


def _query(query: str) -> dict[str, str]:
    grouped: dict[str, tuple[str, list[str]]] = {}  # ASP.NET's query keys are case-insensitive
    for key, value in parse_qsl(query, keep_blank_values=True):
        grouped.setdefault(key.lower(), (key, []))[1].append(value)
    return {key: ",".join(values) for key, values in grouped.values() if ",".join(values)}


def _render(result: object) -> Response:
    if isinstance(result, str):
        return Response(200, [("Content-Type", "text/plain; charset=utf-8")], result.encode())
    if not isinstance(result, func.HttpResponse):
        raise _ResponseError(f"returned {type(result).__name__}, not func.HttpResponse")
    status = int(result.status_code)
    if not 100 <= status <= 999:
        raise _ResponseError(f"returned the status code {status}")
    # The worker sends headers as a dict (the last value per name wins) and Set-Cookie headers as cookies.
    latest: dict[str, tuple[str, str]] = {}
    cookies: list[tuple[str, str]] = []
    for name, value in result.headers.items():
        if _HEADER_NAME.fullmatch(name) is None or _HEADER_VALUE.fullmatch(value) is None:
            raise _ResponseError(f"returned an invalid header {name!r}: {value!r}")
        if name.lower() == "set-cookie":
            cookies.append(("Set-Cookie", value))
        elif name.lower() not in _FRAMING_HEADERS:
            first_name = latest[name.lower()][0] if name.lower() in latest else name
            latest[name.lower()] = (first_name, value)
    if "content-type" not in latest:
        mimetype = str(result.mimetype)
        content_type = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
        latest["content-type"] = ("Content-Type", content_type)
    return Response(status, [*latest.values(), *cookies], bytes(result.get_body()))


class FunctionHost:
    def __init__(self, app: func.FunctionApp, *, host: str = "127.0.0.1", port: int = 7071,
                 route_prefix: str = "api", settings: Mapping[str, str] | None = None, run_timers: bool = True,
                 serve_http: bool = True, run_queues: bool = True, queue_options: QueueOptions | None = None,
                 message_lease_seconds: float = DEFAULT_LEASE_SECONDS, clock: Clock = utc_now) -> None:
        """`run_queues` listens to the queue triggers' queues (connections from `settings`, then the
        environment); `serve_http` False makes a worker that only runs queue triggers."""
        self.host = host
        self.port = port
        self.route_prefix = route_prefix.strip().strip("/")
        self.run_timers = run_timers
        self.serve_http = serve_http
        self.run_queues = run_queues
        self._settings = dict(settings or {})
        self._clock = clock
        self._queue_options = queue_options or QueueOptions.from_host_json(HOST_JSON)
        self._lease = message_lease_seconds
        http: list[HttpFunction] = []
        timers: dict[str, TimerFunction] = {}
        self.queue_functions: dict[str, QueueFunction] = {}
        self._names: dict[str, str] = {}  # lower-cased name -> name: the admin endpoint ignores case
        for fn in index(app):
            self._load(fn, http, timers)
        self._check_conflicts(http)
        # Stable: functions of equal precedence keep their registration order.
        self.http_functions = tuple(sorted(http, key=lambda f: f.template.specificity, reverse=True))
        self._invoker = Invoker()
        self._timers = TimerRunner(timers, self._invoker, clock)
        self.listeners: list[QueueListener] = []
        self._lifecycle = threading.Lock()
        self._stopping = threading.Event()
        self._started = False
        self._server: HttpServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def timer_functions(self) -> dict[str, TimerFunction]:
        return self._timers.timers

    # -- loading ------------------------------------------------------------------------------------------

    def _load(self, fn: Any, http: list[HttpFunction], timers: dict[str, TimerFunction]) -> None:
        name = str(fn.get_function_name())
        trigger = fn.get_trigger()
        spec: dict[str, Any] = trigger.get_dict_repr() if trigger is not None else {}
        kind = spec.get("type")
        handler: Callable[..., Any] = fn.get_user_function()
        bindings = [_enum_value(b.get_dict_repr().get("type")) for b in fn.get_bindings() if b is not trigger]
        unsupported = [binding for binding in bindings if binding != "http"]
        if unsupported:
            log.warning("function %s uses bindings the dev host does not provide: %s", name, ", ".join(unsupported))
        arg_name = str(spec.get("name", "req"))
        if kind == "httpTrigger":
            methods = spec.get("methods")
            template = function_route(name, spec.get("route"), self.route_prefix)
            http.append(HttpFunction(
                name, template, frozenset(_enum_value(m).upper() for m in methods) if methods else None,
                _enum_value(spec.get("authLevel", "function")), arg_name, handler))
        elif kind == "timerTrigger":
            expression = self._resolve(name, str(spec.get("schedule", "")))
            try:
                schedule = Schedule.parse(expression)
            except ValueError as exc:
                raise ValueError(f"function {name}: {exc}") from None
            monitored = spec.get("useMonitor", True) is not False and not is_sub_minute(schedule, self._clock())
            timers[name] = TimerFunction(name, expression, schedule, arg_name, handler,
                                         bool(spec.get("runOnStartup")), monitored)
        elif kind == "queueTrigger":
            self.queue_functions[name] = QueueFunction(
                name, self._resolve(name, str(spec.get("queueName", ""))),
                self._setting(name, str(spec.get("connection") or "AzureWebJobsStorage")), arg_name, handler)
        else:
            log.warning("function %s: %s triggers are not supported by the dev host; not loaded", name, kind)
            return
        self._names[name.lower()] = name

    def _setting(self, function: str, key: str) -> str:
        value = self._settings.get(key)
        value = os.environ.get(key) if value is None else value
        if not value:
            raise ValueError(f"function {function}: it refers to app setting {key!r}, which is not set")
        return value

    def _resolve(self, function: str, text: str) -> str:
        return re.sub(r"%([^%]+)%", lambda match: self._setting(function, match.group(1)), text)

    @staticmethod
    def _check_conflicts(functions: list[HttpFunction]) -> None:
        seen: dict[str, list[HttpFunction]] = {}
        for fn in functions:
            key = fn.template.template.lower()
            for other in seen.get(key, []):
                if fn.methods is None or other.methods is None or fn.methods & other.methods:
                    raise ValueError(f"the route of function {fn.name} ({fn.template.template}) conflicts with "
                                     f"the route of function {other.name}")
            seen.setdefault(key, []).append(fn)

    # -- lifecycle ----------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)  # noqa: S104
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def start(self) -> Self:
        """Serves in background threads; with port=0 the port chosen is in `port` and `base_url`."""
        with self._lifecycle:
            if self._started:
                raise RuntimeError("this host was already started (a stopped host cannot be restarted)")
            self._started = True
            if self.serve_http:
                server = HttpServer((self.host, self.port), self.dispatch)
                self.port = int(server.server_address[1])
                self._server = server
                thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.1),
                                          name="devhost-http", daemon=True)
                thread.start()
                self._threads.append(thread)
            self._timers.start(schedule=self.run_timers)
            if self.run_queues:
                self.listeners = [QueueListener(fn, self._queue_options, self._invoker, lease_seconds=self._lease)
                                  for fn in self.queue_functions.values()]
                for listener in self.listeners:
                    listener.start()
        self._describe_start()
        return self

    def _describe_start(self) -> None:
        log.info("devhost serving %d HTTP, %d timer and %d queue functions%s", len(self.http_functions),
                 len(self.timer_functions), len(self.queue_functions),
                 f" on {self.base_url}" if self.serve_http else " (worker: queues only)")
        for fn in self.http_functions if self.serve_http else ():
            log.info("  %s: [%s] %s/%s", fn.name, ",".join(sorted(fn.methods or ["*"])), self.base_url,
                     fn.template.template)
        for timer in self.timer_functions.values():
            log.info("  %s: timer '%s'%s", timer.name, timer.expression, "" if self.run_timers else " (not scheduled)")
        for queue in self.queue_functions.values():
            log.info("  %s: queue '%s'%s", queue.name, queue.queue_name, "" if self.run_queues else " (not listened)")

    def stop(self, timeout: float = 5.0) -> None:
        """Stops serving, scheduling and listening, then waits up to `timeout` seconds for runs in progress."""
        with self._lifecycle:
            if not self._started or self._stopping.is_set():
                return
            self._stopping.set()
            server, self._server = self._server, None
            if server is not None:
                server.shutdown()
                server.close_connections()
                server.server_close()
            for thread in self._threads:
                thread.join(timeout)
            self._timers.stop(timeout)
            for listener in self.listeners:
                listener.stop(timeout)
            self._invoker.close(timeout)
        log.info("devhost stopped")

    def serve_forever(self) -> None:
        """Starts if needed, then blocks until `stop()` is called (from another thread) or Ctrl-C."""
        if not self._started:
            self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- running functions now ----------------------------------------------------------------------------

    def invoke(self, name: str, *, wait: bool = False, timeout: float | None = None, payload: str = "") -> bool:
        """Runs a timer function, or a queue function with `payload` as its message, now. With `wait`, returns
        once the run ended (False if `timeout` passed first)."""
        if name in self.timer_functions:
            return self._timers.invoke(name, wait=wait, timeout=timeout)
        function = self.queue_functions[name]
        done = threading.Event()

        def run() -> None:
            try:
                message = QueueMessage(id=str(uuid.uuid4()), body=payload.encode(), dequeue_count=1)
                self._invoker.call(function.handler, {function.arg_name: message})
            except Exception:
                log.exception("queue function %s raised", name)
            finally:
                done.set()

        threading.Thread(target=run, name=f"devhost-invoke-{name}", daemon=True).start()
        return done.wait(timeout) if wait else True

    def drain(self, timeout: float = 60.0) -> bool:
        """Waits until every listened queue is empty and no message is in flight (tests, scripts)."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            idle = all(listener.busy == 0 for listener in self.listeners) and all(
                listener.visible() == 0 for listener in self.listeners)
            if idle:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= 0.3:  # a follow-up message sent at the end of a run
                    return True
            else:
                quiet_since = None
            time.sleep(0.1)  # each look asks the queue service for its counts
        return False

    # -- HTTP ---------------------------------------------------------------------------------------------

    @cors.applies  # Host.CORS (devhost.cors): preflights answered here, Access-Control-* on responses
    def dispatch(self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes) -> Response:
        """Answers one request (`target` as in the request line: path and query) without the network."""
        method = method.upper()
        parts = urlsplit(target)
        path = parts.path or "/"
        joined = _joined_headers(headers)
        admin = self._admin(method, path, joined, body)
        if admin is not None:
            return admin
        allowed: set[str] = set()
        for fn in self.http_functions:
            values = fn.template.match(path)
            if values is None:
                continue
            if fn.methods is not None and method not in fn.methods:
                allowed |= fn.methods
                continue
            authority = joined.get("host") or urlsplit(self.base_url).netloc
            url = target if parts.scheme else f"http://{authority}{target}"
            request = WorkerHttpRequest(method, url, headers=joined, params=_query(parts.query), route_params=values,
                                        body_type="bytes", body=body)
            try:
                return _render(self._invoker.call(fn.handler, {fn.arg_name: request}))
            except _ResponseError as exc:
                log.error("function %s %s", fn.name, exc)
            except Exception:
                log.exception("function %s raised", fn.name)
            return problem(500, "The function failed; the host's log has the details.")
        if allowed:
            return problem(405, f"{method} is not allowed here.", [("Allow", ", ".join(sorted(allowed)))])
        if path == "/" and method in ("GET", "HEAD"):
            return json_response(200, self.describe())
        return problem(404, "No function serves this path.")

    def describe(self) -> dict[str, object]:
        return {
            "http": [{"name": f.name, "route": f"/{f.template.template}", "methods": sorted(f.methods or ["*"]),
                      "authLevel": f.auth_level} for f in self.http_functions],
            "timers": [{"name": t.name, "schedule": t.expression,
                        "next": t.next_due.isoformat() if t.next_due and self.run_timers else None}
                       for t in self.timer_functions.values()],
            "queues": [{"name": q.name, "queue": q.queue_name} for q in self.queue_functions.values()],
            "admin": "POST /admin/functions/{name}",
        }

    def _admin(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response | None:
        if _ADMIN_STATUS.match(path) is not None:
            if method not in ("GET", "HEAD"):
                return problem(405, f"{method} is not allowed here.", [("Allow", "GET")])
            return json_response(200, {"state": "Running"})
        found = _ADMIN_FUNCTION.match(path)
        if found is None:
            return problem(404, "No such host endpoint.") if path.lower().startswith("/admin/") else None
        if method != "POST":
            return problem(405, f"{method} is not allowed here.", [("Allow", "POST")])
        name = self._names.get(found["name"].lower())
        if name is None:
            return problem(404, f"There is no function named {found['name']!r}.")
        if name not in self.timer_functions and name not in self.queue_functions:
            return problem(400, f"{name} is an HTTP function: call its route instead.")
        payload = ""
        if body.strip():
            try:
                # Refused before the parser: a RecursionError's traceback from arrays nested 1,000 deep is itself
                # too deep for the tools that later format it.
                data = None if nesting_exceeds(body) else json.loads(body)
            except ValueError:
                data = None
            if not isinstance(data, dict) or not isinstance(data.get("input", ""), str):
                return problem(400, 'The body must be a JSON object like {"input": ""}.')
            payload = data.get("input", "")
        self.invoke(name, wait=headers.get(WAIT_HEADER, "").strip().lower() in ("true", "1"), payload=payload)
        return Response(202)
