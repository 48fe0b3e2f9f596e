from __future__ import annotations

import pytest

from common_api.errors import Forbidden, Unauthorized
from common_api.services.access import AccessPolicy, is_loopback, is_proxied, token_fingerprint


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.1.5", "::ffff:10.0.0.1", "2001:db8::1",
                                     "", None, "localhost", "not-an-ip"])
def test_non_loopback_addresses(address: str | None) -> None:
    assert not is_loopback(address)


def test_without_token_guarded_needs_loopback() -> None:
    policy = AccessPolicy(None)
    policy.check("127.0.0.1", None, guarded=True)
    policy.check("10.1.2.3", None, guarded=False)
    with pytest.raises(Forbidden, match="COMMON_API_TOKEN"):
        policy.check("10.1.2.3", None, guarded=True)


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-Ip", "x-real-ip"])
def test_forwarding_headers_only_narrow(header: str) -> None:
    policy = AccessPolicy(None)
    assert is_proxied(["Host", header])
    with pytest.raises(Forbidden, match="proxy"):
        policy.check("127.0.0.1", None, guarded=True, proxied=True)
    with pytest.raises(Forbidden):
        policy.check("203.0.113.5", None, guarded=True, proxied=True)
    policy.check("127.0.0.1", None, guarded=False, proxied=True)


def test_plain_requests_are_not_proxied() -> None:
    assert not is_proxied(["Host", "User-Agent", "Accept", "Authorization"])


def test_loopback_trust_can_be_turned_off() -> None:
    policy = AccessPolicy(None, trust_loopback=False)
    with pytest.raises(Forbidden, match="TRUST_LOOPBACK"):
        policy.check("127.0.0.1", None, guarded=True)
    policy.check("127.0.0.1", None, guarded=False)


def test_with_token_every_request_needs_it() -> None:
    policy = AccessPolicy("s3cret")
    policy.check("10.1.2.3", "Bearer s3cret", guarded=True)
    with pytest.raises(Unauthorized):
        policy.check("127.0.0.1", None, guarded=False)
    with pytest.raises(Unauthorized):
        policy.check("127.0.0.1", "Basic s3cret", guarded=False)
    with pytest.raises(Forbidden):
        policy.check("127.0.0.1", "Bearer wrong", guarded=False)
    with pytest.raises(Unauthorized):
        policy.check("127.0.0.1", None, guarded=False, health=True)


def test_health_can_be_left_open_for_probes() -> None:
    policy = AccessPolicy("s3cret", public_health=True)
    policy.check("10.1.2.3", None, guarded=False, health=True)
    with pytest.raises(Unauthorized):
        policy.check("10.1.2.3", None, guarded=False)


def test_fingerprint_does_not_reveal_the_token() -> None:
    fingerprint = token_fingerprint("s3cret")
    assert fingerprint is not None and len(fingerprint) == 12 and "s3cret" not in fingerprint
    assert token_fingerprint(None) is None
