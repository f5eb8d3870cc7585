"""One safe JSON loader for every contract document that crosses a boundary.

``json.loads`` alone lets hostile input through in three ways: nesting thousands of levels deep
raises ``RecursionError`` (a crash, not a refusal), an integer of more than 4300 digits raises a
bare ``ValueError``, and ``"\\ud800"`` decodes to a lone surrogate that cannot be written back as
UTF-8 (a job list that holds one cannot be served). :func:`loads` turns each into a
``ContractError`` that names the document and, where known, the field, before any contract
code looks at the data. Stdlib only.
"""

from __future__ import annotations

import json
import math
from typing import Any

from bump_contracts.errors import ContractError

MAX_DEPTH = 64  # no contract document nests deeper than about 6; this leaves room for ``extra``
MAX_INT_DIGITS = 100  # no contract number needs more; Python's own limit is 4300 digits


def has_surrogate(text: str) -> bool:
    """True when ``text`` holds a lone surrogate (it cannot be encoded as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX`` escapes, so an error message about it can be sent."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` safe for an error message: short, encodable, and never the 4300-digit ``ValueError``."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**limit:
        return f"an integer of more than {limit} digits"
    try:
        text = printable(repr(value))
    except (ValueError, RecursionError):  # a huge int inside a list, a list nested past the recursion limit
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short(field: str, limit: int = 80) -> str:
    """A field path fit for an error document: encodable and at most ``limit`` characters."""
    field = printable(field)
    return field if len(field) <= limit else field[: limit - 3] + "..."


def check_text(value: str, field: str) -> str:
    """Refuse a string with a lone surrogate, naming ``field``; return it unchanged otherwise."""
    if has_surrogate(value):
        raise ContractError(f"{printable(field)}: text holds a lone surrogate (not valid Unicode)", printable(field))
    return value


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _HugeInt:
    """Stands in for an integer too long to convert, so :func:`check_tree` can name its field."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _bounded_int(text: str) -> int | _HugeInt:
    digits = len(text.lstrip("-"))
    return _HugeInt(digits) if digits > MAX_INT_DIGITS else int(text)


class _NonFinite:
    """Stands in for NaN, Infinity or a float that overflows (1e999), so its field can be named."""

    def __init__(self, text: str) -> None:
        self.text = text


def _finite_float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def check_tree(data: Any, what: str, *, max_depth: int = MAX_DEPTH, prefix: str = "") -> Any:
    """Walk a decoded document without recursion: depth at most ``max_depth``, every string and key valid
    Unicode. Raises ContractError naming the first field at fault (``what`` names the document; field
    names start with ``prefix``, e.g. "sidecar")."""
    stack: list[tuple[Any, str, int]] = [(data, prefix, 1)]
    while stack:
        value, path, depth = stack.pop()
        where = path or what
        if depth > max_depth:
            where = short(where)
            raise ContractError(f"{where}: nested deeper than {max_depth} levels", where)
        if isinstance(value, str):
            check_text(value, where)
        elif isinstance(value, _HugeInt):
            raise ContractError(f"{printable(where)}: an integer of {value.digits} digits (at most {MAX_INT_DIGITS})",
                                printable(where))
        elif isinstance(value, _NonFinite):
            raise ContractError(f"{printable(where)}: must be a finite number, got {short(value.text, 20)}",
                                printable(where))
        elif isinstance(value, dict):
            for key, item in value.items():
                if has_surrogate(key):
                    raise ContractError(f"{printable(where)}: a field name holds a lone surrogate (not valid "
                                        "Unicode)", printable(where))
                field = _join(path, key)
                stack.append((item, field, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, _join(path, i), depth + 1) for i, item in enumerate(value))
    return data


def loads(text: str | bytes, what: str = "document", *, max_depth: int = MAX_DEPTH, prefix: str = "") -> Any:
    """Decode one JSON document or raise ContractError (field ``what`` or the field inside it at fault).

    Refuses: text that is not JSON or not UTF-8, nesting deeper than ``max_depth``, integers of more
    than ``MAX_INT_DIGITS`` digits, NaN/Infinity/overflowing floats, and lone surrogates in any string or
    field name.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ContractError(f"{what}: not UTF-8 text ({exc.reason} at byte {exc.start})", what) from None
    try:
        data = json.loads(text, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_NonFinite)
    except RecursionError:
        raise ContractError(f"{what}: nested deeper than {max_depth} levels", what) from None
    except json.JSONDecodeError as exc:
        raise ContractError(f"{what}: not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})",
                            what) from None
    except ValueError as exc:  # anything else the decoder refuses
        raise ContractError(f"{what}: not valid JSON ({exc})", what) from None
    return check_tree(data, what, max_depth=max_depth, prefix=prefix)
