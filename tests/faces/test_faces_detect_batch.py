"""``faces detect`` over many images in one process, folders, ``--track``, and errors before any model loads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bump_backend.faces import FaceFinderSettings, detect, find_faces
from bump_backend.faces.groundtruth import make_scene
from bump_backend.faces.image_io import ImageError, image_paths, load_image, save_image
from tests.faces.test_faces_cli import run_cli

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(7)
    counts = []
    for i, faces in enumerate([[(64, 150.0)], [(48, -100.0), (72, 20.0)]]):
        scene = make_scene(rng, 480, 360, faces, mirror_chance=0.0)
        assert len(scene.faces) == len(faces)
        save_image(out / f"frame_{i}.png", scene.image)
        counts.append(len(faces))
    (out / "notes.txt").write_text("not an image, and not picked up from the folder")
    return out, counts


def test_folder_and_files_in_one_process_as_json(folder):
    path, counts = folder
    done = run_cli("faces", "detect", str(path), str(path / "frame_0.png"), "--json", "--skip-smaller", "0")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [e["path"] for e in data["images"]] == [str(path / "frame_0.png"), str(path / "frame_1.png"),
                                                    str(path / "frame_0.png")]
    assert [len(e["faces"]) + len(e["skipped"]) for e in data["images"]] == [*counts, counts[0]]
    assert data["load_ms"] > 0 and data["total_ms"] >= data["load_ms"]
    assert all(e["detector_calls"] > 0 for e in data["images"])


def test_debug_over_many_images_writes_each_faces_crop_and_mask(folder, tmp_path):
    """The same debug set as one image's: upright crops, masks and the combined mask of every found face (before,
    only the detections and an all-black mask)."""
    path, counts = folder
    done = run_cli("faces", "detect", str(path), "--skip-smaller", "0", "--debug", str(tmp_path / "dbg"))
    assert done.returncode == 0, done.stderr
    for i, count in enumerate(counts):
        debug = tmp_path / "dbg" / f"frame_{i}"
        found = len(json.loads((debug / "faces.json").read_text())["faces"])
        assert found == count
        assert sorted(p.name for p in debug.glob("face_*_mask.png")) == [f"face_{n:02d}_mask.png" for n in
                                                                          range(1, found + 1)]
        mask = load_image(debug / "combined_mask.png")
        assert mask.max() == 255  # the faces' masks, not an empty image


def test_track_mode_reads_the_list_as_one_sequence(folder):
    path, _ = folder
    frames = [str(path / "frame_0.png")] * 3
    done = run_cli("faces", "detect", *frames, "--track", "5", "--json", "--skip-smaller", "0")
    assert done.returncode == 0, done.stderr
    calls = [e["detector_calls"] for e in json.loads(done.stdout)["images"]]
    assert calls[1] < calls[0] / 3 and calls[2] < calls[0] / 3  # frames 2 and 3 tracked, not searched


def test_one_bad_file_fails_in_one_line_before_anything_runs(folder, tmp_path):
    path, _ = folder
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    done = run_cli("faces", "detect", str(path), str(bad), "--json")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == f"error: {bad}: not an image (unknown or unsupported format)"
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_cli("faces", "detect", str(empty))
    assert done.returncode == 2 and "folder holds no images" in done.stderr
    done = run_cli("faces", "detect", str(path), "--geometry", str(bad))
    assert done.returncode == 2 and "--geometry describes one image" in done.stderr


def test_image_paths_expands_folders_in_order(folder, tmp_path):
    path, _ = folder
    assert image_paths([str(path)]) == [str(path / "frame_0.png"), str(path / "frame_1.png")]
    tiny = tmp_path / "tiny.png"
    save_image(tiny, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ImageError, match="too small"):
        image_paths([str(path), str(tiny)])


def test_tiles_overlap_enough_for_a_face_to_lie_inside_one():
    """A face up to 0.3 of a tile (the next level takes over above) lies wholly inside some tile
    wherever it is: at 25 % overlap a 32 px face straddling two tiles was seen half in each."""
    face = 2 * detect.RATIO_MIN * detect.TILE
    for length in (128, 200, 333, 576, 922, 1152, 1440):
        starts = detect._starts(length)
        for lo in np.arange(0, length - face + 1e-9, 0.5):
            assert any(s <= lo and lo + face <= s + detect.TILE for s in starts), (length, lo)


def test_windows_overlap_enough_for_any_tile_to_lie_inside_one():
    """Windows of a level (``detect.WINDOWS``) overlap by a tile: wherever a 128 px tile of the old
    pyramid could lie, some window holds all of it, so a face is seen with at least a tile's context."""
    for length in (200, 576, 640, 641, 922, 1024, 1152, 1153, 1440, 2304, 4000):
        side, starts = detect.window_layout(length)
        assert starts[0] == 0 and starts[-1] + side == length and side <= detect.WINDOW
        assert side == length or side % 16 == 0
        # as few windows as WINDOW-sized ones would need, no larger than needed
        assert len(starts) == len(detect._starts(length, min(detect.WINDOW, length), detect.WINDOW - detect.WINDOW_OVERLAP))
        for lo in np.arange(0, length - detect.TILE + 1e-9, 0.5):
            assert any(s <= lo and lo + detect.TILE <= s + side for s in starts), (length, lo)


def test_finest_level_windows_overlap_enough_for_its_largest_face():
    """The finest level holds faces of up to 0.3 of a tile (larger ones are the next level's): its windows
    overlap by FINE_OVERLAP, so such a face lies wholly inside one wherever it is, with room to spare."""
    face = 2 * detect.RATIO_MIN * detect.TILE
    assert face + 16 <= detect.FINE_OVERLAP < detect.WINDOW_OVERLAP
    for length in (641, 922, 1024, 1152, 1153, 1440, 2304, 4000):
        side, starts = detect.window_layout(length, detect.FINE_OVERLAP)
        assert starts[0] == 0 and starts[-1] + side == length and side <= detect.WINDOW and side % 16 == 0
        wide, wide_starts = detect.window_layout(length)
        assert side * len(starts) <= wide * len(wide_starts)  # never more level pixels than at a tile's overlap
        for lo in np.arange(0, length - detect.FINE_OVERLAP + 1e-9, 0.5):
            assert any(s <= lo and lo + detect.FINE_OVERLAP <= s + side for s in starts), (length, lo)
    if detect.use_windows():
        image = np.random.default_rng(0).integers(0, 255, (1440, 1440, 3), np.uint8)
        jobs = detect.tile_jobs(image, 24, (0,), True, (0, 90, 180, 270))
        finest = max(j.scale for j in jobs)
        assert {j.rect[2] - j.rect[0] for j in jobs if j.scale == finest} == {608}  # 640 at a tile's overlap
        frame = np.ascontiguousarray(image[:720, :1280])  # 1024x576 finest level: -6 % only, the 576x576 shape kept
        jobs = detect.tile_jobs(frame, 24, (0,), True, (0, 90, 180, 270))
        finest = max(j.scale for j in jobs)
        assert {(j.rect[2] - j.rect[0], j.rect[3] - j.rect[1]) for j in jobs if j.scale == finest} == {(576, 576)}


def test_middle_rotations_turn_only_the_levels_between_the_finest_and_the_whole_image():
    """``middle_rotations`` (the CLI's --upside-down) adds its turns to every level but the finest and the
    two whole-image ones, which keep theirs; the search then makes more calls and finds the same faces."""
    image = np.random.default_rng(1).integers(0, 255, (1440, 1440, 3), np.uint8)
    plain = detect.tile_jobs(image, 24, (0,), True, (0, 90, 180, 270))
    turned = detect.tile_jobs(image, 24, (0,), True, (0, 90, 180, 270), middle_rotations=(0, 180))
    scales = sorted({j.scale for j in plain}, reverse=True)
    finest, middle, whole = scales[0], scales[1:-2], scales[-2:]
    assert len(middle) >= 2

    def turns(jobs, scale):
        return {j.rotation for j in jobs if j.scale == scale}

    assert turns(plain, finest) == turns(turned, finest) == {0}
    assert all(turns(plain, s) == {0} and turns(turned, s) == {0, 180} for s in middle)
    assert all(turns(plain, s) == turns(turned, s) == {0, 90, 180, 270} for s in whole)
    assert sum(j.scale == finest for j in plain) == sum(j.scale == finest for j in turned)
    with pytest.raises(ValueError, match="middle_rotations"):
        FaceFinderSettings(middle_rotations=(0, 45))
    scene = make_scene(np.random.default_rng(3), 480, 480, [(64, 175), (48, -20)])
    upright = find_faces(scene.image, settings=FaceFinderSettings(skip_smaller_than=0))
    both = find_faces(scene.image, settings=FaceFinderSettings(skip_smaller_than=0, middle_rotations=(0, 180)))
    assert both.detector_calls > upright.detector_calls
    assert len(both.faces) == len(upright.faces) == 2


def test_every_bad_header_is_named_at_once(folder, tmp_path):
    path, _ = folder
    bad, tiny = tmp_path / "broken.png", tmp_path / "tiny.png"
    bad.write_bytes(b"not a png")
    save_image(tiny, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ImageError) as caught:
        image_paths([str(path), str(bad), str(tiny)])
    lines = str(caught.value).splitlines()
    assert lines[0] == "2 of 4 images cannot be searched:"
    assert lines[1] == f"  {bad}: not an image (unknown or unsupported format)" and "too small" in lines[2]


def test_a_file_that_does_not_decode_loses_no_other_result(folder, tmp_path):
    """Its header passes (so the batch starts), its data is cut: the images around it are still reported."""
    path, counts = folder
    whole = (path / "frame_1.png").read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole[: len(whole) // 2])
    done = run_cli("faces", "detect", str(path / "frame_0.png"), str(cut), str(path / "frame_1.png"), "--json",
                   "--skip-smaller", "0")
    assert done.returncode == 2
    entries = json.loads(done.stdout)["images"]
    assert [e["path"] for e in entries] == [str(path / "frame_0.png"), str(cut), str(path / "frame_1.png")]
    assert "truncated or corrupt" in entries[1]["error"] and set(entries[1]) == {"path", "error"}
    assert [len(e["faces"]) + len(e["skipped"]) for e in (entries[0], entries[2])] == counts
    assert done.stderr.strip() == f"error: {entries[1]['error']}"
    text = run_cli("faces", "detect", str(path / "frame_0.png"), str(cut), "--track", "3")
    assert text.returncode == 2 and "1 image(s), 1 could not be read" in text.stdout
