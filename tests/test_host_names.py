from __future__ import annotations

from common_api.host_names import split_host


def test_host_syntax() -> None:
    assert split_host("LocalHost:7000") == ("localhost", 7000)
    assert split_host("[::1]:80") == ("::1", 80)
    assert split_host("example.org.") == ("example.org", None)
    for bad in ["", "a b", "[::1]x", "host:", "host:0", "host:http", "[nope]", "a/b"]:
        assert split_host(bad) is None, bad
