"""P-Net's peaks just under SMALL_P, read by R-Net at the four quarter turns (detect.SMALL_NEAR_P, issue 17's
thirty-eighth pass): a peak under SMALL_P was only stirred (read at the turns P-Net skips), which does not help a face
at a turn P-Net reads, and the peak of SMALL_P beside such a face may lie a third of a face off, on a square R-Net or
O-Net refuses. One R-Net reads SMALL_NEAR_R or more at a quarter turn goes on to O-Net turned to it, and the face it
gives yields to any other face accepted at its place (finder.NEAR_YIELDS)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from faces_helpers import darkened_face, upright_face

from bump_backend.faces import FaceFinderSettings, detect, find_faces, finder, groundtruth, mtcnn
from bump_backend.faces.transform import wrap

SETTINGS = FaceFinderSettings(min_face_size=24, skip_smaller_than=0, workers=1)


def _peak(at: tuple[float, float], turn: int, score: float) -> detect.Candidate:
    """P-Net's square at ``at`` as ``small_faces`` makes it: 24 px, upright at ``turn`` quarter turns."""
    return detect.Candidate(np.array(at, float), 24.0, 90.0 * turn, score, np.zeros((6, 2)), 90 * turn)


@pytest.fixture()
def dark_face():
    """A darkened 24 px face at -120°: P-Net peaks 0.89 at its centre at a turn it reads (half a turn), under SMALL_P,
    and 0.95 9 px off, where R-Net reads nothing at any quarter turn."""
    return darkened_face("astronaut", -120.0, dark=0.35)


def test_r_net_turned_keeps_the_squares_read_to_the_bar_at_a_quarter_turn_turned_to_it(dark_face):
    image, truth = dark_face
    squares = [_peak(truth.centre, 2, 0.89), _peak((30.0, 40.0), 0, 0.88),
               _peak((truth.centre[0] - 4.0, truth.centre[1] - 8.0), 0, 0.87)]
    read = mtcnn.quarter_turn_scores(image, [(tuple(c.centre), c.side) for c in squares], small=True)
    kept = detect.r_net_turned(image, squares, detect.SMALL_NEAR_R)
    assert [c.score for c in kept] == [c.score for c, row in zip(squares, read, strict=True)
                                       if row.max() >= detect.SMALL_NEAR_R]
    assert kept and math.dist(kept[0].centre, truth.centre) < 1.0  # the face's own square is one of them
    for c in kept:
        row = read[[s.score for s in squares].index(c.score)]
        assert c.roll == 90.0 * int(np.argmax(row)) and c.rotation == int(c.roll)
    assert [c.roll for c in squares] == [180.0, 0.0, 0.0]  # the squares given are left as they were
    assert detect.r_net_turned(image, [], detect.SMALL_NEAR_R) == []


def test_a_face_p_net_reads_just_under_small_p_is_proposed(dark_face, monkeypatch):
    image, truth = dark_face
    level = detect.small_face_level(image)
    near = [s for turn in detect.SMALL_TURNS for x, y, s in detect.small_face_peaks(image, turn, level=level,
                                                                                     threshold=detect.SMALL_NEAR_P)
            if math.dist((x, y), truth.centre) < 3.0]
    assert near and all(s < detect.SMALL_P for s in near)  # its own peak is under SMALL_P

    proposed = [c for c in detect.small_faces(image) if math.dist(c.centre, truth.centre) < 0.5 * truth.size]
    assert proposed and proposed[0].o_net >= detect.SMALL_O
    assert abs(wrap(proposed[0].roll - truth.roll)) <= 15.0

    monkeypatch.setattr(detect, "SMALL_NEAR_P", None)
    monkeypatch.setattr(detect, "SMALL_DIAGONAL", False)  # 30° off a quarter turn, its eighth turn proposes it too
    assert not [c for c in detect.small_faces(image) if math.dist(c.centre, truth.centre) < 0.5 * truth.size]


def test_the_near_peaks_of_a_face_free_still_keep_no_face():
    """A face-free still has tens of peaks from SMALL_NEAR_P up to SMALL_P; R-Net reads clutter under SMALL_NEAR_R, and
    no face is reported."""
    (image,) = groundtruth.face_free(61000, 1, ((1280, 720),), ("none",))
    level = detect.small_face_level(image)
    peaks = [_peak((x, y), turn, s) for turn in detect.SMALL_TURNS
             for x, y, s in detect.small_face_peaks(image, turn, level=level, threshold=detect.SMALL_NEAR_P)
             if s < detect.SMALL_P]
    assert len(peaks) >= 10
    assert detect.r_net_turned(image, peaks, detect.SMALL_NEAR_R) == []
    result = find_faces(image, settings=SETTINGS)
    assert not result.faces and not result.skipped


def test_the_near_mark_follows_the_face_through_the_re_check_and_refinement(dark_face):
    image, truth = dark_face
    (proposed,) = [c for c in detect.small_faces(image) if math.dist(c.centre, truth.centre) < 0.5 * truth.size]
    assert proposed.near_peak
    reading, _ = detect.confirm(image, proposed, True, SETTINGS.recheck_floor)
    assert reading is not None and reading.near_peak
    faces, _ = finder.refine(image, [reading], SETTINGS)
    assert faces and all(f.extra.get("p_net_near") for f in faces)
    plain = dataclasses.replace(reading, near_peak=False)
    assert not any("p_net_near" in f.extra for f in finder.refine(image, [plain], SETTINGS)[0])


def test_a_near_peak_face_yields_to_a_face_accepted_at_its_place(monkeypatch):
    """The turned part's case (held out, scene 44): a 48 px side-on head read at 56 px (0.79), and a 24 px near peak
    inside it kept at 27 px (1.0), 11 px from the head's centre. A near peak's face alone at its place stays."""
    head = upright_face((914.0, 1002.0), 56.0, 0.79)
    inside = upright_face((904.0, 1004.0), 27.0, 1.0, {"p_net_near": True})
    alone = upright_face((300.0, 100.0), 27.0, 0.9, {"p_net_near": True})
    kept = finder._dedupe(finder._fallbacks_where_alone([head, inside, alone]))
    assert sorted(kept, key=lambda f: f.centre[0]) == [alone, head]
    monkeypatch.setattr(finder, "NEAR_YIELDS", False)
    assert finder._dedupe(finder._fallbacks_where_alone([head, inside, alone])) == [inside, alone]


def _passed(at: tuple[float, float], score: float, near: bool) -> detect.Candidate:
    return dataclasses.replace(_peak(at, 0, score), near_peak=near)


def test_a_near_peaks_small_face_stands_only_where_no_other_peaks_does():
    """The turned part's case (held out, scene 44): a near peak and a peak of SMALL_P inside one head both passed
    O-Net; the near peak's went on and was kept over the head. Now the other peak's stands there, even where O-Net
    read the near peak higher, and a near peak's stands alone elsewhere."""
    other = _passed((900.0, 1000.0), 0.85, False)
    inside = _passed((904.0, 1004.0), 1.0, True)
    alone = _passed((300.0, 100.0), 0.9, True)
    assert [id(c) for c in detect.one_per_place([inside, other, alone])] == [id(other), id(alone)]
    two = [_passed((900.0, 1000.0), 0.85, False), _passed((903.0, 1001.0), 0.95, False)]
    assert [id(c) for c in detect.one_per_place(two)] == [id(two[1])]  # without near peaks: merge's pick, as before
