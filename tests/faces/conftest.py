"""Shared fixtures: ground-truth scenes of real faces (from PyPI packages) and their search results."""

from __future__ import annotations

import numpy as np
import pytest

from bump_backend.faces import FaceFinderSettings, find_faces
from bump_backend.faces.groundtruth import Scene, make_scene


@pytest.fixture(scope="session")
def rolled_scene() -> Scene:
    """Six real faces, 32-180 px, at rolls all round the clock, on real clutter with noise."""
    rng = np.random.default_rng(11)
    faces = [(180, 0), (120, 90), (90, 180), (64, -135), (40, 45), (32, -90)]
    return make_scene(rng, 960, 720, faces, mirror_chance=0.0, damage="noise")


@pytest.fixture(scope="session")
def rolled_result(rolled_scene):
    return find_faces(rolled_scene.image, settings=FaceFinderSettings(skip_smaller_than=0))


@pytest.fixture(scope="session")
def portrait() -> Scene:
    rng = np.random.default_rng(3)
    return make_scene(rng, 480, 400, [(150, 12)], mirror_chance=0.0)
