"""Collecting problems instead of stopping at the first: the checker every job-file section uses."""

from __future__ import annotations

import difflib
from typing import Any

from headless_renderer.batch.job_model import Problem
from headless_renderer.batch.toml_lines import line_of


class Checker:
    """Collects problems instead of stopping at the first."""

    def __init__(self, lines: dict[str, int]) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        # A shared table (defaults.package) is checked once per character that inherits it: say it once.
        problem = Problem(line_of(self.lines, path), path, message)
        if problem not in self.problems:
            self.problems.append(problem)

    def table(self, value: Any, path: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(path, f"expected a table, got {kind_of(value)}")
            return {}
        return value

    def known(self, data: dict[str, Any], allowed: set[str] | dict[str, Any], path: str) -> None:
        for key in data:
            if key not in allowed:
                hint = difflib.get_close_matches(key, list(allowed), n=1)
                more = f"; did you mean {hint[0]!r}?" if hint else f"; allowed: {', '.join(sorted(allowed))}"
                self.add(join_path(path, key), f"unknown field{more}")

    def string(self, data: dict, key: str, path: str, *, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.add(join_path(path, key), "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(join_path(path, key), f"expected a non-empty string, got {kind_of(value)}")
            return None
        return value

    def number(self, data: dict, key: str, path: str, low: float, high: float, *, integer: bool = False) -> Any:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            self.add(join_path(path, key), f"expected {'an integer' if integer else 'a number'}, got {value!r}")
            return None
        if not low <= value <= high:
            self.add(join_path(path, key), f"{value} is outside {low}..{high}")
            return None
        return value


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def kind_of(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)

