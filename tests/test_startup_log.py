"""Start-up checks reach the log whatever the host's logging config does (issue 22)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from common_api.startup_log import reaches_a_handler, warn


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("common_api.tests.startup")
    yield log
    log.disabled = False
    log.setLevel(logging.NOTSET)
    log.propagate = True
    for handler in list(log.handlers):
        log.removeHandler(handler)


class Collect(logging.Handler):
    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_warning_goes_through_the_logger_when_it_is_heard(
        logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    handler = Collect()
    logger.addHandler(handler)
    logger.propagate = False
    warn(logger, "route %s clashes", "/metrics")
    assert handler.lines == ["route /metrics clashes"]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("silence", ["disabled", "level", "handler level"])
def test_a_warning_the_host_s_logging_config_would_drop_reaches_stderr(
        logger: logging.Logger, capsys: pytest.CaptureFixture[str], silence: str) -> None:
    handler = Collect(logging.ERROR if silence == "handler level" else logging.NOTSET)
    logger.addHandler(handler)
    logger.propagate = False
    if silence == "disabled":
        logger.disabled = True  # what dictConfig does to loggers that exist already
    elif silence == "level":
        logger.setLevel(logging.ERROR)
    assert not reaches_a_handler(logger, logging.WARNING)
    warn(logger, "%s is not a setting", "COMMON_API_SCRIPT_TIMEOUTT")
    err = capsys.readouterr().err
    assert "[WARNING] common_api.tests.startup: COMMON_API_SCRIPT_TIMEOUTT is not a setting" in err
    assert err.count("\n") == 1 and handler.lines == []


def test_a_warning_no_handler_would_take_is_written_in_the_server_s_layout_not_bare(
        logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    """Without any handler, logging's last resort would write the message alone (as a
    gunicorn master's common_api loggers do): the line keeps the time, pid and level."""
    logger.propagate = False
    warn(logger, "common_api: gunicorn %s: slow clients", "23.0.0")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("[")
    # the logger's name is on the line, so the message's own "common_api: " is not repeated
    assert "[WARNING] common_api.tests.startup: gunicorn 23.0.0: slow clients" in err
