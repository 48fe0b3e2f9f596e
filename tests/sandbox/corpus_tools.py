"""Reading the escape corpus: one attack per file, described by its header comments."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sandbox.helpers import CANARIES, CORPUS_DIR, CORPUS_IMPORTS, ENV_CANARY, ENV_CANARY_NAME

ESCAPE_MARK = "ESCAPED"
#: Scripts that need a directory of the test's write it where this placeholder stands.
MARKER_DIR_PLACEHOLDER = "@MARKER_DIR@"


@dataclass(frozen=True)
class Attack:
    path: Path
    threat: int
    technique: str
    dos: bool
    expect: str | None
    probe: str | None
    #: Set on scripts that escape the runner itself (with a wide allowlist), not
    #: only a naive exec: "runner <commit>, wide allowlist". They have no naive run.
    escapes: str | None = None
    #: Modules the script needs from the interpreter (mailcap, uu: gone in 3.13).
    requires: tuple[str, ...] = ()
    #: Set on the red-team scripts (``red team:`` header) of a pass against a given
    #: commit: they have no naive-exec run and are run by ``test_redteam.py``.
    redteam: str | None = None

    @property
    def source(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def id(self) -> str:
        return self.path.stem

    def source_with(self, marker_dir: Path) -> str:
        """The source, writing its markers (if it does) into ``marker_dir``."""
        return self.source.replace(MARKER_DIR_PLACEHOLDER, str(marker_dir))


def load(path: Path) -> Attack:
    fields: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(":")
        fields[key.strip()] = value.strip()
    return Attack(
        path=path,
        threat=int(fields["threat"].split()[0]),
        technique=fields["technique"],
        dos=fields.get("naive exec", "").startswith("dos"),
        expect=fields.get("expect"),
        probe=fields["probe"].replace("\\n", "\n") if "probe" in fields else None,
        escapes=fields.get("escapes"),
        requires=tuple(fields["requires"].split()) if "requires" in fields else (),
        redteam=fields.get("red team"),
    )


_ALL: list[Attack] = [load(p) for p in sorted(CORPUS_DIR.glob("[0-9]*.py"))]
#: The corpus of issues 4 and 10, run with ``CORPUS_IMPORTS``: each escapes a naive
#: exec (verified) and must not escape the runner.
CORPUS: list[Attack] = [a for a in _ALL if a.escapes is None and a.redteam is None]
#: Attacks that escaped the runner itself with a wide allowlist (issue 16), run with
#: ``WIDE_IMPORTS``: each must not escape any more, nor leave a trace on the machine.
WIDE_CORPUS: list[Attack] = [a for a in _ALL if a.escapes is not None]


def unavailable(attack: Attack) -> str | None:
    """Why ``attack`` cannot run on this interpreter (mailcap and uu left the standard
    library in Python 3.13), or None."""
    for module in attack.requires:
        if importlib.util.find_spec(module) is None:
            version = ".".join(map(str, sys.version_info[:2]))
            return (f"{attack.id} needs the {module} module, which Python {version} no "
                    "longer ships (removed in 3.13)")
    return None
#: The red-team scripts (issue 16): attempts against the runner itself with a wide
#: allowlist; none may escape (see test_redteam.py).
REDTEAM: list[Attack] = [a for a in _ALL if a.redteam is not None]


def shows_escape(text: str) -> bool:
    return ESCAPE_MARK in text or any(canary in text for canary in CANARIES)


def run_naive(attack: Attack) -> dict[str, dict[str, str]]:
    """Run one attack in the naive exec harness, in its own process."""
    env = dict(os.environ, **{ENV_CANARY_NAME: ENV_CANARY})
    harness = CORPUS_DIR.parent / "naive_harness.py"
    completed = subprocess.run(
        [sys.executable, str(harness), str(attack.path), ",".join(sorted(CORPUS_IMPORTS))],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_naive_all(attacks: list[Attack]) -> dict[str, dict[str, dict[str, str]]]:
    with ThreadPoolExecutor(max_workers=3) as pool:
        reports = pool.map(run_naive, attacks)
        return {attack.id: report for attack, report in zip(attacks, reports, strict=True)}
