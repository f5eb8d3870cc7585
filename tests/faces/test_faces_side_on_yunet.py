"""Issue 17's forty-seventh pass: O-Net's word on a side-on head counts only where YuNet sees the head too
(finder.SIDE_ON_YUNET), and a face without a mesh fit that only the two BlazeFace models agree on needs YuNet's or the
back-camera model's word (finder.AGREED_THIRD)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bump_backend.faces import FaceFinderSettings, blazeface, detect, find_faces, finder, yunet

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench_faces = pytest.importorskip("bench_faces")

SETTINGS = FaceFinderSettings(min_face_size=24, skip_smaller_than=0)


def _reported(image):
    result = find_faces(image, settings=SETTINGS)
    return result.faces + [s.face for s in result.skipped]


def _kept_only_without(monkeypatch, index: int, switch: str):
    """The benchmark's face-free still ``index`` of seed 8017: nothing reported, and with ``switch`` off one face (it
    and the switch's bar returned)."""
    image = bench_faces.face_free(8017, index + 1)[index].image
    assert not _reported(image)
    bar = getattr(finder, switch)
    monkeypatch.setattr(finder, switch, None)
    (face,) = _reported(image)
    return image, face, bar


def test_clutter_o_net_reads_a_square_off_is_dropped_where_yunet_sees_no_face(monkeypatch):
    """A face-free still of the benchmark (seed 8017, the 44th): a 23 px patch read side-on, which the mesh and the
    full-range model do not see, kept by O-Net read a square off its own (0.97) and the short-range model there
    (finder.SIDE_ON_SEARCH). YuNet reads it under the bar."""
    if not yunet.available():
        pytest.skip("the yuface wheel is not installed")
    image, face, bar = _kept_only_without(monkeypatch, 43, "SIDE_ON_YUNET")
    assert face.landmarks is None and face.extra["full_range"] < detect.SECOND_ENOUGH
    assert face.extra["o_net_near"] >= finder.SIDE_ON_NEAR_O_NET and "short_range_near" in face.extra
    assert detect.yunet_opinion(image, face.centre, face.size, face.roll) < bar


def test_clutter_both_blazeface_models_agree_on_needs_a_third_model(monkeypatch):
    """A face-free still of the benchmark (seed 8017, the 72nd): a 35 px patch the mesh does not fit, read 0.67 by the
    short-range model and 0.83 by the full-range one, which YuNet and the back-camera model read under the bar."""
    if not yunet.available() or not blazeface.back_available():
        pytest.skip("the yuface wheel or the back-camera model is not installed")
    image, face, bar = _kept_only_without(monkeypatch, 71, "AGREED_THIRD")
    assert face.landmarks is None and face.extra["full_range"] >= detect.SECOND_ENOUGH
    assert face.extra["short_range"] < finder.SURE_ALONE and "o_net" not in face.extra
    side = face.size / finder.BLAZE_TO_SQUARE
    assert detect.yunet_opinion(image, face.centre, face.size, face.roll) < bar
    assert detect.back_opinion(image, face.centre, side, face.roll) < bar
