"""A profile written out for other tools: folded stacks, speedscope's file format, and a
structured JSON form for programs. The SVG flame graph is in ``flamegraph``."""

from __future__ import annotations

from typing import Any

from common_api.services.sampling import Profile

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"
ROOT_KINDS = frozenset({"worker", "thread"})


def _folded_name(name: str) -> str:
    """A frame name that cannot break the folded format (';' separates, a line ends)."""
    return name.replace(";", ",").replace("\r", " ").replace("\n", " ")


def render_collapsed(profile: Profile) -> str:
    """Brendan Gregg's folded stacks: ``root;frame;...;leaf COUNT``, one stack a line, the
    most sampled first (flamegraph.pl, inferno and speedscope read it)."""
    lines = [";".join(_folded_name(name) for name in names) + f" {count}"
             for names, count in profile.named_stacks()]
    return "\n".join(lines) + "\n" if lines else ""


def _roots(profile: Profile, stack: tuple[int, ...]) -> int:
    """How many leading frames of ``stack`` name its worker and thread."""
    count = 0
    while count < len(stack) and profile.frames[stack[count]].kind in ROOT_KINDS:
        count += 1
    return count


def render_speedscope(profile: Profile, name: str, exporter: str) -> dict[str, Any]:
    """speedscope's file format: one sampled profile per thread (``thread@worker`` when
    several workers took part), weights in seconds, frames shared."""
    frames = [{"name": frame.name, **({"file": frame.file, "line": frame.line}
                                      if frame.kind == "python" else {})}
              for frame in profile.frames]
    period = profile.duration / profile.ticks if profile.ticks else 0.0
    by_thread: dict[str, tuple[list[list[int]], list[float], int]] = {}
    for stack, count in sorted(profile.stacks.items(), key=lambda item: item[0]):
        roots = _roots(profile, stack)
        label = "@".join(reversed([profile.frames[i].name for i in stack[:roots]]))
        samples, weights, total = by_thread.setdefault(label, ([], [], 0))
        samples.append(list(stack[roots:]))
        weights.append(count * period)
        by_thread[label] = (samples, weights, total + count)
    profiles = [{"type": "sampled", "name": label, "unit": "seconds", "startValue": 0,
                 "endValue": profile.duration, "samples": samples, "weights": weights}
                for label, (samples, weights, _) in sorted(by_thread.items())]
    totals = [entry[2] for _, entry in sorted(by_thread.items())]
    active = totals.index(max(totals)) if totals else 0
    return {"$schema": SPEEDSCOPE_SCHEMA, "shared": {"frames": frames}, "profiles": profiles,
            "name": name, "activeProfileIndex": active, "exporter": exporter}


def render_json(profile: Profile) -> dict[str, Any]:
    """Everything, for programs: the frame table (file, line, self and total samples), each
    stack with its count, per-thread totals, and how the window went."""
    self_counts = [0] * len(profile.frames)
    total_counts = [0] * len(profile.frames)
    threads: dict[str, int] = {}
    for stack, count in profile.stacks.items():
        if stack:
            self_counts[stack[-1]] += count
        for index in set(stack):
            total_counts[index] += count
        roots = _roots(profile, stack)
        label = "@".join(reversed([profile.frames[i].name for i in stack[:roots]]))
        threads[label] = threads.get(label, 0) + count
    frames = [{**frame.to_dict(), "self": self_counts[i], "total": total_counts[i]}
              for i, frame in enumerate(profile.frames)]
    stacks = [{"frames": list(stack), "count": count}
              for stack, count in sorted(profile.stacks.items(), key=lambda item: -item[1])]
    return {**profile.summary(), "frames": frames, "stacks": stacks,
            "threads": dict(sorted(threads.items(), key=lambda item: -item[1]))}
