"""The process environment as an operator may see it: sorted, with secrets masked."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

MASK = "******"

# scheme://user:password@host -> scheme://user:******@host
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/?#@\s:]*:)[^/?#@\s]+(?=@)")


class EnvironmentService:
    """Snapshots the environment, masking the values of keys that look secret.

    A key is secret when ``secret_pattern`` (case-insensitive) finds a match in it; its
    value reads ``******``. Independently, a password inside any URL-shaped value is
    masked, so ``postgres://app:pw@db/app`` reads ``postgres://app:******@db/app``.
    """

    def __init__(self, secret_pattern: str, mask_secrets: bool = True) -> None:
        self._secret_key = re.compile(secret_pattern, re.IGNORECASE)
        self._mask_secrets = mask_secrets

    def is_secret_key(self, key: str) -> bool:
        return self._secret_key.search(key) is not None

    def mask_value(self, key: str, value: str) -> str:
        if not self._mask_secrets:
            return value
        if self.is_secret_key(key):
            return MASK
        return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, value)

    def snapshot(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return the environment sorted by key, secrets masked."""
        source = os.environ if environ is None else environ
        return {key: self.mask_value(key, source[key]) for key in sorted(source)}
