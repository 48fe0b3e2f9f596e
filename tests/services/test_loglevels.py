from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from common_api.errors import InvalidInput, NotFound
from common_api.services.loglevels import LogLevelService, parse_level, render_levels


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("tests.loglevels.sample")
    handler = logging.StreamHandler()
    handler.setLevel(logging.ERROR)
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    yield log
    log.removeHandler(handler)
    log.setLevel(logging.NOTSET)


def test_set_level_sets_logger_and_all_handlers(logger: logging.Logger) -> None:
    applied = LogLevelService().set_level(logger.name, "debug")
    assert applied == "DEBUG"
    assert logger.level == logging.DEBUG
    assert all(h.level == logging.DEBUG for h in logger.handlers)


@pytest.mark.parametrize(("given", "canonical"), [("info", "INFO"), ("Warn", "WARNING"),
                                                  ("ERROR", "ERROR"), ("critical", "CRITICAL")])
def test_level_names_are_case_insensitive(logger: logging.Logger, given: str,
                                          canonical: str) -> None:
    assert LogLevelService().set_level(logger.name, given) == canonical


def test_invalid_level_is_rejected_and_changes_nothing(logger: logging.Logger) -> None:
    with pytest.raises(InvalidInput, match=r"^Invalid log level: LOUD$"):
        LogLevelService().set_level(logger.name, "LOUD")
    assert logger.level == logging.WARNING


def test_get_unknown_logger_is_not_found_and_not_created() -> None:
    name = "tests.loglevels.never.created"
    with pytest.raises(NotFound, match=name):
        LogLevelService().get_level(name)
    assert name not in logging.Logger.manager.loggerDict


def test_list_shows_configured_and_effective_levels(logger: logging.Logger) -> None:
    child = logging.getLogger(logger.name + ".child")
    levels = {entry.name: entry for entry in LogLevelService().list_levels()}
    assert levels[logger.name].level == "WARNING"
    assert levels[child.name].level == "NOTSET"
    assert levels[child.name].effective_level == "WARNING"
    assert next(iter(levels)) == "root"


def test_render_matches_seed_format(logger: logging.Logger) -> None:
    text = render_levels(LogLevelService().list_levels())
    assert text.startswith("=== Loggers and Levels ===\nroot: ")
    assert f"\n{logger.name}: WARNING\n" in text


def test_parse_level_rejects_numbers_and_blanks() -> None:
    for bad in ["10", "", " ", "DEBUGX"]:
        with pytest.raises(InvalidInput):
            parse_level(bad)


def test_empty_and_overlong_logger_names_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        LogLevelService().set_level("", "INFO")
    with pytest.raises(InvalidInput, match="longer"):
        LogLevelService().set_level("x" * 300, "INFO")
