"""P-Net's faint peaks stirred (detect.SMALL_FAINT, issue 17's forty-fifth pass): a sideways 24 px face that P-Net reads
0.9 or more at a quarter turn it skips reads only 0.4-0.5 at those it reads, under SMALL_STIR, so it was never read at
the turn that sees it. Such peaks are stirred too, and what they stir goes on only where O-Net reads SMALL_FAINT_O."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from faces_helpers import lfw_face_alone, p_net_turn_reads, small_faces_near, won_by_rule

from bump_backend.faces import FaceFinderSettings, detect, find_faces, groundtruth

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
pytest.importorskip("bench_faces")
pytest.importorskip("face_sources")

SETTINGS = FaceFinderSettings(min_face_size=24, skip_smaller_than=0, workers=1)


@pytest.mark.parametrize(("index", "roll"), [(1, -105), (6, 105)])
def test_a_sideways_face_p_net_reads_faintly_at_its_turns_is_proposed_and_found(index, roll, monkeypatch):
    image, truth = lfw_face_alone(index, roll, "none")
    reads = p_net_turn_reads(image, truth)
    upright_or_half = max(reads[turn] for turn in detect.SMALL_TURNS)
    assert detect.SMALL_FAINT <= upright_or_half < detect.SMALL_STIR  # too faint to stir before
    assert max(reads) >= detect.SMALL_P  # at a quarter turn P-Net skips it reads the face

    won_by_rule(image, truth, SETTINGS, detect.SMALL_FAINT_O, lambda: monkeypatch.setattr(detect, "SMALL_FAINT", None))


def test_faint_peaks_need_o_nets_higher_bar(monkeypatch):
    """The same face with O-Net's bar for faint peaks set over its reading is not proposed: the bar is applied to them."""
    image, truth = lfw_face_alone(1, -105, "none")
    (proposed,) = small_faces_near(image, truth)
    monkeypatch.setattr(detect, "SMALL_FAINT_O", min(1.0, proposed.o_net + 1e-3))
    assert not small_faces_near(image, truth)
    monkeypatch.setattr(detect, "SMALL_FAINT_O", detect.SMALL_O)
    assert small_faces_near(image, truth)


def test_face_free_stills_get_nothing_from_faint_peaks(monkeypatch):
    """Over a hundred faint peaks a still, nearly all clutter: on face-free stills the small faces proposed are the same
    with and without them, and no face is reported."""
    stills = groundtruth.face_free(61000, 3, ((1280, 720), (1440, 1440)), ("none", "jpeg"))
    for image in stills:
        level = detect.small_face_level(image)
        faint = [s for turn in detect.SMALL_TURNS for *_, s in detect.small_face_peaks(image, turn, level=level,
                                                                                   threshold=detect.SMALL_FAINT)
                 if s < detect.SMALL_STIR]
        assert len(faint) >= 50
        with_faint = [(tuple(c.centre), c.roll) for c in detect.small_faces(image)]
        monkeypatch.setattr(detect, "SMALL_FAINT", None)
        without = [(tuple(c.centre), c.roll) for c in detect.small_faces(image)]
        monkeypatch.undo()
        assert with_faint == without
        result = find_faces(image, settings=SETTINGS)
        assert not result.faces and not result.skipped
