"""GET /tasks through the blueprint, with a real loop running in a thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asyncio_hosts import LoopThread, storage_main
from flask.testing import FlaskClient


@pytest.fixture(scope="module")
def storage_loop() -> Iterator[LoopThread]:
    host = LoopThread("storage-loop", storage_main).start()
    yield host
    host.close()


def test_text_lists_the_loop_its_thread_and_each_chain(client: FlaskClient,
                                                       storage_loop: LoopThread) -> None:
    response = client.get("/tasks")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert "run by thread 'storage-loop'" in text
    assert "Task: 'fetch-chunk-42' (pending" in text
    assert "  fetch_from_remote -> remote_get -> sleep\n" in text
    assert "Task: 'ack-waiter' (pending" in text
    assert "=== Task Summary ===\nLoops: 1\n" in text


@pytest.mark.parametrize("how", [{"query_string": {"format": "json"}},
                                 {"headers": {"Accept": "application/json"}}])
def test_json_by_format_or_accept(client: FlaskClient, storage_loop: LoopThread,
                                  how: dict[str, dict[str, str]]) -> None:
    body = client.get("/tasks", **how).get_json()
    (loop,) = body["loops"]
    assert (loop["thread"], loop["running"]) == ("storage-loop", True)
    fetch = next(task for task in loop["tasks"] if task["name"] == "fetch-chunk-42")
    assert [frame["function"] for frame in fetch["chain"]] == [
        "fetch_from_remote", "remote_get", "sleep"]
    assert fetch["awaits"]["kind"] == "future"
    assert fetch["awaited_by"] == ["watcher"]
    assert body["total"] == len(loop["tasks"]) and body["tasks_omitted"] == 0


def test_name_and_group_filters(client: FlaskClient, storage_loop: LoopThread) -> None:
    body = client.get("/tasks?name=CONSUMER&group=true&format=json").get_json()
    assert body["total"] == 3
    (group,) = body["groups"]
    assert (group["count"], group["names"]) == (3, ["consumer-0", "consumer-1", "consumer-2"])
    text = client.get("/tasks?name=consumer&group=true").get_data(as_text=True)
    assert text.startswith("Tasks: 3 ('consumer-0', 'consumer-1', 'consumer-2')")
    assert "Distinct chains: 1" in text


@pytest.mark.parametrize(("query", "message"), [
    ("scope=everything", "Invalid scope: everything. Valid values: worker, all"),
    ("format=xml", "Invalid format: xml. Valid values: json, text"),
    ("group=maybe", "group"),
])
def test_bad_parameters_are_400_naming_them(client: FlaskClient, query: str,
                                            message: str) -> None:
    response = client.get(f"/tasks?{query}")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_no_task_matching_is_an_empty_listing(client: FlaskClient,
                                              storage_loop: LoopThread) -> None:
    body = client.get("/tasks?format=json&name=no-such-task").get_json()
    assert (body["loops"], body["total"], body["tasks_omitted"]) == ([], 0, 0)
    assert client.get("/tasks?name=no-such-task").get_data(as_text=True) == (
        "=== Task Summary ===\nLoops: 0\nTotal tasks: 0\n")
