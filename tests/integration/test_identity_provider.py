"""The local identity provider speaks the protocol MSAL and browsers expect (over HTTPS, on loopback)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import msal
import pytest
import requests

from devhost.idp import DEFAULT_GRAPH_PERMISSIONS, IdentityProvider
from tests.conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI

pytestmark = pytest.mark.integration

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


@pytest.fixture
def http(idp_session: requests.Session) -> requests.Session:
    return idp_session


def _msal_app(idp: IdentityProvider, http: requests.Session, tenant: str,
              secret: str = CLIENT_SECRET) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(CLIENT_ID, client_credential=secret,
                                              authority=f"{idp.base_url}/{tenant}",
                                              http_client=http, instance_discovery=False)


def _consent_url(idp: IdentityProvider, tenant: str, **overrides: str) -> str:
    query = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "scope": GRAPH_DEFAULT, "state": "s-123"}
    query.update(overrides)
    return f"{idp.base_url}/{tenant}/v2.0/adminconsent?{urlencode(query)}"


def test_openid_metadata_names_the_endpoints_and_templated_issuer(idp: IdentityProvider,
                                                                  http: requests.Session) -> None:
    meta = http.get(f"{idp.base_url}/organizations/v2.0/.well-known/openid-configuration").json()
    assert meta["issuer"] == f"{idp.base_url}/{{tenantid}}/v2.0"
    keys = http.get(meta["jwks_uri"]).json()["keys"]
    assert keys[0]["kid"] == idp.kid
    assert keys[0]["issuer"] == f"{idp.base_url}/{{tenantid}}/v2.0"
    assert "d" not in keys[0]  # only the public part is published


def test_client_credentials_without_consent_fail_like_entra(idp: IdentityProvider, http: requests.Session) -> None:
    result = _msal_app(idp, http, str(uuid.uuid4())).acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert result["error"] == "unauthorized_client"
    assert "AADSTS700016" in result["error_description"]


def test_client_credentials_with_a_wrong_secret_fail(idp: IdentityProvider, http: requests.Session) -> None:
    result = _msal_app(idp, http, str(uuid.uuid4()), secret="wrong").acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert result["error"] == "invalid_client"


def test_accepting_the_consent_page_records_the_grant_and_redirects(idp: IdentityProvider,
                                                                    http: requests.Session) -> None:
    tenant = str(uuid.uuid4())
    page = http.get(_consent_url(idp, tenant))
    assert page.status_code == 200
    assert 'id="accept"' in page.text
    assert 'id="cancel"' in page.text
    hidden = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    answer = http.post(_consent_url(idp, tenant), data={**hidden, "answer": "accept"}, allow_redirects=False)
    assert answer.status_code == 302
    target = urlsplit(answer.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == REDIRECT_URI
    params = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert params == {"admin_consent": "True", "tenant": tenant, "scope": GRAPH_DEFAULT, "state": "s-123"}

    token = _msal_app(idp, http, tenant).acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert sorted(claims["roles"]) == sorted(DEFAULT_GRAPH_PERMISSIONS)
    assert claims["tid"] == tenant


def test_cancelling_redirects_with_access_denied_and_no_tenant(idp: IdentityProvider, http: requests.Session) -> None:
    tenant = str(uuid.uuid4())
    answer = http.post(_consent_url(idp, tenant), data={"answer": "cancel"}, allow_redirects=False)
    assert answer.status_code == 302
    params = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    assert params["error"] == "access_denied"
    assert params["admin_consent"] == "True"
    assert params["state"] == "s-123"
    assert "tenant" not in params
    assert idp.grants.roles(tenant, CLIENT_ID) is None


@pytest.mark.parametrize("override", [{"redirect_uri": "https://evil.example/cb"}, {"client_id": str(uuid.uuid4())}])
def test_an_unregistered_redirect_or_client_gets_an_error_page_never_a_redirect(
        idp: IdentityProvider, http: requests.Session, override: dict[str, str]) -> None:
    tenant = str(uuid.uuid4())
    page = http.get(_consent_url(idp, tenant, **override), allow_redirects=False)
    assert page.status_code == 400
    answer = http.post(_consent_url(idp, tenant, **override), data={"answer": "accept"}, allow_redirects=False)
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert idp.grants.roles(tenant, CLIENT_ID) is None


def test_revoking_removes_the_roles_from_later_tokens(idp: IdentityProvider, http: requests.Session) -> None:
    tenant = str(uuid.uuid4())
    idp.grants.grant(tenant, CLIENT_ID, ["User.Read.All"])
    assert "access_token" in _msal_app(idp, http, tenant).acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert idp.grants.revoke(tenant, CLIENT_ID)
    assert "error" in _msal_app(idp, http, tenant).acquire_token_for_client(scopes=[GRAPH_DEFAULT])


def test_a_grant_with_no_permissions_issues_a_token_without_roles(idp: IdentityProvider,
                                                                  http: requests.Session) -> None:
    tenant = str(uuid.uuid4())
    idp.grants.grant(tenant, CLIENT_ID, [])
    token = _msal_app(idp, http, tenant).acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert "roles" not in jwt.decode(token["access_token"], options={"verify_signature": False})


def test_injected_faults_answer_503_then_recover(idp: IdentityProvider, http: requests.Session) -> None:
    idp.fail_next("/oauth2/v2.0/token", status=503, times=1)
    url = f"{idp.base_url}/{uuid.uuid4()}/oauth2/v2.0/token"
    assert http.post(url, data={"grant_type": "client_credentials"}).status_code == 503
    assert http.post(url, data={"grant_type": "client_credentials"}).status_code == 401


def test_cli_token_grant_and_revoke_share_state_with_the_server(tmp_path: Path, repo_root: Path) -> None:
    tenant, user = str(uuid.uuid4()), str(uuid.uuid4())
    base = [sys.executable, "-m", "devhost", "--state-dir", str(tmp_path)]

    def run(*args: str) -> str:
        return subprocess.run([*base, *args], cwd=repo_root, check=True, capture_output=True, text=True).stdout

    token = run("token", "--tenant", tenant, "--user", user, "--roles", "SystemAdministrator,Salesperson").strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["tid"], claims["oid"]) == (tenant, user)
    assert claims["roles"] == ["SystemAdministrator", "Salesperson"]
    run("grant", "--tenant", tenant, "--permissions", "User.Read.All")
    grants = json.loads((tmp_path / "idp" / "grants.json").read_text())
    assert list(grants[tenant].values()) == [["User.Read.All"]]
    assert "revoked" in run("revoke", "--tenant", tenant)
    assert tenant not in json.loads((tmp_path / "idp" / "grants.json").read_text())
