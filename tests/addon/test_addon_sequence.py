"""Render & Bump over a frame range, against the real backend (tiny model, own process).

The user's scene is animated (the character turns), three frames are rendered at 96 px with one
Cycles sample into a clip folder (frames, render sidecars, motion vectors, clip.json), submitted as
one sequence job, and the bumped frames come back as image sequences in the compositor. Also: the
render settings and frame are put back, a bad range renders nothing, a cancel between frames leaves
nothing, and a backend whose package roots do not hold the work folder is reported clearly.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from addon_helpers import (
    MODULE,
    BackendProcess,
    addon_module,
    configure,
    pump_jobs,
    snapshot,
    tiny_settings,
    user_scene,
)

from bump_client.client import BumpClient
from bump_contracts import clip as clip_contract
from character_library import Library
from profile_rig.imaging.png_io import read_png, write_png

FIRST, LAST = 2, 4


def _settings_beyond_snapshot(scene: bpy.types.Scene) -> tuple:
    """What the range render switches for the vector pass, besides what ``snapshot`` covers."""
    im = scene.render.image_settings
    return (scene.render.use_motion_blur, scene.render.use_compositing, scene.render.filepath,
            tuple(layer.use_pass_vector for layer in scene.view_layers), im.media_type, im.file_format,
            im.color_depth, im.color_mode, im.exr_codec, scene.frame_current, scene.frame_start, scene.frame_end)


def _pump(scene_name: str, timeout: float = 180.0) -> list[tuple[str, float, str]]:
    return pump_jobs(scene_name, timeout)


def _job_folders(studio: dict) -> set[Path]:
    jobs = studio["root"] / "work" / "jobs"
    return set(jobs.iterdir()) if jobs.is_dir() else set()


class _RenderCounter:
    """Counts renders (render_post); optionally cancels the range after ``cancel_after`` of them."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.count, self.cancel_after = 0, cancel_after

    def __call__(self, *_args) -> None:
        self.count += 1
        if self.cancel_after is not None and self.count == self.cancel_after:
            addon_module("jobs").MANAGER.cancel(bpy.context.scene.name)

    def __enter__(self) -> _RenderCounter:
        bpy.app.handlers.render_post.append(self)
        return self

    def __exit__(self, *_exc) -> None:
        bpy.app.handlers.render_post.remove(self)


@pytest.fixture(scope="module")
def animated(studio, backend, tmp_path_factory):
    """A fresh user scene whose character (linked to the studio's packaged library character) turns a little
    every frame: real motion for the vector pass. Its own scene: other modules replace the file."""
    library = tmp_path_factory.mktemp("sequence") / "library"
    shutil.copytree(studio["library"], library)  # its own copy: the runs recorded here stay out of the others' library
    with Library.open(library) as lib:
        character = next(c for c in lib.list_characters() if c.active_version)
        assert str(lib.get_package(character.id).path).startswith(str(library))
    prefs = bpy.context.preferences.addons[MODULE].preferences
    saved = (prefs.library_folder, prefs.work_folder, prefs.backend_url)
    rig = user_scene()  # like test_addon_pose: a new file (modules before this one keep the studio's scene)
    configure(library, studio["root"] / "work", backend.url)
    scene = bpy.context.scene
    tiny_settings(scene)
    settings = scene.bump_studio
    rig["bump_studio_character"] = character.id
    settings.character, settings.library_character = rig, character.id
    rig.rotation_euler[2] = 0.0
    rig.keyframe_insert("rotation_euler", index=2, frame=1)
    rig.rotation_euler[2] = 0.36  # about 5 degrees a frame
    rig.keyframe_insert("rotation_euler", index=2, frame=5)
    scene.frame_set(7)
    settings.frames, settings.range_start, settings.range_end = "CUSTOM", FIRST, LAST
    scene.render.use_motion_blur = True  # the range render turns it off for the vector pass, then back on
    yield scene, library
    settings.frames = "CURRENT"
    scene.render.use_motion_blur = False
    rig.animation_data_clear()
    configure(*saved[:2], saved[2])


@pytest.fixture(scope="module")
def range_bump(animated, studio, backend) -> dict:
    scene, library = animated
    jobs = addon_module("jobs")
    before, extra = snapshot(scene), _settings_beyond_snapshot(scene)
    server_jobs = {j.id for j in BumpClient(backend.url).jobs(limit=200)}
    with _RenderCounter() as renders:
        assert bpy.ops.bump_studio.render_bump() == {"FINISHED"}
    job = jobs.MANAGER.running(scene.name)
    assert job is not None, "the operator returns while the sequence job runs"
    after_render = (snapshot(scene), _settings_beyond_snapshot(scene))
    seen = _pump(scene.name)
    new_jobs = [j for j in BumpClient(backend.url).jobs(limit=200) if j.id not in server_jobs]
    return {"job": job, "seen": seen, "renders": renders.count, "before": before, "extra": extra,
            "after_render": after_render, "new_jobs": new_jobs, "clip": Path(job.meta["clip"]), "library": library}


def test_each_frame_is_rendered_with_its_sidecar_and_motion_vectors(range_bump, studio):
    clip_dir = range_bump["clip"]
    assert range_bump["renders"] == 3  # one render per frame, nothing more
    clip = clip_contract.load(str(clip_dir / "clip.json"))  # the contract's own reader: what the backend reads
    assert (clip.width, clip.height, len(clip.frames)) == (96, 96, 3)
    assert [f.notes[0] for f in clip.frames] == [f"scene frame {n}" for n in range(FIRST, LAST + 1)]
    assert clip.fps == pytest.approx(bpy.context.scene.render.fps / bpy.context.scene.render.fps_base)
    yaws, motion = [], []
    for record in clip.frames:
        image = read_png(clip_dir / record.image)
        assert image.shape[:2] == (96, 96) and image.std() > 5  # a real render, not a blank
        vectors = np.load(clip_dir / record.vectors)
        assert vectors.shape == (96, 96, 4) and vectors.dtype == np.float32
        motion.append(float(np.abs(vectors[..., :2]).max()))
        sidecar = json.loads((clip_dir / record.sidecar).read_text())
        (face,) = sidecar["faces"]
        assert face["in_frame"] and face["character_id"] == clip.character_id
        assert sidecar["image"] == Path(record.image).name
        yaws.append(face["yaw"])
    assert all(m > 0.1 for m in motion), motion  # the character turns: Cycles wrote real motion every frame
    assert yaws[0] != pytest.approx(yaws[2], abs=3.0)  # and each frame's sidecar follows it
    assert not list(clip_dir.parent.glob(".clip.partial-*"))  # the staging folder was renamed into place


def test_one_sequence_job_is_submitted_with_the_rendered_frames(range_bump, backend):
    job = range_bump["job"]
    assert job.spec.frames == range_bump["clip"] and job.spec.sequence == {"png": True, "video": True}
    assert job.meta["kind"] == "sequence" and job.meta["frames"] == [FIRST, 3] and job.meta["frames_with_vectors"] == 3
    (server_job,) = range_bump["new_jobs"]  # one job for the whole range, not one per frame
    assert server_job.id == job.job_id and server_job.state == "done"
    assert server_job.label.endswith(f"frames {FIRST}-{LAST}")
    assert {"frames.zip", "sequence.json", "sequence.mp4"} <= {f.name for f in server_job.files}
    record = json.loads((Path(bpy.context.scene.bump_studio.result_folder) / "sequence.json").read_text())
    assert record["input"]["frames"] == 3 and len(record["frames"]) == 3
    assert record["tracks"] and record["tracks"][0]["character_id"] == job.meta["character"]


def test_progress_shows_rendering_then_the_sequence_frames(range_bump):
    seen = range_bump["seen"]
    states = [state for state, _p, _stage in seen]
    assert states[-1] == "done", bpy.context.scene.bump_studio.job_message
    frames = [stage for state, _p, stage in seen if state == "running" and stage.startswith("frame ")]
    assert frames and all(stage.split()[1].split("/")[1].rstrip(",") == "3" for stage in frames), frames
    running = [p for state, p, _ in seen if state == "running"]
    assert running == sorted(running)  # never backwards


def test_the_result_is_an_image_sequence_in_the_compositor(range_bump):
    scene = bpy.context.scene
    comp = addon_module("compositor")
    bump, render = bpy.data.images["BumpStudio Bump"], bpy.data.images["BumpStudio Render"]
    assert bump.source == render.source == "SEQUENCE"
    result = Path(scene.bump_studio.result_folder) / "frames"
    bumped = sorted(result.glob("*.png"))
    assert [p.name for p in bumped] == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    assert Path(bump.filepath) == bumped[0]
    tree = scene.compositing_node_group
    for name in (comp.NODE_RENDER, comp.NODE_BUMP):
        node = tree.nodes[name]
        assert (node.frame_start, node.frame_duration, node.frame_offset) == (FIRST, 3, 0)
    mix = tree.nodes[comp.NODE_MIX]
    assert mix.inputs["Bump"].links[0].from_node.name == comp.NODE_BUMP
    assert not mix.inputs["Mask"].links  # the sequence is whole frames: no mask
    output = next(n for n in tree.nodes if n.bl_idname == "NodeGroupOutput")
    assert output.inputs[0].links[0].from_node.name == comp.NODE_MIX

    # the compositor really plays it: scene frame 3 shows the range's second bumped frame
    ops = addon_module("operators_bump")
    out = Path(scene.bump_studio.result_folder) / "composited_frame3.png"
    frame = scene.frame_current
    scene.frame_set(FIRST + 1)
    try:
        bpy.ops.render.render()
        ops.save_render_result(scene, out)
    finally:
        scene.frame_set(frame)
    composited = read_png(out).astype(float)[..., :3]
    errors = [np.abs(composited - read_png(p).astype(float)[..., :3]).mean() for p in bumped]
    assert errors[1] < 3.0 and errors[1] < min(errors[0], errors[2]), errors


def test_the_bumped_range_is_in_the_characters_history(range_bump):
    """One history run for the range: the job's id, the track seed, the model that ran, the frame count,
    and the video and frames folder as its outputs."""
    scene = bpy.context.scene
    job = range_bump["job"]
    with Library.open(range_bump["library"]) as lib:
        run = lib.get_run(job.job_id)
    record = json.loads((Path(scene.bump_studio.result_folder) / "sequence.json").read_text())
    assert run.seed == record["face"]["seed"] and run.steps == record["settings"]["steps"]
    assert run.model.endswith(f"[{record['model']['hash']}]")
    assert run.settings["sequence"]["frames"] == 3 and run.settings["sequence"]["faces_bumped"] >= 1
    assert run.package_version == job.meta["package_version"]
    assert [Path(p).name for p in run.outputs] == ["sequence.mp4", "frames"]
    assert all(Path(p).exists() for p in run.outputs)


def test_render_settings_and_frame_are_put_back(range_bump):
    scene = bpy.context.scene
    assert range_bump["after_render"] == (range_bump["before"], range_bump["extra"])
    assert snapshot(scene) == range_bump["before"]
    assert _settings_beyond_snapshot(scene) == range_bump["extra"]
    assert scene.render.use_motion_blur and scene.frame_current == 7


@pytest.mark.parametrize(("start", "end", "message"), [
    (5, 4, "frame range 5-4 is empty"),
    (1, 2001, "frame range 1-2001 has 2001 frames; at most 2000"),
])
def test_a_bad_range_is_refused_before_anything_renders(range_bump, studio, start, end, message):
    scene = bpy.context.scene
    settings = scene.bump_studio
    before, folders, state = snapshot(scene), _job_folders(studio), settings.job_state
    settings.range_start, settings.range_end = start, end
    try:
        with _RenderCounter() as renders, pytest.raises(RuntimeError, match=message):
            bpy.ops.bump_studio.render_bump()
    finally:
        settings.range_start, settings.range_end = FIRST, LAST
    assert renders.count == 0 and _job_folders(studio) == folders
    assert settings.job_state == state and snapshot(scene) == before
    assert not addon_module("jobs").MANAGER.busy(scene.name)


def test_a_range_too_big_for_the_disk_is_refused_before_anything_renders(range_bump, studio):
    scene = bpy.context.scene
    settings, render = scene.bump_studio, scene.render
    need = clip_contract.clip_bytes(8192, 8192, 2000)
    if shutil.disk_usage(studio["root"]).free > need:
        pytest.skip("this disk would hold 2000 frames at 8192 px")
    before, folders = snapshot(scene), _job_folders(studio)
    settings.range_start, settings.range_end = 1, 2000
    render.resolution_x = render.resolution_y = 8192
    try:
        with _RenderCounter() as renders, pytest.raises(RuntimeError, match=r"2000 frames at 8192x8192 need about "
                                                                            r"\d+\.\d GB in the work folder"):
            bpy.ops.bump_studio.render_bump()
    finally:
        settings.range_start, settings.range_end = FIRST, LAST
        render.resolution_x = render.resolution_y = 96
    assert renders.count == 0 and _job_folders(studio) == folders and snapshot(scene) == before


def test_cancel_between_frames_renders_no_more_and_leaves_nothing(range_bump, studio, backend):
    scene = bpy.context.scene
    before, extra, folders = snapshot(scene), _settings_beyond_snapshot(scene), _job_folders(studio)
    server_jobs = len(BumpClient(backend.url).jobs(limit=200))
    with _RenderCounter(cancel_after=1) as renders, pytest.raises(RuntimeError, match="range render cancelled"):
        bpy.ops.bump_studio.render_bump()
    assert renders.count == 1  # stopped before the second frame
    assert _job_folders(studio) == folders and len(BumpClient(backend.url).jobs(limit=200)) == server_jobs
    assert snapshot(scene) == before and _settings_beyond_snapshot(scene) == extra
    assert scene.bump_studio.job_state == "cancelled"
    assert not addon_module("jobs").MANAGER.busy(scene.name)
    assert bpy.data.images["BumpStudio Bump"].source == "SEQUENCE"  # the previous result is untouched


def _modal_operator() -> tuple[type, SimpleNamespace, list]:
    """The Render & Bump operator's modal side, driven by hand: the bpy module has no window to run it."""
    ops = addon_module("operators_bump")
    cls = ops.BUMP_STUDIO_OT_render_bump
    reports: list = []
    fake = SimpleNamespace(_timer=None, report=lambda level, message: reports.append((set(level), message)))
    fake._stop = lambda context: cls._stop(fake, context)
    fake._range = ops.start_range(bpy.context, ops.plan_bump(bpy.context, use_last_render=False))
    return cls, fake, reports


TIMER, ESC, MOUSE = (SimpleNamespace(type=t, value=v) for t, v in (("TIMER", "NOTHING"), ("ESC", "PRESS"),
                                                                    ("MOUSEMOVE", "NOTHING")))


def test_the_panels_modal_render_takes_one_frame_per_timer_tick_and_esc_cancels(range_bump, studio):
    scene = bpy.context.scene
    settings, jobs = scene.bump_studio, addon_module("jobs")
    before, extra, folders = snapshot(scene), _settings_beyond_snapshot(scene), _job_folders(studio)
    cls, fake, reports = _modal_operator()
    with _RenderCounter() as renders:
        assert jobs.MANAGER.busy(scene.name) and settings.job_state == "rendering"
        assert cls.modal(fake, bpy.context, MOUSE) == {"PASS_THROUGH"} and renders.count == 0  # the UI goes on
        assert cls.modal(fake, bpy.context, TIMER) == {"PASS_THROUGH"} and renders.count == 1
        assert settings.job_stage.startswith("rendering: 1/3 frames, ") and settings.job_stage.endswith(" s left")
        assert settings.job_progress == pytest.approx(1 / 3)
        assert cls.modal(fake, bpy.context, ESC) == {"CANCELLED"}
    assert renders.count == 1 and reports[-1][0] == {"WARNING"} and "cancelled" in reports[-1][1]
    assert not jobs.MANAGER.busy(scene.name) and _job_folders(studio) == folders
    assert snapshot(scene) == before and _settings_beyond_snapshot(scene) == extra


def test_the_panels_modal_render_submits_after_the_last_frame(range_bump, studio):
    scene = bpy.context.scene
    settings, jobs = scene.bump_studio, addon_module("jobs")
    before, extra = snapshot(scene), _settings_beyond_snapshot(scene)
    cls, fake, reports = _modal_operator()
    results = [cls.modal(fake, bpy.context, TIMER) for _ in range(3)]
    assert results == [{"PASS_THROUGH"}, {"PASS_THROUGH"}, {"FINISHED"}], reports
    assert snapshot(scene) == before and _settings_beyond_snapshot(scene) == extra  # put back before the job runs
    job = jobs.MANAGER.running(scene.name)
    assert job is not None and job.spec.frames is not None
    _pump(scene.name)
    assert settings.job_state == "done", settings.job_message
    assert "frames 2-4 as an image sequence" in settings.job_message


def test_frames_outside_the_backends_roots_are_reported_and_an_upload_gets_through(range_bump, studio, backend,
                                                                                 tmp_path_factory):
    """A backend with package roots reads frames only under them: the add-on says what to change; with
    'Send package and frames' on Upload the same range goes as one ZIP and comes back bumped."""
    scene = bpy.context.scene
    settings = scene.bump_studio
    models = Path(backend.log).parent / "models"
    roots = BackendProcess(tmp_path_factory.mktemp("roots_backend"), "--models", str(models),
                           "--package-root", str(range_bump["library"]))
    prefs = bpy.context.preferences.addons[MODULE].preferences
    old_url, old_upload = prefs.backend_url, prefs.upload_package
    try:
        roots.wait_ready()
        prefs.backend_url = roots.url
        folders = _job_folders(studio)
        settings.range_end = FIRST + 1  # two frames are enough
        assert bpy.ops.bump_studio.render_bump() == {"FINISHED"}
        _pump(scene.name, timeout=60)
        refused = (settings.job_state, settings.job_message, _job_folders(studio) == folders)

        prefs.upload_package = "UPLOAD"
        assert bpy.ops.bump_studio.render_bump() == {"FINISHED"}
        job = addon_module("jobs").MANAGER.running(scene.name)
        _pump(scene.name)
    finally:
        settings.range_end = LAST
        prefs.backend_url, prefs.upload_package = old_url, old_upload
        roots.stop()
    state, message, nothing_left = refused
    assert state == "error" and nothing_left  # the rendered clip was never used: removed
    assert "outside its package roots" in message and "--package-root" in message and "Upload" in message
    assert job.spec.upload_frames and job.spec.upload_package and job.meta["upload_frames"]
    assert settings.job_state == "done", settings.job_message
    assert len(list((Path(settings.result_folder) / "frames").glob("frame_*.png"))) == 2
    assert bpy.data.images["BumpStudio Bump"].source == "SEQUENCE"


def test_a_single_frame_bump_after_a_range_replaces_the_sequences(range_bump):
    scene = bpy.context.scene
    settings = scene.bump_studio
    settings.frames = "CURRENT"
    try:
        assert bpy.ops.bump_studio.render_bump(wait=True, timeout=120) == {"FINISHED"}
    finally:
        settings.frames = "CUSTOM"
    bump = bpy.data.images["BumpStudio Bump"]
    assert bump.source == "FILE" and Path(bump.filepath).name == "bump.png"
    assert bpy.data.images["BumpStudio Render"].source == "FILE"
    mix = scene.compositing_node_group.nodes[addon_module("compositor").NODE_MIX]
    assert mix.inputs["Mask"].links  # the single bump's mask is wired again


def test_show_the_frames_and_the_result(range_bump, tmp_path):
    """Copies for a person to look at: the rendered frames and the bumped ones, side by side."""
    clip_dir = range_bump["clip"]
    result = Path(range_bump["job"].meta["folder"]) / "result" / "frames"
    rows = [np.concatenate([read_png(p)[..., :3] for p in sorted((clip_dir / "frames").glob("*.png"))], axis=1),
            np.concatenate([read_png(p)[..., :3] for p in sorted(result.glob("*.png"))], axis=1)]
    sheet = np.concatenate(rows, axis=0)
    assert sheet.shape == (192, 288, 3)
    look = Path(__file__).resolve().parents[2] / "out" / "addon_sequence"
    look.mkdir(parents=True, exist_ok=True)
    write_png(look / "frames_and_result.png", sheet)
    shutil.copy(result.parent / "before_after.png", look / "before_after.png")


def test_frames_zip_is_unpacked_whole_or_not_at_all(installed, tmp_path):
    jobs = addon_module("jobs")
    target = tmp_path / "frames"
    target.mkdir()
    (target / "old.png").write_bytes(b"old")
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as bundle:
        for i in (1, 2):
            bundle.writestr(f"frames/frame_000{i}.png", f"png {i}")
    assert jobs.unpack_frames(good, target) == target
    assert sorted(p.name for p in target.iterdir()) == ["frame_0001.png", "frame_0002.png"]  # replaced, not mixed
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as bundle:
        bundle.writestr("frames/frame_0001.png", "png")
        bundle.writestr("../escape.png", "x")
    with pytest.raises(jobs.BackendError, match="unexpected entry '../escape.png'"):
        jobs.unpack_frames(bad, target)
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(jobs.BackendError, match="broken.zip: File is not a zip file"):
        jobs.unpack_frames(tmp_path / "broken.zip", target)
    assert sorted(p.name for p in target.iterdir()) == ["frame_0001.png", "frame_0002.png"]  # the good result stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip", "broken.zip", "frames", "good.zip"]
