"""Shared fixtures: a fresh library and small but real profile packages."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # face_fixtures / helpers live beside the tests

from bump_contracts.package_manifest import PackageManifest, ViewRecord
from character_library import Library
from profile_rig.core.package_writer import PackageStaging
from profile_rig.imaging.png_io import write_png


@pytest.fixture
def lib(tmp_path: Path):
    library = Library.open(tmp_path / "lib")
    yield library
    library.close()


@pytest.fixture
def make_package(tmp_path: Path):
    """make_package(name, views=[("front", 0), ...], seed=0) -> a package folder on disk."""
    counter = iter(range(10_000))

    def make(views=(("front", 0.0), ("three_quarter_left", 45.0), ("profile_right", -90.0)), seed: int = 0, side: int = 256) -> Path:
        folder = tmp_path / f"pkg{next(counter)}"
        rng = np.random.default_rng(seed)
        records, images = [], []
        with PackageStaging(folder) as staging:
            for name, yaw in views:
                image = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
                write_png(staging.path / f"{name}.png", image)
                records.append(ViewRecord(name, f"{name}.png", yaw, 0.0, 0.0, side, side))
                images.append(image)
            staging.commit(PackageManifest("someone", "Someone", tuple(records)), contact_images=images)
        return folder

    return make
