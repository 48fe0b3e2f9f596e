"""The wide-allowlist corpus (issue 16): attacks that escaped the runner itself.

With the allowlist an operator plausibly writes for inspection scripts
(``WIDE_IMPORTS``: collections, time, copy, enum, mimetypes, mailcap, uu...), each
script of ``WIDE_CORPUS`` got out of the sandbox of commit a75ee23: it set the
clock, read any file, imported ``posix``, ran a shell that forged the worker's
protocol, signalled the worker, left a process behind, created files. Here each
runs through the real :class:`ScriptRunner` with that allowlist, and the test
looks for every effect from outside: the answer (no ``ESCAPED`` marker, no
canary), the clock (a timerfd the kernel cancels when the clock is set), this
process (the worker: no SIGCONT), the process table (nothing tagged by the corpus
outlives the request) and a marker directory (stays empty). The script must fail.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sandbox.corpus_tools import WIDE_CORPUS, Attack, unavailable
from sandbox.helpers import WIDE_IMPORTS, make_app
from sandbox.side_effects import (
    ClockWatch,
    SignalWatch,
    describe,
    escape_evidence,
    leftover_processes,
    stop_processes,
)

from common_api.sandbox import ScriptError, ScriptRunner, ScriptSettings

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def wide_runner() -> Iterator[ScriptRunner]:
    runner = ScriptRunner(ScriptSettings(allowed_imports=WIDE_IMPORTS, timeout=TIMEOUT))
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def target() -> Flask:
    return make_app()


@pytest.fixture()
def marker_dir(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


def test_wide_corpus_covers_each_attack_of_issue_16() -> None:
    assert len(WIDE_CORPUS) >= 9
    assert len({a.source for a in WIDE_CORPUS}) == len(WIDE_CORPUS)
    assert all(a.escapes and "wide allowlist" in a.escapes for a in WIDE_CORPUS)
    sources = "\n".join(a.source for a in WIDE_CORPUS)
    for gadget in ("clock_settime_ns", "pickle_by_enum_name", "copy.deepcopy(getattr",
                   "read_mime_types", "mailcap.findmatch", "kill(worker, 18)",
                   "setsid", "master = parent_of(worker)", "Counter.copy(int)"):
        assert gadget in sources, gadget
    assert len(Counter(a.threat for a in WIDE_CORPUS)) >= 4


@pytest.mark.parametrize("attack", WIDE_CORPUS, ids=lambda a: a.id)
def test_wide_attack_leaves_no_trace(attack: Attack, wide_runner: ScriptRunner, target: Flask,
                                     marker_dir: Path) -> None:
    if reason := unavailable(attack):
        pytest.skip(reason)
    source = attack.source_with(marker_dir)
    with ClockWatch() as clock, SignalWatch(signal.SIGCONT) as signals:
        try:
            answer, failed = wide_runner.run(source, target, client="corpus").render(), False
        except ScriptError as exc:
            answer, failed = str(exc), True
        clock_set = clock.was_set()
    pids = leftover_processes()
    leftovers = [describe(pid) for pid in pids]
    stop_processes(pids)  # whatever the outcome: nothing of the attack stays running
    evidence = escape_evidence(answer, marker_dir, leftovers, clock_set, signals.received)
    assert evidence == [], f"{attack.id} escaped the runner: {evidence}"
    assert "Traceback" not in answer
    assert failed, f"the attack ran to completion: {answer!r}"


def test_runner_answers_honestly_after_the_wide_corpus(wide_runner: ScriptRunner,
                                                       target: Flask) -> None:
    source = ("import collections\n"
              "engine = app.state.lmcache_adapter.lmcache_engine\n"
              "result = (engine.metadata.is_first_rank(), collections.Counter('aab')['a'])")
    assert wide_runner.run(source, target).render() == "(True, 2)"
