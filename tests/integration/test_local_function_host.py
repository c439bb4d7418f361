"""The dev host serves a FunctionApp with the host's semantics (a small app built here)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import azure.functions as func
import pytest
import requests

from devhost.host import FunctionHost

pytestmark = pytest.mark.integration

ran: list[bool] = []
ran_event = threading.Event()


def _app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="echo/{id:int}", methods=["GET", "POST"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        body = {"id": req.route_params["id"], "q": req.params.get("q"), "body": req.get_body().decode(),
                "header": req.headers.get("x-test"), "method": req.method}
        return func.HttpResponse(json.dumps(body), status_code=201, headers={"X-Out": "1"},
                                 mimetype="application/json")

    @app.route(route="echo/special", methods=["GET"])
    def special(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("special")

    @app.route(route="boom", methods=["GET"])
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret detail")

    @app.route(route="async", methods=["GET"])
    async def run_async(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("async ok")

    @app.timer_trigger(schedule="%TEST_SCHEDULE%", arg_name="timer", run_on_startup=False)
    def tick(timer: func.TimerRequest) -> None:
        ran.append(timer.past_due)
        ran_event.set()

    return app


@pytest.fixture(scope="module")
def host() -> Iterator[FunctionHost]:
    with FunctionHost(_app(), port=0, settings={"TEST_SCHEDULE": "*/1 * * * * *"}) as running:
        yield running


def test_routes_params_headers_and_bodies_pass_through(host: FunctionHost) -> None:
    response = requests.post(f"{host.base_url}/api/echo/7?q=x", data=b"hello", headers={"x-test": "t"}, timeout=5)
    assert response.status_code == 201
    assert response.headers["X-Out"] == "1"
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"id": "7", "q": "x", "body": "hello", "header": "t", "method": "POST"}


def test_the_more_specific_route_wins(host: FunctionHost) -> None:
    assert requests.get(f"{host.base_url}/api/echo/special", timeout=5).text == "special"


def test_async_functions_run(host: FunctionHost) -> None:
    assert requests.get(f"{host.base_url}/api/async", timeout=5).text == "async ok"


def test_unknown_routes_wrong_methods_and_failures_are_problems(host: FunctionHost) -> None:
    missing = requests.get(f"{host.base_url}/api/nothing", timeout=5)
    assert (missing.status_code, missing.json()["status"]) == (404, 404)
    constrained = requests.get(f"{host.base_url}/api/echo/abc", timeout=5)
    assert constrained.status_code == 404
    wrong = requests.delete(f"{host.base_url}/api/echo/1", timeout=5)
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "GET, POST"
    failed = requests.get(f"{host.base_url}/api/boom", timeout=5)
    assert failed.status_code == 500
    assert "secret detail" not in failed.text
    assert failed.headers["Content-Type"] == "application/problem+json"


def test_timers_run_on_schedule_and_on_demand(host: FunctionHost) -> None:
    assert ran_event.wait(5), "the */1 second timer did not fire"
    before = host.timers["tick"].runs
    response = requests.post(f"{host.base_url}/admin/functions/tick", headers={"x-devhost-wait": "true"},
                             json={"input": ""}, timeout=10)
    assert response.status_code == 202
    assert host.timers["tick"].runs > before
    assert requests.post(f"{host.base_url}/admin/functions/nope", timeout=5).status_code == 404


def test_a_timer_never_runs_twice_at_once(host: FunctionHost) -> None:
    timer = host.timers["tick"]
    with timer.lock:
        assert host.run_timer("tick") is False


def test_missing_schedule_setting_is_an_error() -> None:
    with pytest.raises(ValueError, match="TEST_SCHEDULE"):
        FunctionHost(_app(), port=0, settings={})


def test_listing_and_status(host: FunctionHost) -> None:
    listing = requests.get(host.base_url + "/", timeout=5).json()
    assert "tick" in listing["timers"]
    assert requests.get(f"{host.base_url}/admin/host/status", timeout=5).json() == {"state": "Running"}
