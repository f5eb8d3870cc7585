"""The :class:`Library` the add-on, the command line and the backend use."""

from __future__ import annotations

from profile_rig.library.archive import ArchiveMixin
from profile_rig.library.characters import CharactersMixin
from profile_rig.library.history import HistoryMixin
from profile_rig.library.packages import PackagesMixin
from profile_rig.library.repair import RepairMixin
from profile_rig.library.store import LibraryBase


class Library(CharactersMixin, PackagesMixin, HistoryMixin, ArchiveMixin, RepairMixin, LibraryBase):
    """A character library folder. ``Library.open(folder)``; use as a context manager or ``close()``.

    Characters are addressed by id or display name everywhere (``ref``).
    """
