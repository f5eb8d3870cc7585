"""The character library: characters, their package versions, prompts and bump history on disk.

Plain Python (stdlib ``sqlite3`` + numpy), so it runs inside Blender's Python as well as in the
backend and on the command line. Only :mod:`profile_rig.library.import_images` needs OpenCV or
mediapipe, and it imports them when called.
"""

from profile_rig.library.api import Library
from profile_rig.library.archive import ImportLimits
from profile_rig.library.characters import Character, CharacterSummary
from profile_rig.library.errors import (
    ArchiveError,
    ConflictError,
    LibraryError,
    NotFoundError,
    SchemaError,
    UnsafeNameError,
    ValidationError,
)
from profile_rig.library.history import HistoryRun
from profile_rig.library.packages import PackageInfo, ViewInfo
from profile_rig.library.repair import RepairReport
from profile_rig.library.schema import SCHEMA_VERSION

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
