"""The escape corpus (issue 4): each file escapes a naive exec, none escapes the runner."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from flask import Flask
from sandbox.corpus_tools import CORPUS, Attack, run_naive_all, shows_escape
from sandbox.helpers import CORPUS_IMPORTS, assert_no_canary, make_app

from common_api.sandbox import ScriptError, ScriptRunner, ScriptSettings

TIMEOUT = 2.0
NON_DOS = [a for a in CORPUS if not a.dos]
THREAT_CLASSES = range(1, 8)


class Heartbeat:
    """A worker thread doing periodic work, like the host's periodic threads."""

    def __init__(self) -> None:
        self.ticks = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
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
def corpus_runner() -> Iterator[ScriptRunner]:
    # 256 MiB (the child starts at ~20 MB): the memory-growth attack reaches its limit in
    # half the time it needs at the default 512 MiB, well inside TIMEOUT on a loaded machine
    runner = ScriptRunner(ScriptSettings(allowed_imports=CORPUS_IMPORTS, timeout=TIMEOUT,
                                         memory_limit_bytes=256 * 1024 * 1024))
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def target() -> Flask:
    return make_app()


@pytest.fixture(scope="module")
def naive_reports() -> dict[str, dict[str, dict[str, str]]]:
    return run_naive_all(NON_DOS)


def test_corpus_covers_every_threat_class() -> None:
    assert len(CORPUS) >= 40
    assert len({a.source for a in CORPUS}) == len(CORPUS)  # distinct scripts
    per_class = Counter(a.threat for a in CORPUS)
    for threat in THREAT_CLASSES:
        assert per_class[threat] >= 3, f"threat class {threat}: {per_class[threat]} scripts"
        assert len({a.technique for a in CORPUS if a.threat == threat}) >= 3


@pytest.mark.parametrize("attack", NON_DOS, ids=lambda a: a.id)
def test_attack_escapes_naive_exec(attack: Attack,
                                   naive_reports: dict[str, dict[str, dict[str, str]]]) -> None:
    """The comment of each file claims it escapes a bare exec: verify the claim."""
    report = naive_reports[attack.id]
    observed = report["probe"] if attack.probe else report["attack"]
    assert observed["status"] == "ok", observed
    assert shows_escape(observed["result"]), observed


def _app_snapshot(app: Flask) -> tuple[object, ...]:
    return (
        dict(app.config), sorted(app.view_functions), dict(app.before_request_funcs),
        sorted(app.extensions), len(list(app.url_map.iter_rules())), app.secret_key,
        sorted(vars(type(app))),
    )


def _attempt(runner: ScriptRunner, source: str, app: Flask) -> tuple[str, bool, float]:
    started = time.monotonic()
    try:
        outcome = runner.run(source, app, client="corpus")
        text, failed = outcome.render(), False
    except ScriptError as exc:
        text, failed = str(exc), True
    return text, failed, time.monotonic() - started


@pytest.mark.parametrize("attack", CORPUS, ids=lambda a: a.id)
def test_attack_fails_safely(attack: Attack, corpus_runner: ScriptRunner, target: Flask,
                             heartbeat: Heartbeat) -> None:
    before = _app_snapshot(target)
    text, failed, elapsed = _attempt(corpus_runner, attack.source, target)
    assert not shows_escape(text), text
    assert_no_canary(text)
    assert "Traceback" not in text
    if attack.dos:
        assert elapsed < TIMEOUT + 1.0, f"stopped after {elapsed:.2f}s"
        assert attack.expect is not None
        assert any(word in text for word in attack.expect.split("|")), text
    elif attack.expect is not None:  # it may run, and shows only what it may (a repr)
        assert any(word in text for word in attack.expect.split("|")), text
    else:
        assert failed, f"the attack ran to completion: {text!r}"
    if attack.probe is not None:
        probe_text, _, _ = _attempt(corpus_runner, attack.probe, target)
        assert not shows_escape(probe_text), probe_text
    assert _app_snapshot(target) == before


def test_runner_and_worker_threads_healthy_after_corpus(
    corpus_runner: ScriptRunner, target: Flask, heartbeat: Heartbeat
) -> None:
    ticks = heartbeat.ticks
    source = ("engine = app.state.lmcache_adapter.lmcache_engine\n"
              "result = {'is_first_rank': engine.metadata.is_first_rank(),"
              " 'model_version': engine.metadata.kv_shape}")
    outcome = corpus_runner.run(source, target)
    assert outcome.render() == "{'is_first_rank': True, 'model_version': (27, 1, 64, 1, 576)}"
    assert heartbeat.thread.is_alive()
    # The heartbeat kept beating through the corpus: DoS scripts never stalled it.
    assert ticks >= 100
    deadline = time.monotonic() + 5
    while heartbeat.ticks == ticks and time.monotonic() < deadline:
        heartbeat.stop.wait(0.01)
    assert heartbeat.ticks > ticks
    assert all(t.is_alive() for t in threading.enumerate())
