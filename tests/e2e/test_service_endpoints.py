"""Health, OpenAPI, /me and the token matrix, over HTTP through the dev host."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from devhost.idp import IdentityProvider
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e


def test_status_is_200_with_storage_reachable(anonymous: Api) -> None:
    response = anonymous.get("status")
    assert response.status_code == 200
    assert response.json() == {"status": "serving", "checks": {"storage": {"status": "ok", "detail": None}}}


def test_openapi_document_is_served(anonymous: Api) -> None:
    response = anonymous.get("openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"] == "3.1.0"
    assert "/api/relationship-intelligence" in doc["paths"]


def test_me_with_a_devhost_token(admin: Api, tenant_id: str) -> None:
    response = admin.get("me")
    assert response.status_code == 200
    body = response.json()
    assert body["tenantId"] == tenant_id
    assert "settings.manage" in body["permissions"]
    assert response.headers["Cache-Control"] == "no-store"


def _bad_tokens(idp: IdentityProvider, tenant: str) -> dict[str, str]:
    now = int(time.time())
    good = {"aud": "api://relationship-intelligence-test", "iss": idp.issuer(tenant), "iat": now, "nbf": now,
            "exp": now + 600, "tid": tenant, "oid": str(uuid.uuid4()), "roles": ["SystemAdministrator"],
            "scp": "access_as_user"}
    from cryptography.hazmat.primitives.asymmetric import rsa

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "expired": idp.sign({**good, "exp": now - 300, "nbf": now - 900, "iat": now - 900}),
        "wrongly signed": jwt.encode(good, other_key, algorithm="RS256", headers={"kid": idp.kid}),
        "wrong audience": idp.sign({**good, "aud": "api://other"}),
        "wrong issuer": idp.sign({**good, "iss": idp.issuer(str(uuid.uuid4()))}),
        "alg none": jwt.encode(good, None, algorithm="none", headers={"kid": idp.kid}),
        "HS256": jwt.encode(good, idp.jwks()["keys"][0]["n"].encode(), algorithm="HS256",
                            headers={"kid": idp.kid}),
    }


@pytest.mark.parametrize("case", ["expired", "wrongly signed", "wrong audience", "wrong issuer", "alg none", "HS256"])
def test_bad_tokens_are_401_invalid_token(function_host: object, idp: IdentityProvider, tenant_id: str,
                                          case: str) -> None:
    api = Api(function_host.base_url, _bad_tokens(idp, tenant_id)[case])  # type: ignore[attr-defined]
    for path in ("me", "relationship-intelligence"):
        response = api.get(path)
        assert response.status_code == 401, (case, path)
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert response.json()["status"] == 401


def test_no_token_is_401_without_error_code(anonymous: Api) -> None:
    response = anonymous.get("me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error=" not in response.headers["WWW-Authenticate"]


def test_a_seller_token_cannot_configure(function_host: object, idp: IdentityProvider, tenant_id: str) -> None:
    seller = Api(function_host.base_url,  # type: ignore[attr-defined]
                 idp.user_token(tenant_id, str(uuid.uuid4()), ["Salesperson"]))
    response = seller.get("relationship-intelligence")
    assert response.status_code == 403
    assert response.json()["type"].endswith("forbidden")


def test_an_app_only_token_cannot_configure(function_host: object, idp: IdentityProvider, tenant_id: str) -> None:
    app = Api(function_host.base_url,  # type: ignore[attr-defined]
              idp.app_token(tenant_id, "connector", ["SystemAdministrator"]))
    assert app.get("relationship-intelligence").status_code == 403


def test_unknown_route_and_wrong_method(admin: Api) -> None:
    missing = admin.get("no-such-thing")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/problem+json")
    wrong = admin.call("DELETE", "relationship-intelligence")
    assert wrong.status_code == 405
    assert "GET" in wrong.headers["Allow"]
