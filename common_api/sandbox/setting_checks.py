"""What only the sandbox knows about its settings: which packages are never host code, and
which users a script may become. Checked once at registration (after the configuration has
read the values), each error naming its key."""

from __future__ import annotations

from collections.abc import Iterable

from common_api.setting_keys import SCRIPT_HOST_PACKAGES, SCRIPT_USER

from .confine import resolve_user
from .policy import never_host


def check_script_settings(host_packages: Iterable[str], user: str) -> None:
    """ValueError naming the key of the first value the sandbox cannot take."""
    for name in host_packages:
        if never_host(name):
            raise ValueError(f"{SCRIPT_HOST_PACKAGES}: {name!r} is a framework or "
                             "standard-library package, never host code")
    try:
        resolve_user(user)
    except ValueError as exc:
        raise ValueError(f"{SCRIPT_USER}: {exc}") from None
