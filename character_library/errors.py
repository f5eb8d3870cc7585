"""Exceptions of the character library.

Every message says what went wrong and what the user can do about it; the CLI prints the message
on one line and exits non-zero, so nothing here should need a traceback to be understood.
"""

from __future__ import annotations


class LibraryError(Exception):
    """Base class: any failure the library reports to a user."""


class NotFoundError(LibraryError):
    """A character, package version or history run does not exist."""


class ConflictError(LibraryError):
    """The operation would overwrite or duplicate something (a name, an id, a file)."""


class UnsafeNameError(LibraryError):
    """A name or path from outside would escape the library or is not usable as a name."""


class ArchiveError(LibraryError):
    """A character zip is malformed or hostile (zip-slip, absolute path, symlink, oversized member)."""


class SchemaError(LibraryError):
    """The index database is newer than this program, unreadable, or not a library index."""


class ValidationError(LibraryError):
    """A field value is out of range or of the wrong type."""
