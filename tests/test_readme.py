from __future__ import annotations

from pathlib import Path

from common_api import config

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_lists_every_configuration_key() -> None:
    text = README.read_text()
    missing = [s.key for s in config.SETTINGS if f"| `{s.key}` |" not in text]
    assert missing == []
