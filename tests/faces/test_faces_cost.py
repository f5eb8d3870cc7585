"""The still search's cost cuts keep its answers: flat check, balanced work, the re-check's full-range
tries and early drop, no second opinion where the short-range evidence decides, the interpreter cap."""

from __future__ import annotations

import numpy as np
import pytest

from bump_backend.faces import FaceFinderSettings, blazeface, detect, finder, mtcnn, runtime
from bump_backend.faces.finder import BLAZE_TO_SQUARE
from bump_backend.faces.groundtruth import background, make_scene

pytest.importorskip("mediapipe")


def test_flat_check_is_numpys_std_over_all_channels():
    rng = np.random.default_rng(2)
    level = np.full((300, 400, 3), 120, np.uint8)
    level[:, :, 1] += rng.integers(0, 2, (300, 400), dtype=np.uint8)  # std ~0.3: flat
    level[100:, 200:] = rng.integers(110, 125, (200, 200, 3), dtype=np.uint8)  # std ~4.3: not flat
    level[:100, 200:, 2] = 115  # channels differ by a constant (std ~2.4 pooled): not flat
    level[200:, :100] = rng.normal(120, 1.9, (100, 100, 3)).clip(0, 255).astype(np.uint8)  # near the threshold
    for x0, y0, x1, y1 in [(0, 0, 128, 128), (200, 100, 400, 300), (150, 50, 278, 178), (200, 0, 400, 100),
                           (0, 200, 100, 300), (0, 0, 400, 300), (10, 210, 90, 290)]:
        region = level[y0:y1, x0:x1]  # a strided view, as tile_jobs passes it
        assert detect._flat(region) == (float(region.std()) < detect.FLAT_STD), (x0, y0)


def test_run_parallel_splits_by_cost_and_keeps_every_item():
    costs = [409600, 409600, 409600, 409600, 331776, 82944, 20736] + [16384] * 8  # a 1440x1440 still's jobs
    chunks = detect.run_parallel(lambda chunk: list(chunk), list(range(len(costs))), 2, cost=lambda i: costs[i])
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(costs)))
    loads = [sum(costs[i] for i in chunk) for chunk in chunks]
    assert len(chunks) == 2 and abs(loads[0] - loads[1]) <= max(costs)
    one_each = detect.run_parallel(lambda chunk: [x * 2 for x in chunk], [3, 1, 2], 2)
    assert one_each == [[6], [2], [4]]  # without a cost: one task per item, results in order


class _RecordingPool:
    """The shared pool, recording what is submitted to it, in order (by the function's name)."""

    def __init__(self, pool):
        self.pool, self.submitted = pool, []

    def submit(self, fn, *args, **kwargs):
        self.submitted.append(getattr(fn, "__name__", "?"))
        return self.pool.submit(fn, *args, **kwargs)

    def map(self, fn, *iterables):
        return self.pool.map(fn, *iterables)


def test_run_parallel_starts_first_what_first_says_and_keeps_the_order(monkeypatch):
    started: list[int] = []

    def one(chunk):
        started.append(chunk[0])
        return chunk[0] * 10

    recording = _RecordingPool(runtime.pool(1))  # one thread: tasks start in the order they were submitted
    monkeypatch.setattr(runtime, "pool", lambda workers: recording)
    results = detect.run_parallel(one, [5, 1, 4, 2], 2, first=lambda item: item)
    assert started == [1, 2, 4, 5] and results == [50, 10, 40, 20]
    assert detect.start_parallel(one, [], 2)() == []
    later = detect.start_parallel(one, [7], 2)  # one task: nothing starts until its result is asked for
    assert started == [1, 2, 4, 5] and later() == [70]


@pytest.fixture
def recording(monkeypatch) -> _RecordingPool:
    """The two-worker shared pool, recording what the search submits to it."""
    pool = _RecordingPool(runtime.pool(2))
    monkeypatch.setattr(runtime, "pool", lambda workers: pool)
    return pool


def _recorded_search(recording: _RecordingPool, scene, switch: str, on: bool, monkeypatch) -> tuple[list, list[str]]:
    """``find_faces`` on ``scene`` (two workers) with ``detect.<switch>`` set to ``on``: the faces (box, score, roll)
    and the names of what it submitted to the pool, in order."""
    monkeypatch.setattr(detect, switch, on)
    recording.submitted.clear()
    result = finder.find_faces(scene.image, settings=FaceFinderSettings(min_face_size=24, skip_smaller_than=0, workers=2))
    return [(f.box, round(f.score, 6), f.roll) for f in result.faces], list(recording.submitted)


def test_overlapped_search_finds_the_same_faces_and_queues_p_net_behind_the_windows(recording, monkeypatch):
    """detect.OVERLAPPED only changes when work starts: P-Net's small faces are queued right behind the windows, before
    any re-check, and the search finds the same faces, scores and all, either way."""
    if not detect.use_small_faces():
        pytest.skip("P-Net's small faces need LiteRT and MTCNN's weights")
    scene = make_scene(np.random.default_rng(23), 480, 480, [(24, 170), (32, 40), (48, 100), (72, -20)],
                       damage="noise")
    found = {}
    for overlapped in (True, False):
        found[overlapped], names = _recorded_search(recording, scene, "OVERLAPPED", overlapped, monkeypatch)
        windows_end = max(i for i, name in enumerate(names) if name == "<lambda>" and i < names.index("small_faces"))
        assert names.index("small_faces") == windows_end + 1 if overlapped else names.index("small_faces") > 0
        if overlapped:
            assert "check" not in names[:names.index("small_faces")]
    assert found[True] == found[False] and len(found[True]) >= 3


def _candidate(centre, side, roll, score, rotation):
    return detect.Candidate(np.array(centre, float), side, roll, score, np.zeros((6, 2)), rotation)


@pytest.fixture
def counted(monkeypatch):
    """Full-range model calls (each roll try is one), through LiteRT or the graph."""
    calls: list = []
    real = blazeface.detect_full_range

    def counting(image):
        calls.append(image.shape)
        return real(image)

    monkeypatch.setattr(blazeface, "detect_full_range", counting)
    return calls


def test_contending_turns_are_asked_round_robin(counted, monkeypatch):
    """Upright and upside-down readings of a real face: the full-range model sees the upright one at the
    face's roll, so the upside-down one is asked once (three times before the round robin)."""
    scene = make_scene(np.random.default_rng(4), 320, 320, [(56, 30)], mirror_chance=0.0)
    truth = scene.faces[0]
    side = truth.size / BLAZE_TO_SQUARE
    for round_robin, expected in ((True, 2), (False, 4)):
        monkeypatch.setattr(detect, "ROUND_ROBIN_TRIES", round_robin)
        counted.clear()
        turns = [_candidate(truth.centre, side, truth.roll + 180, 0.8, 180),
                 _candidate(truth.centre, side, truth.roll, 0.78, 0)]
        chosen = detect._choose_turn(scene.image, turns, prior=0.8)
        assert chosen is not None and chosen.rotation == 0 and chosen.opinion >= detect.SECOND_ENOUGH
        assert len(counted) == expected


def test_weak_proposals_neither_the_full_range_model_nor_the_mesh_sees_are_dropped(counted, monkeypatch):
    """A weak reading (best turn < 0.75) the full-range model sees at no contending turn and roll try is
    dropped unless the mesh fits it, without asking the full-range model again on the same crop."""
    clutter = background(np.random.default_rng(8), 320, 320)
    for centre in [(80.0, 90.0), (200.0, 220.0)]:
        pair = [_candidate(centre, 40.0, 0.0, 0.66, 0), _candidate(centre, 40.0, 90.0, 0.6, 90)]
        counted.clear()
        chosen = detect._choose_turn(clutter, pair, prior=0.6)
        assert chosen.unseen and len(counted) == 2 * len(detect.SECOND_TRIES)  # every contender at every try
        assert finder._face_from_candidate(clutter, chosen, refine=True) is None
        assert len(counted) == 2 * len(detect.SECOND_TRIES)  # and not asked again
    monkeypatch.setattr(detect, "DROP_UNSEEN", False)
    pair = [_candidate((80.0, 90.0), 40.0, 0.0, 0.66, 0), _candidate((80.0, 90.0), 40.0, 90.0, 0.6, 90)]
    chosen = detect._choose_turn(clutter, pair, prior=0.6)
    assert not chosen.unseen and finder._face_from_candidate(clutter, chosen, refine=True) is not None
    monkeypatch.setattr(detect, "DROP_UNSEEN", True)
    # A real face read weakly at turns a quarter off its roll: the full-range model sees it at neither,
    # the mesh fits it and turns the crop, and then the full-range model sees it (a 32 px face at 71°
    # was lost when such readings were dropped before the mesh).
    scene = make_scene(np.random.default_rng(2), 320, 320, [(32, 70)], mirror_chance=0.0)
    truth = scene.faces[0]
    side = truth.size / BLAZE_TO_SQUARE
    off = [_candidate(truth.centre, side, truth.roll - 75, 0.64, 0),
           _candidate(truth.centre, side, truth.roll + 105, 0.6, 180)]
    chosen = detect._choose_turn(scene.image, off, prior=0.6)
    assert chosen.unseen
    face = finder._face_from_candidate(scene.image, chosen, refine=True)
    assert face is not None and face.landmarks is not None and abs(face.roll - truth.roll) < 5
    assert finder._accepted(face, FaceFinderSettings())


def test_a_face_the_short_range_model_decides_gets_no_second_opinion(portrait, counted, monkeypatch):
    """A clear face the mesh fits and the short-range model scores >= 0.75 is accepted on that score, the
    full-range model asked only whether it sees a face there at all (once, at the face's roll); >= 0.85 it is
    asked nothing. The face is the same either way."""
    truth = portrait.faces[0]
    candidate = _candidate(truth.centre, truth.size / BLAZE_TO_SQUARE, truth.roll, 0.9, 0)
    face = finder._face_from_candidate(portrait.image, candidate, refine=True)
    short = face.extra["short_range"]
    assert face.landmarks is not None and short >= finder.MESH_VOUCHED
    assert len(counted) == (0 if short >= finder.SURE_ALONE else 1)
    assert face.score >= short - 1e-4 and "full_range_mirrored" not in face.extra
    monkeypatch.setattr(finder, "VOUCH_NEEDS_SIGHT", False)
    counted.clear()
    vouched = finder._face_from_candidate(portrait.image, candidate, refine=True)
    assert not counted and "full_range" not in vouched.extra and vouched.score == pytest.approx(short, abs=1e-4)
    monkeypatch.setattr(finder, "SKIP_DECISIVE", False)
    asked = finder._face_from_candidate(portrait.image, candidate, refine=True)
    assert counted and "full_range" in asked.extra and asked.score >= face.score
    assert asked.centre == pytest.approx(face.centre) and asked.roll == pytest.approx(face.roll)
    settings = FaceFinderSettings()
    assert finder._accepted(face, settings) and finder._accepted(asked, settings)


@pytest.mark.skipif(not runtime.litert_available(), reason="LiteRT (ai-edge-litert) not installed")
def test_interpreters_kept_per_thread_are_capped_by_input_pixels(monkeypatch):
    monkeypatch.setattr(runtime, "INTERPRETER_PIXELS_PER_THREAD", 128 * 128 * 6)
    monkeypatch.setattr(runtime._local, "interpreters", {}, raising=False)
    for shape in [(1, 128, 128), (4, 128, 128), (1, 256, 128), (2, 128, 128), (1, 512, 512)]:
        runtime.short_range_interpreter(*shape)
    kept = [key[1:] for key in runtime._local.interpreters]
    assert kept == [(1, 512, 512)]  # alone over the budget: kept, every other one let go
    runtime.short_range_interpreter(1, 128, 128)
    runtime.short_range_interpreter(2, 128, 128)
    assert [key[1:] for key in runtime._local.interpreters] == [(1, 128, 128), (2, 128, 128)]
    # The full-range model (one fixed shape) neither counts nor goes: counted, the back-camera model's fixed shape
    # beside it made the windows' interpreters go and be rebuilt every few stills.
    runtime.run_full_range(np.zeros((1, 192, 192, 3), np.float32))
    assert [key[1:] for key in runtime._local.interpreters] == [(1, 128, 128), (2, 128, 128), (1, 192, 192)]
    runtime.short_range_interpreter(1, 256, 128)
    assert [key[1:] for key in runtime._local.interpreters] == [(1, 128, 128), (2, 128, 128), (1, 192, 192),
                                                                (1, 256, 128)]
    runtime.short_range_interpreter(4, 128, 128)  # over the budget: the oldest counted ones go, not the full-range
    assert [key[1:] for key in runtime._local.interpreters] == [(1, 192, 192), (1, 256, 128), (4, 128, 128)]
    # A net made in memory (MTCNN's, a few fixed batch sizes) neither counts nor goes either.
    net = mtcnn.load(small=True)
    net(np.zeros((64, mtcnn.R_INPUT, mtcnn.R_INPUT, 3), np.uint8))
    assert [key[1:] for key in runtime._local.interpreters] == [(1, 192, 192), (1, 256, 128), (4, 128, 128),
                                                                (64, 24, 24)]
    runtime.short_range_interpreter(2, 128, 128)
    assert [key[1:] for key in runtime._local.interpreters] == [(1, 192, 192), (4, 128, 128), (64, 24, 24),
                                                                (2, 128, 128)]
    if runtime.back_model() is not None:  # the back-camera model's fixed shape does not count either
        runtime.run_back(np.zeros((1, 256, 256, 3), np.float32))
        runtime.short_range_interpreter(2, 128, 128)
        assert [key[1:] for key in runtime._local.interpreters] == [(1, 192, 192), (4, 128, 128), (64, 24, 24),
                                                                    (1, 256, 256), (2, 128, 128)]


def test_a_vouched_face_is_asked_on_its_own_crop_before_its_vouch_goes(portrait, counted, monkeypatch):
    """The re-check's full-range 0 was read on the proposal's crop, a few pixels and degrees from the mesh's;
    that model's answer flips 0 <-> 0.7 between such crops, so a vouch needing sight asks on the mesh's crop
    (a 96 px face at 131° was lost on the re-check crop's 0 while its own crop read 0.7)."""
    monkeypatch.setattr(finder, "SURE_ALONE", 1.01)  # every vouched face needs the full-range model's sight
    truth = portrait.faces[0]
    side = truth.size / BLAZE_TO_SQUARE
    seen_nothing = detect.Candidate(np.array(truth.centre, float) + 0.08 * side, side, truth.roll + 6, 0.8,
                                    np.zeros((6, 2)), 0, opinion=0.0)
    face = finder._face_from_candidate(portrait.image, seen_nothing, refine=True)
    assert face.landmarks is not None and face.extra["short_range"] >= finder.MESH_VOUCHED
    assert face.extra["full_range"] >= detect.SECOND_ENOUGH and "full_range_mirrored" not in face.extra
    assert finder._accepted(face, FaceFinderSettings()) and len(counted) >= 1
    monkeypatch.setattr(finder, "VOUCH_SIGHT_AT_MESH", False)
    counted.clear()
    reused = finder._face_from_candidate(portrait.image, seen_nothing, refine=True)
    assert reused.extra["full_range"] == 0.0 and "full_range_mirrored" in reused.extra  # the 0 was taken as read


def test_streamed_second_look_finds_the_same_faces_and_queues_its_re_checks_early(recording, monkeypatch):
    """detect.STREAMED only changes when the second look's re-checks are queued: those of the weak proposals go
    behind the clusters' before the clusters' readings are gathered (so before the second look where a re-check saw
    nothing is asked for), and the search finds the same faces, scores and all, either way."""
    if not detect.use_small_faces():
        pytest.skip("the second look needs LiteRT and MTCNN's weights")
    # Blurred small faces: two weak proposals the second look re-checks (seed chosen for that).
    scene = make_scene(np.random.default_rng(25), 480, 480, [(24, 170), (28, 40), (24, 100), (32, -20), (26, 60)],
                       damage="blur")
    found, early = {}, {}
    for streamed in (True, False):
        found[streamed], names = _recorded_search(recording, scene, "STREAMED", streamed, monkeypatch)
        unseen = names.index("rescued_where_unseen")
        early[streamed] = names[names.index("rescued"):unseen].count("check")
    assert found[True] == found[False] and found[True]
    assert early[True] > early[False]  # the weak proposals' re-checks moved ahead of the unseen places' look
