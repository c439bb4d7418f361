"""Access-token validation against the local identity provider over HTTPS (OpenID metadata + JWKS)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from devhost.idp import IdentityProvider
from shared.errors import Unauthorized
from shared.identity.tokens import (
    AccessTokenValidator,
    IdentityProviderUnavailable,
    SigningKeys,
    https_json_getter,
)
from tests.conftest import AUDIENCE, CLIENT_ID

pytestmark = pytest.mark.integration


@pytest.fixture
def validator(idp: IdentityProvider) -> AccessTokenValidator:
    keys = SigningKeys(idp.base_url, https_json_getter(str(idp.tls.ca_cert)))
    return AccessTokenValidator(idp.base_url, (AUDIENCE, CLIENT_ID), keys)


def claims(idp: IdentityProvider, tenant: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"aud": AUDIENCE, "iss": idp.issuer(tenant), "iat": now, "nbf": now, "exp": now + 600,
                            "tid": tenant, "oid": str(uuid.uuid4()), "roles": ["SystemAdministrator"],
                            "scp": "access_as_user", "ver": "2.0"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_a_devhost_user_token_is_accepted(idp: IdentityProvider, validator: AccessTokenValidator) -> None:
    tenant, user = str(uuid.uuid4()), str(uuid.uuid4())
    principal = validator.validate(idp.user_token(tenant, user, ["SystemAdministrator", "Salesperson"]))
    assert principal.tenant_id == tenant
    assert principal.object_id == user
    assert principal.roles == {"SystemAdministrator", "Salesperson"}
    assert not principal.is_app


def test_an_app_only_token_is_recognised(idp: IdentityProvider, validator: AccessTokenValidator) -> None:
    principal = validator.validate(idp.app_token(str(uuid.uuid4()), "connector", ["RelationshipIntelligence.Sync"]))
    assert principal.is_app


def test_the_second_accepted_audience_works(idp: IdentityProvider, validator: AccessTokenValidator) -> None:
    tenant = str(uuid.uuid4())
    validator.validate(idp.sign(claims(idp, tenant, aud=CLIENT_ID)))


def _other_key_token(idp: IdentityProvider, tenant: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims(idp, tenant), key, algorithm="RS256", headers={"kid": idp.kid})


def _hs256_with_public_key(idp: IdentityProvider, tenant: str) -> str:
    # The classic algorithm-confusion attack: HMAC keyed with the published RSA key.
    secret = idp.jwks()["keys"][0]["n"].encode()
    return jwt.encode(claims(idp, tenant), secret, algorithm="HS256", headers={"kid": idp.kid})


def _alg_none(idp: IdentityProvider, tenant: str) -> str:
    return jwt.encode(claims(idp, tenant), None, algorithm="none", headers={"kid": idp.kid})


BAD_TOKENS: dict[str, Callable[[IdentityProvider, str], str]] = {
    "expired": lambda idp, t: idp.sign(claims(idp, t, exp=int(time.time()) - 300, nbf=int(time.time()) - 900,
                                              iat=int(time.time()) - 900)),
    "not yet valid": lambda idp, t: idp.sign(claims(idp, t, nbf=int(time.time()) + 600)),
    "wrong audience": lambda idp, t: idp.sign(claims(idp, t, aud="api://someone-else")),
    "issuer of another tenant": lambda idp, t: idp.sign(claims(idp, t, iss=idp.issuer(str(uuid.uuid4())))),
    "v1 issuer": lambda idp, t: idp.sign(claims(idp, t, iss=f"https://sts.windows.net/{t}/")),
    "foreign issuer host": lambda idp, t: idp.sign(claims(idp, t, iss=f"https://login.microsoftonline.com/{t}/v2.0")),
    "wrongly signed": _other_key_token,
    "alg none": _alg_none,
    "HS256": _hs256_with_public_key,
    "unknown kid": lambda idp, t: idp.sign(claims(idp, t), kid="not-a-known-key"),
    "no tid": lambda idp, t: idp.sign(claims(idp, t, tid=None)),
    "tid not a guid": lambda idp, t: idp.sign(claims(idp, t, tid="contoso")),
    "no oid": lambda idp, t: idp.sign(claims(idp, t, oid=None)),
    "no exp": lambda idp, t: idp.sign(claims(idp, t, exp=None)),
    "roles not a list": lambda idp, t: idp.sign(claims(idp, t, roles="SystemAdministrator")),
    "garbage": lambda idp, t: "not.a.jwt",
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_bad_tokens_are_unauthorized(idp: IdentityProvider, validator: AccessTokenValidator, case: str) -> None:
    token = BAD_TOKENS[case](idp, str(uuid.uuid4()))
    with pytest.raises(Unauthorized) as caught:
        validator.validate(token)
    assert caught.value.headers["WWW-Authenticate"].endswith('error="invalid_token"')


def test_an_unreachable_identity_provider_is_a_503_not_a_401(idp: IdentityProvider) -> None:
    keys = SigningKeys(idp.base_url, https_json_getter(str(idp.tls.ca_cert)))
    validator = AccessTokenValidator(idp.base_url, (AUDIENCE,), keys)
    idp.fail_next("openid-configuration", status=503)
    try:
        with pytest.raises(IdentityProviderUnavailable):
            validator.validate(idp.user_token(str(uuid.uuid4()), str(uuid.uuid4()), []))
    finally:
        idp.clear_faults()
    validator.validate(idp.user_token(str(uuid.uuid4()), str(uuid.uuid4()), []))


def test_the_identity_provider_is_only_trusted_with_its_ca(idp: IdentityProvider) -> None:
    keys = SigningKeys(idp.base_url, https_json_getter(None))  # the system trust store does not know our CA
    validator = AccessTokenValidator(idp.base_url, (AUDIENCE,), keys)
    with pytest.raises(IdentityProviderUnavailable):
        validator.validate(idp.user_token(str(uuid.uuid4()), str(uuid.uuid4()), []))
