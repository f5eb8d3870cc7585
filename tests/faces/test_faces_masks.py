"""Mask maths: ranges, feathering, grow/erode, combined masks, background removal."""

from __future__ import annotations

import numpy as np
from faces_helpers import truth_face
from hypothesis import given, settings
from hypothesis import strategies as st

from bump_backend.faces import align_face, combined_mask
from bump_backend.faces.masks import face_mask, person_mask, remove_background


@given(st.integers(2, 24).map(lambda n: n * 8), st.floats(0, 0.2), st.floats(-0.05, 0.05),
       st.floats(0.3, 0.7))
@settings(max_examples=30, deadline=None)
def test_face_mask_range_border_and_centre(size, feather, grow, face_fraction):
    mask = face_mask(size, None, (size / 2, size / 2), face_fraction * size, feather=feather, grow=grow)
    assert mask.shape == (size, size) and mask.dtype == np.float32
    assert mask.min() >= 0 and mask.max() <= 1
    assert mask[0].max() == 0 and mask[-1].max() == 0 and mask[:, 0].max() == 0 and mask[:, -1].max() == 0
    assert mask[size // 2, size // 2] > 0.5


def test_grow_and_feather_behave():
    base = face_mask(256, None, (128, 128), 120, feather=0.0)
    grown = face_mask(256, None, (128, 128), 120, feather=0.0, grow=0.05)
    eroded = face_mask(256, None, (128, 128), 120, feather=0.0, grow=-0.05)
    assert eroded.sum() < base.sum() < grown.sum()
    soft = face_mask(256, None, (128, 128), 120, feather=0.1)
    partial = lambda m: np.count_nonzero((m > 0.02) & (m < 0.98))  # noqa: E731
    assert partial(soft) > 4 * partial(base)


def test_mesh_hull_mask_follows_landmarks():
    pts = np.array([[100, 60, 0], [160, 100, 0], [130, 190, 0], [70, 150, 0]], float)
    mask = face_mask(256, pts, (128, 128), 120, feather=0.0)
    assert mask[120, 120] == 1.0 and mask[20, 20] == 0.0 and mask[60, 200] == 0.0


def test_combined_mask_is_max_of_faces(rolled_scene):
    faces = [truth_face(t) for t in rolled_scene.faces[:3]]
    aligned = [align_face(rolled_scene.image, f, size=256) for f in faces]
    both = combined_mask(rolled_scene.image.shape, aligned)
    singles = [combined_mask(rolled_scene.image.shape, [a]) for a in aligned]
    assert both.dtype == np.float32 and both.shape == rolled_scene.image.shape[:2]
    assert np.allclose(both, np.maximum.reduce(singles))
    for t, single in zip(rolled_scene.faces[:3], singles, strict=True):
        x, y = (round(v) for v in t.centre)
        assert single[y, x] > 0.9
    assert combined_mask((50, 60, 3), []).shape == (50, 60)


def test_person_mask_and_background_removal(portrait):
    aligned = align_face(portrait.image, truth_face(portrait.faces[0]), size=256)
    person = person_mask(aligned.crop)
    assert person.shape == (256, 256) and person.min() >= 0 and person.max() <= 1
    assert person[128, 128] > 0.5  # the face itself is person
    cut = remove_background(aligned.crop, person)
    assert np.array_equal(cut[person >= 1.0], aligned.crop[person >= 1.0])
    assert (cut[person == 0] == 255).all()
