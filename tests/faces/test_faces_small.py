"""MTCNN's P-Net through LiteRT (mtcnn.ProposalNet: blocks, interpreter shapes, refusals) and the small-face
proposals it gives the face search (detect.small_faces, issue 17's fifteenth pass). Its scores against torch's:
test_faces_mtcnn.py."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from faces_helpers import darkened_face, p_net_turn_reads, roll_error, without_second_tries

from bump_backend.faces import FaceFinderSettings, detect, find_faces, groundtruth, mtcnn, runtime
from bump_backend.faces.finder import BLAZE_TO_SQUARE
from bump_backend.faces.groundtruth import clutter

pytestmark = pytest.mark.skipif(not runtime.litert_available(), reason="P-Net runs through LiteRT only")


def test_p_net_keeps_few_interpreter_shapes_per_thread(tmp_path):
    """A folder of images of many sizes must not leave an interpreter (~50 MB at 720x720) per size behind."""
    net = mtcnn.load_proposal()
    for side in (40, 48, 56, 64):
        net.face_map(np.zeros((side, side, 3), np.uint8))
    kept = [key for key in runtime._local.interpreters if key[0] == net.name]
    assert len(kept) == 2 and {key[2] for key in kept} == {56, 64}


@pytest.mark.parametrize("block", [12, 14, 64, 100])
def test_p_net_reads_a_large_image_in_blocks_to_the_same_map(block):
    """Blocks bound the activations a huge image would need; stitched, they give the whole image's map."""
    image = clutter(np.random.default_rng(4), 210, 136)
    net = mtcnn.load_proposal()
    whole = net.face_map(image, block=1000)
    np.testing.assert_allclose(net.face_map(image, block=block), whole, atol=1e-6)
    assert whole.shape == ((136 - 12) // 2 + 1, (210 - 12) // 2 + 1)


def test_p_net_refuses_a_block_it_cannot_pool_like_caffe():
    with pytest.raises(ValueError, match="block side must be even"):
        mtcnn.load_proposal().face_map(np.zeros((64, 64, 3), np.uint8), block=63)


@pytest.mark.parametrize("shape", [(97, 160), (96, 161), (10, 10)])
def test_p_net_refuses_inputs_it_cannot_pool_like_caffe(shape):
    with pytest.raises(ValueError, match="even sides of at least 12 px"):
        mtcnn.load_proposal().face_map(np.zeros((*shape, 3), np.uint8))


@pytest.mark.parametrize("roll", [0.0, 90.0, 180.0, -90.0, 150.0])
def test_a_24_px_face_is_a_p_net_peak_at_its_quarter_turn_where_it_lies(roll):
    """At the quarter turn nearest the face's roll, a peak's square, mapped back from the turned half-scale image
    (not square: the odd turns swap its sides), lies on the face. P-Net alone does not tell the turns apart (it
    reads this face at 0.97-1.0 at every turn); R-Net and O-Net do, at that turn only."""
    image = clutter(np.random.default_rng(3), 320, 240)
    truth = groundtruth.place_face(image, "grace_hopper", (170.0, 110.0), 24.0, roll)
    turn = round(truth.roll / 90.0) % 4
    peaks = [p for p in detect.small_face_peaks(image, turn) if math.dist(p[:2], truth.centre) < 0.5 * truth.size]
    assert len(peaks) == 1
    x, y, score = peaks[0]
    assert score >= detect.SMALL_P and math.dist((x, y), truth.centre) < 6.0
    square = [((x, y), 24.0, 90.0 * turn)]
    assert mtcnn.scores(image, square, small=True)[0] >= detect.SMALL_R and mtcnn.scores(image, square)[0] >= 0.9


def test_small_faces_proposes_the_face_at_its_turn_and_little_clutter():
    rng = np.random.default_rng(11)
    image = clutter(rng, 480, 360)
    truths = [groundtruth.place_face(image, name, centre, 24.0, roll)
              for name, centre, roll in [("astronaut", (100.0, 90.0), 170.0), ("grace_hopper", (330.0, 250.0), -80.0)]]
    found = detect.small_faces(image)
    for truth in truths:
        near = [c for c in found if math.dist(c.centre, truth.centre) < 0.5 * truth.size]
        assert len(near) == 1  # one per place, whichever turns saw it
        assert roll_error(near[0].roll, truth.roll) <= 45.0 + 1e-6 and near[0].rotation == int(near[0].roll)
        assert near[0].score == 0.0  # no prior for the re-check's turn pick
        assert near[0].widest == detect.SMALL_WIDEST  # a reading far larger than P-Net's square is not its face
    assert len(found) <= 4
    # Clutter that R-Net and O-Net read as a face is left to the re-check, which sees few: ~1 per still on the benchmark.
    on_clutter = [len(detect.small_faces(clutter(np.random.default_rng(seed), 480, 360)))
                  for seed in (12, 13, 14, 15)]
    assert sum(on_clutter) <= 4


def _blurred_small_faces(seed: int) -> tuple[np.ndarray, list]:
    """Four 24 px faces at random rolls on clutter, the whole image blurred as a soft background is."""
    rng = np.random.default_rng(seed)
    image = clutter(rng, 480, 360)
    truths = [groundtruth.place_face(image, name, centre, 24.0, float(rng.uniform(-180, 180)))
              for name, centre in [("astronaut", (110.0, 100.0)), ("grace_hopper", (350.0, 110.0)),
                                   ("astronaut", (120.0, 270.0)), ("grace_hopper", (360.0, 260.0))]]
    return cv2.GaussianBlur(image, (0, 0), 1.0 + 0.4 * (seed % 3)), truths


@pytest.mark.parametrize("seed", [27, 31])
def test_the_search_finds_a_small_blurred_face_only_p_net_proposes(seed, monkeypatch):
    """P-Net proposes it; without P-Net (the setting, or the benchmark's switch) the search misses it (with R-Net's
    turns between the quarter turns and O-Net's second tries off: the weak proposals' second look then finds it too)."""
    without_second_tries(monkeypatch)
    image, truths = _blurred_small_faces(seed)
    settings = FaceFinderSettings(min_face_size=24, skip_smaller_than=0)

    def found() -> list[bool]:
        result = find_faces(image, settings=settings)
        faces = result.faces + [s.face for s in result.skipped]
        return [any(math.dist(f.centre, t.centre) < 0.5 * t.size for f in faces) for t in truths]

    with_p_net = found()
    settings = FaceFinderSettings(min_face_size=24, skip_smaller_than=0, small_faces=False)  # the CLI's --no-small-faces
    without = found()
    assert sum(with_p_net) == sum(without) + 1
    assert all(a or not b for a, b in zip(with_p_net, without, strict=True))  # none lost
    settings = FaceFinderSettings(min_face_size=24, skip_smaller_than=0)
    monkeypatch.setattr(detect, "SMALL_FACES", False)  # the benchmark's switch
    assert found() == without


def _upside_down_24_px_face(seed: int):
    """A 320x240 clutter scene with one photo face of 24 px rolled 135-225°, blurred, noisy or JPEG-damaged."""
    rng = np.random.default_rng(seed)
    image = clutter(rng, 320, 240)
    truth = groundtruth.place_face(image, ("astronaut", "grace_hopper")[seed % 2], (160.0, 120.0), 24.0,
                                   float(rng.uniform(135, 225)))
    return groundtruth.degrade(image, ("blur", "noise", "jpeg")[seed % 3], rng), truth


@pytest.mark.parametrize("seed", [1, 14, 16, 31])
def test_p_net_read_upside_down_proposes_small_faces_it_misses_upright(seed, monkeypatch):
    """P-Net's peaks on the image turned half round are not those on it upright (detect.SMALL_TURNS, issue 17's
    twentieth pass): these upside-down faces are proposed only from there, at their roll (without O-Net's second
    tries: half a turn on, they read the upright peak too)."""
    without_second_tries(monkeypatch)
    image, truth = _upside_down_24_px_face(seed)

    def near(found):
        return [c for c in found if math.dist(c.centre, truth.centre) < 0.5 * truth.size]

    assert detect.SMALL_TURNS == (0, 2)
    proposed = near(detect.small_faces(image))
    assert len(proposed) == 1 and roll_error(proposed[0].roll, truth.roll) <= 45.0
    monkeypatch.setattr(detect, "SMALL_TURNS", (0,))
    # Read upright only, one of these faces peaks faintly there, and that peak stirred (SMALL_FAINT, the forty-fifth
    # pass) reads it at the turn it is at: that rule is left out here, to show what the half turn alone does.
    monkeypatch.setattr(detect, "SMALL_FAINT", None)
    assert near(detect.small_faces(image)) == []


def test_a_blurred_upside_down_24_px_face_is_found_through_p_net_read_upside_down(monkeypatch):
    image, truth = _upside_down_24_px_face(54)
    settings = FaceFinderSettings(min_face_size=24, skip_smaller_than=0)

    def found():
        result = find_faces(image, settings=settings)
        return [f for f in result.faces + [s.face for s in result.skipped]
                if math.dist(f.centre, truth.centre) < 0.35 * truth.size]

    assert len(found()) == 1
    # Without P-Net's upside-down peaks the window proposals' re-check reads it under the floor, where YuNet and the
    # full-range model see it (detect.UNDER_FLOOR, the twenty-second pass): that rule is left out here.
    monkeypatch.setattr(detect, "UNDER_FLOOR", False)
    monkeypatch.setattr(detect, "SMALL_TURNS", (0,))
    monkeypatch.setattr(detect, "ONET_SHIFT_STEP", None)  # O-Net's shifted reads of its upright squares find it too
    assert found() == []


def test_p_net_reads_crops_to_the_whole_images_cells():
    """Crops starting at even pixels pool the same pixel pairs as the whole image: their cells are its cells
    (detect.stirred_peaks reads small crops where a whole turn of the image would cost ~20 ms)."""
    image = clutter(np.random.default_rng(5), 160, 120)
    net = mtcnn.load_proposal()
    whole = net.face_map(image)
    corners = [(0, 0), (40, 18), (136, 96)]
    maps = net.crop_maps(np.stack([image[y:y + 24, x:x + 24] for x, y in corners]))
    assert maps.shape == (3, 7, 7)
    for (x, y), cells in zip(corners, maps, strict=True):
        np.testing.assert_allclose(cells, whole[y // 2:y // 2 + 7, x // 2:x // 2 + 7], atol=1e-6)
    assert net.crop_maps(np.zeros((0, 24, 24, 3), np.uint8)).shape == (0, 7, 7)
    with pytest.raises(ValueError, match="even sides of at least 12 px"):
        net.crop_maps(np.zeros((2, 23, 23, 3), np.uint8))


def _dark_face_at_a_skipped_turn():
    """A darkened 24 px face rolled -95°: P-Net reads it 1.0 at the quarter turn it skips (detect.SMALL_TURNS) and
    0.71-0.83 at those it reads, as it did dark-skinned faces at 75-95° on the tune parts."""
    return darkened_face("astronaut", -95.0)


def test_a_face_p_net_reads_surely_only_at_a_turn_it_skips_is_proposed_where_its_turns_stir(monkeypatch):
    """detect.SMALL_STIR (issue 17's twenty-sixth pass): a peak from SMALL_STIR up to SMALL_P is read at the other
    quarter turns on a small crop around it, and its best cell there is a peak, mapped back onto the face."""
    image, truth = _dark_face_at_a_skipped_turn()
    level = detect.small_face_level(image)
    read = p_net_turn_reads(image, truth)
    assert detect.SMALL_STIR <= max(read[0], read[2]) < detect.SMALL_P <= max(read[1], read[3])
    stirred = [p for p in detect.stirred_peaks(image, level, [truth.centre]) if math.dist(p[:2], truth.centre) < 6.0]
    assert len(stirred) == 1 and stirred[0][2] >= detect.SMALL_P and stirred[0][3] in (1, 3)

    def proposed():
        return [c for c in detect.small_faces(image) if math.dist(c.centre, truth.centre) < 0.5 * truth.size]

    found = proposed()
    assert len(found) == 1 and roll_error(found[0].roll, truth.roll) <= 45.0
    monkeypatch.setattr(detect, "SMALL_STIR", None)  # before the pass
    assert proposed() == []


def test_p_net_reads_no_other_turn_where_it_reads_all_four_or_nothing_stirs(monkeypatch):
    image, truth = _dark_face_at_a_skipped_turn()
    level = detect.small_face_level(image)
    assert detect.stirred_peaks(image, level, []) == []
    assert detect.stirred_peaks(image, level[:20, :20], [truth.centre]) == []  # a level smaller than a crop
    monkeypatch.setattr(detect, "SMALL_TURNS", (0, 1, 2, 3))
    assert detect.stirred_peaks(image, level, [truth.centre]) == []


@pytest.mark.parametrize(("source", "roll"), [("astronaut", 100.0), ("astronaut", -150.0), ("grace_hopper", 100.0)])
def test_a_re_check_reading_far_wider_than_a_small_candidate_does_not_stand_for_it(source, roll):
    """On scenes of 24 px faces the re-check of a P-Net square read a face's head 1.6-2x the square's side, at a wrong
    roll, and refinement kept it: a face reported twice its size (detect.SMALL_WIDEST). A square half the face's side
    here: read up to 2x it, the face's reading stands for it; up to 1.3x, nothing does, yet every turn is read."""
    image = clutter(np.random.default_rng(8), 200, 200)
    truth = groundtruth.place_face(image, source, (100.0, 100.0), 48.0, roll)
    side = 0.55 * truth.size / BLAZE_TO_SQUARE
    wide, _ = detect.recheck_turns(image, truth.centre, side, truth.roll, detect.RECHECK_THRESHOLD)
    assert wide is not None and wide.side > 1.6 * side
    narrow, calls = detect.recheck_turns(image, truth.centre, side, truth.roll, detect.RECHECK_THRESHOLD, widest=1.3)
    assert narrow is None and calls == 4
    fitting, _ = detect.recheck_turns(image, truth.centre, truth.size / BLAZE_TO_SQUARE, truth.roll, detect.RECHECK_THRESHOLD,
                                      widest=1.3)
    assert fitting is not None and roll_error(fitting.roll, truth.roll) < 10.0
