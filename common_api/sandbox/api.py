"""Public types of the script sandbox: settings, outcome and errors."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Text returned when a script does not set ``result``.
DEFAULT_RESULT = "Script executed successfully"


@dataclass(frozen=True)
class ScriptSettings:
    """Limits and policy of one :class:`~common_api.sandbox.ScriptRunner`."""

    allowed_imports: frozenset[str] = frozenset()
    timeout: float = 10.0
    max_result_bytes: int = 1_000_000
    max_concurrent: int = 1
    memory_limit_bytes: int = 512 * 1024 * 1024
    #: Packages whose objects count as host code, besides the app's own package.
    host_packages: frozenset[str] = frozenset()
    #: User name or uid the script child switches to when the worker runs as root.
    user: str = "nobody"


class ScriptError(Exception):
    """A script failed; ``str(e)`` is a short reason without traceback text.

    ``lineno`` is the script line the failure points at, when known.
    """

    def __init__(self, reason: str, lineno: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.lineno = lineno

    def __str__(self) -> str:
        return self.reason


class ScriptUnavailable(ScriptError):
    """The sandbox cannot run scripts here (no process could be started or confined): the
    script did not run, and the view answers 503 with the reason."""


class ScriptBusy(Exception):
    """Too many scripts are running in this worker process right now."""


@dataclass(frozen=True)
class ScriptOutcome:
    """What a script produced.

    ``result`` is ``str(result)`` of the script's ``result`` variable (or
    :data:`DEFAULT_RESULT`); ``output`` is what the script printed.
    """

    result: str
    output: str = ""
    truncated: bool = field(default=False, compare=False)

    def render(self) -> str:
        """The ``text/plain`` body: printed output first, then the result.

        Without output the body is exactly ``result``. With output, the body is
        the output (ending in a newline) followed by the result, the way a
        terminal session shows a script's prints and then its value.
        """
        if not self.output:
            return self.result
        if self.output.endswith("\n"):
            return self.output + self.result
        return self.output + "\n" + self.result
