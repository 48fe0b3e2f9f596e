"""The written forms of a profile: folded stacks, speedscope's file format, JSON.

``speedscope-file-format-schema.json`` is speedscope's published file-format schema,
generated the way speedscope generates it (``scripts/generate-file-format-schema-json.js``
in jlfwong/speedscope: ``typescript-json-schema src/lib/file-format-spec.ts --titles
--required --topRef "*"``, version 0.67.0, then ``$ref`` set to ``FileFormat.File``) from
the repository's ``src/lib/file-format-spec.ts``; the network here cannot reach
speedscope.app to download the copy it serves.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import jsonschema
import pytest

from common_api.services.profile_formats import (
    SPEEDSCOPE_SCHEMA,
    render_collapsed,
    render_json,
    render_speedscope,
)
from common_api.services.sampling import Frame, Profile, Sampler, merge_profiles

SCHEMA = json.loads(Path(__file__).with_name("speedscope-file-format-schema.json").read_text())


def _live_profile() -> Profile:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="waiter", daemon=True)
    thread.start()
    try:
        return Sampler(100).run(0.3)
    finally:
        stop.set()
        thread.join()


def _handmade() -> Profile:
    frames = [Frame("main;thread\nname", kind="thread"), Frame("app:outer", "/app.py", 3),
              Frame("app:inner", "/app.py", 9)]
    return Profile(frames, {(0, 1): 3, (0, 1, 2): 7}, 1.0, 100, 10, 0.0)


def test_collapsed_is_one_folded_stack_a_line_most_sampled_first() -> None:
    text = render_collapsed(_handmade())
    assert text == "main,thread name;app:outer;app:inner 7\nmain,thread name;app:outer 3\n"


def test_collapsed_of_a_live_profile_parses_as_frames_and_a_count() -> None:
    profile = _live_profile()
    total = 0
    for line in render_collapsed(profile).splitlines():
        stack, space, count = line.rpartition(" ")
        assert space and count.isdigit() and stack.split(";")[0], line
        total += int(count)
    assert total == profile.samples


@pytest.mark.parametrize("profile", [_handmade(), _live_profile(),
                                     merge_profiles({"worker 7": _handmade()}, 1.0, 100, 10,
                                                    0.0),
                                     Profile([], {}, 0.1, 100, 10, 0.0)],
                         ids=["handmade", "live", "merged", "empty"])
def test_speedscope_output_is_valid_against_speedscopes_schema(profile: Profile) -> None:
    document = render_speedscope(profile, "test", "common_api@test")
    jsonschema.validate(document, SCHEMA)
    assert document["$schema"] == SPEEDSCOPE_SCHEMA
    assert all(p["type"] == "sampled" for p in document["profiles"])


def test_speedscope_has_one_profile_per_thread_weighted_in_seconds() -> None:
    profile = merge_profiles({"worker 7": _handmade()}, 1.0, 100, 10, 0.0)
    document = render_speedscope(profile, "test", "x")
    (only,) = document["profiles"]
    assert only["name"] == "main;thread\nname@worker 7"
    assert only["unit"] == "seconds"
    assert sum(only["weights"]) == pytest.approx(1.0)
    names = [[document["shared"]["frames"][i]["name"] for i in s] for s in only["samples"]]
    assert sorted(names) == [["app:outer"], ["app:outer", "app:inner"]]
    assert {"name": "app:inner", "file": "/app.py", "line": 9} in document["shared"]["frames"]


def test_json_has_the_frame_table_with_totals_and_how_the_window_went() -> None:
    document = render_json(_handmade())
    assert document["samples"] == 10 and document["ticks"] == 10
    assert document["rate_achieved_hz"] == 10.0
    by_name = {frame["name"]: frame for frame in document["frames"]}
    assert by_name["app:inner"] == {"name": "app:inner", "file": "/app.py", "line": 9,
                                    "kind": "python", "self": 7, "total": 7}
    assert by_name["app:outer"]["self"] == 3 and by_name["app:outer"]["total"] == 10
    assert document["stacks"][0] == {"frames": [0, 1, 2], "count": 7}
    assert document["threads"] == {"main;thread\nname": 10}


def test_the_schema_refuses_a_sampled_profile_without_its_unit() -> None:
    document = render_speedscope(_handmade(), "test", "x")
    del document["profiles"][0]["unit"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA)
