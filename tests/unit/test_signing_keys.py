"""The signing-key cache: refreshed when stale or on an unknown kid, but not hammered by bad tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shared.identity.tokens import IdentityProviderUnavailable, SigningKeys


class FakeIssuer:
    def __init__(self) -> None:
        self.keys = [{"kid": "k1", "kty": "RSA"}]
        self.fetches = 0
        self.down = False

    def get(self, url: str) -> Mapping[str, Any]:
        if self.down:
            raise IdentityProviderUnavailable("down")
        if url.endswith("openid-configuration"):
            return {"jwks_uri": "https://issuer.test/keys"}
        self.fetches += 1
        return {"keys": list(self.keys)}


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


def test_keys_are_fetched_once_and_cached(issuer: FakeIssuer) -> None:
    keys = SigningKeys("https://issuer.test", issuer.get, monotonic=Ticker())
    assert keys.key("k1") is not None
    assert keys.key("k1") is not None
    assert issuer.fetches == 1


def test_an_unknown_kid_triggers_a_refresh_but_at_most_every_30_seconds(issuer: FakeIssuer) -> None:
    clock = Ticker()
    keys = SigningKeys("https://issuer.test", issuer.get, monotonic=clock)
    keys.key("k1")
    issuer.keys.append({"kid": "k2", "kty": "RSA"})
    assert keys.key("k2") is None  # just fetched: a flood of unknown kids must not hammer the issuer
    assert issuer.fetches == 1
    clock.now += 31
    assert keys.key("k2") is not None
    assert issuer.fetches == 2


def test_keys_older_than_a_day_are_refreshed(issuer: FakeIssuer) -> None:
    clock = Ticker()
    keys = SigningKeys("https://issuer.test", issuer.get, monotonic=clock)
    keys.key("k1")
    clock.now += 24 * 3600 + 1
    keys.key("k1")
    assert issuer.fetches == 2


def test_cached_keys_survive_an_issuer_outage(issuer: FakeIssuer) -> None:
    clock = Ticker()
    keys = SigningKeys("https://issuer.test", issuer.get, monotonic=clock)
    keys.key("k1")
    issuer.down = True
    clock.now += 24 * 3600 + 1
    assert keys.key("k1") is not None


def test_without_cached_keys_an_outage_is_reported(issuer: FakeIssuer) -> None:
    issuer.down = True
    with pytest.raises(IdentityProviderUnavailable):
        SigningKeys("https://issuer.test", issuer.get, monotonic=Ticker()).key("k1")
