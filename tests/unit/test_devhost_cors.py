"""devhost.cors: the Functions host's CORS (Host.CORS / Host.CORSCredentials), on a host built here and called
without the network."""

from __future__ import annotations

import json
from pathlib import Path

import azure.functions as func
import pytest

from devhost import cors
from devhost.cors import CorsPolicy
from devhost.functionhost import FunctionHost

PORTAL = "http://localhost:4280"


@pytest.fixture
def host() -> FunctionHost:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="things", methods=["GET", "PUT"])
    def things(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"method": req.method}), mimetype="application/json",
                                 headers={"ETag": '"1"', "Access-Control-Allow-Origin": "https://elsewhere.test"})

    return FunctionHost(app, port=0, run_timers=False)


def headers_of(response: object) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers}  # type: ignore[attr-defined]


def preflight(host: FunctionHost, origin: str, method: str = "PUT", requested: str = "authorization,content-type",
              path: str = "/api/things") -> object:
    return host.dispatch("OPTIONS", path, [("Origin", origin), ("Access-Control-Request-Method", method),
                                           ("Access-Control-Request-Headers", requested)], b"")


def test_without_host_cors_nothing_changes(host: FunctionHost) -> None:
    answer = preflight(host, PORTAL)
    assert answer.status == 405  # type: ignore[attr-defined]  # OPTIONS reached the routes
    response = host.dispatch("GET", "/api/things", [("Origin", PORTAL)], b"")
    assert headers_of(response)["access-control-allow-origin"] == "https://elsewhere.test"  # the function's own


def test_a_preflight_from_an_allowed_origin_is_answered_by_the_host(host: FunctionHost) -> None:
    cors.enable(host, CorsPolicy.parse(PORTAL))
    answer = preflight(host, PORTAL)
    assert answer.status == 204  # type: ignore[attr-defined]
    assert headers_of(answer) == {"access-control-allow-origin": PORTAL, "access-control-allow-methods": "PUT",
                                  "access-control-allow-headers": "authorization,content-type"}
    # before routing: even a path no function serves
    assert preflight(host, PORTAL, path="/api/nothing-here").status == 204  # type: ignore[attr-defined]


def test_a_preflight_from_another_origin_gets_no_cors_headers(host: FunctionHost) -> None:
    cors.enable(host, CorsPolicy.parse(PORTAL))
    answer = preflight(host, "https://evil.test")
    assert answer.status == 204  # type: ignore[attr-defined]
    assert not [name for name in headers_of(answer) if name.startswith("access-control-")]


def test_responses_carry_the_allowed_origin_and_replace_the_functions_own(host: FunctionHost) -> None:
    cors.enable(host, CorsPolicy.parse(f"{PORTAL}, http://127.0.0.1:4280"))
    response = host.dispatch("PUT", "/api/things", [("Origin", PORTAL)], b"")
    headers = headers_of(response)
    assert response.status == 200  # type: ignore[attr-defined]
    assert headers["access-control-allow-origin"] == PORTAL
    assert headers["vary"] == "Origin"  # two origins configured: the answer depends on the origin
    assert headers["etag"] == '"1"'
    assert "access-control-expose-headers" not in headers
    other = host.dispatch("GET", "/api/things", [("Origin", "https://evil.test")], b"")
    assert headers_of(other)["access-control-allow-origin"] == "https://elsewhere.test"  # untouched, as ASP.NET
    # errors too: a 404 from the host itself
    missing = host.dispatch("GET", "/api/nothing-here", [("Origin", PORTAL)], b"")
    assert missing.status == 404  # type: ignore[attr-defined]
    assert headers_of(missing)["access-control-allow-origin"] == PORTAL


def test_an_options_request_that_is_no_preflight_reaches_the_routes(host: FunctionHost) -> None:
    cors.enable(host, CorsPolicy.parse(PORTAL))
    answer = host.dispatch("OPTIONS", "/api/things", [("Origin", PORTAL)], b"")
    assert answer.status == 405  # type: ignore[attr-defined]
    assert headers_of(answer)["access-control-allow-origin"] == PORTAL


def test_credentials_and_wildcard() -> None:
    with_credentials = CorsPolicy.parse(PORTAL, credentials=True)
    assert with_credentials.response_headers([("origin", PORTAL)]) == [
        ("Access-Control-Allow-Origin", PORTAL), ("Access-Control-Allow-Credentials", "true")]
    anyone = CorsPolicy.parse("*")
    assert anyone.response_headers([("Origin", "https://any.test")]) == [("Access-Control-Allow-Origin", "*")]
    with pytest.raises(ValueError, match="wildcard"):
        CorsPolicy.parse("*", credentials=True)
    with pytest.raises(ValueError, match="no origin"):
        CorsPolicy.parse(" , ")


def test_origins_compare_exactly_after_lower_casing_the_configured_ones() -> None:
    policy = CorsPolicy.parse("HTTP://LocalHost:4280,http://127.0.0.1:4280/")
    assert policy.allowed_origin("http://localhost:4280") == "http://localhost:4280"
    assert policy.allowed_origin("http://localhost:4281") is None
    assert policy.allowed_origin("http://127.0.0.1:4280") is None  # the configured one has a trailing slash
    assert policy.allowed_origin(None) is None


def test_the_policy_comes_from_the_host_section_of_local_settings(tmp_path: Path) -> None:
    sample = tmp_path / "sample.json"
    local = tmp_path / "local.json"
    sample.write_text(json.dumps({"Values": {}, "Host": {"CORS": PORTAL}}))
    local.write_text(json.dumps({"Values": {}}))
    assert cors.from_local_settings(local, sample) == CorsPolicy.parse(PORTAL)  # an older file: the sample's
    local.write_text(json.dumps({"Host": {"CORS": "https://portal.test", "CORSCredentials": "true"}}))
    assert cors.from_local_settings(local, sample) == CorsPolicy.parse("https://portal.test", credentials=True)
    assert cors.from_local_settings(local) == CorsPolicy.parse("https://portal.test", credentials=True)
    assert cors.from_host_section({}) is None
    assert cors.from_host_section({"CORS": " "}) is None
