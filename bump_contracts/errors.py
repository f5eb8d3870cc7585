"""The one error type every contract raises, so callers catch a single class."""

from __future__ import annotations


class ContractError(ValueError):
    """A document that does not follow its contract; ``field`` names the offending field when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
