"""The :class:`Library` the add-on, the command line and the backend use."""

from __future__ import annotations

from character_library.archive import ArchiveMixin
from character_library.characters import CharactersMixin
from character_library.history import HistoryMixin
from character_library.packages import PackagesMixin
from character_library.repair import RepairMixin
from character_library.store import LibraryBase


class Library(CharactersMixin, PackagesMixin, HistoryMixin, ArchiveMixin, RepairMixin, LibraryBase):
    """A character library folder. ``Library.open(folder)``; use as a context manager or ``close()``.

    Characters are addressed by id or display name everywhere (``ref``).
    """
