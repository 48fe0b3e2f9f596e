from __future__ import annotations

import pytest

from common_api.config import DEFAULT_SECRET_PATTERN
from common_api.services.environment import MASK, EnvironmentService

SECRET_KEYS = [
    "PASSWORD", "DB_PASSWORD", "db_passwd", "MYSQL_PWD_PASSWORD", "REDIS_PASS", "GPG_PASSPHRASE",
    "AWS_SECRET_ACCESS_KEY", "CLIENT_SECRET", "GITHUB_TOKEN", "HF_TOKEN", "OPENAI_API_KEY",
    "apikey", "ACCESS_KEY", "SSH_PRIVATE_KEY", "GOOGLE_APPLICATION_CREDENTIALS",
    "BASIC_AUTH", "OAUTH_CLIENT", "SENTRY_DSN", "SESSION_COOKIE", "JWT_SIGNING_KEY",
    "PASSWORD_SALT", "KEY", "ENCRYPTION_KEYS",
]
HARMLESS_KEYS = [
    "HOME", "PATH", "PWD", "OLDPWD", "LANG", "HOSTNAME", "PYTHONPATH", "SHELL", "TERM",
    "GIT_AUTHOR_NAME", "KEYBOARD_LAYOUT", "MONKEY_MODE", "PASSENGER_COUNT", "USER",
]


@pytest.fixture
def service() -> EnvironmentService:
    return EnvironmentService(DEFAULT_SECRET_PATTERN)


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_looking_keys_are_masked(service: EnvironmentService, key: str) -> None:
    assert service.snapshot({key: "hunter2"}) == {key: MASK}


@pytest.mark.parametrize("key", HARMLESS_KEYS)
def test_harmless_keys_are_shown(service: EnvironmentService, key: str) -> None:
    assert service.snapshot({key: "/some/value"}) == {key: "/some/value"}


@pytest.mark.parametrize(("value", "expected"), [
    ("postgres://app:s3cr3t@db:5432/app", "postgres://app:******@db:5432/app"),
    ("redis://:pw@cache:6379/0", "redis://:******@cache:6379/0"),
    ("a=http://u:p@h/x,b=https://v:q@k/y", "a=http://u:******@h/x,b=https://v:******@k/y"),
    ("https://example.com/path", "https://example.com/path"),
    ("http://user@host/path", "http://user@host/path"),
    ("http://host:8080/path", "http://host:8080/path"),
    ("plain text: with colon @ sign", "plain text: with colon @ sign"),
])
def test_url_passwords_are_masked_in_any_value(service: EnvironmentService, value: str,
                                               expected: str) -> None:
    assert service.snapshot({"UPSTREAM": value}) == {"UPSTREAM": expected}


def test_snapshot_is_sorted_by_key(service: EnvironmentService) -> None:
    assert list(service.snapshot({"b": "1", "A": "2", "a": "3"})) == ["A", "a", "b"]


def test_masking_can_be_switched_off() -> None:
    service = EnvironmentService(DEFAULT_SECRET_PATTERN, mask_secrets=False)
    env = {"DB_PASSWORD": "x", "URL": "http://u:p@h/"}
    assert service.snapshot(env) == env
