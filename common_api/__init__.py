"""common_api: the operational endpoints every component exposes, as one Flask blueprint.

    from common_api import bp
    app.register_blueprint(bp)

Public names load on first use (PEP 562): importing ``common_api.gunicorn_conf`` must not
import prometheus_client before the gunicorn master has chosen multiprocess mode.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "bp": "common_api.blueprint",
    "CommonApi": "common_api.blueprint",  # with the views it registers
    "IrrecoverableException": "common_api.periodic",
    "PeriodicThread": "common_api.periodic",
    "PeriodicThreadRegistry": "common_api.periodic",
    "ThreadLevel": "common_api.periodic",
    "ThreadRunSummary": "common_api.periodic",
    "create_periodic_thread": "common_api.periodic",
}

__all__ = [
    "CommonApi",
    "IrrecoverableException",
    "PeriodicThread",
    "PeriodicThreadRegistry",
    "ThreadLevel",
    "ThreadRunSummary",
    "__version__",
    "bp",
    "create_periodic_thread",
]

if TYPE_CHECKING:
    from common_api.blueprint import CommonApi, bp
    from common_api.periodic import (
        IrrecoverableException,
        PeriodicThread,
        PeriodicThreadRegistry,
        ThreadLevel,
        ThreadRunSummary,
        create_periodic_thread,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'common_api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
