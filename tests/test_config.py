from __future__ import annotations

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
