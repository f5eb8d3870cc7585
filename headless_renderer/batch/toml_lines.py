"""Line numbers for TOML fields: ``tomllib`` gives values, not positions, and every job-file error
must name its line. A small scanner of table headers and ``key =`` lines is enough for that.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _split_key(text: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def field_lines(text: str) -> dict[str, int]:
    """Dotted path (array tables indexed, e.g. ``entries[1].tasks``) -> 1-based line number."""
    lines: dict[str, int] = {}
    counters: dict[str, int] = {}
    current: list[str] = []
    in_string: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if in_string:
            if in_string in raw:
                in_string = None
            continue
        header = _HEADER.match(raw)
        if header and not _KEY.match(raw):
            parts = _split_key(header.group(2))
            if header.group(1) == "[[":  # a new element of an array of tables
                path = _resolve(parts[:-1], counters) + [parts[-1]]
                base = ".".join(path)
                counters[base] = counters.get(base, -1) + 1
                path[-1] = f"{parts[-1]}[{counters[base]}]"
            else:
                path = _resolve(parts, counters)
            current = path
            lines.setdefault(".".join(current), number)
            continue
        key = _KEY.match(raw)
        if key:
            dotted = ".".join(current + _split_key(key.group(1)))
            lines.setdefault(dotted, number)
            rest = raw[key.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) == 1:
                    in_string = quote
    return lines


def _resolve(parts: list[str], counters: dict[str, int]) -> list[str]:
    """Index every array-of-tables segment of a header with its current element."""
    out: list[str] = []
    for part in parts:
        base = ".".join([*out, part])
        out.append(f"{part}[{counters[base]}]" if base in counters else part)
    return out


def line_of(lines: dict[str, int], path: str) -> int | None:
    """The line of ``path`` or of its nearest ancestor that has one (inline tables, list items)."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            break
        path = path[:cut]
    return lines.get(path)
