"""What COMMON_API_SCRIPT_ALLOWED_IMPORTS grants a script, decided once from the settings.

An entry is a module (``json``: every member of its vetted table,
:data:`policy.MODULE_EXPORTS`) or one member of a module (``mimetypes:guess_type``). A
module without a vetted table grants nothing unless its members are named one by one;
modules of :data:`policy.NEVER_IMPORTABLE` and members of :data:`policy.DENIED_EXPORTS`
are never granted. The worker reads the grant's :attr:`ImportGrant.problems` at start-up
(one warning); the fork server and each script child rebuild the same grant from the
same entries, so no state a script can touch decides an import.

Standard library only: imported by the worker and by the script's child.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from . import policy


@dataclass(frozen=True)
class ImportGrant:
    """Module name -> the member names a script may import from it."""

    modules: Mapping[str, frozenset[str]]
    #: one sentence per entry that grants nothing, naming it and why
    problems: tuple[str, ...] = ()


def importable(name: str) -> bool:
    """Whether a module may be granted at all (see :data:`policy.NEVER_IMPORTABLE`)."""
    parts = name.split(".")
    if not all(p.isidentifier() and not p.startswith("_") for p in parts):
        return False
    return not any(".".join(parts[:i]) in policy.NEVER_IMPORTABLE
                   for i in range(1, len(parts) + 1))


def grant(entries: Iterable[str]) -> ImportGrant:
    """The grant of the configured entries, with a problem for each refused one."""
    modules: dict[str, set[str]] = {}
    problems: list[str] = []
    for entry in sorted(set(entries)):
        module, _, member = entry.partition(":")
        if not importable(module):
            problems.append(f"{module!r} is never importable by scripts")
            continue
        if not member:
            table = policy.MODULE_EXPORTS.get(module)
            if table is None:
                problems.append(
                    f"{module!r} has no vetted table of exports, so scripts cannot import "
                    f"it; name the members you need instead, as {module}:NAME entries "
                    f"(for example {module}:{_example(module)})")
                continue
            modules.setdefault(module, set()).update(table)
            continue
        if not member.isidentifier() or member.startswith("_"):
            problems.append(f"{entry!r} does not name a public member")
        elif member in policy.DENIED_EXPORTS.get(module, frozenset()):
            problems.append(f"{entry!r} is never exported to scripts")
        else:
            modules.setdefault(module, set()).add(member)
    frozen = {name: frozenset(members) for name, members in modules.items()}
    return ImportGrant(MappingProxyType(frozen), tuple(problems))


def _example(module: str) -> str:
    return {"mimetypes": "guess_type"}.get(module, "function_name")


def problems_message(problems: Iterable[str]) -> str | None:
    """One warning line for every refused entry of COMMON_API_SCRIPT_ALLOWED_IMPORTS."""
    found = list(problems)
    if not found:
        return None
    return ("COMMON_API_SCRIPT_ALLOWED_IMPORTS: " + "; ".join(found)
            + " (scripts that import them get \"Import of '...' is not allowed\")")
