"""The sequence job's core without torch: sources, tracks, smoothing, gating, motion, files, resume."""

from __future__ import annotations

import json
import math
import shutil
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from bump_backend.faces import FaceFinderSettings, find_faces, transform
from bump_backend.faces.align import crop_matrix, warp
from bump_backend.faces.types import Face, rotated_square_bounds
from bump_backend.sequence import metrics, temporal, tracks
from bump_backend.sequence.job import FaceOptions, SequenceJob
from bump_backend.sequence.sources import SourceError, open_source
from bump_backend.testing import clips
from bump_contracts.errors import ContractError
from bump_contracts.sequence_job import SequenceParams


def _face(cx: float, cy: float, size: float, roll: float = 0.0, sharp: float = 40.0, cid: str | None = None) -> Face:
    d = 0.4 * size
    t = math.radians(roll)
    ex, ey = math.cos(t) * d / 2, math.sin(t) * d / 2
    return Face(box=rotated_square_bounds((cx, cy), size, roll), score=0.9, eyes=((cx - ex, cy - ey), (cx + ex, cy + ey)),
                roll=roll, yaw=0.0, pitch=0.0, source="geometry" if cid else "detector", character_id=cid,
                sharpness=sharp)


# -- sources ---------------------------------------------------------------------------------------
def test_folder_gaps_are_reported_and_mixed_sizes_refused(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    for n in (1, 2, 5):
        Image.fromarray(np.zeros((16, 24, 3), np.uint8)).save(folder / f"shot_{n:04d}.png")
    src = open_source(folder)
    assert len(src) == 3 and src.missing == [3, 4]
    assert "2 frame number(s) missing: 3, 4" in src.info.warnings[0]
    assert src.after_gap(2) and not src.after_gap(1)
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(folder / "shot_0006.png")
    with pytest.raises(SourceError, match=r"mixed sizes: 24x16 \(shot_0001.png\), 24x20 \(shot_0006.png\)"):
        open_source(folder)


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no frames"):
        open_source(tmp_path / "empty")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 50)
    with pytest.raises(SourceError, match="junk.mp4: not a readable video"):
        open_source(junk)
    big = tmp_path / "big"
    big.mkdir()
    Image.new("RGB", (4800, 2700)).save(big / "f_0001.png")
    with pytest.raises(SourceError, match="larger than 4K"):
        open_source(big)
    with pytest.raises(ContractError, match="crf must be an integer from 0 to 51"):
        SequenceParams(crf=99)


def test_video_keeps_rate_timecode_and_truncation_is_reported(tmp_path):
    frames = [f.image for f in clips.photo_clip(12, 96, 80, 30)]
    path = clips.write_video(frames, tmp_path / "clip.mp4", fps=25, timecode="10:00:00:00")
    src = open_source(path)
    assert (src.info.width, src.info.height, src.info.fps, src.info.timecode) == (96, 80, 25.0, "10:00:00:00")
    decoded = list(src.frames())
    assert len(decoded) == 12 and decoded[5].time == pytest.approx(5 / 25)
    assert np.abs(decoded[5].image.astype(int) - frames[5]).mean() < 4  # H.264 at CRF 10, limited range
    cut = tmp_path / "cut.mp4"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    try:
        n = len(list(open_source(cut).frames()))
    except SourceError as exc:  # either a clear error naming the file...
        assert "cut.mp4" in str(exc)
    else:  # ...or the frames that could be decoded, fewer than announced
        assert n < 12


# -- tracks ----------------------------------------------------------------------------------------
def test_sidecar_faces_link_by_character_exactly():
    tracker = tracks.Tracker()
    for f in range(4):
        a = _face(20 + 40 * f, 50, 40, cid="mira")  # jumps 1 face size per frame: still the same character
        b = _face(180 - 40 * f, 50, 40, cid="marco")
        ids = tracker.update(f, [b, a] if f % 2 else [a, b], [np.ones(4) / 2] * 2)
        assert ids == (["character:marco", "character:mira"] if f % 2 else ["character:mira", "character:marco"])


@pytest.mark.parametrize("detect_every", [1, SequenceParams().detect_every])
def test_crossing_faces_keep_their_tracks(tmp_path, detect_every):
    """Two real faces (astronaut, Grace Hopper) cross, through the job's own analysis: the full
    search on every frame, and the default (FaceTracker's window re-check between full searches)."""
    truth = list(clips.crossing_clip(14))
    folder = clips.write_folder(iter(truth), tmp_path / "cross")
    job = SequenceJob(folder, tmp_path / "out", SequenceParams(detect_every=detect_every), log=None)
    analysis = job.analyse()
    by_truth: dict[str, set[str]] = {"astronaut": set(), "grace_hopper": set()}
    for track in analysis.tracks:
        for o in track.observations:
            centres = [np.mean(e, axis=0) for e in truth[o.frame].eyes]
            nearest = int(np.argmin([math.dist(o.centre, c) for c in centres]))
            assert math.dist(o.centre, centres[nearest]) < 0.5 * truth[o.frame].sizes[nearest]
            by_truth[("astronaut", "grace_hopper")[nearest]].add(track.id)
    assert len(by_truth["astronaut"]) == 1 and len(by_truth["grace_hopper"]) == 1, by_truth
    assert by_truth["astronaut"] != by_truth["grace_hopper"]
    modes = [m["faces_by"] for m in analysis.frames]
    assert sum(len(m["tracks"]) for m in analysis.frames) >= 20  # of 28 faces: one is hidden while they cross
    if detect_every == 1:
        assert set(modes) == {"detect"}
    else:  # the full search on frame 0 and then every N frames (or when a face is lost), re-checks between
        assert modes[0] == "detect" and modes.count("track") >= len(modes) // 2
        assert all(modes[i] == "detect" for i in range(0, len(modes), detect_every) if modes[i - 1] != "detect")


def test_a_cut_starts_footage_tracking_over(tmp_path):
    """After a cut the tracker forgets its faces: the first frame of the new shot is a full search."""
    shot_a = [f.image for f in clips.photo_clip(4, 160, 128, 48)]
    shot_b = [f.image for f in clips.crossing_clip(3, 160, 128)]
    folder = tmp_path / "cuts"
    folder.mkdir()
    for i, image in enumerate(shot_a + shot_b):
        Image.fromarray(image).save(folder / f"f_{i + 1:04d}.png")
    analysis = SequenceJob(folder, tmp_path / "out", SequenceParams(detect_every=10), log=None).analyse()
    cuts = [m["index"] for m in analysis.frames if m["cut"]]
    assert cuts == [4]
    modes = [m["faces_by"] for m in analysis.frames]
    assert modes[:5] == ["detect", "track", "track", "track", "detect"], modes
    # the astronaut of shot A is in shot B too: re-linked by appearance (the same track), the other face is new
    assert len(set(analysis.frames[4]["tracks"])) == 2 and analysis.frames[0]["tracks"][0] in analysis.frames[4]["tracks"]


def test_cut_is_detected_and_the_face_relinked_by_appearance():
    a = [f.image for f in clips.photo_clip(3, 160, 128, 48, still=True)]
    other = clips.crossing_clip(1, 160, 128)
    b = next(other).image
    assert not tracks.is_cut(tracks.frame_histogram(a[0]), tracks.frame_histogram(a[1]))
    assert tracks.is_cut(tracks.frame_histogram(a[1]), tracks.frame_histogram(b))
    face = _face(80, 64, 48)
    same = tracks.appearance(a[0], face)
    moved = tracks.appearance(np.roll(a[0], 30, axis=1), _face(110, 64, 48))
    elsewhere = tracks.appearance(b, _face(40, 70, 48))
    assert same @ moved > 0.9 > same @ elsewhere
    tracker = tracks.Tracker()
    first = tracker.update(0, [face], [same])
    tracker.update(1, [_face(40, 70, 48)], [elsewhere], cut=True)  # another shot
    back = tracker.update(2, [_face(110, 64, 48)], [moved], cut=True)  # cut back: far away, same look
    assert back == first


def test_smoothing_removes_detector_jitter_on_a_still_face():
    frames = list(clips.photo_clip(16, 160, 128, 48, still=True, noise=6.0))
    tracker = tracks.Tracker()
    settings = FaceFinderSettings(skip_smaller_than=0, min_sharpness=0)
    for f, frame in enumerate(frames):
        faces = find_faces(frame.image, None, settings).faces
        tracker.update(f, faces, [tracks.appearance(frame.image, x) for x in faces])
    (track,) = tracker.tracks
    assert len(track.observations) == 16
    raw = [crop_matrix(o.face(), 512, 0.35) for o in track.observations]
    smooth = [crop_matrix(o.face(), 512, 0.35) for o in tracks.smooth_track(track, 2.0).observations]
    eyes = [frames[0].eyes[0]] * 16
    assert metrics.aligned_eye_jitter(eyes, smooth) < 0.6 * metrics.aligned_eye_jitter(eyes, raw)


def test_render_tracks_are_not_smoothed_and_gating_holds():
    tracker = tracks.Tracker()
    sizes = [40, 33, 30, 27, 31, 34, 24, 40]  # hovers around 32 px, one real drop below 0.8 x 32
    for f, s in enumerate(sizes):
        tracker.update(f, [_face(50 + f, 50, s, roll=3.0 * f, cid="c")], [np.ones(2)])
    (track,) = tracker.tracks
    assert tracks.smooth_track(track, 3.0).observations == track.observations  # exact geometry kept
    gated = tracks.Gate(min_size=32, min_sharpness=22, hysteresis=0.8).apply(track)
    assert [o.bump for o in gated.observations] == [True, True, True, True, True, True, False, True]
    blurry = tracks.Gate(min_size=32, min_sharpness=50).apply(track)
    assert not any(o.bump for o in blurry.observations)


def test_auto_references_are_the_sharpest_largest_spread_over_yaw():
    track = tracks.Track("face:0", None)
    yaws = [0, 2, 4, 30, 32, -40, -38, 0]
    for f, yaw in enumerate(yaws):
        o = tracks.observation(_face(50, 50, 40 + f, sharp=30 + (f == 7) * 50), f, 0)
        o.yaw = float(yaw)
        track.observations.append(o)
    picks = tracks.pick_references(track, 3)
    assert picks[0].frame == 7  # largest and sharpest
    assert sorted(p.yaw for p in picks) == [-38.0, 0.0, 32.0]  # the best frame of each side, not two fronts


# -- motion ----------------------------------------------------------------------------------------
def test_motion_mapping_is_exact_and_crop_flow_recovers_it():
    frames = list(clips.photo_clip(6, 192, 160, 56))
    prev, cur = frames[2], frames[3]
    size = 128

    def aligned_matrix(frame):
        (r, left) = frame.eyes[0]
        c = ((r[0] + left[0]) / 2, (r[1] + left[1]) / 2)
        return crop_matrix(Face(rotated_square_bounds(c, frame.sizes[0], transform.roll_of(r, left)), 1.0,
                                frame.eyes[0], transform.roll_of(r, left), 0, 0, "detector"), size, 0.35)

    # a crop that does not follow the face (frame 0's), so the face moves, zooms and turns inside it
    m_prev = m_cur = aligned_matrix(frames[0])
    prev_crop, cur_crop = warp(prev.image, m_prev, (size, size)), warp(cur.image, m_cur, (size, size))
    mapping, valid = temporal.motion_mapping(cur.flow, m_cur, m_prev, size)
    warped = temporal.warp_previous(prev_crop, mapping)
    inner = (slice(24, 104), slice(24, 104))
    exact_err = np.abs(warped.astype(int) - cur_crop)[inner].mean()
    identity_err = np.abs(prev_crop.astype(int) - cur_crop)[inner].mean()
    assert valid[inner].all() and exact_err < 0.5 * identity_err
    flow_map, flow_valid = temporal.crop_flow(prev_crop, cur_crop)
    agree = np.hypot(*(flow_map - mapping)[inner].reshape(-1, 2).T)
    assert np.median(agree) < 1.0 and flow_valid[inner].mean() > 0.8


def test_forward_backward_check_marks_occlusion():
    rng = np.random.default_rng(1)
    base = cv2.resize(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), (128, 128), interpolation=cv2.INTER_CUBIC)
    moved = np.roll(base, 3, axis=1)
    covered = moved.copy()
    covered[40:90, 40:90] = (255, 0, 0)  # something new in front of the face
    _, valid = temporal.crop_flow(base, covered)
    assert valid[50:80, 50:80].mean() < 0.3 and valid[:30, :].mean() > 0.8
    blended = temporal.blend_start(covered, base, valid, 1.0)
    assert (blended[60:70, 60:70] == (255, 0, 0)).all()  # an occluded pixel never takes the carried one


# -- the job without diffusion: files, audio, resume -----------------------------------------------
def test_job_keeps_audio_bit_exact_and_resumes_without_redoing_frames(tmp_path):
    frames = [f.image for f in clips.photo_clip(8, 160, 128, 48)]
    video = clips.write_video(frames, tmp_path / "clip.mp4", fps=24, timecode="01:00:00:00")
    before = video.read_bytes()
    out = tmp_path / "out"
    params = SequenceParams(references="auto")
    record = SequenceJob(video, out, params, face=FaceOptions(64, 0.35, 5), log=None).run(None)
    assert video.read_bytes() == before
    assert len(record["frames"]) == 8 and record["resumed_frames"] == 0
    (track,) = record["tracks"]
    assert track["bumped"] == 8 and track["reference_frames"] and track["package"]
    assert (out / "before_after.png").exists() and (out / "sequence.json").exists()

    def audio(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]

    assert audio(out / "clip_bump.mp4") == audio(video)
    result = open_source(out / "clip_bump.mp4")
    assert (result.info.width, result.info.height, result.info.fps, result.info.timecode) == (160, 128, 24, "01:00:00:00")
    assert len(list(result.frames())) == 8
    # a killed job: frames 5-7 never written; the restart redoes only those, with the same result
    finished = sorted((out / "frames").glob("*.png"))
    expected = [np.asarray(Image.open(p)) for p in finished]
    stamps = {p.name: p.stat().st_mtime_ns for p in finished[:5]}
    for p in finished[5:]:
        p.unlink()
    again = SequenceJob(video, out, params, face=FaceOptions(64, 0.35, 5), log=None).run(None)
    assert again["resumed_frames"] == 5
    assert {p.name: p.stat().st_mtime_ns for p in sorted((out / "frames").glob("*.png"))[:5]} == stamps
    assert all((np.asarray(Image.open(p)) == e).all() for p, e in zip(sorted((out / "frames").glob("*.png")),
                                                                          expected, strict=True))
    with pytest.raises(ValueError, match="other settings"):
        SequenceJob(video, out, SequenceParams(references="auto", crf=30), face=FaceOptions(64, 0.35, 5),
                    log=None).run(None)


def test_no_faces_no_audio_and_output_inside_input(tmp_path):
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8), (0, 0), 3) for _ in range(4)]
    video = clips.write_video(frames, tmp_path / "plain.mp4", audio=False)
    record = SequenceJob(video, tmp_path / "o", SequenceParams(references="auto"), log=None).run(None)
    assert record["tracks"] == [] and any("no faces" in w for w in record["warnings"])
    assert any("no audio" in w for w in record["warnings"])
    assert len(list(open_source(tmp_path / "o" / "plain_bump.mp4").frames())) == 4
    folder = clips.write_folder(iter(clips.photo_clip(2, 64, 64, 24)), tmp_path / "frames")
    with pytest.raises(SourceError, match="inside\\) the input"):
        SequenceJob(folder, folder / "out", log=None)
    with pytest.raises(ValueError, match="needs --package DIR or --references auto"):
        SequenceJob(video, tmp_path / "o2", SequenceParams(), log=None)
    with pytest.raises(SourceError, match="write over its own input"):  # re-bumping the result into its folder
        SequenceJob(tmp_path / "o" / "frames", tmp_path / "o", SequenceParams(references="auto"), log=None)
    shutil.rmtree(tmp_path / "o")


def test_variable_frame_rate_and_full_range_survive(tmp_path):
    """A phone-like clip: irregular timestamps (ms time base) and full-range YUV."""
    path = tmp_path / "phone.mp4"
    stamps = [0, 33, 70, 100, 141, 166, 210, 233]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 128, "yuv420p"
        stream.codec_context.color_range = 2
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for pts, f in zip(stamps, clips.photo_clip(len(stamps), 160, 128, 48), strict=True):
            frame = av.VideoFrame.from_ndarray(f.image, format="rgb24").reformat(format="yuv420p", dst_color_range=2)
            frame.pts, frame.time_base, frame.color_range = pts, Fraction(1, 1000), 2
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    src = open_source(path)
    assert src.info.color_range == 2
    bright = list(src.frames())[0].image
    first = next(clips.photo_clip(len(stamps), 160, 128, 48)).image
    assert abs(float(bright.mean()) - float(first.mean())) < 1.5  # decoded as full range, not stretched
    record = SequenceJob(path, tmp_path / "o", SequenceParams(references="auto"), log=None).run(None)
    assert record["input"]["color_range"] == 2
    with av.open(str(tmp_path / "o" / "phone_bump.mp4")) as c:
        s = c.streams.video[0]
        times = [round(float(f.pts * s.time_base) * 1000) for f in c.decode(s)]
        assert s.codec_context.color_range == 2
    assert [t - times[0] for t in times] == stamps
    again = list(open_source(tmp_path / "o" / "phone_bump.mp4").frames())[0].image
    outside = np.zeros(bright.shape[:2], bool)
    outside[:, :12] = True  # far from the face: only the codec's loss, no range shift
    assert abs(float(again[outside].mean()) - float(bright[outside].mean())) < 2


def test_gate_defaults_are_the_face_finders_skip_rules():
    finder = FaceFinderSettings()
    assert (SequenceParams().min_face, SequenceParams().min_sharpness) == (finder.skip_smaller_than,
                                                                           finder.min_sharpness)


def test_a_rendered_clip_folder_is_read_through_its_clip_json(tmp_path):
    from bump_contracts import clip as clip_contract
    from bump_contracts.face_geometry import FaceGeometry
    from bump_contracts.render_sidecar import RenderSidecar, SidecarFace

    folder = tmp_path / "clip"
    for sub in ("frames", "sidecars"):
        (folder / sub).mkdir(parents=True)
    records = []
    for i in (1, 2, 3):
        Image.fromarray(np.full((16, 24, 3), 40 * i, np.uint8)).save(folder / "frames" / f"frame_{i:04d}.png")
        geometry = FaceGeometry(head_centre=(12.0, 8.0), face_box=(6.0, 2.0, 18.0, 14.0), left_eye=(14.0, 6.0),
                                right_eye=(10.0, 6.0), yaw=10.0 * i, pitch=0.0, roll=0.0,
                                eye_distance_px=4.0, depth_m=1.0)
        sidecar = RenderSidecar(24, 16, (SidecarFace("mateo", "Mateo", geometry),), image=f"frame_{i:04d}.png")
        (folder / "sidecars" / f"frame_{i:04d}.json").write_text(sidecar.dumps(), encoding="utf-8")
        vectors = np.zeros((16, 24, 4), np.float32)
        vectors[..., 0], vectors[..., 1] = 2.0 * i, 0.5  # Cycles: X right, Y up
        np.save(folder / "sidecars" / f"vectors_{i:04d}.npy", vectors)
        records.append(clip_contract.ClipFrame(i, f"frames/frame_{i:04d}.png", f"sidecars/frame_{i:04d}.json",
                                               f"sidecars/vectors_{i:04d}.npy"))
    clip = clip_contract.Clip("mateo", "Mateo", 12.0, 24, 16, tuple(records))
    (folder / "clip.json").write_text(clip.dumps(), encoding="utf-8")
    src = open_source(folder, fps=24.0)
    assert len(src) == 3 and src.info.fps == 12.0 and src.info.frames == 3
    frames = list(src.frames())
    assert [f.image[0, 0, 0] for f in frames] == [40, 80, 120]
    assert [f.sidecar.faces[0].geometry.yaw for f in frames] == [10.0, 20.0, 30.0]
    assert frames[2].time == pytest.approx(2 / 12)
    # the vectors become backward motion in image rows (Y down): nothing before the first frame
    assert frames[0].motion is None
    assert frames[1].motion.shape == (16, 24, 2)
    assert np.allclose(frames[1].motion[..., 0], 4.0) and np.allclose(frames[1].motion[..., 1], -0.5)
    np.save(folder / "sidecars" / "vectors_0003.npy", np.zeros((16, 24, 2), np.float32))
    with pytest.raises(SourceError, match=r"vectors_0003.npy: vectors of shape \(16, 24, 2\)"):
        open_source(folder).read(2)
    # a clip.json that disagrees with its folder, or breaks the contract, is refused by name
    (folder / "frames" / "frame_0002.png").unlink()
    with pytest.raises(SourceError, match=r"clip.json: frame 2: .*frame_0002.png is missing"):
        open_source(folder)
    data = json.loads((folder / "clip.json").read_text())
    data["frames"][0]["flow"] = "x.npy"
    (folder / "clip.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SourceError, match=r"clip.json: frames\[0\]: unknown field\(s\) flow"):
        open_source(folder)
