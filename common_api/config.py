"""Configuration keys of common_api: names, defaults and validation in one place.

Every key is a Flask config key with the ``COMMON_API_`` prefix. At registration the
value is taken from ``app.config`` if the host set it, else from the environment
variable of the same name, else the default below. Values are validated once, when
the blueprint is registered, and a bad value stops start-up with a message that
names the key.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from common_api import startup_log
from common_api.flags import SPELLINGS, read_flag
from common_api.host_names import split_host
from common_api.setting_keys import (
    ALLOWED_HOSTS as ALLOWED_HOSTS,
)
from common_api.setting_keys import (
    DISABLED_ENDPOINTS as DISABLED_ENDPOINTS,
)
from common_api.setting_keys import (
    ENV_MASK_SECRETS as ENV_MASK_SECRETS,
)
from common_api.setting_keys import (
    ENV_SECRET_PATTERN as ENV_SECRET_PATTERN,
)
from common_api.setting_keys import (
    HEALTH_PUBLIC as HEALTH_PUBLIC,
)
from common_api.setting_keys import (
    MAX_BODY_BYTES as MAX_BODY_BYTES,
)
from common_api.setting_keys import (
    MAX_QUERY_LENGTH as MAX_QUERY_LENGTH,
)
from common_api.setting_keys import (
    METRICS_INSTRUMENT_REQUESTS as METRICS_INSTRUMENT_REQUESTS,
)
from common_api.setting_keys import (
    METRICS_PEER_TIMEOUT as METRICS_PEER_TIMEOUT,
)
from common_api.setting_keys import (
    PROFILE_HISTORY_SECONDS as PROFILE_HISTORY_SECONDS,
)
from common_api.setting_keys import (
    PROFILE_MAX_SECONDS as PROFILE_MAX_SECONDS,
)
from common_api.setting_keys import (
    SCRIPT_ALLOWED_IMPORTS as SCRIPT_ALLOWED_IMPORTS,
)
from common_api.setting_keys import (
    SCRIPT_ENABLED as SCRIPT_ENABLED,
)
from common_api.setting_keys import (
    SCRIPT_HOST_PACKAGES as SCRIPT_HOST_PACKAGES,
)
from common_api.setting_keys import (
    SCRIPT_MAX_BYTES as SCRIPT_MAX_BYTES,
)
from common_api.setting_keys import (
    SCRIPT_MAX_CONCURRENT as SCRIPT_MAX_CONCURRENT,
)
from common_api.setting_keys import (
    SCRIPT_MAX_RESULT_BYTES as SCRIPT_MAX_RESULT_BYTES,
)
from common_api.setting_keys import (
    SCRIPT_MEMORY_LIMIT as SCRIPT_MEMORY_LIMIT,
)
from common_api.setting_keys import (
    SCRIPT_TIMEOUT as SCRIPT_TIMEOUT,
)
from common_api.setting_keys import (
    SCRIPT_USER as SCRIPT_USER,
)
from common_api.setting_keys import (
    STATE_DIR as STATE_DIR,
)
from common_api.setting_keys import (
    TOKEN as TOKEN,
)
from common_api.setting_keys import (
    TOKEN_FILE as TOKEN_FILE,
)
from common_api.setting_keys import (
    TRUST_LOOPBACK as TRUST_LOOPBACK,
)

log = logging.getLogger("common_api")
PREFIX = "COMMON_API_"
# keys read outside this table: the gunicorn preset's server settings (common_api.gunicorn)
SERVER_KEYS = ("COMMON_API_BIND", "COMMON_API_WORKERS", "COMMON_API_THREADS")

DEFAULT_SECRET_PATTERN = (
    r"passw(or)?d|passphrase|(^|_)pass($|_)|secret|token|api_?key|access_?key|private"
    r"|credential|auth(?!or)|(^|_)keys?($|_)|dsn|cookie|signing|salt"
)


@dataclass(frozen=True)
class Setting:
    """One configuration key: its default, its meaning, and how a raw value is read."""

    key: str
    default: Any
    meaning: str
    parse: Callable[[str, Any], Any]


def _items(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list | tuple | set | frozenset):
        items = [str(part).strip() for part in value]
    else:
        raise ValueError(f"{key} must be a list or a comma-separated string")
    return tuple(sorted({item for item in items if item}))


def _endpoint_list(key: str, value: Any) -> tuple[str, ...]:
    from common_api.endpoints import ENDPOINTS, lookup

    names = set()
    for item in _items(key, value):
        endpoint = lookup(item)
        if endpoint is None:
            known = ", ".join(endpoint.name for endpoint in ENDPOINTS)
            raise ValueError(f"{key}: unknown endpoint {item!r}; known: {known}")
        names.add(endpoint.name)
    return tuple(sorted(names))


def _text_list(key: str, value: Any) -> tuple[str, ...]:
    names = _items(key, value)
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", name):
            raise ValueError(f"{key}: {name!r} is not a module name")
    return names


def _import_list(key: str, value: Any) -> tuple[str, ...]:
    entries = _items(key, value)
    for entry in entries:
        module, colon, member = entry.partition(":")
        _text_list(key, [module])
        if colon and not member.isidentifier():
            raise ValueError(f"{key}: {entry!r} is not a module or module:name entry")
    return entries


def _host_list(key: str, value: Any) -> tuple[str, ...]:
    hosts = []
    for item in _items(key, value):
        parsed = split_host(item)
        if parsed is None:
            raise ValueError(f"{key}: {item!r} is not a host name or IP address with an "
                             "optional :port")
        name, port = parsed
        shown = f"[{name}]" if ":" in name else name
        hosts.append(shown if port is None else f"{shown}:{port}")
    return tuple(hosts)


def _user(key: str, value: Any) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError(f"{key} must be a user name or uid, got {value!r}")
    return text


def _positive_number(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{key} must be a positive number, got {value!r}")
    return number


def _seconds_or_off(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number of seconds (0: off), got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{key} must be a number of seconds >= 0 (0: off), got {value!r}")
    return number


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a positive integer, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a positive integer, got {value!r}") from None
    if number <= 0 or (isinstance(value, float) and value != number):
        raise ValueError(f"{key} must be a positive integer, got {value!r}")
    return number


def _optional_text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {type(value).__name__}")
    return value or None


def _flag(key: str, value: Any) -> bool:
    flag = read_flag(value)
    if flag is None:
        raise ValueError(f"{key} must be true or false ({SPELLINGS}), got {value!r}")
    return flag


def _regex(key: str, value: Any) -> str:
    try:
        re.compile(str(value))
    except re.error as exc:
        raise ValueError(f"{key} is not a valid regular expression: {exc}") from None
    return str(value)


SETTINGS: tuple[Setting, ...] = (
    Setting(SCRIPT_ENABLED, False, "serve POST /run_script, which runs Python sent by the "
            "caller inside the component (sandboxed); off, it answers 404", _flag),
    Setting(SCRIPT_ALLOWED_IMPORTS, (), "modules a script may import (their vetted members), "
            "or single members as module:name", _import_list),
    Setting(SCRIPT_TIMEOUT, 10.0, "seconds a script may run before it is stopped",
            _positive_number),
    Setting(SCRIPT_MAX_BYTES, 1_048_576, "largest script upload accepted, bytes (413 above)",
            _positive_int),
    Setting(SCRIPT_MAX_RESULT_BYTES, 1_000_000, "largest script result and output, bytes",
            _positive_int),
    Setting(SCRIPT_MAX_CONCURRENT, 1, "scripts that may run at once in one worker",
            _positive_int),
    Setting(SCRIPT_MEMORY_LIMIT, 512 * 1024 * 1024, "address-space limit of a script, bytes",
            _positive_int),
    Setting(SCRIPT_HOST_PACKAGES, (), "packages whose objects under app.state scripts may "
            "use, besides the app's own package (checked by the sandbox at registration)",
            _text_list),
    Setting(SCRIPT_USER, "nobody", "user name or uid a script's process switches to when the "
            "worker runs as root (checked by the sandbox at registration)", _user),
    Setting(TOKEN, None, "when set, every request needs 'Authorization: Bearer <token>'",
            _optional_text),
    Setting(TOKEN_FILE, None, "file holding the token (read once at start), instead of "
            "COMMON_API_TOKEN", _optional_text),
    Setting(HEALTH_PUBLIC, False, "with a token, let /periodic-threads-health answer without it "
            "(for probes)", _flag),
    Setting(TRUST_LOOPBACK, True, "without a token, let loopback clients use the guarded "
            "endpoints; false turns them off for everyone", _flag),
    Setting(ALLOWED_HOSTS, (), "without a token, host names besides localhost, 127.0.0.1 and "
            "[::1] that guarded requests may be addressed to (Host header)", _host_list),
    Setting(DISABLED_ENDPOINTS, (), "endpoints removed entirely (404, not in /openapi.json)",
            _endpoint_list),
    Setting(MAX_BODY_BYTES, 65_536, "largest request body accepted by endpoints other than "
            "/run_script, bytes (413 above)", _positive_int),
    Setting(MAX_QUERY_LENGTH, 1_024, "longest query parameter value accepted (400 above)",
            _positive_int),
    Setting(STATE_DIR, None, "directory shared by the workers of one server", _optional_text),
    Setting(ENV_MASK_SECRETS, True, "mask secret values in /env", _flag),
    Setting(ENV_SECRET_PATTERN, DEFAULT_SECRET_PATTERN,
            "case-insensitive regex: env keys it finds are secret", _regex),
    Setting(METRICS_INSTRUMENT_REQUESTS, True,
            "record request count and latency of every route on /metrics", _flag),
    Setting(PROFILE_MAX_SECONDS, 60.0, "longest window of /profile and /memory, seconds "
            "(400 above)", _positive_number),
    Setting(PROFILE_HISTORY_SECONDS, 600.0, "seconds of stack samples every worker keeps "
            "for /profile?last= (always on, in memory, at most 8 MiB; 0: off)", _seconds_or_off),
    Setting(METRICS_PEER_TIMEOUT, 1.0, "longest wait of a /metrics scrape for the other "
            "workers' live metrics, seconds (a later worker is left out and named)",
            _positive_number),
)


def attribute(key: str) -> str:
    """The ``Settings`` attribute of a key: ``COMMON_API_SCRIPT_TIMEOUT`` -> ``script_timeout``."""
    return key[len(PREFIX):].lower()


@dataclass(frozen=True)
class Settings:
    """Every setting's validated value, read once at registration: by attribute
    (``settings.script_timeout``), or by key (``settings["COMMON_API_SCRIPT_TIMEOUT"]``)
    where a table names the key (an endpoint's body limit, its switch)."""

    script_enabled: bool
    script_allowed_imports: tuple[str, ...]
    script_timeout: float
    script_max_bytes: int
    script_max_result_bytes: int
    script_max_concurrent: int
    script_memory_limit: int
    script_host_packages: tuple[str, ...]
    script_user: str
    token: str | None
    token_file: str | None
    health_public: bool
    trust_loopback: bool
    allowed_hosts: tuple[str, ...]
    disabled_endpoints: tuple[str, ...]
    max_body_bytes: int
    max_query_length: int
    state_dir: str | None
    env_mask_secrets: bool
    env_secret_pattern: str
    metrics_instrument_requests: bool
    profile_max_seconds: float
    profile_history_seconds: float
    metrics_peer_timeout: float

    def __getitem__(self, key: str) -> Any:
        if key not in self:
            raise KeyError(key)
        return getattr(self, attribute(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in _KEYS

    def keys(self) -> Iterator[str]:
        return iter(_KEYS)

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((key, self[key]) for key in _KEYS)


_KEYS = tuple(setting.key for setting in SETTINGS)
if {field.name for field in fields(Settings)} != {attribute(key) for key in _KEYS}:
    raise RuntimeError("common_api.config: Settings and SETTINGS name different keys")


def resolve(config: Mapping[str, Any], environ: Mapping[str, str] | None = None,
            overrides: Mapping[str, Any] | None = None) -> Settings:
    """Every key's validated value: ``overrides`` (given to ``CommonApi``) first, then the
    app config, then the environment, then the default.

    Raises ValueError naming the key on the first invalid value.
    """
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.key in overrides:
            raw = overrides[setting.key]
        elif setting.key in config:
            raw = config[setting.key]
        elif setting.key in environ:
            raw = environ[setting.key]
        else:
            values[setting.key] = setting.default
            continue
        values[setting.key] = setting.parse(setting.key, raw)
    values = _read_token_file(values)
    return Settings(**{attribute(key): value for key, value in values.items()})


def setting_key(name: str) -> str:
    """The key a ``CommonApi(**settings)`` argument names: ``script_timeout`` or
    ``COMMON_API_SCRIPT_TIMEOUT``; ValueError naming the nearest key for anything else."""
    key = name if name.startswith(PREFIX) else PREFIX + name.upper()
    known = [setting.key for setting in SETTINGS]
    if key in known:
        return key
    nearest = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {nearest[0][len(PREFIX):].lower()!r}?" if nearest else ""
    raise ValueError(f"{name!r} is not a setting of common_api{hint}")


def known_keys() -> tuple[str, ...]:
    """Every ``COMMON_API_*`` name common_api reads."""
    return (*(setting.key for setting in SETTINGS), *SERVER_KEYS)


def unknown_keys(config: Mapping[str, Any], environ: Mapping[str, str]
                 ) -> dict[str, str | None]:
    """``COMMON_API_*`` names in the app config or the environment that common_api does not
    read (a misspelling, say), each with the nearest known key (None if none is near)."""
    known = known_keys()
    unknown: dict[str, str | None] = {}
    for source in (config, environ):
        for name in source:
            if isinstance(name, str) and name.startswith(PREFIX) and name not in known:
                # compared without the prefix, which every name shares
                nearest = difflib.get_close_matches(
                    name[len(PREFIX):], [key[len(PREFIX):] for key in known], n=1, cutoff=0.6)
                unknown[name] = PREFIX + nearest[0] if nearest else None
    return unknown


_warned_unknown: set[str] = set()


def warn_unknown_keys(config: Mapping[str, Any], environ: Mapping[str, str] | None = None
                      ) -> None:
    """One warning per unknown key per process: it is ignored, which nobody would notice."""
    environ = os.environ if environ is None else environ
    for name, nearest in unknown_keys(config, environ).items():
        if name in _warned_unknown:
            continue
        _warned_unknown.add(name)
        hint = f"; did you mean {nearest}?" if nearest else ""
        startup_log.warn(log, "common_api: %s is not a setting of common_api and is ignored%s",
                         name, hint)


def _read_token_file(values: dict[str, Any]) -> dict[str, Any]:
    path = values[TOKEN_FILE]
    if path is None:
        return values
    if values[TOKEN] is not None:
        raise ValueError(f"set {TOKEN} or {TOKEN_FILE}, not both")
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    except OSError as exc:
        raise ValueError(f"{TOKEN_FILE}: cannot read {path!r}: {exc.strerror}") from None
    if not token:
        raise ValueError(f"{TOKEN_FILE}: {path!r} is empty")
    return {**values, TOKEN: token}
