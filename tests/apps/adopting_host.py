"""An existing service adopting common_api the way issue 22 found integrators do: its own
``logging.config.dictConfig`` (which disables every logger that exists when it runs, the
default) with a raised root level, and a misspelled common_api setting."""

from __future__ import annotations

import logging.config

from flask import Flask

from common_api import bp

logging.config.dictConfig({
    "version": 1,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"level": "ERROR", "handlers": ["err"]},
})

app = Flask("adopting_host")
app.config["COMMON_API_SCRIPT_TIMEOUTT"] = 5


@app.get("/work")
def work() -> str:
    return "done"


app.register_blueprint(bp)
