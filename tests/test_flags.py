from __future__ import annotations

import pytest

from common_api.flags import read_flag


@pytest.mark.parametrize(("text", "flag"), [
    ("1", True), ("TRUE", True), (" yes ", True), ("On", True), (True, True),
    ("0", False), ("false", False), ("No", False), ("off", False), (False, False),
])
def test_every_spelling_reads_the_same_for_settings_and_query_parameters(
        text: object, flag: bool) -> None:
    assert read_flag(text) is flag


@pytest.mark.parametrize("text", ["", "2", "truthy", "enabled", None])
def test_anything_else_is_not_a_flag(text: object) -> None:
    assert read_flag(text) is None
