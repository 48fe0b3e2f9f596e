from __future__ import annotations

import pytest

from common_api.errors import Forbidden, Unauthorized
from common_api.services.access import (
    AccessPolicy,
    Caller,
    is_loopback,
    is_proxied,
    token_fingerprint,
)

LOCAL = "127.0.0.1"


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.1.5", "::ffff:10.0.0.1", "2001:db8::1",
                                     "", None, "localhost", "not-an-ip"])
def test_non_loopback_addresses(address: str | None) -> None:
    assert not is_loopback(address)


def test_without_token_guarded_needs_loopback() -> None:
    policy = AccessPolicy(None)
    policy.check(Caller(LOCAL), guarded=True)
    policy.check(Caller("10.1.2.3"), guarded=False)
    with pytest.raises(Forbidden, match="COMMON_API_TOKEN"):
        policy.check(Caller("10.1.2.3"), guarded=True)


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-Ip", "x-real-ip"])
def test_forwarding_headers_only_narrow(header: str) -> None:
    policy = AccessPolicy(None)
    assert is_proxied(["Host", header])
    with pytest.raises(Forbidden, match="proxy"):
        policy.check(Caller(LOCAL, proxied=True), guarded=True)
    with pytest.raises(Forbidden):
        policy.check(Caller("203.0.113.5", proxied=True), guarded=True)
    policy.check(Caller(LOCAL, proxied=True), guarded=False)


def test_plain_requests_are_not_proxied() -> None:
    assert not is_proxied(["Host", "User-Agent", "Accept", "Authorization"])


def test_loopback_trust_can_be_turned_off() -> None:
    policy = AccessPolicy(None, trust_loopback=False)
    with pytest.raises(Forbidden, match="TRUST_LOOPBACK"):
        policy.check(Caller(LOCAL), guarded=True)
    policy.check(Caller(LOCAL), guarded=False)


def test_with_token_every_request_needs_it() -> None:
    policy = AccessPolicy("s3cret")
    policy.check(Caller("10.1.2.3", "Bearer s3cret"), guarded=True)
    with pytest.raises(Unauthorized):
        policy.check(Caller(LOCAL), guarded=False)
    with pytest.raises(Unauthorized):
        policy.check(Caller(LOCAL, "Basic s3cret"), guarded=False)
    with pytest.raises(Forbidden):
        policy.check(Caller(LOCAL, "Bearer wrong"), guarded=False)
    with pytest.raises(Unauthorized):
        policy.check(Caller(LOCAL), guarded=False, health=True)


def test_health_can_be_left_open_for_probes() -> None:
    policy = AccessPolicy("s3cret", public_health=True)
    policy.check(Caller("10.1.2.3"), guarded=False, health=True)
    with pytest.raises(Unauthorized):
        policy.check(Caller("10.1.2.3"), guarded=False)


def test_fingerprint_does_not_reveal_the_token() -> None:
    fingerprint = token_fingerprint("s3cret")
    assert fingerprint is not None and len(fingerprint) == 12 and "s3cret" not in fingerprint
    assert token_fingerprint(None) is None


# browsers: loopback trust is for local programs ----------------------------------------

def local(host: str | None = "127.0.0.1:7000", **headers: str) -> Caller:
    """A request from this machine addressed to ``host``, with browser headers if given."""
    return Caller(LOCAL, host=host, **headers)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["localhost", "localhost:7000", "LOCALHOST:7000", "localhost.",
                                  "127.0.0.1", "127.0.0.1:7000", "127.5.6.7:80", "[::1]",
                                  "[::1]:7000", None])
def test_requests_to_loopback_names_are_local(host: str | None) -> None:
    AccessPolicy(None).check(local(host), guarded=True)


@pytest.mark.parametrize("host", ["rebind.evil.example:7000", "rebind.evil.example",
                                  "localhost.evil.example", "127.0.0.1.nip.io:7000",
                                  "10.0.0.5:7000", "[2001:db8::1]:7000", "", "local host",
                                  "localhost:99999", "[::1"])
def test_rebinding_hosts_are_refused(host: str) -> None:
    with pytest.raises(Forbidden, match=r"not a loopback name.*COMMON_API_ALLOWED_HOSTS"):
        AccessPolicy(None).check(local(host), guarded=True)


def test_unguarded_requests_ignore_the_host() -> None:
    AccessPolicy(None).check(local("rebind.evil.example", origin="https://evil.example"),
                             guarded=False)


def test_allowed_hosts_are_local_with_any_port_or_the_one_named() -> None:
    policy = AccessPolicy(None, allowed_hosts=["ops.internal", "box.lan:7000", "[fd00::1]"])
    for host in ["ops.internal", "OPS.internal:8000", "box.lan:7000", "[fd00::1]:7000"]:
        policy.check(local(host), guarded=True)
    for host in ["box.lan:7001", "box.lan", "evil.ops.internal", "ops.internal.evil"]:
        with pytest.raises(Forbidden):
            policy.check(local(host), guarded=True)


def test_a_malformed_allowed_host_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="evil/"):
        AccessPolicy(None, allowed_hosts=["evil/"])


@pytest.mark.parametrize(("headers", "named"), [
    ({"origin": "https://evil.example"}, "Origin: https://evil.example"),
    ({"origin": "null"}, "Origin: null"),
    ({"origin": "http://127.0.0.1:8888"}, "Origin"),
    ({"origin": "https://127.0.0.1:7000"}, "Origin"),
    ({"fetch_site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
    ({"fetch_site": "same-site"}, "Sec-Fetch-Site: same-site"),
    ({"referer": "https://evil.example/attack.html"}, "Referer: https://evil.example"),
    ({"referer": "about:blank"}, "Referer"),
])
def test_requests_a_web_page_sent_are_refused(headers: dict[str, str], named: str) -> None:
    with pytest.raises(Forbidden, match="web pages") as refused:
        AccessPolicy(None).check(local(**headers), guarded=True)
    assert named in str(refused.value)


@pytest.mark.parametrize("headers", [
    {"origin": "http://127.0.0.1:7000"}, {"origin": "HTTP://127.0.0.1:7000"},
    {"fetch_site": "same-origin"}, {"fetch_site": "none"},
    {"referer": "http://127.0.0.1:7000/ui?x=1"},
    {"origin": "http://127.0.0.1:7000", "fetch_site": "same-origin",
     "referer": "http://127.0.0.1:7000/ui"},
])
def test_the_servers_own_pages_and_typed_urls_are_local(headers: dict[str, str]) -> None:
    AccessPolicy(None).check(local(**headers), guarded=True)


def test_default_ports_are_the_same_origin() -> None:
    AccessPolicy(None).check(local("localhost", origin="http://localhost:80"), guarded=True)
    AccessPolicy(None).check(Caller(LOCAL, host="localhost", scheme="https",
                                    origin="https://localhost"), guarded=True)


def test_a_valid_token_works_from_any_page() -> None:
    policy = AccessPolicy("s3cret")
    policy.check(Caller("203.0.113.5", "Bearer s3cret", host="rebind.evil.example",
                        origin="https://evil.example", fetch_site="cross-site"), guarded=True)
    with pytest.raises(Forbidden):
        policy.check(Caller(LOCAL, "Bearer wrong", host="localhost"), guarded=True)
