"""O-Net's word on a side-on head counts only where YuNet sees the head too (issue 17's forty-seventh pass,
finder.SIDE_ON_YUNET): the side-on rules keep a face neither the mesh nor the full-range model sees."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bump_backend.faces import FaceFinderSettings, detect, find_faces, finder, yunet

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench_faces = pytest.importorskip("bench_faces")

SETTINGS = FaceFinderSettings(min_face_size=24, skip_smaller_than=0)


def _reported(image):
    result = find_faces(image, settings=SETTINGS)
    return result.faces + [s.face for s in result.skipped]


def test_clutter_o_net_reads_a_square_off_is_dropped_where_yunet_sees_no_face(monkeypatch):
    """A face-free still of the benchmark (seed 8017, the 44th): a 23 px patch read side-on, which the mesh and the
    full-range model do not see, kept by O-Net read a square off its own (0.97) and the short-range model there
    (finder.SIDE_ON_SEARCH). YuNet reads it under the bar."""
    if not yunet.available():
        pytest.skip("the yuface wheel is not installed")
    image = bench_faces.face_free(8017, 44)[43].image
    assert not _reported(image)
    bar = finder.SIDE_ON_YUNET
    monkeypatch.setattr(finder, "SIDE_ON_YUNET", None)
    (face,) = _reported(image)
    assert face.landmarks is None and face.extra["full_range"] < detect.SECOND_ENOUGH
    assert face.extra["o_net_near"] >= finder.SIDE_ON_NEAR_O_NET and "short_range_near" in face.extra
    assert detect.yunet_opinion(image, face.centre, face.size, face.roll) < bar
