"""``sequence --analyse-only``: the tracks, the gate's decisions and a strip with the tracked face boxes,
without loading a model; bad input is still one ``error:`` line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from bump_backend.cli import main
from bump_backend.testing import clips

RUN = """
import sys
from bump_backend.cli import main
code = main(sys.argv[1:])
assert "diffusers" not in sys.modules and "torch" not in sys.modules, "a model library was loaded"
sys.exit(code)
"""


def _colour(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])


def test_footage_tracks_and_gate_decisions_without_a_model(tmp_path):
    truth = list(clips.crossing_clip(10))
    folder = clips.write_folder(iter(truth), tmp_path / "cross")
    out = tmp_path / "tracks"
    done = subprocess.run([sys.executable, "-c", RUN, "sequence", str(folder), "--analyse-only", "--out", str(out),
                           "--min-face", "53", "--hysteresis", "1.0"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "nothing bumped (analysis only)" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["analysis.json", "before_after.png", "job.json", "sequence.json"]
    record = json.loads((out / "sequence.json").read_text())
    assert record["mode"] == "analyse-only" and record["outputs"]["video"] is None
    tracks = {t["id"]: t for t in record["tracks"]}
    assert len(tracks) == 2 and len({t["colour"] for t in tracks.values()}) == 2
    assert all(f"{t}" in done.stdout for t in tracks)
    faces = [face for frame in record["frames"] for face in frame["faces"]]
    assert len(faces) >= 14 and {frame["faces_by"] for frame in record["frames"]} == {"detect", "track"}
    # the gate's decisions, frame by frame: ~53 px faces against --min-face 53 without hysteresis
    assert {face["bumped"] for face in faces} == {True, False}
    for face in faces:  # (the record rounds to 0.01)
        if face["bumped"]:
            assert face["size"] >= 52.995 and face["sharpness"] >= 21.995 and face["seed"] is not None, face
        else:
            assert face["size"] <= 53.005 or face["sharpness"] <= 22.005, face
    assert all(face["seed"] is None for face in faces if not face["bumped"])
    assert len({face["seed"] for face in faces if face["bumped"]}) == len({f["track"] for f in faces if f["bumped"]})
    strip = np.asarray(Image.open(out / "before_after.png").convert("RGB")).astype(int)
    half = strip.shape[0] // 2
    for track in tracks.values():  # each track's box is drawn below, in its colour, and not on the input above
        near = np.abs(strip - _colour(track["colour"])).sum(-1) < 40
        assert near[half:].sum() > 50 and near[:half].sum() < 5, track


def test_a_video_needs_no_package_to_be_analysed(tmp_path, capfd):
    video = clips.write_video([f.image for f in clips.photo_clip(4, 96, 80, 30)], tmp_path / "clip.mp4", audio=False)
    assert main(["sequence", str(video), "--out", str(tmp_path / "bump")]) == 2
    assert "needs --package" in capfd.readouterr().err
    assert main(["sequence", str(video), "--analyse-only", "--out", str(tmp_path / "look")]) == 0
    record = json.loads((tmp_path / "look" / "sequence.json").read_text())
    assert len(record["frames"]) == 4 and record["tracks"]


def test_bad_input_is_one_error_line(tmp_path, capsys):
    folder = clips.write_folder(iter(clips.photo_clip(2, 96, 80, 30)), tmp_path / "frames")
    cases = [(["sequence", str(folder), "--analyse-only", "--out", str(folder / "inside")], "inside) the input"),
             (["sequence", str(tmp_path / "missing"), "--analyse-only", "--out", str(tmp_path / "o")], "no such"),
             (["sequence", str(folder), "--analyse-only", "--detect-every", "0", "--out", str(tmp_path / "o")],
              "detect_every must be")]
    for argv, words in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
    assert not (folder / "inside").exists() and not (tmp_path / "o").exists()


def test_a_clip_without_a_face_to_bump_loads_no_model(tmp_path):
    """The analysis runs before the model loads: a faceless clip is written unchanged (video and frames)
    even with a model that does not exist, and diffusers is never imported."""
    blank = [np.full((80, 96, 3), 90 + 10 * i, np.uint8) for i in range(3)]
    video = clips.write_video(blank, tmp_path / "empty.mp4", audio=False)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", RUN, "sequence", str(video), "--references", "auto",
                           "--model", str(tmp_path / "no_such_model"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no model is loaded" in done.stderr and "0 face(s) bumped" in done.stdout
    assert (out / "empty_bump.mp4").is_file() and len(list((out / "frames").iterdir())) == 3
    record = json.loads((out / "sequence.json").read_text())
    assert record["mode"] == "bump" and record["tracks"] == []
