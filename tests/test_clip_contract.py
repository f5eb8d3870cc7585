"""clip.json: the animation command's clip description, one checked contract for its writer and readers."""

from __future__ import annotations

import json

import pytest

from bump_contracts import clip as clip_contract
from bump_contracts.clip import Clip, ClipError, ClipFrame
from bump_contracts.pose import Pose


def _clip(frames: int = 3) -> Clip:
    records = tuple(ClipFrame(i, f"frames/frame_{i:04d}.png", f"sidecars/frame_{i:04d}.json",
                              f"vectors/frame_{i:04d}.npy", Pose({"head": (10.0 * i, 0.0, 0.0)}, {"smile": 0.5}),
                              ("note",) if i == 2 else ()) for i in range(1, frames + 1))
    return Clip("mateo", "Mateo", 12.0, 64, 48, records)


def test_a_clip_reads_back_as_written():
    clip = _clip()
    again = clip_contract.loads(clip.dumps())
    assert again == clip
    assert again.frames[1].pose.controls["head"] == (20.0, 0.0, 0.0) and again.frames[1].notes == ("note",)
    assert again.time_of(again.frames[2]) == pytest.approx(2 / 12)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(extra=1), r"clip: unknown field\(s\) extra"),
    (lambda d: d["frames"][1].update(motion="m.npy"), r"frames\[1\]: unknown field\(s\) motion"),
    (lambda d: d["character"].update(age=3), r"character: unknown field\(s\) age"),
    (lambda d: d.update(schema="other"), "schema: expected 'demo-clip'"),
    (lambda d: d.update(schema_version=2), r"schema_version: expected 1..1, got 2"),
    (lambda d: d.update(fps=0), "fps: 0.0 is below the minimum"),
    (lambda d: d.pop("fps"), "fps: missing"),
    (lambda d: d.update(width=1.5), r"width: expected an integer in 1..8192"),
    (lambda d: d.update(frames=[]), "frames: expected a non-empty list"),
    (lambda d: d["frames"][2].update(frame=5), r"frames\[2\].frame: expected 3 \(frames are numbered"),
    (lambda d: d["frames"][0].update(image="/etc/passwd"), r"frames\[0\].image: '/etc/passwd' must be a path inside"),
    (lambda d: d["frames"][0].update(sidecar="../x.json"), r"frames\[0\].sidecar: '../x.json' must be a path inside"),
    (lambda d: d["frames"][0].pop("image"), r"frames\[0\].image: missing"),
    (lambda d: d["frames"][0]["pose"]["controls"].update(head=[200]), r"frames\[0\].pose.controls.head\[0\]: 200.0 is above"),
    (lambda d: d["frames"][0].update(notes="x"), r"frames\[0\].notes: expected a list of strings"),
])
def test_bad_clips_are_refused_with_the_field_named(change, message):
    data = _clip().to_dict()
    change(data)
    with pytest.raises(ClipError, match=message):
        clip_contract.from_dict(json.loads(json.dumps(data)))


def test_load_names_the_file_and_refuses_broken_json(tmp_path):
    path = tmp_path / "clip.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ClipError, match=f"{path}: "):
        clip_contract.load(str(path))
    with pytest.raises(ClipError, match="cannot read"):
        clip_contract.load(str(tmp_path / "missing.json"))


def test_a_clip_that_could_not_be_read_back_is_never_written():
    bad = Clip("mateo", "Mateo", 12.0, 64, 48, (ClipFrame(2, "frames/frame_0002.png"),))
    with pytest.raises(ClipError, match=r"frames\[0\].frame: expected 1"):
        bad.dumps()


def test_frame_ranges_are_checked_before_anything_renders():
    assert list(clip_contract.frame_range(2, 4)) == [2, 3, 4]
    assert list(clip_contract.frame_range(-3, -3)) == [-3]  # Blender allows negative frames
    assert len(clip_contract.frame_range(1, clip_contract.MAX_FRAMES)) == clip_contract.MAX_FRAMES
    with pytest.raises(ClipError, match="frame range 5-4 is empty: the end frame is before the start") as empty:
        clip_contract.frame_range(5, 4)
    assert empty.value.field == "frame_end"
    with pytest.raises(ClipError, match="frame range 1-2001 has 2001 frames; at most 2000"):
        clip_contract.frame_range(1, 2001)
    with pytest.raises(ClipError, match="start must be an integer frame, got 1.5"):
        clip_contract.frame_range(1.5, 3)
    with pytest.raises(ClipError, match="end must be an integer frame, got True"):
        clip_contract.frame_range(1, True)
    # the vectors array dominates: 16 bytes a pixel, plus the PNG
    assert clip_contract.clip_bytes(100, 50, 3) >= 100 * 50 * 16 * 3
