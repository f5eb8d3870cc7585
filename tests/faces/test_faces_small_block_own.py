"""A reading keeps a P-Net face from the re-check by the side of P-Net's own square (detect.SMALL_BLOCK_OWN, issue 17's
thirty-sixth pass): O-Net's retries may read the face on a square 1.25x P-Net's, and a reading twice the face's size
then stood for it, so the face was reported at that size."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from faces_helpers import lfw_face_alone

from bump_backend.faces import detect, mtcnn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def _candidate(x: float, y: float, side: float, proposed: float = 0.0) -> detect.Candidate:
    return detect.Candidate(np.array([x, y]), side, 0.0, 0.9, np.zeros((6, 2)), 0, proposed_side=proposed)


def test_the_block_ratio_is_taken_of_p_nets_own_square_where_asked():
    grown = _candidate(100.0, 100.0, 30.0, proposed=24.0)  # P-Net's 24 px square, O-Net's read at 1.25x
    readings = [_candidate(104.0, 98.0, side) for side in (45.0, 55.0, 65.0)]
    ratio = detect.SMALL_BLOCK_RATIO
    assert 2 * 24.0 < 55.0 <= ratio * 30.0 < 65.0
    (by_candidate,) = detect.standing_at([grown], readings, ratio)
    (by_proposal,) = detect.standing_at([grown], readings, ratio, proposed=True)
    assert by_candidate.tolist() == [True, True, False]
    assert by_proposal.tolist() == [True, False, False]  # the 55 px reading is over twice P-Net's square
    # a candidate P-Net did not propose (the second look's) is judged by its own side either way
    (other,) = detect.standing_at([_candidate(100.0, 100.0, 30.0)], readings, ratio, proposed=True)
    assert other.tolist() == [True, True, False]
    # without a ratio any reading at the place stands, and one off the place does not
    far = _candidate(160.0, 100.0, 55.0)
    (unbounded,) = detect.standing_at([grown], readings + [far], None, proposed=True)
    assert unbounded.tolist() == [True, True, True, False]


@pytest.mark.parametrize("index, roll", [(52, 180), (56, -120)])
def test_p_nets_small_faces_keep_the_side_of_its_own_square_where_o_net_read_a_larger_one(index, roll):
    """Two LFW tune faces of 24 px that O-Net passes on a square larger than P-Net's (its retries: box regression, the
    1.25x shifted squares)."""
    pytest.importorskip("bench_faces")
    image, truth = lfw_face_alone(index, roll, "none")
    (face,) = [c for c in detect.small_faces(image) if math.dist(c.centre, truth.centre) < 0.5 * truth.size]
    assert face.side > 1.1 * truth.size and face.o_net >= detect.SMALL_O
    assert face.proposed_side == mtcnn.P_CELL / detect.SMALL_SCALE == 24.0
