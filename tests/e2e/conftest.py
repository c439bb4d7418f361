"""End-to-end fixtures: the real function_app served by the dev host over HTTP, on Azurite, with tokens
from the local identity provider."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests

from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider
from shared import bootstrap
from shared.clock import FixedClock
from tests.conftest import TEST_QUEUES


@pytest.fixture(scope="session")
def function_host(container: bootstrap.Container) -> Iterator[FunctionHost]:
    import function_app

    assert container.config.queue_connection is not None
    settings = {"RI_BACKGROUND_SCHEDULE": "0 0 * * * *", "AzureWebJobsStorage": container.config.queue_connection}
    host = FunctionHost(function_app.app, port=0, run_timers=False, settings=settings, queue_options=TEST_QUEUES)
    host.start()
    yield host
    host.stop()


def run_timer(host: FunctionHost, container: bootstrap.Container | None = None, at: datetime | None = None) -> None:
    """Runs the timer through the host's admin endpoint, as the scheduler does, and waits until the queue
    triggers have done everything it sent; at a given moment if asked."""
    if container is not None and at is not None:
        bootstrap.install(dataclasses.replace(container, clock=FixedClock(at)))
    try:
        response = requests.post(f"{host.base_url}/admin/functions/schedule_background_work",
                                 headers={"x-devhost-wait": "true"}, json={"input": ""}, timeout=120)
        assert response.status_code == 202
        assert host.drain(timeout=120), "the background work did not settle"
    finally:
        if container is not None and at is not None:
            bootstrap.install(container)


def ok(response: requests.Response, status: int = 200) -> dict[str, Any]:
    """The JSON body of a response that must have this status (the body is shown when it has not)."""
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


class Api:
    """A portal-like client: bearer token, JSON, problem documents."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.trust_env = False
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.base_url}/api/{path}", timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("PUT", path, json=body, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, json=body, **kwargs)


@pytest.fixture
def admin(function_host: FunctionHost, idp: IdentityProvider, tenant_id: str) -> Api:
    return Api(function_host.base_url, idp.user_token(tenant_id, str(uuid.uuid4()), ["SystemAdministrator"]))


@pytest.fixture
def anonymous(function_host: FunctionHost) -> Api:
    return Api(function_host.base_url, None)
