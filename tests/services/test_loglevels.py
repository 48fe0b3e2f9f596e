from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from common_api.errors import InvalidInput, NotFound
from common_api.services.loglevels import (
    LocalLevels,
    LogLevelService,
    parse_duration,
    parse_level,
    render_levels,
)


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
    assert (applied.level, applied.revert) == ("DEBUG", None)
    assert logger.level == logging.DEBUG
    assert all(h.level == logging.DEBUG for h in logger.handlers)


@pytest.mark.parametrize(("given", "canonical"), [("info", "INFO"), ("Warn", "WARNING"),
                                                  ("ERROR", "ERROR"), ("critical", "CRITICAL")])
def test_level_names_are_case_insensitive(logger: logging.Logger, given: str,
                                          canonical: str) -> None:
    assert LogLevelService().set_level(logger.name, given).level == canonical


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


def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_timed_level_reverts_on_time(logger: logging.Logger) -> None:
    service = LogLevelService(LocalLevels())
    started = time.time()
    change = service.set_level(logger.name, "DEBUG", "0.5")
    assert change.revert is not None and change.revert.level == "WARNING"
    assert "for 0 seconds, then WARNING" in change.render() or "then WARNING" in change.render()
    assert logger.level == logging.DEBUG
    entry = service.get_level(logger.name)
    assert entry.revert is not None and entry.render().endswith("then WARNING)")
    wait_for(lambda: logger.level == logging.WARNING)
    assert time.time() - started >= 0.5
    assert logger.handlers[0].level == logging.WARNING
    assert service.get_level(logger.name).revert is None


def test_second_timed_set_keeps_the_original_level(logger: logging.Logger) -> None:
    service = LogLevelService(LocalLevels())
    service.set_level(logger.name, "INFO", "60")
    change = service.set_level(logger.name, "DEBUG", "0.3")
    assert change.revert is not None and change.revert.level == "WARNING"
    wait_for(lambda: logger.level == logging.WARNING)


def test_permanent_set_cancels_a_pending_revert(logger: logging.Logger) -> None:
    levels = LocalLevels()
    service = LogLevelService(levels)
    service.set_level(logger.name, "DEBUG", "0.2")
    service.set_level(logger.name, "ERROR")
    assert levels.pending() == {}
    assert levels.apply_due(time.time() + 1) == []
    assert logger.level == logging.ERROR


@pytest.mark.parametrize("bad", ["0", "-5", "abc", "nan", "inf", "604801", ""])
def test_invalid_durations_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid duration"):
        parse_duration(bad)


# -- issue 22: a disabled logger is shown as such; a set that creates a logger says so --

def test_a_disabled_logger_is_shown_as_disabled(logger: logging.Logger) -> None:
    logger.disabled = True
    try:
        entry = LogLevelService().get_level(logger.name)
        assert entry.to_dict()["disabled"] is True
        assert entry.render() == f"{logger.name}: WARNING (disabled)"
        listed = render_levels(LogLevelService().list_levels())
        assert f"\n{logger.name}: WARNING (disabled)\n" in listed
    finally:
        logger.disabled = False
    assert LogLevelService().get_level(logger.name).to_dict()["disabled"] is False
    assert LogLevelService().get_level(logger.name).render() == f"{logger.name}: WARNING"


def test_setting_a_logger_that_did_not_exist_says_it_was_created() -> None:
    name = "tests.loglevels.kvctll"
    assert name not in logging.Logger.manager.loggerDict
    try:
        first = LogLevelService().set_level(name, "INFO")
        lines = first.render().splitlines()
        assert lines[0] == f"Set {name} level to INFO (including all handlers)"
        assert lines[1] == f"No logger named {name} existed: it has been created"
        assert first.to_dict()["created"] is True
        again = LogLevelService().set_level(name, "DEBUG")
        assert again.render() == f"Set {name} level to DEBUG (including all handlers)"
        assert again.to_dict()["created"] is False
    finally:
        logging.Logger.manager.loggerDict.pop(name, None)
