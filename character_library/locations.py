"""Where the library lives when nobody says: one rule for the library CLI, the backend's
``import-images``, the add-on's default and batch job files."""

from __future__ import annotations

import os
from pathlib import Path

LIBRARY_ENV = "BUMP_STUDIO_LIBRARY"
DEFAULT_LIBRARY = Path("~/BumpStudio/library")


def library_path(explicit: str | os.PathLike | None = None) -> Path:
    """``explicit`` if given, else ``$BUMP_STUDIO_LIBRARY``, else ``~/BumpStudio/library``."""
    return Path(explicit or os.environ.get(LIBRARY_ENV) or DEFAULT_LIBRARY).expanduser()
