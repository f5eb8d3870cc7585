"""R-Net's word on which merged proposals are worth the upright re-check (detect.worth_rechecking, issue 17's twentieth
pass): faces at any roll and size are kept, a share of clutter is not, and a cluster whose smallest member is the face
is kept for that member."""

from __future__ import annotations

import numpy as np
import pytest
from faces_helpers import clutter_squares, match

from bump_backend.faces import FaceFinderSettings, detect, find_faces, finder, mtcnn
from bump_backend.faces.groundtruth import make_scene

pytestmark = pytest.mark.skipif(not mtcnn.available(), reason="needs MTCNN's weights (facenet-pytorch)")


def proposal(centre, side: float, members: list | None = None) -> detect.Candidate:
    """A merged proposal as the window stage leaves it: a BlazeFace box side, upright, no score of its own here."""
    c = detect.Candidate(np.array(centre, float), side, 0.0, 0.5, np.zeros((6, 2)), 0)
    c.members = members or [c]
    return c


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_faces_at_any_roll_and_size_are_worth_rechecking(seed):
    rng = np.random.default_rng(seed)
    faces = [(float(size), float(rng.uniform(-180, 180))) for size in (24, 32, 48, 64, 96)]
    scene = make_scene(rng, 480, 480, faces, damage=str(rng.choice(["none", "noise", "jpeg"])))
    at_faces = [proposal(t.centre, t.size / finder.BLAZE_TO_SQUARE) for t in scene.faces]
    assert detect.worth_rechecking(scene.image, at_faces) == at_faces


def test_a_share_of_clutter_is_not_worth_rechecking(monkeypatch):
    image, squares = clutter_squares(7, 60)
    clutter = [proposal(centre, side) for centre, side, _ in squares]
    kept = detect.worth_rechecking(image, clutter)
    assert len(kept) <= 0.9 * len(clutter)
    assert all(any(k is c for c in clutter) for k in kept)  # the same objects, in order, none made up
    assert [c for c in clutter if any(k is c for k in kept)] == kept
    monkeypatch.setattr(detect, "WORTH_RECHECKING", None)
    assert detect.worth_rechecking(image, clutter) == clutter


def test_a_cluster_is_kept_for_its_smallest_member():
    """A 24 px face merged into a cluster 3x its size (centred beside it) is re-checked at the member's own size
    (confirm): R-Net is asked there too."""
    image, _ = clutter_squares(5, 0)
    scene = make_scene(np.random.default_rng(21), 240, 240, [(24.0, 30.0)])
    image[100:340, 100:340] = scene.image
    face = scene.faces[0]
    centre = (face.centre[0] + 100, face.centre[1] + 100)
    member = proposal(centre, face.size / finder.BLAZE_TO_SQUARE)
    wide = proposal((centre[0] + 30, centre[1] + 30), 3 * member.side)
    alone = mtcnn.quarter_turn_scores(image, [(tuple(wide.centre), wide.side)], small=True).max()
    assert alone < detect.WORTH_RECHECKING  # the cluster's own square reads next to nothing
    assert detect.worth_rechecking(image, [wide]) == []
    cluster = proposal(wide.centre, wide.side, [wide, member])
    assert detect.worth_rechecking(image, [cluster]) == [cluster]


def test_the_search_finds_the_same_faces_with_fewer_calls(monkeypatch):
    rng = np.random.default_rng(30)
    scene = make_scene(rng, 960, 720, [(24.0, 120.0), (32.0, -60.0), (48.0, 170.0), (64.0, 10.0)], damage="noise")
    settings = FaceFinderSettings(min_face_size=24, skip_smaller_than=0)
    ours = find_faces(scene.image, settings=settings)
    monkeypatch.setattr(detect, "WORTH_RECHECKING", None)
    every = find_faces(scene.image, settings=settings)
    assert ours.detector_calls < every.detector_calls
    for truth in scene.faces:
        assert (match(truth, ours.faces) is None) == (match(truth, every.faces) is None)
    assert len(ours.faces) == len(every.faces)
