"""Atomic creation of a package folder.

Views are written into a hidden staging folder beside the destination; ``commit`` fills in the
image hashes, writes the contact sheet and ``package.json`` last, then renames the folder into
place. A crash at any point leaves either no package or the previous one, never a half package
that looks complete.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import numpy as np

from bump_contracts.atomic_io import fsync_dir, write_bytes_atomic
from bump_contracts.package_manifest import (
    CONTACT_SHEET_NAME,
    MANIFEST_NAME,
    ManifestError,
    PackageManifest,
    file_sha256,
    from_dict,
)
from profile_rig.imaging.contact_sheet import make_contact_sheet
from profile_rig.imaging.png_io import write_png


class PackageExistsError(FileExistsError):
    """The destination already holds files and overwriting was not asked for."""


class PackageStaging:
    """Context manager that stages a package and moves it into place on :meth:`commit`."""

    def __init__(self, destination: str | os.PathLike, *, overwrite: bool = False) -> None:
        self.destination = Path(destination).resolve()
        self.overwrite = overwrite
        self.committed = False
        if self.destination.exists() and not self.destination.is_dir():
            raise PackageExistsError(f"{self.destination} exists and is not a folder")
        if self.destination.is_dir() and any(self.destination.iterdir()) and not overwrite:
            raise PackageExistsError(
                f"{self.destination} is not empty; choose another --out folder or pass --overwrite"
            )
        parent = self.destination.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PermissionError(f"cannot create {parent}: {exc.strerror or exc}") from None
        if not os.access(parent, os.W_OK):
            raise PermissionError(f"{parent} is not writable")
        self.path = parent / f".{self.destination.name}.partial-{os.getpid()}-{int(time.time() * 1000)}"
        self.path.mkdir()

    def __enter__(self) -> PackageStaging:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

    def commit(
        self,
        manifest: PackageManifest,
        contact_images: list[np.ndarray] | None = None,
        contact_labels: list[str] | None = None,
    ) -> Path:
        """Hash the views, write the contact sheet and manifest, then move the folder into place."""
        views = []
        for view in manifest.views:
            image = self.path / view.file
            if not image.is_file():
                raise ManifestError(f"view {view.name!r}: {view.file} was not written")
            views.append(replace(view, sha256=file_sha256(image)))
        manifest = manifest.with_views(views)
        if contact_images:
            labels = contact_labels or [v.name for v in manifest.views]
            sheet = make_contact_sheet(contact_images, labels, title=manifest.character_name)
            write_png(self.path / CONTACT_SHEET_NAME, sheet)
        else:
            manifest = replace(manifest, contact_sheet=None)
        from_dict(manifest.to_dict())  # validate before anything becomes visible
        write_bytes_atomic(self.path / MANIFEST_NAME, manifest.dumps().encode("utf-8"))
        backup = None
        if self.destination.exists():
            backup = self.destination.parent / f".{self.destination.name}.old-{os.getpid()}-{int(time.time() * 1000)}"
            os.replace(self.destination, backup)
        try:
            os.replace(self.path, self.destination)
        except OSError:
            if backup is not None:
                os.replace(backup, self.destination)
            raise
        fsync_dir(self.destination.parent)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        self.committed = True
        return self.destination
