"""finder._dedupe (issue 17's fortieth pass): where two refined faces land on one face, the one the mesh fitted is kept
before one it did not, whatever their scores; among faces alike in that the higher score is kept."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from faces_helpers import upright_face

from bump_backend.faces import finder


def _fitted(face):
    return dataclasses.replace(face, landmarks=np.zeros((478, 3)))


# The tune case: a 64 px face fitted at 62 px (0.81); a reading on its lower half, unfitted, at 34 px (0.98).
WHOLE = _fitted(upright_face((632.0, 656.0), 62.0, 0.81))
LOWER_HALF = upright_face((634.0, 668.0), 34.0, 0.98, {"yunet": 0.9})


def test_the_fitted_face_is_kept_over_a_higher_scored_unfitted_reading_of_it():
    assert finder._dedupe([LOWER_HALF, WHOLE]) == [WHOLE]
    assert finder._dedupe([WHOLE, LOWER_HALF]) == [WHOLE]


def test_switched_off_the_higher_score_stands(monkeypatch):
    monkeypatch.setattr(finder, "FITTED_FIRST", False)
    assert finder._dedupe([WHOLE, LOWER_HALF]) == [LOWER_HALF]


@pytest.mark.parametrize("fitted", [False, True])
def test_among_faces_alike_the_higher_score_is_kept(fitted):
    mark = _fitted if fitted else (lambda face: face)
    low, high = mark(upright_face((100.0, 100.0), 40.0, 0.8)), mark(upright_face((104.0, 102.0), 44.0, 0.95))
    assert finder._dedupe([low, high]) == [high]


def test_faces_apart_are_all_kept():
    """A fitted face does not take an unfitted face beside it, nor one inside it much smaller (a face in a poster)."""
    beside = upright_face((632.0 + 40.0, 656.0), 34.0, 0.98)
    tiny = upright_face((640.0, 650.0), 20.0, 0.98)
    assert finder._dedupe([beside, tiny, WHOLE]) == [WHOLE, beside, tiny]
