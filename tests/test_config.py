from __future__ import annotations

import dataclasses
import logging

import pytest

from common_api import config


def test_defaults_when_nothing_is_set() -> None:
    values = config.resolve({}, environ={})
    assert values[config.SCRIPT_TIMEOUT] == 10.0
    assert values[config.SCRIPT_ALLOWED_IMPORTS] == ()
    assert values[config.TOKEN] is None
    assert values[config.STATE_DIR] is None


def test_app_config_wins_over_environment() -> None:
    values = config.resolve({config.SCRIPT_TIMEOUT: 3}, environ={config.SCRIPT_TIMEOUT: "7"})
    assert values[config.SCRIPT_TIMEOUT] == 3.0


def test_environment_is_read_and_parsed() -> None:
    values = config.resolve({}, environ={config.SCRIPT_ALLOWED_IMPORTS: "math, json,,math",
                                         config.ENV_MASK_SECRETS: "no"})
    assert values[config.SCRIPT_ALLOWED_IMPORTS] == ("json", "math")
    assert values[config.ENV_MASK_SECRETS] is False


@pytest.mark.parametrize(("key", "value"), [
    (config.SCRIPT_TIMEOUT, "0"), (config.SCRIPT_TIMEOUT, "nan"), (config.SCRIPT_TIMEOUT, -1),
    (config.SCRIPT_MAX_BYTES, "1.5"), (config.SCRIPT_MAX_BYTES, True),
    (config.SCRIPT_ALLOWED_IMPORTS, "os;sys"), (config.SCRIPT_ALLOWED_IMPORTS, 5),
    (config.ENV_MASK_SECRETS, "maybe"), (config.ENV_SECRET_PATTERN, "("),
    (config.TOKEN, 1234),
])
def test_invalid_values_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        config.resolve({key: value}, environ={})


def test_every_key_has_a_meaning() -> None:
    for setting in config.SETTINGS:
        assert setting.key.startswith("COMMON_API_")
        assert setting.meaning


def test_an_unknown_key_logs_one_warning_naming_the_nearest_known_key(
        caplog: pytest.LogCaptureFixture) -> None:
    """A misspelling is ignored, so it is named: once, from the app config or the
    environment, with the key that was probably meant (issue 19)."""
    caplog.set_level(logging.WARNING, logger="common_api")
    config.warn_unknown_keys({"COMMON_API_SCRIPT_TIMEOUTT": 3},
                             environ={"COMMON_API_TOKNE": "x", "COMMON_API_ZZZZZZZZ": "1",
                                      "OTHER_SCRIPT_TIMEOUTT": "1"})
    config.warn_unknown_keys({"COMMON_API_SCRIPT_TIMEOUTT": 3}, environ={})
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 3, warnings
    by_key = {message.split()[1]: message for message in warnings}
    assert "did you mean COMMON_API_SCRIPT_TIMEOUT?" in by_key["COMMON_API_SCRIPT_TIMEOUTT"]
    assert "did you mean COMMON_API_TOKEN?" in by_key["COMMON_API_TOKNE"]
    assert "ignored" in by_key["COMMON_API_ZZZZZZZZ"]
    assert "did you mean" not in by_key["COMMON_API_ZZZZZZZZ"]


def test_known_keys_and_the_servers_own_keys_log_nothing(caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    caplog.set_level(logging.WARNING, logger="common_api")
    environ = {key: "1" for key in ("COMMON_API_BIND", "COMMON_API_WORKERS",
                                    "COMMON_API_THREADS")}
    config.warn_unknown_keys({"COMMON_API_SCRIPT_TIMEOUT": 3}, environ=environ)
    assert caplog.records == []


def test_a_misspelled_key_on_an_app_is_named_at_registration(
        caplog: pytest.LogCaptureFixture) -> None:
    from flask import Flask

    from common_api import bp

    caplog.set_level(logging.WARNING, logger="common_api")
    app = Flask("misspelled")
    app.config["COMMON_API_ENV_MASK_SECRET"] = False
    app.register_blueprint(bp)
    assert any("COMMON_API_ENV_MASK_SECRET " in record.getMessage()
               and "COMMON_API_ENV_MASK_SECRETS" in record.getMessage()
               for record in caplog.records)


def test_settings_are_typed_attributes_read_once_and_frozen() -> None:
    settings = config.resolve({config.SCRIPT_TIMEOUT: "2.5", config.ALLOWED_HOSTS: "a.example"},
                              environ={config.MAX_QUERY_LENGTH: "77"},
                              overrides={config.SCRIPT_TIMEOUT: 4})
    assert isinstance(settings, config.Settings)
    assert settings.script_timeout == 4.0  # the constructor's value wins over app.config
    assert settings.max_query_length == 77  # from the environment, parsed to an int
    assert settings.allowed_hosts == ("a.example",)
    assert settings.token is None and settings.script_enabled is False
    # a table that names keys reads them by key; an unknown key is an error, not None
    assert settings[config.SCRIPT_TIMEOUT] == 4.0
    with pytest.raises(KeyError):
        settings["COMMON_API_SCRIPT_TIMEOUTT"]
    assert dict(settings.items())[config.MAX_QUERY_LENGTH] == 77
    assert set(settings.keys()) == {setting.key for setting in config.SETTINGS}
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.script_timeout = 99  # type: ignore[misc]
