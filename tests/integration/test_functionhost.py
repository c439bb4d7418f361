"""devhost.functionhost serves a FunctionApp built here, over HTTP, with the Functions host's semantics."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import azure.functions as func
import pytest
import requests

from devhost.functionhost import PAST_DUE_TOLERANCE, WAIT_HEADER, FunctionHost

pytestmark = pytest.mark.integration

TIMEOUT = 5


def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Observed:
    def __init__(self) -> None:
        self.nightly: list[func.TimerRequest] = []
        self.ticks = threading.Event()
        self.gate = threading.Event()  # holds the first run of `gated` until a test opens it
        self.gated: list[bool] = []  # past_due of each finished run
        self.gated_started = threading.Event()
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()


def build_app(seen: Observed) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="echo/{id}", methods=["GET", "POST"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        body = {"id": req.route_params["id"], "params": dict(req.params), "header": req.headers.get("x-test"),
                "method": req.method, "url": req.url, "body": req.get_body().decode("latin-1")}
        return func.HttpResponse(json.dumps(body), mimetype="application/json")

    @app.route(route="echo/latest", methods=["GET"])
    def latest(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("the latest")

    @app.route(route="raw", methods=["PUT"])
    def raw(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.get_body(), mimetype="application/octet-stream")

    @app.route(route="items", methods=["POST"])
    def create_item(req: func.HttpRequest) -> func.HttpResponse:
        item = req.get_json()
        response = func.HttpResponse(json.dumps(item), status_code=201, mimetype="application/json",
                                     headers={"Location": "/api/items/1", "X-Trace": "abc"})
        response.headers.add("Set-Cookie", "a=1; Path=/")
        response.headers.add("Set-Cookie", "b=2; HttpOnly")
        return response

    @app.route(route="boom")
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret detail")

    @app.route(route="greet/{name}", methods=["GET"])
    async def greet(req: func.HttpRequest) -> func.HttpResponse:
        await asyncio.sleep(0)
        return func.HttpResponse(f"hello {req.route_params['name']}")

    @app.route()
    def ping(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(status_code=204)

    @app.timer_trigger(schedule="%TEST_SCHEDULE%", arg_name="timer")
    def nightly(timer: func.TimerRequest) -> None:
        seen.nightly.append(timer)

    @app.timer_trigger(schedule="*/1 * * * * *", arg_name="tick")
    def every_second(tick: func.TimerRequest) -> None:
        seen.ticks.set()

    @app.timer_trigger(schedule="*/1 * * * * *", arg_name="timer")
    def gated(timer: func.TimerRequest) -> None:
        with seen.lock:
            seen.active += 1
            seen.most_active = max(seen.most_active, seen.active)
        seen.gated_started.set()
        seen.gate.wait(5)
        with seen.lock:
            seen.active -= 1
            seen.gated.append(timer.past_due)

    @app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer")
    def failing(timer: func.TimerRequest) -> None:
        raise RuntimeError("timer trouble")

    return app


@pytest.fixture(scope="module")
def seen() -> Observed:
    return Observed()


@pytest.fixture(scope="module")
def host(seen: Observed) -> Iterator[FunctionHost]:
    with FunctionHost(build_app(seen), port=0, settings={"TEST_SCHEDULE": "0 0 3 * * *"},
                      run_queues=False) as running:
        try:
            yield running
        finally:
            seen.gate.set()


def test_route_and_query_parameters_headers_and_url_reach_the_function(host: FunctionHost) -> None:
    response = requests.get(f"{host.base_url}/api/echo/7?q=a&q=b&empty=&x=%20y", headers={"X-Test": "t"},
                            timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"  # no charset outside text/*
    assert response.json() == {
        "id": "7", "params": {"q": "a,b", "x": " y"},  # as ASP.NET's query collection: joined, empty left out
        "header": "t", "method": "GET", "url": f"{host.base_url}/api/echo/7?q=a&q=b&empty=&x=%20y", "body": ""}


def test_bodies_pass_through_unchanged(host: FunctionHost) -> None:
    payload = bytes(range(256))
    response = requests.put(f"{host.base_url}/api/raw", data=payload, timeout=TIMEOUT)
    assert (response.status_code, response.content) == (200, payload)
    assert response.headers["Content-Type"] == "application/octet-stream"
    chunked = requests.put(f"{host.base_url}/api/raw", data=iter([b"abc", b"", b"def"]), timeout=TIMEOUT)
    assert chunked.content == b"abcdef"


def test_a_201_with_headers_and_cookies(host: FunctionHost) -> None:
    response = requests.post(f"{host.base_url}/api/items", json={"name": "x"}, timeout=TIMEOUT)
    assert response.status_code == 201
    assert response.json() == {"name": "x"}
    assert response.headers["Location"] == "/api/items/1"
    assert response.headers["X-Trace"] == "abc"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]


def test_text_responses_carry_their_charset_and_204_has_no_body(host: FunctionHost) -> None:
    latest = requests.get(f"{host.base_url}/api/echo/latest", timeout=TIMEOUT)
    assert (latest.text, latest.headers["Content-Type"]) == ("the latest", "text/plain; charset=utf-8")
    empty = requests.get(f"{host.base_url}/api/ping", timeout=TIMEOUT)
    assert (empty.status_code, empty.content) == (204, b"")


def test_the_literal_route_wins(host: FunctionHost) -> None:
    assert requests.get(f"{host.base_url}/api/echo/latest", timeout=TIMEOUT).text == "the latest"
    assert requests.get(f"{host.base_url}/api/echo/abc", timeout=TIMEOUT).json()["id"] == "abc"


def test_a_function_without_a_route_is_served_at_its_name_for_any_method(host: FunctionHost) -> None:
    assert requests.delete(f"{host.base_url}/API/Ping", timeout=TIMEOUT).status_code == 204
    assert requests.head(f"{host.base_url}/api/ping/", timeout=TIMEOUT).status_code == 204


def test_async_functions_and_decoded_route_values(host: FunctionHost) -> None:
    response = requests.get(f"{host.base_url}/api/greet/caf%C3%A9", timeout=TIMEOUT)
    assert response.text == "hello café"


def test_unknown_paths_are_404_problems(host: FunctionHost) -> None:
    response = requests.get(f"{host.base_url}/api/nothing", timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "about:blank"
    assert response.json()["status"] == 404
    assert requests.get(f"{host.base_url}/echo/1", timeout=TIMEOUT).status_code == 404  # no route prefix


def test_a_wrong_method_is_a_405_with_allow(host: FunctionHost) -> None:
    response = requests.delete(f"{host.base_url}/api/echo/1", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["title"] == "Method Not Allowed"


def test_a_failing_function_is_a_500_without_details(host: FunctionHost, caplog: pytest.LogCaptureFixture) -> None:
    response = requests.get(f"{host.base_url}/api/boom", timeout=TIMEOUT)
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 500
    assert "secret detail" not in response.text
    assert "RuntimeError: secret detail" in caplog.text  # the traceback is logged


def test_each_request_is_logged(host: FunctionHost, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="devhost")
    requests.get(f"{host.base_url}/api/echo/latest?secret=1", timeout=TIMEOUT)
    assert eventually(lambda: any(r.getMessage().startswith("GET /api/echo/latest 200 ") for r in caplog.records))


def test_the_admin_endpoint_runs_a_timer(host: FunctionHost, seen: Observed) -> None:
    response = requests.post(f"{host.base_url}/admin/functions/nightly", json={"input": ""},
                             headers={WAIT_HEADER: "true"}, timeout=TIMEOUT)
    assert (response.status_code, response.content) == (202, b"")
    assert len(seen.nightly) == 1
    assert isinstance(seen.nightly[0], func.TimerRequest)
    assert seen.nightly[0].past_due is False
    response = requests.post(f"{host.base_url}/admin/functions/NIGHTLY", timeout=TIMEOUT)  # names ignore case
    assert response.status_code == 202
    assert eventually(lambda: len(seen.nightly) == 2)


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", "/admin/functions/nope", b"", 404),
    ("GET", "/admin/functions/nightly", b"", 405),
    ("POST", "/admin/functions/echo", b"", 400),
    ("POST", "/admin/functions/nightly", b"not json", 400),
    ("POST", "/admin/functions/nightly", b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400),
    ("GET", "/admin/nothing", b"", 404),
])
def test_admin_endpoint_errors(host: FunctionHost, method: str, path: str, body: bytes, status: int) -> None:
    response = requests.request(method, host.base_url + path, data=body, timeout=TIMEOUT)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"


def test_a_failing_timer_is_logged_and_the_host_goes_on(host: FunctionHost, caplog: pytest.LogCaptureFixture) -> None:
    response = requests.post(f"{host.base_url}/admin/functions/failing", headers={WAIT_HEADER: "true"},
                             timeout=TIMEOUT)
    assert response.status_code == 202
    assert "RuntimeError: timer trouble" in caplog.text
    assert host.timer_functions["failing"].runs == 1
    status = requests.get(f"{host.base_url}/admin/host/status", timeout=TIMEOUT)
    assert status.json() == {"state": "Running"}


def test_a_per_second_schedule_fires(host: FunctionHost, seen: Observed) -> None:
    assert seen.ticks.wait(2.5), "the */1 second timer did not fire"


def test_a_timer_never_runs_twice_at_once(host: FunctionHost, seen: Observed) -> None:
    assert seen.gated_started.wait(2.5)
    timer = host.timer_functions["gated"]
    # The next second's occurrence comes due during the run: it waits instead of running alongside.
    assert eventually(lambda: any(run.scheduled for run in timer.backlog), 2.5)
    queued = next(run.scheduled for run in timer.backlog if run.scheduled)
    started = time.monotonic()
    assert requests.post(f"{host.base_url}/admin/functions/gated", timeout=TIMEOUT).status_code == 202
    assert time.monotonic() - started < 1  # 202 without waiting for the run in progress
    assert eventually(lambda: datetime.now(UTC) - queued > PAST_DUE_TOLERANCE, 2)
    seen.gate.set()
    response = requests.post(f"{host.base_url}/admin/functions/gated", headers={WAIT_HEADER: "true"},
                             timeout=TIMEOUT)
    assert response.status_code == 202
    assert seen.most_active == 1
    assert len(seen.gated) >= 4  # the first run, the queued occurrence and both admin runs
    assert seen.gated[0] is False
    assert seen.gated[1] is True  # the queued occurrence started late


def test_the_listing_and_status(host: FunctionHost) -> None:
    listing = requests.get(host.base_url + "/", timeout=TIMEOUT).json()
    routes = {f["name"]: (f["route"], f["methods"]) for f in listing["http"]}
    assert routes["echo"] == ("/api/echo/{id}", ["GET", "POST"])
    assert routes["ping"] == ("/api/ping", ["*"])
    timers = {t["name"]: t["schedule"] for t in listing["timers"]}
    assert timers["nightly"] == "0 0 3 * * *"
    assert requests.get(f"{host.base_url}/admin/host/status", timeout=TIMEOUT).json() == {"state": "Running"}


def test_schedule_settings_come_from_settings_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_SCHEDULE", raising=False)
    with pytest.raises(ValueError, match="TEST_SCHEDULE"):
        FunctionHost(build_app(Observed()), port=0, settings={})
    monkeypatch.setenv("TEST_SCHEDULE", "00:05:00")
    host = FunctionHost(build_app(Observed()), port=0, run_timers=False)
    assert host.timer_functions["nightly"].expression == "00:05:00"
    with pytest.raises(ValueError, match="nightly"):
        FunctionHost(build_app(Observed()), port=0, settings={"TEST_SCHEDULE": "every night"})


def test_conflicting_routes_are_refused() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="things/{id}", methods=["GET"])
    def first(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse()

    @app.route(route="Things/{id}", methods=["GET", "PUT"])
    def second(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse()

    with pytest.raises(ValueError, match="conflicts"):
        FunctionHost(app, port=0)


def test_200_concurrent_connections_all_get_an_answer() -> None:
    """A burst of 200 clients connecting at once, each holding its connection while its request runs: every one
    is accepted and answered (a listen backlog of 5 left most unanswered: dropped or reset)."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="hold", methods=["GET"])
    def hold(req: func.HttpRequest) -> func.HttpResponse:
        time.sleep(0.2)  # the connections overlap: 200 in flight at once
        return func.HttpResponse("held")

    clients = 200
    barrier = threading.Barrier(clients)
    answers: list[str] = [""] * clients

    def client(i: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as connection:
            connection.settimeout(15)  # a dropped SYN is retried after 1, 3, 7 s…: long enough to see it fail
            try:
                barrier.wait()
                connection.connect(("127.0.0.1", host.port))
                connection.sendall(b"GET /api/hold HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                received = b""
                while chunk := connection.recv(65536):
                    received += chunk
                answers[i] = received.split(b"\r\n", 1)[0].decode("latin-1")
            except OSError as exc:
                answers[i] = f"{type(exc).__name__}: {exc}"

    with FunctionHost(app, port=0, run_timers=False, run_queues=False) as host:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert Counter(answers) == {"HTTP/1.1 200 OK": clients}
