"""Which common_api hooks a gunicorn configuration leaves out (issue 22, point 1)."""

from __future__ import annotations

import types

from gunicorn.config import Config

from common_api import gunicorn as common_api_hooks
from common_api.gunicorn import post_worker_init as imported_by_name
from common_api.hook_audit import HOOKS, calls_ours, describe, missing_hooks


def _config(**hooks: object) -> Config:
    cfg = Config()
    for name, value in hooks.items():
        cfg.set(name, value)
    return cfg


def test_gunicorn_s_defaults_miss_every_hook() -> None:
    assert [hook.name for hook in missing_hooks(_config())] == [h.name for h in HOOKS]


def test_the_preset_misses_none() -> None:
    import common_api.gunicorn_conf as preset

    cfg = _config(**{hook.name: getattr(preset, hook.name) for hook in HOOKS})
    assert missing_hooks(cfg) == []


def post_fork(server: object, worker: object) -> None:  # the host's own, calling ours
    print("host's own post_fork")
    common_api_hooks.post_fork(server, worker)


def child_exit(server: object, worker: object) -> None:  # the host's own, forgetting ours
    print("host's own child_exit")


def test_host_functions_count_when_they_call_ours() -> None:
    def post_worker_init(worker: object) -> None:
        imported_by_name(worker)

    cfg = _config(post_fork=post_fork, post_worker_init=post_worker_init,
                  child_exit=child_exit, on_exit=common_api_hooks.on_exit)
    assert [hook.name for hook in missing_hooks(cfg)] == ["child_exit"]
    assert calls_ours(types.SimpleNamespace(), "on_exit")  # unreadable: not accused


def test_each_missing_hook_is_named_with_its_cost() -> None:
    line = describe(next(h for h in HOOKS if h.name == "post_worker_init"))
    assert line.startswith("common_api: gunicorn's post_worker_init hook does not call "
                           "common_api.gunicorn.post_worker_init: health, /periodic-threads "
                           "and scope=all see only the answering worker")
