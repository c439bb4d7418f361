"""A local Functions host: serves a `func.FunctionApp` (Python v2 model) with the host's semantics, for
development and tests on machines without Core Tools.

HTTP functions
- Served under `/{route_prefix}/{route}`; a function without a route is served at its name. Route templates,
  constraints and precedence come from `devhost.routing`. Two functions with the same route and overlapping
  methods are refused when the host is built.
- No function for the path: 404. The path matches but not the method: 405 with `Allow`. Both as
  `application/problem+json`. (The deployed host matches the method as part of the route, so it answers 404.)
- Keys are not checked, whatever the auth level: Core Tools does not check them locally either.
- The request reaches the function as the worker builds it: header names lower-cased and repeated headers
  joined with ',', query values joined with ',' per key with empty values left out (ASP.NET's query collection
  as the host forwards it), route values percent-decoded, body bytes unchanged up to 100 MB (413 above).
- `async def` functions run on one shared event loop, like the worker's; others on the request's thread.
- The response goes out as the worker encodes it: status, body, headers (the last value per name, every
  `Set-Cookie`), and `Content-Type` from mimetype (plus charset for text/*) unless set. A function that raises,
  or returns something other than an HttpResponse or str, gives a 500 problem without details; the traceback
  goes to the log.

Timer functions
- Schedules are NCRONTAB or TimeSpan (`devhost.ncrontab`), in UTC; `%NAME%` is resolved from `settings`, then
  the environment, when the host is built (ValueError if missing or invalid).
- With `run_timers`, a scheduler thread starts each occurrence on the host's executor; `runOnStartup` runs once
  at `start()`. A timer never runs twice at once (the host's singleton lock): an occurrence that comes due during
  a run waits for it (at most one waits; later ones are skipped), and a run that starts more than
  PAST_DUE_TOLERANCE after its occurrence gets `past_due=True`. Exceptions are logged and the schedule goes on.

Host endpoints
- `POST /admin/functions/{name}` with an optional JSON body `{"input": "..."}` runs a timer function now and
  answers 202 without waiting, like Core Tools. With the header `x-devhost-wait: true` the 202 comes only
  after the run ended (the devhost's addition, for tests). Unknown function: 404; HTTP function: 400.
- `GET /admin/host/status` answers `{"state": "Running"}`; `GET /` lists the functions as JSON.

Every request is logged on the `devhost` logger: method, path, status and milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from inspect import isawaitable
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions.http import HttpRequest as WorkerHttpRequest
from azure.functions.timer import TimerRequest

from devhost import cors
from devhost.indexing import index
from devhost.ncrontab import Schedule
from devhost.routing import RouteTemplate, function_route

log = logging.getLogger("devhost")

Clock = Callable[[], datetime]
Headers = list[tuple[str, str]]
T = TypeVar("T")

MAX_BODY_BYTES = 100 * 1024 * 1024  # the host's default request body limit
PAST_DUE_TOLERANCE = timedelta(milliseconds=500)
WAIT_HEADER = "x-devhost-wait"

_ADMIN_STATUS = RouteTemplate.parse("admin/host/status")
_ADMIN_FUNCTION = RouteTemplate.parse("admin/functions/{name}")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_FRAMING_HEADERS = {"content-length", "transfer-encoding", "connection"}
_NO_VALUE = "0001-01-01T00:00:00"  # .NET's default(DateTime), what the host reports before a first run


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Response:
    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""


def json_response(status: int, data: object, content_type: str = "application/json; charset=utf-8",
                  headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, [("Content-Type", content_type), *headers], json.dumps(data).encode())


def problem(status: int, detail: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return json_response(status, body, "application/problem+json", headers)


@dataclass(frozen=True)
class HttpFunction:
    name: str
    template: RouteTemplate  # includes the route prefix
    methods: frozenset[str] | None  # None: every method
    auth_level: str
    arg_name: str
    handler: Callable[..., Any]


@dataclass
class _Run:
    scheduled: datetime | None  # None: on demand (admin endpoint, runOnStartup)
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class TimerFunction:
    name: str
    expression: str  # with %SETTINGS% resolved
    schedule: Schedule
    arg_name: str
    handler: Callable[..., Any]
    run_on_startup: bool
    monitored: bool  # the host passes ScheduleStatus only when it keeps it (useMonitor, not sub-minute)
    runs: int = 0
    last: datetime | None = None
    next_due: datetime | None = None
    running: bool = False
    backlog: deque[_Run] = field(default_factory=deque)


class _ResponseError(Exception):
    pass


class _RequestError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


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
    cookies: Headers = []
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
                 clock: Clock = utc_now) -> None:
        self.host = host
        self.port = port
        self.route_prefix = route_prefix.strip().strip("/")
        self.run_timers = run_timers
        self._settings = dict(settings or {})
        self._clock = clock
        http: list[HttpFunction] = []
        self.timer_functions: dict[str, TimerFunction] = {}
        self._names: dict[str, str] = {}  # lower-cased name -> name: the admin endpoint ignores case
        for fn in index(app):
            self._load(fn, http)
        self._check_conflicts(http)
        # Stable: functions of equal precedence keep their registration order.
        self.http_functions = tuple(sorted(http, key=lambda f: f.template.specificity, reverse=True))

        self._state = threading.Condition()  # guards the timers' running/backlog/runs
        self._lifecycle = threading.Lock()
        self._stopping = threading.Event()
        self._started = False
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._executor = ThreadPoolExecutor(max_workers=max(1, len(self.timer_functions)),
                                            thread_name_prefix="devhost-timer")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()

    # -- loading ------------------------------------------------------------------------------------------

    def _load(self, fn: Any, http: list[HttpFunction]) -> None:
        name = str(fn.get_function_name())
        trigger = fn.get_trigger()
        spec: dict[str, Any] = trigger.get_dict_repr() if trigger is not None else {}
        kind = spec.get("type")
        handler: Callable[..., Any] = fn.get_user_function()
        bindings = [_enum_value(b.get_dict_repr().get("type")) for b in fn.get_bindings() if b is not trigger]
        unsupported = [binding for binding in bindings if binding != "http"]
        if unsupported:
            log.warning("function %s uses bindings the dev host does not provide: %s", name, ", ".join(unsupported))
        if kind == "httpTrigger":
            methods = spec.get("methods")
            template = function_route(name, spec.get("route"), self.route_prefix)
            http.append(HttpFunction(
                name, template, frozenset(_enum_value(m).upper() for m in methods) if methods else None,
                _enum_value(spec.get("authLevel", "function")), str(spec.get("name", "req")), handler))
        elif kind == "timerTrigger":
            expression = self._resolve(name, str(spec.get("schedule", "")))
            try:
                schedule = Schedule.parse(expression)
            except ValueError as exc:
                raise ValueError(f"function {name}: {exc}") from None
            monitored = spec.get("useMonitor", True) is not False and not self._sub_minute(schedule)
            self.timer_functions[name] = TimerFunction(name, expression, schedule, str(spec.get("name", "timer")),
                                                       handler, bool(spec.get("runOnStartup")), monitored)
        else:
            log.warning("function %s: %s triggers are not supported by the dev host; not loaded", name, kind)
            return
        self._names[name.lower()] = name

    def _resolve(self, function: str, text: str) -> str:
        def lookup(match: re.Match[str]) -> str:
            key = match.group(1)
            value = self._settings.get(key)
            value = os.environ.get(key) if value is None else value
            if not value:
                raise ValueError(f"function {function}: the schedule refers to app setting {key!r}, which is not set")
            return value

        return re.sub(r"%([^%]+)%", lookup, text)

    def _sub_minute(self, schedule: Schedule) -> bool:
        # Mirrors the host, which stops keeping schedule status for schedules firing more than once a minute.
        now = self._clock()
        try:
            return schedule.next_after(schedule.next_after(now)) < now + timedelta(minutes=1)
        except ValueError:
            return False

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
            server = _Server((self.host, self.port), self)
            self.port = int(server.server_address[1])
            self._server = server
            self._spawn("devhost-http", lambda: server.serve_forever(poll_interval=0.1))
            if self.run_timers:
                for timer in self.timer_functions.values():
                    if timer.run_on_startup:
                        self._enqueue(timer, None)
                if self.timer_functions:
                    self._spawn("devhost-scheduler", self._schedule_loop)
        log.info("devhost serving %d HTTP and %d timer functions on %s", len(self.http_functions),
                 len(self.timer_functions), self.base_url)
        for fn in self.http_functions:
            log.info("  %s: [%s] %s/%s", fn.name, ",".join(sorted(fn.methods or ["*"])), self.base_url,
                     fn.template.template)
        for timer in self.timer_functions.values():
            log.info("  %s: timer '%s'%s", timer.name, timer.expression, "" if self.run_timers else " (not scheduled)")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stops serving and scheduling, then waits up to `timeout` seconds for timer runs in progress."""
        with self._lifecycle:
            server, self._server = self._server, None
            if server is None:
                return
            self._stopping.set()
            server.shutdown()
            server.close_connections()
            server.server_close()
            for thread in self._threads:
                thread.join(timeout)
            self._threads.clear()
            with self._state:
                self._state.wait_for(lambda: not any(t.running for t in self.timer_functions.values()), timeout)
            self._executor.shutdown(wait=False, cancel_futures=True)
            if self._loop is not None and self._loop_thread is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop_thread.join(timeout)
                if not self._loop_thread.is_alive():
                    self._loop.close()
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

    def _spawn(self, name: str, target: Callable[[], object]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- invoking user code -------------------------------------------------------------------------------

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._loop_thread = threading.Thread(target=loop.run_forever, name="devhost-asyncio", daemon=True)
                self._loop_thread.start()
                self._loop = loop
            return self._loop

    def _call(self, handler: Callable[..., Any], arguments: dict[str, Any]) -> Any:
        result = handler(**arguments)
        if isawaitable(result):
            return asyncio.run_coroutine_threadsafe(_awaited(result), self._event_loop()).result()
        return result

    # -- timers -------------------------------------------------------------------------------------------

    def invoke(self, name: str, *, wait: bool = False, timeout: float | None = None) -> bool:
        """Runs a timer function now, as the admin endpoint does: after a run in progress, never alongside it.
        With `wait`, returns once the run ended (False if `timeout` passed first)."""
        run = self._enqueue(self.timer_functions[name], None)
        return run.done.wait(timeout) if wait else True

    def _enqueue(self, timer: TimerFunction, scheduled: datetime | None) -> _Run:
        run = _Run(scheduled)
        with self._state:
            if self._stopping.is_set():
                run.done.set()
                return run
            if timer.running:
                if scheduled is not None and any(r.scheduled is not None for r in timer.backlog):
                    log.warning("timer %s is still running: the occurrence at %s is skipped", timer.name,
                                scheduled.isoformat())
                    run.done.set()
                else:
                    log.info("timer %s is still running: the next run waits for it", timer.name)
                    timer.backlog.append(run)
                return run
            timer.running = True
        self._executor.submit(self._drain, timer, run)
        return run

    def _drain(self, timer: TimerFunction, run: _Run) -> None:
        while True:
            try:
                self._run_timer(timer, run.scheduled)
            finally:
                run.done.set()
            with self._state:
                if not timer.backlog or self._stopping.is_set():
                    for waiting in timer.backlog:
                        waiting.done.set()
                    timer.backlog.clear()
                    timer.running = False
                    self._state.notify_all()
                    return
                run = timer.backlog.popleft()

    def _run_timer(self, timer: TimerFunction, scheduled: datetime | None) -> None:
        past_due = scheduled is not None and self._clock() - scheduled > PAST_DUE_TOLERANCE
        status: dict[str, str] = {}
        if timer.monitored and scheduled is not None:
            last = timer.last.isoformat() if timer.last else _NO_VALUE
            status = {"Last": last, "Next": scheduled.isoformat(), "LastUpdated": last}
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
        started = time.perf_counter()
        outcome = "Succeeded"
        try:
            self._call(timer.handler, {timer.arg_name: request})
        except Exception:
            outcome = "Failed"
            log.exception("timer function %s raised", timer.name)
        with self._state:
            timer.runs += 1
            timer.last = scheduled or timer.last
        log.info("Executed 'Functions.%s' (%s, Duration=%.0fms, past_due=%s)", timer.name, outcome,
                 (time.perf_counter() - started) * 1000, past_due)

    def _next(self, timer: TimerFunction, after: datetime) -> datetime | None:
        try:
            return timer.schedule.next_after(after)
        except ValueError as exc:
            log.warning("timer %s will not run on schedule: %s", timer.name, exc)
            return None

    def _schedule_loop(self) -> None:
        timers = list(self.timer_functions.values())
        now = self._clock()
        for timer in timers:
            timer.next_due = self._next(timer, now)
        while not self._stopping.is_set():
            now = self._clock()
            for timer in timers:
                due = timer.next_due
                if due is None or due > now:
                    continue
                self._enqueue(timer, due)
                following = self._next(timer, due)
                if following is not None and following <= now:
                    log.warning("timer %s: occurrences up to %s were missed", timer.name, now.isoformat())
                    following = self._next(timer, now)
                timer.next_due = following
            dues = [t.next_due for t in timers if t.next_due is not None]
            wait = (min(dues) - self._clock()).total_seconds() if dues else 1.0
            # At most a second, so that a clock that jumps (or a test clock) is noticed.
            self._stopping.wait(min(max(wait, 0.0), 1.0))

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
                return _render(self._call(fn.handler, {fn.arg_name: request}))
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
        if name not in self.timer_functions:
            return problem(400, f"{name} is an HTTP function: call its route instead.")
        if body.strip():
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                return problem(400, 'The body must be a JSON object like {"input": ""}.')
        self.invoke(name, wait=headers.get(WAIT_HEADER, "").strip().lower() in ("true", "1"))
        return Response(202)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], function_host: FunctionHost) -> None:
        self.function_host = function_host
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Ends idle keep-alive connections: their handlers read EOF; a response being written still goes out."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "devhost"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle + delayed ACK add ~40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def log_error(self, format: str, *args: Any) -> None:
        log.warning(format, *args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        if not length_text.strip().isdigit():
            raise _RequestError(400, "The Content-Length header is invalid.")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise _RequestError(413, "The request body is too large.")
        body = self.rfile.read(length)
        if len(body) < length:
            raise _RequestError(400, "The request body is incomplete.")
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_text = self.rfile.readline(65537).split(b";", 1)[0].strip()
            if re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_text) is None:
                raise _RequestError(400, "The chunked request body is malformed.")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise _RequestError(413, "The request body is too large.")
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise _RequestError(400, "The request body is incomplete.")
            chunks.append(chunk)
            self.rfile.readline(3)
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _serve(self) -> None:
        started = time.perf_counter()
        try:
            body = self._read_body()
            response = self.server.function_host.dispatch(self.command, self.path, self.headers.items(), body)
        except _RequestError as exc:
            self.close_connection = True
            response = problem(exc.status, exc.detail)
        except Exception:
            log.exception("the dev host failed on %s %s", self.command, self.path)
            response = problem(500, "The dev host failed; its log has the details.")
        try:
            self._write(response)
        except OSError as exc:
            log.debug("the client went away: %s", exc)
            self.close_connection = True
        log.info("%s %s %d %.1f ms", self.command, urlsplit(self.path).path, response.status,
                 (time.perf_counter() - started) * 1000)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        bodiless = response.status < 200 or response.status in (204, 304)
        if not bodiless:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if not bodiless and self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815
