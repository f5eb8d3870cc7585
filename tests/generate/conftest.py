"""Tiny real-architecture models on disk, a package and a scene with known face geometry."""

from __future__ import annotations

import os
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

from bump_backend.testing import tiny_models as tiny
from bump_contracts.face_geometry import FaceGeometry
from bump_contracts.render_sidecar import RenderSidecar, SidecarFace

torch.set_num_threads(1)  # thread count changes bits; golden comparisons need a fixed one

# The astronaut's face in skimage's 512 px photo (iris centres and face square measured once).
ASTRONAUT_EYES = ((203.5, 101.1), (246.6, 103.5))
ASTRONAUT_FACE = ((224.8, 124.3), 100.0)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    sd15 = tiny.build_tiny_sd15(root / "sd15")
    ip_dir, plus_weight = tiny.build_tiny_ip_adapter(root / "ip", sd15, "plus-face")
    _, plain_weight = tiny.build_tiny_ip_adapter(root / "ip", sd15, "plain")
    return {"root": root, "sd15": sd15, "ip": ip_dir, "plus": plus_weight, "plain": plain_weight}


@pytest.fixture(scope="session")
def spec(model_dirs):
    from bump_backend.generate.models import ModelSpec

    return ModelSpec(base=str(model_dirs["sd15"]), ip_adapter=str(model_dirs["ip"]),
                     ip_adapter_weight=model_dirs["plus"], device="cpu")


@pytest.fixture(scope="session")
def engine(spec):
    from bump_backend.generate import BumpEngine

    return BumpEngine(spec)


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory):
    """Three views of the astronaut (mirrored and shifted stand in for the turned views)."""
    image = _astronaut()[0:256, 96:352]
    front = np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.LANCZOS))
    views = {"front": (front, 0.0), "three_quarter_left": (front[:, ::-1].copy(), 45.0),
             "profile_right": (np.roll(front, 8, axis=1), -90.0)}
    return tiny.build_tiny_package(tmp_path_factory.mktemp("package"), views, character_id="astronaut")


@pytest.fixture(scope="session")
def scene():
    """A 128x128 shot of the astronaut and its render sidecar (the face at half scale, known eyes)."""
    x0, y0, s = 96, 0, 0.5
    image = np.asarray(Image.fromarray(_astronaut()[y0:y0 + 256, x0:x0 + 256]).resize((128, 128),
                                                                                       Image.Resampling.LANCZOS))

    def pt(p):
        return ((p[0] - x0) * s, (p[1] - y0) * s)

    (cx, cy), side = ASTRONAUT_FACE
    c = pt((cx, cy))
    half = side * s / 2
    right, left = pt(ASTRONAUT_EYES[0]), pt(ASTRONAUT_EYES[1])
    geometry = FaceGeometry(head_centre=c, right_eye=right, left_eye=left,
                            face_box=(c[0] - half, c[1] - half, c[0] + half, c[1] + half), roll=1.6, yaw=0.0,
                            pitch=0.0, eye_distance_px=float(np.hypot(left[0] - right[0], left[1] - right[1])),
                            depth_m=1.2)
    sidecar = RenderSidecar(width=128, height=128, faces=(SidecarFace("astronaut", "Astronaut", geometry),))
    return np.ascontiguousarray(image), sidecar


@pytest.fixture(scope="session")
def two_faces(scene):
    """The scene's sidecar with a second character's face, shifted and turned (yaw +80)."""
    image, sidecar = scene
    face = sidecar.faces[0]
    g = face.geometry
    shifted = replace(g, head_centre=(g.head_centre[0] + 40, g.head_centre[1] + 40),
                      right_eye=(g.right_eye[0] + 40, g.right_eye[1] + 40),
                      left_eye=(g.left_eye[0] + 40, g.left_eye[1] + 40),
                      face_box=tuple(v + 40 for v in g.face_box), yaw=80.0)
    other = replace(face, character_id="other", character_name="Other", geometry=shifted)
    return image, replace(sidecar, faces=(face, other))


@pytest.fixture()
def fast_settings():
    from bump_backend.generate import BumpSettings

    return BumpSettings(prompt="photo of a man", steps=6, denoise=0.5, sampler="Euler a", seed=1234,
                        face_size=64, cfg=5.0)
