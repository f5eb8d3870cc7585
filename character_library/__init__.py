"""The character library: characters, their package versions, prompts and bump history on disk.

Plain Python (stdlib ``sqlite3`` + numpy), so it runs inside Blender's Python as well as in the
backend and on the command line. Only :mod:`bump_backend.library_import` needs OpenCV or
mediapipe, and it imports them when called.
"""

from character_library.api import Library
from character_library.archive import ImportLimits
from character_library.characters import Character, CharacterSummary
from character_library.errors import (
    ArchiveError,
    ConflictError,
    LibraryError,
    NotFoundError,
    SchemaError,
    UnsafeNameError,
    ValidationError,
)
from character_library.history import HistoryRun
from character_library.packages import PackageInfo, ViewInfo
from character_library.repair import RepairReport
from character_library.schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "ArchiveError",
    "Character",
    "CharacterSummary",
    "ConflictError",
    "HistoryRun",
    "ImportLimits",
    "Library",
    "LibraryError",
    "NotFoundError",
    "PackageInfo",
    "RepairReport",
    "SchemaError",
    "UnsafeNameError",
    "ValidationError",
    "ViewInfo",
]
