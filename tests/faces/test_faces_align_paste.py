"""Alignment and paste-back on real faces: upright crops, exact transforms, untouched surroundings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from faces_helpers import truth_face
from hypothesis import given, settings
from hypothesis import strategies as st

from bump_backend.faces import align, align_face, combined_mask, paste_back, sd_size, transform


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def test_crop_is_upright_and_transforms_are_exact(rolled_scene):
    for t in rolled_scene.faces:
        aligned = align_face(rolled_scene.image, truth_face(t), size=256)
        assert aligned.crop.shape == (256, 256, 3) and aligned.crop.dtype == np.uint8
        assert aligned.mask.shape == (256, 256) and aligned.mask.dtype == np.float32
        assert np.allclose(transform.compose(aligned.matrix, aligned.inverse), [[1, 0, 0], [0, 1, 0]], atol=1e-9)
        right, left = transform.apply(aligned.matrix, np.array([t.right_eye, t.left_eye]))
        # Upright: the subject's right eye on the crop's left, level with the left eye (source tilt ~3°).
        assert right[0] < left[0]
        assert abs(right[1] - left[1]) < 0.07 * (left[0] - right[0])
        # The face square plus 35 % padding per side fills the crop.
        assert math.isclose(aligned.scale, 256 / (t.size * 1.7), rel_tol=1e-6)


def test_unmodified_round_trip_is_45_db_and_outside_is_bit_identical(rolled_scene):
    image = rolled_scene.image
    out = image
    aligned = [align_face(image, truth_face(t)) for t in rolled_scene.faces]
    for a in aligned:
        out = paste_back(out, a, a.crop)
    mask = combined_mask(image.shape, aligned)
    assert np.array_equal(out[mask == 0], image[mask == 0])
    for a in aligned:
        face = combined_mask(image.shape, [a]) > 0.5
        assert psnr(out[face], image[face]) >= 45, a.face.size


def test_processed_crop_changes_only_inside_the_mask(portrait):
    image = portrait.image
    aligned = align_face(image, truth_face(portrait.faces[0]), size=512)
    rng = np.random.default_rng(0)
    processed = rng.integers(0, 256, aligned.crop.shape, dtype=np.uint8)
    out = paste_back(image, aligned, processed)
    mask = combined_mask(image.shape, [aligned])
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert np.abs(out[mask > 0.9].astype(int) - image[mask > 0.9]).mean() > 40
    assert (mask > 0).mean() < 0.25  # only the face region


def test_generator_output_of_another_size_and_colour_match(portrait):
    image = portrait.image
    aligned = align_face(image, truth_face(portrait.faces[0]), size=256)
    # A "generated" crop: the same face, larger, with a strong colour cast.
    big = np.clip(np.repeat(np.repeat(aligned.crop, 2, axis=0), 2, axis=1).astype(int) + [60, -30, 0], 0, 255)
    big = big.astype(np.uint8)
    plain = paste_back(image, aligned, big)
    matched = paste_back(image, aligned, big, color_match=True)
    face = combined_mask(image.shape, [aligned]) > 0.9
    cast = lambda out: np.abs(out[face].astype(float).mean(0) - image[face].astype(float).mean(0)).max()  # noqa: E731
    assert cast(matched) < 5 < cast(plain)


def test_profile_gets_more_room_on_the_side_it_looks_to(portrait):
    base = truth_face(portrait.faces[0])
    from dataclasses import replace

    looking_right = align_face(portrait.image, replace(base, yaw=80.0), size=256)
    looking_left = align_face(portrait.image, replace(base, yaw=-80.0), size=256)
    centre = np.array([base.centre])
    assert transform.apply(looking_right.matrix, centre)[0, 0] < 128 - 20
    assert transform.apply(looking_left.matrix, centre)[0, 0] > 128 + 20


def test_bad_arguments_are_refused(portrait):
    face = truth_face(portrait.faces[0])
    with pytest.raises(ValueError, match="multiple of 8"):
        align_face(portrait.image, face, size=100)
    with pytest.raises(ValueError, match="padding"):
        align_face(portrait.image, face, padding=-1)
    aligned = align_face(portrait.image, face, size=64)
    with pytest.raises(ValueError, match="processed crop"):
        paste_back(portrait.image, aligned, np.zeros((64, 64), np.uint8))
    assert sd_size(700) == 704 and sd_size(700, 8) == 704 and sd_size(10, 64) == 64


def test_face_partly_outside_the_image(portrait):
    from dataclasses import replace

    face = truth_face(portrait.faces[0])
    h, w = portrait.image.shape[:2]
    shift = w - face.centre[0] - 10
    moved = replace(face, box=(face.box[0] + shift, face.box[1], face.box[2] + shift, face.box[3]))
    aligned = align_face(portrait.image, moved, size=128)
    out = paste_back(portrait.image, aligned, aligned.crop)
    assert out.shape == portrait.image.shape
    mask = combined_mask(portrait.image.shape, [aligned])
    assert np.array_equal(out[mask == 0], portrait.image[mask == 0])


@settings(max_examples=80, deadline=None)
@given(st.integers(-5, 8), st.integers(1, 40), st.integers(1, 40), st.sampled_from([None, 1, 3, 4]), st.booleans())
def test_quarter_turned_is_numpys_rot90(k, height, width, channels, view):
    """OpenCV turns the search's crops (~15x faster than numpy's copy of a turned view): the same pixels, contiguous."""
    rng = np.random.default_rng(height * 41 + width)
    shape = (height + 3, width + 5) + (() if channels is None else (channels,))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    part = image[1:height + 1, 2:width + 2] if view else image[:height, :width].copy()
    turned = align.quarter_turned(part, k)
    assert turned.flags.c_contiguous and np.array_equal(turned, np.rot90(part, k))
