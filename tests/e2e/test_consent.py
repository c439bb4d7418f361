"""Microsoft 365 admin consent end to end: our API, the local identity provider's consent page, the callback,
and the proof of grant with MSAL over HTTPS (issue 4). Nothing here patches MSAL."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from devhost.functionhost import FunctionHost
from devhost.idp import DEFAULT_GRAPH_PERMISSIONS, IdentityProvider
from shared import bootstrap
from shared.clock import FixedClock
from tests.conftest import CLIENT_ID
from tests.e2e.conftest import Api, ok

pytestmark = pytest.mark.e2e



@pytest.fixture
def browser(idp_session: requests.Session) -> requests.Session:
    return idp_session


def enable(admin: Api) -> None:
    ok(admin.put("relationship-intelligence/prerequisites",
                 {"salesInsightsPremium": True, "office365DataLocation": "FR"}))
    ok(admin.post("relationship-intelligence/enable"))


def consent_link(admin: Api) -> str:
    body = ok(admin.post("relationship-intelligence/consent-requests"), 201)
    return str(body["consentUrl"])


def answer_consent_page(browser: requests.Session, url: str, answer: str) -> dict[str, str]:
    """What the admin's browser does on Microsoft's page; returns the query Microsoft sends to our callback."""
    page = browser.get(url)
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    redirect = browser.post(url, data={**fields, "answer": answer}, allow_redirects=False)
    assert redirect.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(redirect.headers["Location"]).query).items()}


def callback(host: FunctionHost, params: dict[str, str], **headers: str) -> requests.Response:
    return requests.get(f"{host.base_url}/api/consent/callback?{urlencode(params)}", headers=headers,
                        allow_redirects=False, timeout=30)


def consent_status(admin: Api) -> str:
    return str(ok(admin.get("relationship-intelligence"))["exchange"]["consent"]["status"])


def state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


def test_accepting_consent_grants_it(admin: Api, browser: requests.Session, function_host: FunctionHost,
                                     tenant_id: str) -> None:
    enable(admin)
    url = consent_link(admin)
    parts = urlsplit(url)
    assert parts.path == f"/{tenant_id}/v2.0/adminconsent"
    query = parse_qs(parts.query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["scope"] == ["https://graph.microsoft.com/.default"]
    assert len(query["state"][0]) > 60

    page = callback(function_host, answer_consent_page(browser, url, "accept"))
    assert page.status_code == 200
    assert "Consent recorded" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"

    overview = ok(admin.get("relationship-intelligence"))
    consent = overview["exchange"]["consent"]
    assert consent["status"] == "granted"
    assert consent["grantedBy"] == admin_oid(admin)
    assert sorted(consent["scopes"]) == sorted(DEFAULT_GRAPH_PERMISSIONS)
    assert overview["banner"] is None
    assert overview["features"]["whoKnowsWhom"]["mode"] == "enhanced"
    actions = [e["action"] for e in ok(admin.get("relationship-intelligence/audit"))["events"]]
    assert actions[0] == "consentGranted"
    refused = admin.post("relationship-intelligence/consent-requests")
    assert refused.status_code == 409


def admin_oid(admin: Api) -> str:
    return str(ok(admin.get("me"))["objectId"])


def test_cancelling_declines_with_its_banner_in_french(admin: Api, browser: requests.Session,
                                                       function_host: FunctionHost) -> None:
    enable(admin)
    params = answer_consent_page(browser, consent_link(admin), "cancel")
    assert params["error"] == "access_denied"
    page = callback(function_host, params, **{"Accept-Language": "fr-FR,fr;q=0.9"})
    assert page.status_code == 200
    assert "Consentement non donné" in page.text
    assert "AADSTS" not in page.text
    overview = ok(admin.get("relationship-intelligence"))
    assert overview["exchange"]["consent"]["status"] == "declined"
    assert overview["banner"]["kind"] == "consentDeclined"


def test_a_consent_link_is_refused_when_no_consent_is_needed(admin: Api) -> None:
    assert admin.post("relationship-intelligence/consent-requests").status_code == 409  # not enabled
    ok(admin.put("relationship-intelligence/prerequisites",
                 {"salesInsightsPremium": True, "office365DataLocation": "DE"}))
    ok(admin.post("relationship-intelligence/enable"))
    refused = admin.post("relationship-intelligence/consent-requests")
    assert refused.status_code == 409
    assert "no consent is needed" in refused.json()["detail"]


def _success_params(url: str, tenant: str) -> dict[str, str]:
    return {"admin_consent": "True", "tenant": tenant, "scope": "https://graph.microsoft.com/.default",
            "state": state_of(url)}


def _tamper(state: str) -> str:
    tenant, secret = state.split(".")
    return f"{tenant}.{('A' if secret[0] != 'A' else 'B')}{secret[1:]}"


ATTACKS = {
    "forged state": lambda url, tenant: {**_success_params(url, tenant), "state": f"{tenant}.{'x' * 43}"},
    "tampered state": lambda url, tenant: {**_success_params(url, tenant), "state": _tamper(state_of(url))},
    "state of another tenant": lambda url, tenant: {**_success_params(url, tenant),
                                                    "state": f"{uuid.uuid4()}.{state_of(url).split('.')[1]}"},
    "tenant mismatch": lambda url, tenant: {**_success_params(url, tenant), "tenant": str(uuid.uuid4())},
    "missing state": lambda url, tenant: {k: v for k, v in _success_params(url, tenant).items() if k != "state"},
    "oversized parameter": lambda url, tenant: {**_success_params(url, tenant), "scope": "x" * 5000},
    "non-ASCII parameter": lambda url, tenant: {**_success_params(url, tenant), "scope": "é"},
    "no answer at all": lambda url, tenant: {"state": state_of(url)},
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attacks_on_the_callback_change_nothing(admin: Api, function_host: FunctionHost, idp: IdentityProvider,
                                                tenant_id: str, attack: str) -> None:
    enable(admin)
    idp.grants.grant(tenant_id, CLIENT_ID, DEFAULT_GRAPH_PERMISSIONS)  # even a real grant must not be recorded
    url = consent_link(admin)
    before = ok(admin.get("relationship-intelligence"))
    response = callback(function_host, ATTACKS[attack](url, tenant_id))
    assert response.status_code == 400
    assert "Link not valid" in response.text
    assert "Traceback" not in response.text
    after = ok(admin.get("relationship-intelligence"))
    assert after["exchange"]["consent"] == before["exchange"]["consent"]
    assert after["etag"] == before["etag"]


def test_a_replayed_state_is_refused(admin: Api, function_host: FunctionHost, idp: IdentityProvider,
                                     browser: requests.Session, tenant_id: str) -> None:
    enable(admin)
    params = answer_consent_page(browser, consent_link(admin), "accept")
    assert callback(function_host, params).status_code == 200
    ok(admin.put("relationship-intelligence/exchange-integration", {"enabled": False}))
    etag = ok(admin.get("relationship-intelligence"))["etag"]
    replay = callback(function_host, params)
    assert replay.status_code == 400
    assert ok(admin.get("relationship-intelligence"))["etag"] == etag


@pytest.fixture
def clock(container: bootstrap.Container) -> Iterator[FixedClock]:
    fixed = FixedClock(container.clock.now())
    bootstrap.install(dataclasses.replace(container, clock=fixed))
    yield fixed
    bootstrap.install(container)


def test_an_expired_state_is_refused(admin: Api, function_host: FunctionHost, idp: IdentityProvider,
                                     tenant_id: str, clock: FixedClock) -> None:
    enable(admin)
    url = consent_link(admin)
    idp.grants.grant(tenant_id, CLIENT_ID, DEFAULT_GRAPH_PERMISSIONS)
    clock.advance(timedelta(minutes=15))
    assert callback(function_host, _success_params(url, tenant_id)).status_code == 400
    assert consent_status(admin) == "pending"


def test_error_with_admin_consent_true_is_a_refusal(admin: Api, function_host: FunctionHost,
                                                    idp: IdentityProvider, tenant_id: str) -> None:
    enable(admin)
    idp.grants.grant(tenant_id, CLIENT_ID, DEFAULT_GRAPH_PERMISSIONS)
    url = consent_link(admin)
    response = callback(function_host, {**_success_params(url, tenant_id), "error": "access_denied",
                                        "error_description": "AADSTS65004: <script>alert(1)</script>"})
    assert response.status_code == 200
    assert "<script>" not in response.text
    assert consent_status(admin) == "declined"


def test_a_token_lacking_one_required_role_is_not_a_grant(admin: Api, function_host: FunctionHost,
                                                          idp: IdentityProvider, tenant_id: str) -> None:
    enable(admin)
    url = consent_link(admin)
    idp.grants.grant(tenant_id, CLIENT_ID, DEFAULT_GRAPH_PERMISSIONS[:-1])
    callback(function_host, _success_params(url, tenant_id))
    overview = ok(admin.get("relationship-intelligence"))
    assert overview["exchange"]["consent"]["status"] == "declined"
    assert overview["exchange"]["consent"]["declinedReason"] == "missingPermissions"


def test_success_without_a_service_principal_is_not_a_grant(admin: Api, function_host: FunctionHost,
                                                            tenant_id: str) -> None:
    enable(admin)
    url = consent_link(admin)
    callback(function_host, _success_params(url, tenant_id))
    overview = ok(admin.get("relationship-intelligence"))
    assert overview["exchange"]["consent"]["declinedReason"] == "servicePrincipalMissing"


def test_two_concurrent_callbacks_with_one_state_give_one_success(admin: Api, function_host: FunctionHost,
                                                                  idp: IdentityProvider, tenant_id: str) -> None:
    enable(admin)
    idp.grants.grant(tenant_id, CLIENT_ID, DEFAULT_GRAPH_PERMISSIONS)
    params = _success_params(consent_link(admin), tenant_id)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(lambda _: callback(function_host, params).status_code, range(4)))
    assert statuses == [200, 400, 400, 400]
    events = ok(admin.get("relationship-intelligence/audit"))["events"]
    assert [e["action"] for e in events].count("consentGranted") == 1


def test_the_callback_redirects_only_to_the_configured_portal(admin: Api, function_host: FunctionHost,
                                                              idp: IdentityProvider, tenant_id: str,
                                                              container: bootstrap.Container) -> None:
    portal = "https://portal.contoso.test/settings/ri?tab=consent"
    bootstrap.install(dataclasses.replace(container, config=dataclasses.replace(container.config,
                                                                               portal_url=portal)))
    try:
        enable(admin)
        idp.grants.grant(tenant_id, CLIENT_ID, DEFAULT_GRAPH_PERMISSIONS)
        params = {**_success_params(consent_link(admin), tenant_id), "redirect_uri": "https://evil.test/",
                  "returnUrl": "https://evil.test/", "portal": "https://evil.test/"}
        response = callback(function_host, params)
        assert response.status_code == 302
        assert response.headers["Location"] == "https://portal.contoso.test/settings/ri?tab=consent&consent=granted"
        again = callback(function_host, params)
        assert again.headers["Location"].endswith("consent=invalid")
    finally:
        bootstrap.install(container)


def test_revocation_is_noticed_by_the_recheck_and_a_transient_failure_is_not(
        admin: Api, function_host: FunctionHost, idp: IdentityProvider, tenant_id: str,
        container: bootstrap.Container) -> None:
    enable(admin)
    idp.grants.grant(tenant_id, CLIENT_ID, DEFAULT_GRAPH_PERMISSIONS)
    assert callback(function_host, _success_params(consent_link(admin), tenant_id)).status_code == 200
    service = container.consent()

    idp.fail_next("/oauth2/v2.0/token", status=503, times=1)
    check = service.recheck(tenant_id)  # type: ignore[arg-type]
    assert check is not None
    assert check.outcome == "transient"
    assert consent_status(admin) == "granted"

    idp.grants.revoke(tenant_id, CLIENT_ID)
    check = service.recheck(tenant_id)  # type: ignore[arg-type]
    assert check is not None
    assert check.outcome == "servicePrincipalMissing"
    overview = ok(admin.get("relationship-intelligence"))
    assert overview["exchange"]["consent"]["status"] == "withdrawn"
    assert overview["exchange"]["integrationEnabled"] is False
    assert overview["banner"]["kind"] == "consentWithdrawn"
