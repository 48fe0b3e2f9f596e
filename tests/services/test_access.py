from __future__ import annotations

import pytest

from common_api.errors import Forbidden, Unauthorized
from common_api.services.access import AccessPolicy, is_loopback


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


def test_with_token_every_request_needs_it() -> None:
    policy = AccessPolicy("s3cret")
    policy.check("10.1.2.3", "Bearer s3cret", guarded=True)
    with pytest.raises(Unauthorized):
        policy.check("127.0.0.1", None, guarded=False)
    with pytest.raises(Unauthorized):
        policy.check("127.0.0.1", "Basic s3cret", guarded=False)
    with pytest.raises(Forbidden):
        policy.check("127.0.0.1", "Bearer wrong", guarded=False)
