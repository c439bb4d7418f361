"""Browser tests: the portal served by devhost.portal, the real function app on the dev host (CORS as the
Functions host applies it) over Azurite, the real local identity provider over HTTPS, and Debian's Chromium
driven by Playwright. Nothing is mocked and nothing is downloaded: Chromium is /usr/bin/chromium (`make test`
installs it with apt-get when it is missing), launched headless with a fresh profile and no background
networking; every address is on loopback.

Every page a test opens is checked: no console error, no uncaught exception, and axe-core (from node_modules)
finds no serious or critical violation where a test asks. Screenshots go to tests/browser/screenshots/
(git-ignored)."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from devhost import cors
from devhost.azurite import Azurite, free_port
from devhost.functionhost import FunctionHost
from devhost.idp import SAMPLE_USERS, IdentityProvider, RegisteredApp
from devhost.portal import PortalConfig, PortalServer
from shared import bootstrap
from tests.conftest import AUDIENCE, CLIENT_ID, CLIENT_SECRET, TEST_QUEUES, make_config

playwright_sync = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("RI_CHROMIUM", "/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--metrics-recording-only", "--password-store=basic",
]
ADMIN, SELLER = SAMPLE_USERS[0], SAMPLE_USERS[1]


@dataclass
class Stack:
    host: FunctionHost
    idp: IdentityProvider
    portal: PortalServer
    container: bootstrap.Container

    @property
    def api(self) -> str:
        return f"{self.host.base_url}/api"

    def session(self, token: str) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.headers["Authorization"] = f"Bearer {token}"
        return session

    def admin_api(self, tenant: str) -> requests.Session:
        return self.session(self.idp.user_token(tenant, ADMIN.object_id, ADMIN.roles, name=ADMIN.name))

    def run_timer(self) -> None:
        """Runs the app's timer (its only one, whatever its name) through the host's admin endpoint."""
        (name,) = self.host.timer_functions
        response = requests.post(f"{self.host.base_url}/admin/functions/{name}",
                                 headers={"x-devhost-wait": "true"}, json={"input": ""}, timeout=120)
        assert response.status_code == 202
        assert self.host.drain(timeout=120), "the queue triggers did not finish the timer's work"


@pytest.fixture(scope="package")
def stack(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    if not AXE.exists():
        pytest.fail("node_modules/axe-core is missing: run `npm ci`")
    import function_app

    api_port, idp_port, portal_port = free_port(), free_port(), free_port()
    portal_origin = f"http://127.0.0.1:{portal_port}"
    callback = f"http://127.0.0.1:{api_port}/api/consent/callback"
    app = RegisteredApp(CLIENT_ID, CLIENT_SECRET, (callback,), spa_redirect_uris=(f"{portal_origin}/",))
    idp = IdentityProvider(tmp_path_factory.mktemp("browser-idp"), app, api_audience=AUDIENCE, port=idp_port).start()
    config = make_config(azurite.connection_string, idp, consent_redirect_uri=callback, portal_url=f"{portal_origin}/")
    previous = bootstrap._container
    container = bootstrap.build(config)
    bootstrap.install(container)
    host = FunctionHost(function_app.app, port=api_port, run_timers=False, queue_options=TEST_QUEUES,
                        settings={"RI_BACKGROUND_SCHEDULE": "0 0 * * * *",
                                  "AzureWebJobsStorage": azurite.connection_string})
    cors.enable(host, cors.CorsPolicy.parse(portal_origin))
    host.start()
    portal = PortalServer(PortalConfig.local(f"{host.base_url}/api", CLIENT_ID, idp.base_url, AUDIENCE),
                          port=portal_port).start()
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    try:
        yield Stack(host, idp, portal, container)
    finally:
        portal.stop()
        host.stop()
        idp.stop()
        bootstrap.install(previous)


@pytest.fixture(scope="package")
def browser(stack: Stack) -> Iterator[Any]:
    with playwright_sync.sync_playwright() as playwright:
        # launch() gives every run a fresh temporary profile (user-data dir), removed on close.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """One browser context and its page, with what the checks need."""

    page: Any
    stack: Stack
    name: str
    problems: list[str] = field(default_factory=list)
    shots: int = 0
    expected_api_statuses: set[int] = field(default_factory=set)

    def expect_api_errors(self, *statuses: int) -> None:
        """Chromium logs every non-2xx fetch as a console error; a test about refusals names the API answers it
        provokes, and only those (from the API's address) are not counted as problems."""
        self.expected_api_statuses.update(statuses)

    def on_console(self, message: Any) -> None:
        if message.type != "error":
            return
        failed = re.match(r"Failed to load resource: the server responded with a status of (\d+)", message.text)
        url = (message.location or {}).get("url", "")
        if failed and int(failed.group(1)) in self.expected_api_statuses and url.startswith(self.stack.api):
            return
        self.problems.append(f"console {message.type}: {message.text} ({url})")

    def shot(self, step: str) -> Path:
        self.shots += 1
        path = SCREENSHOTS / f"{self.name}-{self.shots:02d}-{re.sub(r'[^a-z0-9]+', '-', step.lower())}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def axe(self) -> None:
        """No serious or critical accessibility violation on the page as it is now."""
        violations = self.page.evaluate("""async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.filter(v => ["serious", "critical"].includes(v.impact))
                .map(v => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map(n => n.target.join(" ")).join(", ")}`);
        }""")
        assert violations == [], "\n".join(violations)

    def step(self, name: str) -> None:
        """A step of a journey: the page settled, no accessibility problem, a screenshot."""
        self.page.wait_for_load_state("networkidle")
        self.axe()
        self.shot(name)

    def sign_in(self, user: Any, tenant: str, roles: tuple[str, ...] = ()) -> None:
        page = self.page
        page.goto(f"{self.stack.portal.base_url}/")
        page.get_by_role("button", name=re.compile("^(Sign in|Se connecter)$")).click()
        page.wait_for_url(re.compile(re.escape(self.stack.idp.base_url)))
        page.get_by_label("Tenant id (directory)").fill(tenant)
        page.get_by_label(re.compile(re.escape(user.name))).check()
        for role in roles:
            page.get_by_label(role, exact=True).check()
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(re.escape(self.stack.portal.base_url)))
        page.get_by_text(re.compile(f"(Signed in as|Connecté :) {user.name}")).wait_for()


@pytest.fixture
def tab(browser: Any, stack: Stack, request: pytest.FixtureRequest) -> Iterator[Tab]:
    context = browser.new_context(ignore_https_errors=True, locale="en-GB", viewport={"width": 1200, "height": 900})
    context.add_init_script(path=str(AXE))  # runs in every document, outside the page's CSP
    page = context.new_page()
    page.set_default_timeout(15_000)
    name = re.sub(r"^test_", "", request.node.name)
    opened = Tab(page, stack, name)
    page.on("console", opened.on_console)
    page.on("pageerror", lambda error: opened.problems.append(f"uncaught: {error}"))
    yield opened
    context.close()
    assert opened.problems == [], "\n".join(opened.problems)


@pytest.fixture
def tenant() -> str:
    return str(uuid.uuid4())


def consent_directly(stack: Stack, tenant: str) -> None:
    """Consent without the browser, through the same HTTP exchanges (for tests whose subject is elsewhere)."""
    admin = stack.admin_api(tenant)
    link = admin.post(f"{stack.api}/relationship-intelligence/consent-requests", timeout=10)
    assert link.status_code == 201, link.text
    idp = requests.Session()
    idp.trust_env = False
    idp.verify = str(stack.idp.tls.ca_cert)
    url = link.json()["consentUrl"]
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', idp.get(url, timeout=10).text))
    answer = idp.post(url, data={**fields, "answer": "accept"}, allow_redirects=False, timeout=10)
    callback = requests.get(answer.headers["Location"], allow_redirects=False, timeout=30)
    assert callback.headers["Location"].endswith("consent=granted"), callback.headers.get("Location")
