"""MTCNN's R-Net and O-Net through LiteRT and numpy, P-Net through LiteRT (bump_backend/faces/mtcnn.py), their weights
read without torch (torch_state.py), and the weak-proposal second look they give the face search (detect.rescued)."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from faces_helpers import darkened_face, roll_error, without_second_tries
from torch import nn
from torch.nn import functional as F

from bump_backend.faces import FaceFinderSettings, detect, find_faces, finder, groundtruth, mtcnn, runtime, torch_state
from bump_backend.faces.finder import BLAZE_TO_SQUARE
from bump_backend.faces.groundtruth import clutter
from bump_backend.faces.transform import roll_of
from bump_backend.faces.types import Face

torch.set_num_threads(1)


class TorchRNet(nn.Module):
    """The published R-Net, written with torch here only to check the numpy one against it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        return torch.softmax(self.dense5_1(self.trunk(x)), dim=1)[:, 1]

    def trunk(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x))
        return self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))

    def heads(self, x):
        """The box offsets (the published net's other output)."""
        return self.dense5_2(self.trunk(x))


class TorchONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def trunk(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x))
        return self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))

    def forward(self, x):
        return torch.softmax(self.dense6_1(self.trunk(x)), dim=1)[:, 1]

    def heads(self, x):
        """The box offsets and landmark points (the published net's other two outputs)."""
        x = self.trunk(x)
        return torch.cat([self.dense6_2(x), self.dense6_3(x)], dim=1)


class TorchPNet(nn.Module):
    """The published P-Net, written with torch here only to check the LiteRT one against it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return torch.softmax(self.conv4_1(x), dim=1)[:, 1]


def _torch_scores(net: nn.Module, crops: np.ndarray, outputs=None) -> np.ndarray:
    """``net``'s face probabilities (``outputs``: another of its methods) for N x H x W x 3 uint8 crops."""
    batch = torch.from_numpy((crops.astype(np.float32) - 127.5) * 0.0078125).permute(0, 3, 1, 2)
    with torch.inference_mode():
        return (outputs or net)(batch).numpy()


def _random_net(cls, seed: int, spread: float = 0.05) -> nn.Module:
    torch.manual_seed(seed)
    net = cls().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, spread)
    return net


@pytest.mark.parametrize("litert", [True, False], ids=["litert", "numpy"])
@pytest.mark.parametrize("small", [True, False])
def test_nets_match_torch_on_random_weights_saved_and_loaded(tmp_path, small, litert, monkeypatch):
    """Both ways of running the nets: the ``.tflite`` model written in memory (tflite_graph) and numpy."""
    monkeypatch.setattr(mtcnn, "LITERT", litert)
    net = _random_net(TorchRNet if small else TorchONet, 3)
    path = tmp_path / ("rnet.pt" if small else "onet.pt")
    torch.save(net.state_dict(), path)
    size = mtcnn.R_INPUT if small else mtcnn.INPUT
    crops = np.random.default_rng(0).integers(0, 256, (69, size, size, 3), dtype=np.uint8)  # batches 64, 4 and 1
    ours = mtcnn.load(path, small)(crops)
    assert ours.shape == (69,)
    np.testing.assert_allclose(ours, _torch_scores(net, crops), atol=2e-5)
    assert np.all((ours > 0) & (ours < 1)) and float(np.ptp(ours)) > 1e-4  # not saturated: the check means something
    # The box offsets (and O-Net's landmark points) come out beside the probability.
    probability, more = mtcnn.load(path, small).read(crops)
    np.testing.assert_allclose(probability, ours, atol=1e-6)
    np.testing.assert_allclose(more, _torch_scores(net, crops, net.heads), atol=2e-5)


@pytest.mark.parametrize("litert", [True, False], ids=["litert", "numpy"])
@pytest.mark.parametrize("small", [True, False])
def test_shipped_weights_read_without_torch_equal_torch_load_and_score_alike(small, litert, monkeypatch):
    monkeypatch.setattr(mtcnn, "LITERT", litert)
    path = mtcnn.weights_path(mtcnn.R_WEIGHTS_FILE if small else mtcnn.WEIGHTS_FILE)
    ours = torch_state.load(path)
    theirs = torch.load(path, map_location="cpu", weights_only=True)
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name], value.numpy())
    reference = (TorchRNet if small else TorchONet)().eval()
    reference.load_state_dict(theirs)
    image = groundtruth.source_image("astronaut")
    crops = np.stack([mtcnn.upright_crop(image, (225.0, 117.0), 90.0, r, mtcnn.R_INPUT if small else mtcnn.INPUT)
                      for r in (0.0, 90.0, 180.0, 33.0)])
    np.testing.assert_allclose(mtcnn.load(None, small)(crops), _torch_scores(reference, crops), atol=1e-4)


@pytest.mark.skipif(not runtime.litert_available(), reason="P-Net runs through LiteRT only")
def test_p_net_matches_torch_on_random_weights_saved_and_loaded(tmp_path):
    net = _random_net(TorchPNet, 5, 0.1)
    torch.save(net.state_dict(), tmp_path / "pnet.pt")
    ours = mtcnn.load_proposal(tmp_path / "pnet.pt")
    rng = np.random.default_rng(0)
    for height, width in ((12, 12), (96, 160), (160, 96), (96, 160)):  # one interpreter resized per shape, then reused
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        got = ours.face_map(image)
        assert got.shape == ((height - 2) // 2 - 4, (width - 2) // 2 - 4)
        np.testing.assert_allclose(got, _torch_scores(net, image[None])[0], atol=2e-5)
        assert float(np.ptp(got)) > 1e-3 or got.size == 1  # not saturated: the check means something


@pytest.mark.skipif(not runtime.litert_available(), reason="P-Net runs through LiteRT only")
def test_shipped_p_net_weights_score_like_torch():
    path = mtcnn.weights_path(mtcnn.P_WEIGHTS_FILE)
    reference = TorchPNet().eval()
    reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    assert torch_state.load(path).keys() == reference.state_dict().keys()
    image = groundtruth.source_image("astronaut")[:256, :256]
    image = np.ascontiguousarray(image[::4, ::4])  # her face at ~20 px
    np.testing.assert_allclose(mtcnn.load_proposal().face_map(image), _torch_scores(reference, image[None])[0], atol=1e-4)


def test_torch_state_reads_both_formats_and_strided_tensors(tmp_path):
    state = {"a": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(), "b": torch.tensor([1, 2], dtype=torch.int64),
             "c": torch.ones(2, 2, dtype=torch.float16)}
    torch.save(state, tmp_path / "zip.pt")
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("zip.pt", "legacy.pt"):
        read = torch_state.load(tmp_path / name)
        for key, value in state.items():
            np.testing.assert_array_equal(read[key], value.numpy())
            assert read[key].dtype == value.numpy().dtype


def test_torch_state_refuses_what_is_not_a_plain_state_dict(tmp_path):
    (tmp_path / "text.pt").write_text("not a model")
    with pytest.raises(torch_state.StateDictError, match="not a torch file"):
        torch_state.load(tmp_path / "text.pt")
    torch.save({"net": nn.Linear(2, 2)}, tmp_path / "module.pt")  # a pickled module, not a state dict
    with pytest.raises(torch_state.StateDictError, match="not a plain state dict"):
        torch_state.load(tmp_path / "module.pt")
    cut = tmp_path / "cut.pt"
    torch.save({"w": torch.ones(1000)}, cut, _use_new_zipfile_serialization=False)
    cut.write_bytes(cut.read_bytes()[:-100])
    with pytest.raises(torch_state.StateDictError, match="cut short"):
        torch_state.load(cut)


class _Payload:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # would create the marker file if it ran


@pytest.mark.parametrize("where", ["header", "object"])
def test_a_pickle_payload_is_refused_before_it_runs(tmp_path, where):
    """Only the names a state dict of plain tensors needs are resolved, in every pickle of the file."""
    import pickle

    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        if where == "header":
            pickle.dump(_Payload(marker), f, protocol=2)
        else:
            for part in (torch_state.LEGACY_MAGIC, 1001, {"little_endian": True}, {"w": _Payload(marker)}):
                pickle.dump(part, f, protocol=2)
    with pytest.raises(torch_state.StateDictError, match="not a plain state dict: it refers to io.open"):
        torch_state.load(path)
    assert not marker.exists()


def test_the_wheels_weights_are_checked_before_they_are_read(tmp_path, monkeypatch):
    monkeypatch.setitem(mtcnn.WEIGHTS_SHA256, mtcnn.WEIGHTS_FILE, "0" * 64)
    monkeypatch.setattr(mtcnn, "_loaded", {})
    with pytest.raises(ValueError, match="not the file of facenet-pytorch 2.6.0"):
        mtcnn.load()


def test_wrong_weights_are_named_in_the_error(tmp_path):
    torch.save({"conv1.weight": torch.ones(2, 3, 3, 3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt does not hold MTCNN O-Net weights"):
        mtcnn.load(tmp_path / "other.pt")


def test_missing_weights_say_how_to_install_them(monkeypatch):
    monkeypatch.setattr(mtcnn, "WEIGHTS_PACKAGE", "no_such_package_here")
    with pytest.raises(FileNotFoundError, match="requirements-nodeps.txt"):
        mtcnn.weights_path()
    assert not mtcnn.available()
    monkeypatch.setattr(detect, "RESCUE", True)
    assert not detect.use_rescue()  # the search runs on without the second look


def test_quarter_turns_of_one_crop_are_the_crops_at_quarter_rolls():
    image = groundtruth.source_image("grace_hopper")
    upright = mtcnn.upright_crop(image, (264.0, 230.0), 40.0, 0.0)
    for k in range(4):  # without area-averaging (a shrink of at most AA_SCALE) the turns are exact
        np.testing.assert_array_equal(np.rot90(upright, k), mtcnn.upright_crop(image, (264.0, 230.0), 40.0, 90.0 * k))
    turned = mtcnn.quarter_turn_scores(image, [((264.0, 230.0), 40.0)])
    direct = mtcnn.scores(image, [((264.0, 230.0), 40.0, 90.0 * k) for k in range(4)])
    np.testing.assert_allclose(turned[0], direct, atol=1e-5)
    face = mtcnn.quarter_turn_scores(image, [((264.0, 230.0), 200.0)])[0]
    assert int(np.argmax(face)) == 0 and face[0] > 0.99  # upright, her face reads as one


def test_quarter_turns_from_an_offset_are_the_crops_at_those_rolls():
    image = groundtruth.source_image("grace_hopper")
    read = mtcnn.quarter_turn_scores(image, [((264.0, 230.0), 40.0)], small=True, offsets=(0.0, 45.0))
    rolls = [0.0, 90.0, 180.0, 270.0, 45.0, 135.0, 225.0, 315.0]  # column 4 j + k: offsets[j] + 90 k
    direct = mtcnn.scores(image, [((264.0, 230.0), 40.0, r) for r in rolls], small=True)
    np.testing.assert_allclose(read[0], direct, atol=1e-5)


@pytest.mark.parametrize("source", ["grace_hopper", "astronaut"])
@pytest.mark.parametrize("shift", [0.25, 0.35])
def test_r_nets_box_offsets_bring_an_off_centre_square_back_onto_the_face(source, shift):
    """P-Net's peaks lie up to a third of a 24 px face off its centre, where O-Net reads less (detect.o_net_rolls)."""
    image = clutter(np.random.default_rng(8), 200, 200)
    truth = groundtruth.place_face(image, source, (100.0, 100.0), 32.0, 30.0)
    off = (100.0 + shift * 32.0 * math.cos(math.radians(30.0)), 100.0 + shift * 32.0 * math.sin(math.radians(30.0)))
    (centre, side), = mtcnn.box_regressed(image, [(off, 32.0, 30.0)])
    assert math.dist(centre, truth.centre) < 0.7 * math.dist(off, truth.centre)  # its box is not our square
    assert 0.9 * truth.size < side < 1.5 * truth.size


@pytest.mark.parametrize("roll", [45.0, -135.0])
def test_r_net_reads_a_face_between_quarter_turns_at_the_turn_between(roll):
    """A square whose quarter turns read under the caller's bar is read half way between them too
    (detect.R_NET_OFFSETS); there the face at 45° off the quarter turns reads best."""
    image, truth = darkened_face("grace_hopper", roll)
    quarter = mtcnn.quarter_turn_scores(image, [(truth.centre, truth.size)], small=True)[0]
    assert 0.5 < quarter.max() < 0.7  # no quarter turn reads it surely
    best, rolls = detect.r_net_turns(image, [(truth.centre, truth.size)], bar=0.8)
    assert best[0] > 0.9 and roll_error(rolls[0], roll) < 1e-6
    best, rolls = detect.r_net_turns(image, [(truth.centre, truth.size)], bar=0.5)  # it passes at a quarter turn
    assert best[0] == pytest.approx(quarter.max()) and rolls[0] % 90.0 == 0.0


@pytest.mark.parametrize(("source", "roll"), [("grace_hopper", 45.0), ("grace_hopper", -135.0), ("astronaut", -40.0),
                                              ("astronaut", 140.0)])
def test_o_net_reads_a_square_r_net_turned_upside_down_half_a_turn_on(source, roll, monkeypatch):
    """R-Net's turn pick for a 24 px face is often upside down, and the square a P-Net peak off the face's centre:
    O-Net then reads it under its bar, and the square at half a turn on (or R-Net's box-regressed one) is read."""
    image = clutter(np.random.default_rng(8), 200, 200)
    truth = groundtruth.place_face(image, source, (100.0, 100.0), 24.0, roll)
    square = [((truth.centre[0] + 0.3 * truth.size, truth.centre[1]), truth.size, float(truth.roll + 180.0))]
    first, _ = detect.starting_rolls(image, square, detect.SMALL_O)
    assert first[0] < detect.SMALL_O
    scores, rolls, squares = detect.o_net_rolls(image, square, detect.SMALL_O)
    assert scores[0] >= detect.SMALL_O and roll_error(rolls[0], truth.roll) < 15.0
    assert math.dist(squares[0][0], truth.centre) <= math.dist(square[0][0], truth.centre) + 1e-6
    monkeypatch.setattr(detect, "ONET_RETRY", False)
    assert detect.o_net_rolls(image, square, detect.SMALL_O)[0][0] == pytest.approx(first[0])


@pytest.mark.parametrize(("source", "roll", "off"), [("grace_hopper", 60.0, -30.0), ("grace_hopper", -40.0, 40.0),
                                                     ("astronaut", 10.0, 40.0), ("astronaut", -40.0, 40.0)])
def test_o_net_reads_a_dark_face_again_at_the_roll_of_its_own_eye_points(source, roll, off, monkeypatch):
    """R-Net picks a 24 px face's roll on a 45° grid; O-Net read dark faces 30-40° off it under its bar, at the
    other tries too, and at the roll its eye points give there surely (detect.ONET_EYE_RETRY)."""
    image, truth = darkened_face(source, roll)
    square = [(truth.centre, truth.size, float(truth.roll + off))]
    first, _ = detect.starting_rolls(image, square, detect.SMALL_O)
    assert detect.ONET_EYE_FROM <= first[0] < detect.SMALL_O
    scores, rolls, _ = detect.o_net_rolls(image, square, detect.SMALL_O)
    assert scores[0] >= detect.SMALL_O and roll_error(rolls[0], truth.roll) < 5.0
    monkeypatch.setattr(detect, "ONET_EYE_RETRY", False)
    monkeypatch.setattr(detect, "ONET_RETRY_QUARTERS", False)  # its reads at the quarter turns beside reach the bar too
    monkeypatch.setattr(detect, "ONET_SHIFT_STEP", None)  # ... and so do some of its shifted reads
    assert detect.o_net_rolls(image, square, detect.SMALL_O)[0][0] < detect.SMALL_O


def _weak(centre, side: float, score: float = 0.38) -> detect.Candidate:
    return detect.Candidate(np.array(centre, float), side, 0.0, score, np.zeros((6, 2)), 0)


@pytest.mark.parametrize("landmark_roll", [True, False], ids=["landmark-roll", "quarter-turn"])
@pytest.mark.parametrize(("source", "roll"), [("grace_hopper", 180.0), ("grace_hopper", 90.0), ("grace_hopper", -90.0),
                                              ("grace_hopper", 160.0), ("astronaut", 135.0), ("astronaut", 30.0),
                                              ("astronaut", -130.0)])
def test_a_weak_proposal_on_a_face_is_rescued_at_its_roll_and_clutter_is_not(source, roll, landmark_roll, monkeypatch):
    """A face only weakly proposed (an upright window's 0.3-0.45, traced on the benchmark for turned faces of
    unseen people) comes back at its own roll, read from O-Net's landmark points (detect.LANDMARK_ROLL), or else
    turned to R-Net's best quarter turn; weak proposals on clutter do not come back."""
    monkeypatch.setattr(detect, "LANDMARK_ROLL", landmark_roll)
    image = clutter(np.random.default_rng(8), 320, 320)
    truth = groundtruth.place_face(image, source, (160.0, 160.0), 40.0, roll)
    side = truth.size / BLAZE_TO_SQUARE
    on_clutter = [_weak(c, s) for c, s in [((50, 60), 40.0), ((270, 70), 30.0), ((60, 270), 50.0), ((260, 260), 36.0)]]
    rescued = detect.rescued(image, [_weak(truth.centre, side)] + on_clutter, [])
    assert len(rescued) == 1
    assert math.dist(rescued[0].centre, truth.centre) < 1e-6
    if landmark_roll:
        assert roll_error(rescued[0].roll, truth.roll) < 6.0
    else:
        assert rescued[0].roll % 90.0 == 0.0
        if source == "grace_hopper":  # the astronaut's photo reads >= 0.9 at several turns: R-Net's pick is any
            assert roll_error(rescued[0].roll, 90.0 * round(truth.roll / 90.0)) < 1e-6
    assert rescued[0].rotation == round(rescued[0].roll)  # the re-check turns the crop from there


@pytest.mark.parametrize("roll", [0.0, 37.0, -120.0])
def test_o_nets_landmark_points_lie_on_the_face_in_image_pixels(roll):
    """The five points of a face read at a quarter turn near its roll map back onto it: the eyes near the pasted
    eyes (the subject's right eye first), so their line gives the roll (detect.LANDMARK_ROLL)."""
    image = clutter(np.random.default_rng(3), 320, 320)
    truth = groundtruth.place_face(image, "grace_hopper", (150.0, 170.0), 64.0, roll)
    turn = 90.0 * round(roll / 90.0)
    probability, points = mtcnn.landmark_readings(image, [(truth.centre, truth.size / BLAZE_TO_SQUARE, turn)])
    assert probability[0] > 0.9 and points.shape == (1, 5, 2)
    assert math.dist(points[0, 0], truth.right_eye) < 0.12 * truth.size
    assert math.dist(points[0, 1], truth.left_eye) < 0.12 * truth.size
    assert roll_error(roll_of(points[0, 0], points[0, 1]), truth.roll) < 8.0
    assert math.dist(points[0, 2], truth.centre) < 0.25 * truth.size  # the nose, near the square's middle


def test_weak_proposals_beside_a_strong_one_are_left_to_its_re_check(monkeypatch):
    image = clutter(np.random.default_rng(8), 320, 320)
    truth = groundtruth.place_face(image, "astronaut", (160.0, 160.0), 40.0, 180.0)
    strong = _weak(truth.centre, 36.0, 0.8)
    looked = []
    real = mtcnn.quarter_turn_scores
    monkeypatch.setattr(mtcnn, "quarter_turn_scores", lambda *a, **k: looked.append(a) or real(*a, **k))
    assert detect.rescued(image, [_weak(np.array(truth.centre) + 5, 34.0)], [strong]) == []
    assert looked == []  # no network was run for it


def test_a_much_larger_cluster_does_not_keep_a_weak_face_from_the_second_look(monkeypatch):
    """A clutter cluster many times a face's size covers its place by half its own side, but it is not that face's
    proposal (traced on the second tune part: a 334 px cluster 118 px from a 32 px face at -179°)."""
    image = clutter(np.random.default_rng(8), 320, 320)
    truth = groundtruth.place_face(image, "astronaut", (100.0, 110.0), 32.0, -179.0)
    side = truth.size / BLAZE_TO_SQUARE
    huge = _weak((190.0, 180.0), 300.0, 0.7)  # its centre 114 px off, within half its side
    assert detect.places_of(_weak(truth.centre, side), np.array([huge.centre]), np.array([huge.side])).all()
    rescued = detect.rescued(image, [_weak(truth.centre, side)], [huge])
    assert len(rescued) == 1 and roll_error(rescued[0].roll, truth.roll) < 6.0
    assert detect.rescued(image, [], [huge], [_weak(truth.centre, side, 0.25)])  # a faint one too
    monkeypatch.setattr(detect, "RESCUE_BLOCK_RATIO", None)  # before the sixteenth pass: any cluster blocked it
    assert detect.rescued(image, [_weak(truth.centre, side)], [huge]) == []
    # A cluster up to RESCUE_BLOCK_RATIO times the face's side still leaves it to its own re-check.
    monkeypatch.setattr(detect, "RESCUE_BLOCK_RATIO", 2.0)
    assert detect.rescued(image, [_weak(truth.centre, side)], [_weak(np.add(truth.centre, (15.0, 0.0)), 50.0, 0.7)]) == []


def test_a_cluster_whose_re_check_saw_no_face_does_not_keep_a_weak_face_from_the_second_look(monkeypatch):
    """detect.RESCUE_WHERE_UNSEEN (issue 17's twenty-first pass): a cluster up to twice a weak proposal's size leaves
    that place to its own re-check; where the re-check saw nothing there, the weak proposal gets the second look after
    all, each member of a merged one apart (traced on the second tune part: a 38 px proposal on a 32 px face merged
    into a 75 px one, beside a 72 px clutter cluster the re-check found empty). O-Net's second tries (the twenty-fifth
    pass) read the merged square's face too: off here, so the rule is seen alone."""
    without_second_tries(monkeypatch)
    image = clutter(np.random.default_rng(8), 320, 320)
    truth = groundtruth.place_face(image, "astronaut", (150.0, 170.0), 32.0, 81.0)
    side = truth.size / BLAZE_TO_SQUARE
    cluster = _weak(np.add(truth.centre, (18.0, 10.0)), 1.8 * side, 0.5)  # under twice the weak proposal: it blocks
    on_face = _weak(truth.centre, side)
    merged = _weak(np.add(truth.centre, (6.0, 8.0)), 2 * side)  # what merging left: R-Net reads nothing at its square
    merged.members = [merged, on_face]
    assert detect.rescued(image, [on_face], [cluster]) == []
    assert detect.rescued(image, [merged], []) == []
    floor = FaceFinderSettings().recheck_floor
    found = detect.rescued_where_unseen(image, [merged], [cluster], [None], floor)
    assert len(found) == 1 and roll_error(found[0].roll, truth.roll) < 8.0
    assert math.dist(found[0].centre, truth.centre) < 0.25 * truth.size
    read_below = dataclasses.replace(cluster, score=floor - 0.05)
    assert len(detect.rescued_where_unseen(image, [merged], [cluster], [read_below], floor)) == 1
    read_a_face = dataclasses.replace(cluster, score=floor + 0.1)
    assert detect.rescued_where_unseen(image, [merged], [cluster], [read_a_face], floor) == []


def test_a_blurred_32_px_face_beside_empty_clutter_is_found_through_the_second_look_where_unseen(monkeypatch):
    """End to end: the 32 px face at 59° of this blurred scene is found only with RESCUE_WHERE_UNSEEN."""
    rng = np.random.default_rng(310)
    rolls = [float(rng.uniform(-180, 180)) for _ in range(3)]
    scene = groundtruth.make_scene(rng, 640, 480, [(32, rolls[0]), (40, rolls[1]), (32, rolls[2])], damage="blur")
    truth = next(t for t in scene.faces if abs(t.roll - 59.0) < 1.0)
    settings = FaceFinderSettings(min_face_size=24, skip_smaller_than=0)

    def found() -> list[Face]:
        result = find_faces(scene.image, settings=settings)
        return [f for f in result.faces + [s.face for s in result.skipped]
                if math.dist(f.centre, truth.centre) < 0.5 * truth.size and 0.6 < f.size / truth.size < 1.6]

    without_second_tries(monkeypatch)  # they find it too (the twenty-fifth pass): off, so the rule is seen alone
    monkeypatch.setattr(detect, "LARGER_RETRY", False)  # and the retry as a larger face (the forty-third pass)
    faces = found()
    assert len(faces) == 1 and roll_error(faces[0].roll, truth.roll) < 10.0
    monkeypatch.setattr(detect, "RESCUE_WHERE_UNSEEN", False)
    by_yunet = found()  # a re-check reading under the floor is left there, refined at YuNet's best roll (27th pass)
    assert len(by_yunet) == 1 and by_yunet[0].extra["yunet_turn"] >= finder.YUNET_VOUCHES
    monkeypatch.setattr(finder, "ROLL_SEARCH_UNDER_FLOOR", False)
    assert found() == []


def test_faint_proposals_get_the_second_look_only_where_no_weak_or_strong_one_lies(monkeypatch):
    """A face proposed at 0.2-0.3 only (detect.RESCUE_FAINT) is rescued like a weak one; a faint proposal beside a
    weak one is left to that one's second look, and beside a strong one to its re-check."""
    image = clutter(np.random.default_rng(8), 320, 320)
    truth = groundtruth.place_face(image, "grace_hopper", (160.0, 160.0), 40.0, 175.0)
    side = truth.size / BLAZE_TO_SQUARE
    faint = _weak(truth.centre, side, 0.25)
    rescued = detect.rescued(image, [], [], [faint])
    assert len(rescued) == 1 and roll_error(rescued[0].roll, truth.roll) < 6.0
    looked = []
    real = mtcnn.quarter_turn_scores
    monkeypatch.setattr(mtcnn, "quarter_turn_scores", lambda im, squares, **k: looked.append(len(squares))
                        or real(im, squares, **k))
    on_clutter = _weak((60.0, 60.0), 36.0, 0.35)
    assert detect.rescued(image, [on_clutter], [], [_weak((64.0, 58.0), 34.0, 0.25)]) == []
    assert looked == [1]  # the weak one alone was read
    assert detect.rescued(image, [], [_weak(truth.centre, side, 0.8)], [faint]) == []
    assert looked == [1]


def test_the_second_look_runs_without_torch():
    """The face search never imports torch (``sequence --analyse-only`` loads no model library): the weights
    are read by torch_state, the networks run through LiteRT or numpy."""
    code = (
        "import sys, numpy as np\n"
        "from bump_backend.faces import detect, groundtruth, mtcnn, transform\n"
        "image = groundtruth.clutter(np.random.default_rng(8), 200, 200)\n"
        "truth = groundtruth.place_face(image, 'astronaut', (100.0, 100.0), 40.0, 180.0)\n"
        "weak = detect.Candidate(np.array(truth.centre), 36.0, 0.0, 0.4, np.zeros((6, 2)), 0)\n"
        "assert [abs(transform.wrap(c.roll - truth.roll)) < 6.0 for c in detect.rescued(image, [weak], [])] == [True]\n"
        "assert mtcnn.scores(image, [(truth.centre, 40.0, 180.0)])[0] > 0.5\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("roll", [180.0, -100.0])
def test_a_face_the_windows_propose_only_weakly_reaches_the_re_check_through_the_second_look(roll, monkeypatch):
    """End to end through detect.detect: with a proposal threshold no window reaches (0.99) every window detection
    of the face is weak, so it is found only through the second look, at its roll."""
    image = clutter(np.random.default_rng(8), 320, 320)
    truth = groundtruth.place_face(image, "grace_hopper", (150.0, 170.0), 40.0, roll)
    search = dict(min_face=24, rotations=(0,), proposal=0.99, floor=0.6, workers=2, coarse_rotations=())

    def near(found):
        return [c for c in found if math.dist(c.centre, truth.centre) < 0.5 * truth.size]

    assert near(detect.detect(image, **search, second_look=False)[0]) == []  # FaceFinderSettings.second_look
    monkeypatch.setattr(detect, "RESCUE", False)
    assert near(detect.detect(image, **search)[0]) == []
    monkeypatch.setattr(detect, "RESCUE", True)
    found = near(detect.detect(image, **search)[0])
    assert len(found) == 1 and found[0].score >= 0.6
    assert roll_error(found[0].roll, truth.roll) < 15, found[0].roll


def _no_mesh_face(score: float, **extra) -> Face:
    return Face(box=(0.0, 0.0, 30.0, 30.0), score=score, eyes=((10.0, 12.0), (20.0, 12.0)), roll=0.0, yaw=0.0,
                pitch=0.0, source="detector", extra=dict(extra))


def test_a_face_the_mesh_did_not_fit_is_taken_under_the_no_mesh_score_only_when_o_net_vouches():
    settings = FaceFinderSettings()
    assert finder._accepted(_no_mesh_face(finder.NO_MESH_SCORE), settings)
    assert not finder._accepted(_no_mesh_face(0.65), settings)
    assert not finder._accepted(_no_mesh_face(0.65, o_net=finder.O_NET_VOUCHES - 0.01), settings)
    assert finder._accepted(_no_mesh_face(0.65, o_net=finder.O_NET_VOUCHES), settings)
    assert not finder._accepted(_no_mesh_face(settings.confidence - 0.01, o_net=1.0), settings)
    fitted = dataclasses.replace(_no_mesh_face(0.55), landmarks=np.zeros((478, 3)))
    assert finder._accepted(fitted, settings)


def test_clutter_the_mesh_does_not_fit_is_not_vouched_for_by_o_net(monkeypatch):
    """Clutter (found by searching 600 images) that both BlazeFace models score under NO_MESH_SCORE but above
    O_NET_FROM: O-Net is asked, reads ~0.1, and the patch stays refused; had any reading vouched, it would pass."""
    image = groundtruth.background(np.random.default_rng(58), 384, 384)
    settings = FaceFinderSettings(min_face_size=24, skip_smaller_than=0, workers=1)
    monkeypatch.setattr(finder, "O_NET_VOUCHES", 0.0)
    taken = find_faces(image, settings=settings)
    found = taken.faces + [s.face for s in taken.skipped]
    assert len(found) == 1 and found[0].landmarks is None
    assert finder.O_NET_FROM <= found[0].score < finder.NO_MESH_SCORE and found[0].extra["o_net"] < 0.3
    monkeypatch.undo()
    refused = find_faces(image, settings=settings)
    assert not refused.faces and not refused.skipped


def test_numpys_blas_runs_on_one_thread_once_a_network_has_run():
    """OpenBLAS would split R-Net's products over both cores for no gain and then spin on one of them, taking
    it from the search's own workers. Checked in a fresh process (the limit is process-wide), on the numpy path
    (without LiteRT; with it the networks make no BLAS call)."""
    code = (
        "import numpy as np\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from threadpoolctl import ThreadpoolController\n"
        "from bump_backend.faces import groundtruth, mtcnn\n"
        "mtcnn.LITERT = False\n"
        "numpy_blas = lambda: [lib['num_threads'] for lib in ThreadpoolController().info()\n"
        "                      if lib['user_api'] == 'blas' and 'numpy' in lib['filepath']]\n"
        "image = groundtruth.clutter(np.random.default_rng(8), 200, 200)\n"
        "squares = [((60.0 + 10 * i, 100.0), 30.0) for i in range(8)]\n"
        "print(numpy_blas())\n"
        "with ThreadPoolExecutor(2) as pool:\n"
        "    list(pool.map(lambda _: mtcnn.quarter_turn_scores(image, squares, small=True), range(4)))\n"
        "print(numpy_blas())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = done.stdout.strip().splitlines()[-2:]
    assert before == "[2]" and after == "[1]"


def _merged(head: detect.Candidate, *members: detect.Candidate) -> detect.Candidate:
    """``head`` as ``merge`` leaves it: the best-scoring proposal, the others its members."""
    return dataclasses.replace(head, hits=1 + len(members), members=[head, *members])


@pytest.mark.parametrize(("source", "roll"), [("astronaut", 168.0), ("grace_hopper", -100.0)])
def test_a_weak_proposal_over_the_second_look_s_bound_is_looked_at_through_its_member_within_it(source, roll,
                                                                                                  monkeypatch):
    """A face proposed weakly by a box its size, merged under a weaker-than-strong oversize box beside it (a crowd:
    a 112 px box at 0.43 over a 59 px one at 0.39 on a 64 px face), gets the second look through its own box
    (detect.RESCUE_MEMBERS); an oversize proposal with no member within the bound still gets none."""
    image = clutter(np.random.default_rng(8), 320, 320)
    truth = groundtruth.place_face(image, source, (150.0, 160.0), 64.0, roll)
    own = _weak(truth.centre, truth.size / BLAZE_TO_SQUARE, 0.39)
    oversize = _weak(np.add(truth.centre, (21.0, -16.0)), 112.0, 0.43)
    assert oversize.side > detect.RESCUE_MAX_SIDE >= own.side
    rescued = detect.rescued(image, [_merged(oversize, own)], [])
    assert len(rescued) == 1 and math.dist(rescued[0].centre, truth.centre) < 0.1 * truth.size
    assert roll_error(rescued[0].roll, truth.roll) < 10.0
    assert detect.rescued(image, [_merged(oversize, _weak(np.add(truth.centre, (0.0, 4.0)), 150.0, 0.3))], []) == []
    monkeypatch.setattr(detect, "RESCUE_MEMBERS", False)  # before the forty-first pass: the oversize box was skipped
    assert detect.rescued(image, [_merged(oversize, own)], []) == []
