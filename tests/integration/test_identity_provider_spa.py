"""The local identity provider signs the portal in as Entra signs in a single-page app: authorization code with
PKCE (S256), redeemed cross-origin, id_token with the nonce, refresh tokens, logout, CORS."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests

from devhost.idp import SAMPLE_USERS, IdentityProvider, RegisteredApp
from tests.conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI

pytestmark = pytest.mark.integration

PORTAL = "http://127.0.0.1:4280"
SPA_REDIRECT = f"{PORTAL}/"
AUDIENCE = "api://relationship-intelligence-spa-test"
SCOPES = f"{AUDIENCE}/access_as_user openid profile offline_access"
TENANT = "5e1f6a8c-3b7d-4c2e-9f10-a1b2c3d4e5f6"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityProvider]:
    app = RegisteredApp(CLIENT_ID, CLIENT_SECRET, (REDIRECT_URI,), spa_redirect_uris=(SPA_REDIRECT,))
    with IdentityProvider(tmp_path_factory.mktemp("idp-spa"), app, api_audience=AUDIENCE, port=0) as provider:
        yield provider


@pytest.fixture
def http(idp: IdentityProvider) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(idp.tls.ca_cert)
    return session


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(idp: IdentityProvider, challenge: str, tenant: str = "organizations", **overrides: str) -> str:
    query = {"client_id": CLIENT_ID, "redirect_uri": SPA_REDIRECT, "response_type": "code", "response_mode":
             "fragment", "scope": SCOPES, "state": "st-1", "nonce": "n-42", "code_challenge": challenge,
             "code_challenge_method": "S256"}
    query.update(overrides)
    return f"{idp.base_url}/{tenant}/oauth2/v2.0/authorize?{urlencode(query)}"


def answer(http: requests.Session, url: str, **form: object) -> dict[str, str]:
    """Posts the sign-in page; returns the parameters the browser brings back to the portal."""
    response = http.post(url, data=form, allow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(SPA_REDIRECT)
    parts = urlsplit(location)
    return {k: v[0] for k, v in parse_qs(parts.fragment or parts.query).items()}


def redeem(idp: IdentityProvider, http: requests.Session, code: str, verifier: str,
           origin: str | None = PORTAL, **extra: str) -> requests.Response:
    headers = {"Origin": origin} if origin else {}
    return http.post(f"{idp.base_url}/organizations/oauth2/v2.0/token", headers=headers, data={
        "client_id": CLIENT_ID, "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "redirect_uri": SPA_REDIRECT, "scope": SCOPES, **extra})


def claims(idp: IdentityProvider, token: str, audience: str) -> dict[str, object]:
    key = jwt.PyJWK(idp.jwks()["keys"][0]).key
    return jwt.decode(token, key, algorithms=["RS256"], audience=audience)  # type: ignore[no-any-return]


def test_metadata_names_the_sign_in_endpoints_and_answers_the_portal_cross_origin(
        idp: IdentityProvider, http: requests.Session) -> None:
    response = http.get(f"{idp.base_url}/organizations/v2.0/.well-known/openid-configuration",
                        headers={"Origin": PORTAL})
    meta = response.json()
    assert meta["authorization_endpoint"] == f"{idp.base_url}/organizations/oauth2/v2.0/authorize"
    assert meta["end_session_endpoint"] == f"{idp.base_url}/organizations/oauth2/v2.0/logout"
    assert "S256" in meta["code_challenge_methods_supported"]
    assert response.headers["Access-Control-Allow-Origin"] == PORTAL
    keys = http.get(meta["jwks_uri"], headers={"Origin": PORTAL})
    assert keys.headers["Access-Control-Allow-Origin"] == PORTAL
    elsewhere = http.get(meta["jwks_uri"], headers={"Origin": "https://evil.test"})
    assert "Access-Control-Allow-Origin" not in elsewhere.headers
    preflight = http.options(meta["token_endpoint"], headers={
        "Origin": PORTAL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == PORTAL
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]


def test_the_code_flow_with_pkce_signs_a_chosen_user_in(idp: IdentityProvider, http: requests.Session) -> None:
    verifier, challenge = pkce()
    url = authorize_url(idp, challenge)
    page = http.get(url)
    assert page.status_code == 200
    assert "form-action" not in page.headers["Content-Security-Policy"]  # the answer redirects on to the portal
    assert re.search(r'<label for="tenant">', page.text)
    seller = SAMPLE_USERS[1]
    back = answer(http, url, tenant=TENANT.upper(), user=seller.object_id, role=["Salesperson", "SalesManager"],
                  answer="sign-in")
    assert back["state"] == "st-1"
    assert set(back) >= {"code", "client_info", "state"}
    tokens = redeem(idp, http, back["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["Access-Control-Allow-Origin"] == PORTAL
    body = tokens.json()
    assert body["token_type"] == "Bearer"
    access = claims(idp, body["access_token"], AUDIENCE)
    assert access["tid"] == TENANT
    assert access["oid"] == seller.object_id
    assert access["roles"] == ["Salesperson", "SalesManager"]
    assert access["scp"] == "access_as_user"
    assert access["iss"] == f"{idp.base_url}/{TENANT}/v2.0"
    identity = claims(idp, body["id_token"], CLIENT_ID)
    assert identity["nonce"] == "n-42"
    assert identity["name"] == seller.name
    info = base64.urlsafe_b64decode(body["client_info"] + "==")
    assert info == f'{{"uid": "{seller.object_id}", "utid": "{TENANT}"}}'.encode()

    again = redeem(idp, http, back["code"], verifier)  # a code serves once
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"

    refreshed = http.post(f"{idp.base_url}/{TENANT}/oauth2/v2.0/token", headers={"Origin": PORTAL}, data={
        "client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_token": body["refresh_token"],
        "scope": SCOPES})
    assert refreshed.status_code == 200, refreshed.text
    assert claims(idp, refreshed.json()["access_token"], AUDIENCE)["roles"] == ["Salesperson", "SalesManager"]
    reused = http.post(f"{idp.base_url}/{TENANT}/oauth2/v2.0/token", headers={"Origin": PORTAL}, data={
        "client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert reused.json()["error"] == "invalid_grant"  # rotated


def test_no_role_checked_gives_the_users_usual_roles(idp: IdentityProvider, http: requests.Session) -> None:
    verifier, challenge = pkce()
    url = authorize_url(idp, challenge, tenant=TENANT)
    admin = SAMPLE_USERS[0]
    back = answer(http, url, user=admin.object_id, answer="sign-in")
    access = claims(idp, redeem(idp, http, back["code"], verifier).json()["access_token"], AUDIENCE)
    assert access["roles"] == list(admin.roles)
    assert access["tid"] == TENANT


def test_redemption_needs_the_verifier_the_redirect_uri_and_a_cross_origin_request(
        idp: IdentityProvider, http: requests.Session) -> None:
    def fresh_code() -> tuple[str, str]:
        verifier, challenge = pkce()
        url = authorize_url(idp, challenge)
        return answer(http, url, tenant=TENANT, user=SAMPLE_USERS[0].object_id, answer="sign-in")["code"], verifier

    code, _ = fresh_code()
    wrong = redeem(idp, http, code, pkce()[0])
    assert "AADSTS501481" in wrong.json()["error_description"]
    code, verifier = fresh_code()
    assert "AADSTS9002327" in redeem(idp, http, code, verifier, origin=None).json()["error_description"]
    code, verifier = fresh_code()
    moved = redeem(idp, http, code, verifier, redirect_uri=f"{PORTAL}/elsewhere")
    assert moved.json()["error"] == "invalid_grant"


def test_bad_requests_are_refused_where_entra_refuses_them(idp: IdentityProvider, http: requests.Session) -> None:
    _, challenge = pkce()
    for url in (authorize_url(idp, challenge, redirect_uri="https://evil.test/"),
                authorize_url(idp, challenge, client_id="someone-else")):
        page = http.get(url, allow_redirects=False)
        assert page.status_code == 400  # an error page, never a redirect to an unregistered address
        assert "Location" not in page.headers

    def error_of(url: str) -> dict[str, str]:
        response = http.get(url, allow_redirects=False)
        assert response.status_code == 302
        return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).fragment).items()}

    assert error_of(authorize_url(idp, challenge, code_challenge_method="plain"))["error"] == "invalid_request"
    assert error_of(authorize_url(idp, challenge, prompt="none"))["error"] == "login_required"
    assert error_of(authorize_url(idp, challenge, scope="https://graph.microsoft.com/Mail.Read"))["error"] == \
        "invalid_scope"
    url = authorize_url(idp, challenge, response_mode="query")
    cancelled = answer(http, url, tenant=TENANT, user=SAMPLE_USERS[0].object_id, answer="cancel")
    assert (cancelled["error"], cancelled["state"]) == ("access_denied", "st-1")
    bad_tenant = http.post(url, data={"tenant": "not-a-guid", "user": SAMPLE_USERS[0].object_id,
                                      "answer": "sign-in"}, allow_redirects=False)
    assert bad_tenant.status_code == 400
    assert 'role="alert"' in bad_tenant.text


def test_logout_returns_to_a_registered_address_only(idp: IdentityProvider, http: requests.Session) -> None:
    base = f"{idp.base_url}/organizations/oauth2/v2.0/logout"
    back = http.get(f"{base}?{urlencode({'post_logout_redirect_uri': SPA_REDIRECT})}", allow_redirects=False)
    assert back.status_code == 302
    assert back.headers["Location"] == SPA_REDIRECT
    page = http.get(f"{base}?{urlencode({'post_logout_redirect_uri': 'https://evil.test/'})}",
                    allow_redirects=False)
    assert page.status_code == 200
    assert "signed out" in page.text


def test_the_consent_page_lets_its_answer_redirect_on(idp: IdentityProvider, http: requests.Session) -> None:
    """Browsers apply form-action to each redirect after a form post: Accept → our callback → the portal."""
    query = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "scope": "https://graph.microsoft.com/.default",
             "state": "s"}
    page = http.get(f"{idp.base_url}/{TENANT}/v2.0/adminconsent?{urlencode(query)}")
    assert page.status_code == 200
    assert "form-action" not in page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
