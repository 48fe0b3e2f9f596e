"""The declared minimum versions are the ones ``tox -e min`` tests; they are what the code
needs, and LMCache's pins install beside them (``tox -e lmcache``)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _lower_bounds() -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    bounds = {}
    for line in parser["options"]["install_requires"].strip().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", line.strip())
        assert match, f"install_requires entry without a plain lower bound: {line!r}"
        bounds[match[1].lower()] = match[2]
    return bounds


def _pins(name: str = "constraints-min.txt") -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_min_constraints_pin_exactly_the_declared_lower_bounds() -> None:
    pins, bounds = _pins(), _lower_bounds()
    assert pins.keys() == bounds.keys()
    assert {name: Version(v) for name, v in pins.items()} == {
        name: Version(v) for name, v in bounds.items()}


def test_min_env_is_in_the_default_tox_run_and_uses_the_constraints() -> None:
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    assert "min" in [env.strip() for env in tox["tox"]["env_list"].split(",")]
    assert "constraints-min.txt" in tox["testenv:min"]["set_env"]


def test_the_floors_are_what_hosts_pin_not_the_newest_releases() -> None:
    """gunicorn 22, prometheus_client 0.18, flask and werkzeug 3.0 (issue 19): a service
    pinned to gunicorn 22 or 23 and prometheus_client 0.18 installs common_api."""
    bounds = _lower_bounds()
    assert Version(bounds["gunicorn"]) <= Version("22.0")
    assert Version(bounds["prometheus-client"]) <= Version("0.18")
    assert Version(bounds["flask"]) <= Version("3.0")
    assert Version(bounds["werkzeug"]) <= Version("3.0")


def test_lmcache_env_runs_its_pins_which_the_declared_floors_allow() -> None:
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    assert "lmcache" in [env.strip() for env in tox["tox"]["env_list"].split(",")]
    assert "constraints-lmcache.txt" in tox["testenv:lmcache"]["set_env"]
    pins, bounds = _pins("constraints-lmcache.txt"), _lower_bounds()
    assert pins == {"gunicorn": "23.0.0", "prometheus-client": "0.24.1"}
    for name, version in pins.items():
        assert Version(version) >= Version(bounds[name])
