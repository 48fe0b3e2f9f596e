"""Red-team pass against the sandbox of issue 16 (corpus scripts with a ``red team:`` header).

Each script in ``tests/sandbox/corpus/`` marked ``red team:`` is one attempt, written
against commit 6d8a476 with the allowlist an operator plausibly writes (issue 16's
modules plus binascii, bisect, heapq, zlib, unicodedata and cmath). Each runs through
the real :class:`ScriptRunner` against the realistic host (canaries in the config, the
environment, underscore attributes and a third-party client) and must not escape:

* no ``ESCAPED`` marker and no canary in what the script gets back;
* the host unchanged: no write recorded, the app's config, routes and hooks and every
  public setting under ``app.state`` (value and type) as before; no file in the scratch
  directory the host names;
* the runner's record of the script stays one line with one ``client=`` and one
  ``writes=`` field and no control or format characters (nothing the script said
  forges or disguises a record);
* a denial of service ends within the timeout while the worker's threads keep
  running; a ``probe:`` run afterwards sees nothing the attempt left behind.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import types
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sandbox.corpus_tools import REDTEAM, Attack, shows_escape
from sandbox.helpers import assert_no_canary, make_app

from common_api.sandbox import ScriptError, ScriptRunner, ScriptSettings

TIMEOUT = 2.0
DOS_THREAT = 7
#: Issue 16's plausible allowlist plus the modules the red-team brief adds, and the
#: member entries the start-up warning suggests for uu (enum, mimetypes, mailcap and
#: uu have no vetted table). mailcap and uu are gone in Python 3.13; naming them there
#: only adds a start-up problem.
REDTEAM_IMPORTS = frozenset({
    "json", "math", "re", "operator", "string", "collections", "datetime", "time",
    "decimal", "fractions", "statistics", "random", "hashlib", "uuid", "itertools",
    "functools", "copy", "enum", "pprint", "textwrap", "base64", "mimetypes", "binascii",
    "bisect", "heapq", "zlib", "unicodedata", "cmath", "mailcap", "uu", "uu:encode",
    "uu:decode",
})
#: A secret the host keeps in a third-party type that masks its str() and repr().
VAULT_CANARY = "vlt-canary-0d4417"
#: Plain values that count as a host setting in the snapshot.
_SETTING_TYPES = (type(None), bool, int, float, str, tuple, list, dict, set)


class MaskedToken(str):
    """A third-party secret type (a vault client's): a str that never shows itself."""

    def __repr__(self) -> str:
        return "MaskedToken('***')"

    def __str__(self) -> str:
        return "***"


MaskedToken.__module__ = "hvac.secrets"


class Heartbeat:
    """A worker thread doing periodic work, like the host's periodic threads."""

    def __init__(self) -> None:
        self.ticks = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="redteam-heartbeat",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.01):
            self.ticks += 1


@pytest.fixture(scope="module")
def heartbeat() -> Iterator[Heartbeat]:
    beat = Heartbeat()
    yield beat
    beat.stop.set()
    beat.thread.join(5)


@pytest.fixture(scope="module")
def wide_runner() -> Iterator[ScriptRunner]:
    runner = ScriptRunner(ScriptSettings(allowed_imports=REDTEAM_IMPORTS, timeout=TIMEOUT))
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory the host names: whatever a script creates there is a trace."""
    return tmp_path_factory.mktemp("redteam-scratch")


@pytest.fixture(scope="module")
def host(scratch: Path) -> Flask:
    """The realistic host, plus a float and an int setting (``tuning.ttl``, ``.batch``), a
    secret in a third-party masking type (``tuning.vault_token``) and the path of an
    empty scratch directory (``tuning.scratch``)."""
    app = make_app()
    app.state.tuning = types.SimpleNamespace(  # type: ignore[attr-defined]
        ttl=30.0, batch=8, vault_token=MaskedToken(VAULT_CANARY), scratch=str(scratch))
    return app


def _settings(obj: object) -> dict[str, tuple[str, str]]:
    return {name: (type(value).__name__, repr(value))
            for name, value in vars(obj).items()
            if not name.startswith("_") and isinstance(value, _SETTING_TYPES)}


def _host_snapshot(app: Flask) -> dict[str, object]:
    state = app.state  # type: ignore[attr-defined]
    engine = state.engine
    objects = {"state": state, "engine": engine, "l1": engine.l1, "metadata": engine.metadata,
               "cache_config": engine.cache_config, "settings": state.settings,
               "tuning": state.tuning}
    snapshot: dict[str, object] = {name: _settings(obj) for name, obj in objects.items()}
    snapshot["app"] = (
        dict(app.config), sorted(app.view_functions), dict(app.before_request_funcs),
        sorted(app.extensions), len(list(app.url_map.iter_rules())), app.secret_key,
        sorted(vars(type(app))),
    )
    snapshot["containers"] = (dict(engine.registry), list(engine.history), set(engine.tags),
                              list(engine.log_lines), state.counter)
    return snapshot


def _attempt(runner: ScriptRunner, source: str, app: Flask,
             writes: list[dict[str, str]]) -> tuple[str, float]:
    started = time.monotonic()
    try:
        text = runner.run(source, app, client="redteam", writes=writes).render()
    except ScriptError as exc:
        text = str(exc)
    return text, time.monotonic() - started


def _record_problems(message: str) -> list[str]:
    """What is wrong with one runner record: a forged field, a disguised character."""
    problems = []
    # the record's fields, outside the JSON-quoted texts a script may have chosen
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', message)
    for field in (" client=", " writes=", " duration="):
        if unquoted.count(field) != 1:
            problems.append(f"{field.strip()} appears {unquoted.count(field)} times")
    odd = sorted({f"U+{ord(c):04X}" for c in message
                  if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")})
    if odd:
        problems.append("unescaped control or format characters " + ", ".join(odd))
    return problems


def test_the_red_team_corpus_covers_the_brief() -> None:
    assert len(REDTEAM) >= 30
    assert len({a.source for a in REDTEAM}) == len(REDTEAM)
    assert {a.threat for a in REDTEAM} >= set(range(1, 9))
    assert all(a.id[:2].isdigit() and int(a.id.split("_")[0]) >= 101 for a in REDTEAM)


@pytest.mark.parametrize("attack", REDTEAM, ids=lambda a: a.id)
def test_red_team_attempt_does_not_escape(attack: Attack, wide_runner: ScriptRunner,
                                          host: Flask, scratch: Path, heartbeat: Heartbeat,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="common_api.sandbox.scripts")
    before = _host_snapshot(host)
    ticks = heartbeat.ticks
    writes: list[dict[str, str]] = []
    text, elapsed = _attempt(wide_runner, attack.source, host, writes)
    left = sorted(scratch.iterdir())
    for path in left:  # first, so that one trace does not fail the attempts after it
        path.unlink()
    assert not shows_escape(text), text
    assert_no_canary(text)
    assert VAULT_CANARY not in text
    assert "Traceback" not in text
    assert writes == [], f"the host took writes: {writes}"
    assert _host_snapshot(host) == before
    assert left == [], "the script left files"
    if attack.expect is not None:
        assert any(word in text for word in attack.expect.split("|")), text
    if attack.threat == DOS_THREAT:
        assert elapsed < TIMEOUT + 1.0, f"stopped after {elapsed:.2f}s"
        assert heartbeat.thread.is_alive() and heartbeat.ticks > ticks
    if attack.probe is not None:
        probe_text, _ = _attempt(wide_runner, attack.probe, host, writes)
        assert not shows_escape(probe_text), probe_text
    records = [r.getMessage() for r in caplog.records
               if r.name == "common_api.sandbox.scripts"]
    assert records, "the runner logged no record of the script"
    for message in records:
        assert not _record_problems(message), (_record_problems(message), message)
