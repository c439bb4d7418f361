"""What the Functions host will index: routes, methods, auth levels; and the OpenAPI catalogue agrees."""

from __future__ import annotations

import typing
from typing import Any

import azure.functions as func
import pytest

import function_app
from devhost.functionhost import FunctionHost
from devhost.indexing import index
from shared.api import endpoints


def _functions() -> dict[str, Any]:
    return {f.get_function_name(): f for f in index(function_app.app)}


def _http_triggers() -> dict[str, dict[str, Any]]:
    triggers = {}
    for name, fn in _functions().items():
        trigger = fn.get_trigger().get_dict_repr()
        if trigger["type"] == "httpTrigger":
            triggers[name] = trigger
    return triggers


def test_every_http_function_is_in_the_openapi_catalogue_and_back() -> None:
    registered = {(name, t["route"], tuple(m.value for m in t["methods"])) for name, t in _http_triggers().items()}
    declared = {(e.function_name, e.route, (e.method,)) for e in endpoints.ALL}
    assert registered == declared


def test_http_functions_are_anonymous_at_the_host_and_authenticate_in_code() -> None:
    for name, trigger in _http_triggers().items():
        assert trigger["authLevel"] == func.AuthLevel.ANONYMOUS, name


@pytest.mark.parametrize(("name", "route", "method"), [
    ("service_status", "status", "GET"),
    ("openapi_document", "openapi.json", "GET"),
    ("me", "me", "GET"),
])
def test_service_routes(name: str, route: str, method: str) -> None:
    trigger = _http_triggers()[name]
    assert trigger["route"] == route
    assert [m.value for m in trigger["methods"]] == [method]


def test_function_names_are_unique_and_the_app_indexes() -> None:
    names = [f.get_function_name() for f in index(function_app.app)]
    assert len(names) == len(set(names))


def test_every_declared_endpoint_names_models_that_exist() -> None:
    for endpoint in (*endpoints.ALL, *endpoints.DOCUMENTED):
        for model in (endpoint.request_model(), endpoint.response_model()):
            assert model is None or hasattr(model, "model_json_schema"), endpoint.function_name


def test_indexing_the_app_builds_no_api_model() -> None:
    import subprocess
    import sys

    probe = ("import sys, function_app; from devhost.indexing import index; index(function_app.app); "
             "print(','.join(sorted(m for m in sys.modules if m.startswith(('shared.api.', 'pydantic')) "
             "and m != 'shared.api.endpoints')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_the_background_timer_is_safe_in_production() -> None:
    trigger = _functions()["schedule_background_work"].get_trigger().get_dict_repr()
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == "%RI_BACKGROUND_SCHEDULE%"
    assert trigger["runOnStartup"] is False  # would fire on every scale-out and restart
    assert trigger["useMonitor"] is True


def test_the_consent_callback_is_an_anonymous_get() -> None:
    trigger = _http_triggers()["consent_callback"]
    assert trigger["route"] == "consent/callback"
    assert [m.value for m in trigger["methods"]] == ["GET"]


def test_every_documented_operation_is_served_by_its_registered_function() -> None:
    """The document lists /api/sync/users, /api/sync/activities, …: the host must route each to the function
    registered for sync/{kind} (and every other documented path to its own function), as it orders routes."""
    settings = {"RI_BACKGROUND_SCHEDULE": "0 0 * * * *", "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    host = FunctionHost(function_app.app, serve_http=False, run_timers=False, run_queues=False, settings=settings)
    for endpoint in endpoints.ALL:
        for documented in endpoint.documented():
            serving = next(fn.name for fn in host.http_functions  # in the host's order: the first match serves
                           if fn.template.match(documented.path) is not None
                           and documented.method in (fn.methods or ()))
            assert serving == endpoint.function_name, documented.path


def test_the_sync_variants_are_exactly_the_kinds_the_route_takes_each_with_its_domain_model() -> None:
    from shared.domain.records import RECORD_KINDS

    variants = {v.value: v for v in endpoints.SYNC.variants}
    assert tuple(variants) == dict(endpoints.SYNC.path_values)["kind"] == tuple(RECORD_KINDS)
    for documented in endpoints.SYNC.documented():
        kind = documented.path.rsplit("/", 1)[1]
        model = documented.request_model()
        assert model is not None
        assert typing.get_args(model.model_fields["items"].annotation) == (RECORD_KINDS[kind],)
        assert dict(documented.path_values) == {}
