"""Render & Bump: render the shot, write its sidecar, submit it, return at once; results come back by timer.

The operator does the Blender work (render, save, sidecar) on the main thread, then hands plain
paths and parameters to :mod:`.jobs`; the worker thread talks to the backend. ``on_event`` runs
on the main thread (from ``jobs.tick``) and is the only place a result touches Blender data:
images loaded (or reloaded in place), the compositor wired, the run recorded in the library.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import bpy
from bpy.props import BoolProperty, FloatProperty

from bump_client import local_server
from bump_client.capabilities import blocking, identity_line
from bump_client.client import BackendError, BumpClient
from bump_contracts.bump_record import BumpRecord
from bump_contracts.errors import ContractError
from character_library import LibraryError, NotFoundError
from profile_rig.blender.engine_probe import eevee_available

from . import backend_ui, compositor, frame_range, jobs, panels
from .operators_library import LibraryUnavailable, open_library
from .preferences import ensure_initialised, get_prefs, work_folder
from .properties import CHARACTER_LINK
from .sidecar import ShotCharacter, ShotError, build_sidecar, linked_characters, render_size

IMAGE_RENDER, IMAGE_BUMP, IMAGE_MASK, IMAGE_FACE = "BumpStudio Render", "BumpStudio Bump", "BumpStudio Mask", "BumpStudio Face"
RANGE_TICK_S = 0.05  # a frame range renders one frame per modal timer tick; the UI runs in between


class BumpError(RuntimeError):
    """Something the user must fix before a bump can start; the message says what."""


def _png_size(path: Path) -> tuple[int, int]:
    with open(path, "rb") as handle:
        head = handle.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise BumpError(f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])


_FORMAT_FIELDS = ("media_type", "file_format", "color_mode", "color_depth", "compression", "color_management")


def save_render_result(scene: bpy.types.Scene, path: Path) -> None:
    """Write the Render Result as an 8-bit sRGB PNG through the scene's view transform.

    ``save_render`` takes the format from the scene whose render it is, so the scene's output
    format is switched to PNG for the call and put back field by field afterwards.
    """
    image = bpy.data.images.get("Render Result")
    if image is None:
        raise BumpError("there is no render yet: render the shot (F12) or turn off 'Use last render'")
    settings = scene.render.image_settings
    saved = [(name, getattr(settings, name)) for name in _FORMAT_FIELDS if hasattr(settings, name)]
    try:
        if hasattr(settings, "media_type"):
            settings.media_type = "IMAGE"
        settings.file_format, settings.color_mode, settings.color_depth = "PNG", "RGB", "8"
        settings.color_management = "FOLLOW_SCENE"
        image.save_render(str(path), scene=scene)
    except RuntimeError as exc:
        raise BumpError(f"could not save the render ({str(exc).strip()}): render the shot (F12) first") from None
    finally:
        for name, value in saved:
            if getattr(settings, name) != value:
                setattr(settings, name, value)
    if not path.is_file():
        raise BumpError(f"Blender did not write {path}; check free disk space and permissions")


def _is_local(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def reference_character(scene: bpy.types.Scene) -> str | None:
    """The library character whose package is the identity: the panel's choice, else a linked object."""
    settings = scene.bump_studio
    if settings.library_character:
        return settings.library_character
    if settings.character is not None and settings.character.get(CHARACTER_LINK):
        return str(settings.character[CHARACTER_LINK])
    linked = linked_characters(scene)
    return linked[0][1] if linked else None


def _shot_characters(lib: Any, scene: bpy.types.Scene) -> tuple[list[ShotCharacter], list[Any]]:
    """The linked characters as the sidecar needs them, and their library records (read once)."""

    shot, characters = [], []
    for obj, char_id in linked_characters(scene):
        try:
            character = lib.get_character(char_id)
        except LibraryError:
            continue  # linked to a character that was deleted: no geometry for it
        package = None
        if character.active_version is not None:
            package = str(lib.get_package(character.id).path)
        bones = character.bones
        eyes = (bones["eye_left"], bones["eye_right"]) if "eye_left" in bones and "eye_right" in bones else None
        shot.append(ShotCharacter(obj.name, character.id, character.name, package, bones.get("head"), eyes))
        characters.append(character)
    return shot, characters


def character_prompts(characters: Any) -> dict[str, dict[str, str]]:
    """Each library character's own prompts, for its faces in the shot (the backend adds them to the job's)."""
    out: dict[str, dict[str, str]] = {}
    for character in characters:
        prompt, negative = character.suggested_prompt(), character.negative_prompt or ""
        if prompt or negative:
            out[character.id] = {"prompt": prompt, "negative_prompt": negative}
    return out


def bump_params(settings: Any, prompt: str) -> dict[str, Any]:
    return {"prompt": prompt, "negative_prompt": settings.negative_prompt, "steps": settings.steps,
            "cfg": round(settings.cfg, 4), "denoise": round(settings.denoise, 4), "sampler": settings.sampler,
            "seed": settings.seed, "ip_adapter_scale": round(settings.ip_adapter_scale, 4),
            "face_pass": settings.face_pass, "face_size": settings.face_size, "clip_skip": settings.clip_skip}


def _job_folder(prefs: Any, scene: bpy.types.Scene) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", scene.name).strip("_") or "scene"
    folder = work_folder(prefs) / "jobs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = folder.with_name(f"{folder.name.split('~')[0]}~{suffix}")
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        raise BumpError(f"cannot create the work folder {folder}: {exc.strerror}; set another one in the "
                        "add-on's preferences") from None
    return folder


def check_backend_up(prefs: Any) -> None:
    """Refuse before rendering when nothing answers at the backend's URL (a refused local port answers at once).

    Without this every attempt while the backend is down rendered the shot and left its job folder
    behind with no result. Short timeouts: a backend that answers at all answers in milliseconds.
    """
    known = backend_ui.recent_status(prefs, max_age_s=5.0)  # the status light's last check: no network here
    if known is not None and known.level in (local_server.READY, local_server.LOADING):
        return
    client = BumpClient(prefs.backend_url, token=prefs.backend_token or None, timeout=3.0, connect_timeout=0.5,
                        retries=0)
    try:
        client.health()
    except BackendError as exc:
        raise BumpError(f"{exc}. Start it in the add-on's preferences (Backend > Start)") from None


QUICK_SAMPLES = {"BLENDER_EEVEE": 8}  # EEVEE's render samples for a quick look (the scene's own are put back)
_EEVEE_HERE: list[tuple[bool, str]] = []  # the probe's answer, once per process


def quick_engine_problem(engine: str) -> str | None:
    """Why ``engine`` cannot render here, or None. Only the bpy module without a display needs asking."""
    if engine != "BLENDER_EEVEE" or not bpy.app.background or bpy.app.binary_path:
        return None  # Blender with a window always has EEVEE; Workbench renders everywhere
    if not _EEVEE_HERE:
        _EEVEE_HERE.append(eevee_available())  # a throw-away process: without EGL EEVEE aborts the process
    ok, why = _EEVEE_HERE[0]
    return None if ok else f"EEVEE cannot render here ({why}); use Workbench or the scene's engine"


@contextlib.contextmanager
def render_engine(scene: bpy.types.Scene, engine: str) -> Iterator[str]:
    """Render with ``engine`` (a quick look) and without the compositor, then put the scene's settings back exactly.

    The compositor is off for the shot: once a result is wired in, it would otherwise put the
    previous bump over the new render and send that to the backend.
    """
    render = scene.render
    saved: list[tuple[Any, str, Any]] = [(render, "use_compositing", render.use_compositing)]
    render.use_compositing = False
    if engine == "SCENE" or engine == render.engine:
        try:
            yield render.engine
        finally:
            render.use_compositing = saved[0][2]
        return
    saved.append((render, "engine", render.engine))
    if engine == "BLENDER_WORKBENCH":
        shading = scene.display.shading
        saved += [(shading, "light", shading.light), (shading, "color_type", shading.color_type)]
        shading.light, shading.color_type = "STUDIO", "MATERIAL"
    elif engine in QUICK_SAMPLES:
        saved.append((scene.eevee, "taa_render_samples", scene.eevee.taa_render_samples))
        scene.eevee.taa_render_samples = QUICK_SAMPLES[engine]
    render.engine = engine
    try:
        yield engine
    finally:
        for owner, name, value in reversed(saved):
            if getattr(owner, name) != value:
                setattr(owner, name, value)


@dataclass
class BumpPlan:
    """What a Render & Bump needs, checked before anything renders."""

    prefs: Any
    character: Any  # the reference library character
    package: Any  # its active package
    shot: list[ShotCharacter]  # every linked character in the scene, for the sidecar
    per_character: dict[str, dict[str, str]]
    frames: range | None  # a frame range (one sequence job), or None: the current frame


def plan_bump(context: bpy.types.Context, use_last_render: bool) -> BumpPlan:
    """Every check that needs no rendering (main thread): settings, library, capabilities, backend up."""

    scene = context.scene
    settings = scene.bump_studio
    prefs = get_prefs(context)
    ensure_initialised(settings, prefs)
    if jobs.MANAGER.busy(scene.name):
        raise BumpError("a bump is already running for this scene: cancel it or wait until it ends")
    try:
        frames = frame_range.frames_of(scene)
    except frame_range.RangeError as exc:
        raise BumpError(str(exc)) from None
    camera = scene.camera
    if camera is None:
        raise BumpError("the scene has no active camera: add one and make it active (Ctrl Numpad 0)")
    ref = reference_character(scene)
    if ref is None:
        raise BumpError("no reference character: pick one in the Library panel (or link the character's armature "
                        "to a library character), then try again")
    try:
        lib = open_library(prefs)
        character = lib.get_character(ref)
        package = lib.get_package(character.id)
        shot, shot_records = _shot_characters(lib, scene)
        per_character = character_prompts(shot_records)
    except NotFoundError as exc:
        raise BumpError(f"{exc}; render a package for it first (Render Package)") from None
    except (LibraryError, LibraryUnavailable) as exc:
        raise BumpError(str(exc)) from None

    refused = blocking(backend_ui.capabilities(), {name: getattr(settings, name) for name in ("sampler", "face_size",
                                                                                          "face_pass", "clip_skip")})
    if refused:
        raise BumpError("; ".join(refused.values()) + ": change it in the Render & Bump panel")
    renders = frames is not None or not use_last_render  # a range always renders
    if renders and (problem := quick_engine_problem(settings.bump_engine)) is not None:
        raise BumpError(problem)
    check_backend_up(prefs)
    return BumpPlan(prefs, character, package, shot, per_character, frames)


def start_bump(context: bpy.types.Context, use_last_render: bool) -> jobs.BumpJob:
    """Everything up to the submit (main thread); the network part runs in the job's worker.

    A frame range renders here frame after frame (blocking: scripts and batch; the panel's button
    renders one frame per timer tick instead, see the operator's ``modal``).
    """
    plan = plan_bump(context, use_last_render)
    if plan.frames is not None:
        return render_range_blocking(start_range(context, plan))
    folder = _job_folder(plan.prefs, context.scene)
    try:
        return _render_and_submit(context, plan.prefs, folder, plan.character, plan.package, plan.shot,
                                  plan.per_character, use_last_render)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing was submitted: no half job in the work folder
        raise


def _upload_package(prefs: Any) -> bool:
    return prefs.upload_package == "UPLOAD" or (prefs.upload_package == "AUTO" and not _is_local(prefs.backend_url))


# -- a frame range: rendered frame by frame, then one sequence job ---------------------------------
@dataclass
class RangeJob:
    """A frame range on its way to the backend (``jobs.MANAGER.rendering`` holds it while it renders)."""

    key: str  # the scene's name
    plan: BumpPlan
    folder: Path  # the job folder (the clip goes into its ``clip/``)
    render: frame_range.RangeRender

    def cancel(self) -> None:
        self.render.cancel()

    def abort(self) -> None:
        """The add-on is disabled or Blender quits mid-range: put everything back now."""
        self.render.cancel()
        drop_range(self)


def start_range(context: bpy.types.Context, plan: BumpPlan) -> RangeJob:
    """The job folder and the range render set up (render settings switched for the vector pass)."""
    scene = context.scene
    settings = scene.bump_studio
    folder = _job_folder(plan.prefs, scene)
    try:
        width, height = render_size(scene)
        frame_range.check_disk(folder, width, height, len(plan.frames))
        render = frame_range.RangeRender(scene, plan.frames, folder / frame_range.CLIP_FOLDER, plan.shot,
                                         render_engine(scene, settings.bump_engine), save_render_result)
    except frame_range.RangeError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise BumpError(str(exc)) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    job = RangeJob(scene.name, plan, folder, render)
    jobs.MANAGER.rendering[job.key] = job
    first, last = plan.frames[0], plan.frames[-1]
    settings.job_id, settings.job_state, settings.job_progress = "", "rendering", 0.0
    settings.job_stage = f"rendering: 0/{render.total} frames"
    settings.job_message = f"rendering frames {first}-{last} ({render.total}) with motion vectors"
    return job


def drop_range(job: RangeJob) -> None:
    """Stop a range render: settings and frame put back, its folder removed, nothing submitted."""
    try:
        job.render.close()
    finally:
        shutil.rmtree(job.folder, ignore_errors=True)
        if jobs.MANAGER.rendering.get(job.key) is job:
            del jobs.MANAGER.rendering[job.key]


def range_step(job: RangeJob) -> bool:
    """Render the range's next frame and show the progress; True when every frame is rendered.

    Any error drops the range (settings put back, nothing left) and is raised as a BumpError.
    """
    render = job.render
    try:
        done = render.step()
    except frame_range.RangeError as exc:
        drop_range(job)
        raise BumpError(str(exc)) from None
    except BaseException:  # a failed render or save (BumpError), a full disk...: nothing half done stays
        drop_range(job)
        raise
    scene = bpy.data.scenes.get(job.key)
    if scene is not None:
        settings = scene.bump_studio
        eta = render.eta_s()
        left = f", {eta:.0f} s left" if eta is not None and not done else ""
        settings.job_progress = render.done / render.total
        settings.job_stage = f"rendering: {render.done}/{render.total} frames{left}"
    panels.tag_redraw()
    return done


def cancel_range(job: RangeJob) -> str:
    drop_range(job)
    message = "range render cancelled; nothing was sent and the previous result (if any) is unchanged"
    scene = bpy.data.scenes.get(job.key)
    if scene is not None:
        settings = scene.bump_studio
        settings.job_state, settings.job_stage, settings.job_message = "cancelled", "cancelled", message
    return message


def render_range_blocking(job: RangeJob) -> jobs.BumpJob:
    """Every frame in one go (scripts: no event loop runs a modal timer), then the sequence job."""
    while True:
        done = range_step(job)
        if job.render.cancelled:
            raise BumpError(cancel_range(job))
        if done:
            return submit_range(job)


def submit_range(job: RangeJob) -> jobs.BumpJob:
    """The rendered clip (clip.json written, settings put back) submitted as one sequence job."""
    plan, render = job.plan, job.render
    scene = bpy.data.scenes.get(job.key)
    try:
        if scene is None:
            raise BumpError(f"the scene {job.key!r} is gone; nothing was sent")
        clip = render.finish(plan.character.id, plan.character.name)
    except BaseException:
        drop_range(job)
        raise
    del jobs.MANAGER.rendering[job.key]
    try:
        return _submit_clip(scene, job, clip)
    except BaseException:
        shutil.rmtree(job.folder, ignore_errors=True)
        raise


def _submit_clip(scene: bpy.types.Scene, job: RangeJob, clip: Path) -> jobs.BumpJob:
    plan, render = job.plan, job.render
    settings, prefs = scene.bump_studio, plan.prefs
    first, count = render.frames[0], render.total
    params = bump_params(settings, settings.prompt or plan.character.suggested_prompt())
    upload = _upload_package(prefs)
    # every linked character's package by path (a per-frame sidecar may miss one that is off frame at first)
    packages = {c.character_id: c.package for c in plan.shot if c.package} if not upload else {}
    spec = jobs.JobSpec(url=prefs.backend_url, token=prefs.backend_token or None,
                        image=clip / "frames" / "frame_0001.png", params=params, out_dir=job.folder / "result",
                        package=plan.package.path, upload_package=upload, packages=packages,
                        label=f"{scene.name} / frames {first}-{first + count - 1}", frames=clip,
                        upload_frames=upload, sequence={"png": True, "video": True})
    seconds = sum(render.seconds)
    meta = {"kind": "sequence", "scene": scene.name, "character": plan.character.id,
            "character_name": plan.character.name, "package_version": plan.package.version,
            "folder": str(job.folder), "clip": str(clip), "frames": [first, count], "params": params,
            "sequence": spec.sequence, "upload_frames": upload, "render_engine": render.engine, "render_s": round(seconds, 3),
            "frames_with_vectors": render.vectors, "notes": render.notes}
    bump_job = jobs.BumpJob(key=scene.name, spec=spec, handlers=jobs.Handlers(on_event), meta=meta)
    (job.folder / "job.json").write_text(json.dumps({"meta": meta, "url": spec.url}, indent=1), encoding="utf-8")
    settings.job_id, settings.job_state, settings.job_stage, settings.job_progress = "", "starting", "submitting", 0.0
    settings.job_message = (f"sending frames {first}-{first + count - 1} ({count}, rendered with {render.engine} "
                            f"in {seconds:.1f} s) as one sequence")
    return jobs.MANAGER.start(bump_job)


def _render_and_submit(context: bpy.types.Context, prefs: Any, folder: Path, character: Any, package: Any,
                       shot: list[ShotCharacter], per_character: dict, use_last_render: bool) -> jobs.BumpJob:
    scene = context.scene
    settings, camera = scene.bump_studio, scene.camera
    image_path = folder / "render.png"
    engine, seconds = "last render", 0.0
    if not use_last_render:
        started = time.perf_counter()
        with render_engine(scene, settings.bump_engine) as engine:
            bpy.ops.render.render(scene=scene.name)
        seconds = time.perf_counter() - started
    save_render_result(scene, image_path)
    width, height = render_size(scene)
    if _png_size(image_path) != (width, height):
        raise BumpError(f"the last render is {_png_size(image_path)} but the scene renders at {width}x{height}: "
                        "render the shot again (turn off 'Use last render')")
    try:
        sidecar, notes = build_sidecar(scene, camera, shot, image_path.name)
    except ShotError as exc:
        raise BumpError(str(exc)) from None
    sidecar_path = folder / "render.sidecar.json"
    sidecar_path.write_text(sidecar.dumps(), encoding="utf-8")
    for note in notes:
        print(f"Bump Studio: sidecar: {note}")

    params = bump_params(settings, settings.prompt or character.suggested_prompt())
    if per_character and not settings.prompt:
        # The job prompt is then the reference character's own text: the face pass would put it before every
        # face's own prompt (twice on its face, a second identity on the others), so it starts empty there.
        params["face"] = {"prompt": ""}
    upload = _upload_package(prefs)
    spec = jobs.JobSpec(url=prefs.backend_url, token=prefs.backend_token or None, image=image_path, params=params,
                        out_dir=folder / "result", sidecar=sidecar_path, package=package.path, upload_package=upload,
                        label=f"{scene.name} / {camera.name}", character_prompts=per_character)
    meta = {"scene": scene.name, "character": character.id, "character_name": character.name,
            "package_version": package.version, "folder": str(folder), "render": str(image_path),
            "faces_in_sidecar": len(sidecar.faces), "params": params, "character_prompts": per_character,
            "render_engine": engine, "render_s": round(seconds, 3)}
    job = jobs.BumpJob(key=scene.name, spec=spec, handlers=jobs.Handlers(on_event), meta=meta)
    (folder / "job.json").write_text(json.dumps({"meta": meta, "url": spec.url}, indent=1), encoding="utf-8")
    settings.job_id, settings.job_state, settings.job_stage = "", "starting", "submitting"
    rendered = f", rendered with {engine} in {seconds:.1f} s" if not use_last_render else ""
    settings.job_progress = 0.0
    settings.job_message = f"sending {width}x{height} render ({len(sidecar.faces)} known face(s){rendered})"
    return jobs.MANAGER.start(job)


# -- main-thread side of the job -----------------------------------------------------------------
def load_image(name: str, path: Path, non_color: bool = False) -> bpy.types.Image:
    """Load ``path`` under ``name``, reusing the datablock a previous result had (nodes keep pointing at it)."""
    image = bpy.data.images.get(name)
    if image is not None and image.source == "FILE":
        image.filepath = str(path)
        image.reload()
    else:
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.load(str(path), check_existing=False)
        image.name = name
    if non_color:
        image.colorspace_settings.name = "Non-Color"
    return image


def _record_run(job: jobs.BumpJob, result: Any) -> str:
    meta = job.meta
    try:
        record = BumpRecord.from_dict(result.record)
        lib = open_library(get_prefs())
        lib.add_bump_run(meta["character"], record, run_id=job.job_id, package_version=meta["package_version"],
                         outputs=[str(result.image)])
    except (ContractError, LibraryError, LibraryUnavailable) as exc:
        return f"; not recorded in the library: {exc}"
    return ""


def _record_sequence_run(job: jobs.BumpJob, result: Any) -> str:
    """The bumped range in the character's history: its video and frames folder as the outputs."""
    meta = job.meta
    outputs = [str(p) for p in (result.files.get("sequence.mp4"), Path(result.folder) / jobs.RESULT_FRAMES)
               if p is not None]
    try:
        lib = open_library(get_prefs())
        lib.add_sequence_run(meta["character"], result.record, run_id=job.job_id,
                             package_version=meta["package_version"], outputs=outputs)
    except (ContractError, LibraryError, LibraryUnavailable) as exc:
        return f"; not recorded in the library: {exc}"
    return ""


def apply_result(scene: bpy.types.Scene, job: jobs.BumpJob, result: Any) -> str:
    settings = scene.bump_studio
    render = load_image(IMAGE_RENDER, Path(job.meta["render"]))
    bump = load_image(IMAGE_BUMP, result.image)
    mask = load_image(IMAGE_MASK, result.mask, non_color=True) if result.mask else None
    for index, path in enumerate(result.faces, start=1):
        load_image(f"{IMAGE_FACE} {index}", path)
    index = len(result.faces) + 1
    while (stale := bpy.data.images.get(f"{IMAGE_FACE} {index}")) is not None:  # fewer faces than last time
        bpy.data.images.remove(stale)
        index += 1
    compositor.wire_result(scene, render, bump, mask, settings.mix_factor)
    settings.result_folder = str(result.folder)
    note = _record_run(job, result)
    panels.show_image(bump)
    try:
        record = BumpRecord.from_dict(result.record)
    except ContractError as exc:
        return f"; the result's record is unreadable: {exc}"
    skipped = [f"{f.get('character_id') or 'a face'} ({f.get('reason')})" for f in record.skipped_faces
               if isinstance(f, dict)]
    faces = f"{len(record.faces)} face(s) bumped"
    if skipped:
        faces += f", skipped: {', '.join(skipped)}"
    return f"; {faces}{note}"


def apply_range_result(scene: bpy.types.Scene, job: jobs.BumpJob, result: Any) -> str:
    """A bumped frame range: the rendered and the bumped frames as image sequences in the compositor's nodes."""
    settings = scene.bump_studio
    first, count = job.meta["frames"]
    rendered = frame_range.sequence_files(Path(job.meta["clip"]) / "frames")
    bumped = frame_range.sequence_files(Path(result.folder) / jobs.RESULT_FRAMES)
    if len(bumped) != count or len(rendered) != count:
        raise BumpError(f"the sequence came back with {len(bumped)} frames for {count} rendered ({result.folder})")
    render = frame_range.load_sequence(IMAGE_RENDER, rendered[0])
    bump = frame_range.load_sequence(IMAGE_BUMP, bumped[0])
    compositor.wire_result(scene, render, bump, None, settings.mix_factor, frames=(first, count))
    settings.result_folder = str(result.folder)
    note = _record_sequence_run(job, result)
    panels.show_image(bump)
    return (f"; frames {first}-{first + count - 1} as an image sequence "
            f"({frame_range.result_summary(result.record)}){note}")


def on_event(job: jobs.BumpJob, event: jobs.Event) -> None:
    scene = bpy.data.scenes.get(job.meta["scene"])
    if scene is None:
        return  # the scene is gone (file closed); the files stay in the work folder
    settings = scene.bump_studio
    status = event.status
    if event.kind == jobs.SUBMITTED:
        settings.job_id, settings.job_state = status.id, status.state
        ahead = status.queue_position
        settings.job_stage = f"queued, {ahead} ahead" if ahead else "queued"
    elif event.kind == jobs.PROGRESS:
        settings.job_id, settings.job_state, settings.job_progress = status.id, status.state, status.progress
        eta = f", {status.eta_s:.0f} s left" if status.eta_s else ""
        settings.job_stage = (f"{status.stage_label}{eta}" if status.state == "running"
                              else f"queued, {status.queue_position or 0} ahead")
    elif event.kind == jobs.DONE:
        try:
            apply = apply_range_result if job.meta.get("kind") == "sequence" else apply_result
            note = apply(scene, job, event.result)
        except BumpError as exc:
            settings.job_state, settings.job_stage, settings.job_message = "error", "error", str(exc)
            panels.notify("ERROR", f"Bump Studio: {exc}")
            panels.tag_redraw()
            return
        seconds = time.monotonic() - job.started
        settings.job_state, settings.job_progress, settings.job_stage = "done", 1.0, "done"
        settings.job_message = f"bumped in {seconds:.0f} s; result in the compositor ({compositor.NODE_MIX}){note}"
        panels.notify("INFO", f"Bump Studio: {settings.job_message}")
    elif event.kind == jobs.CANCELLED:
        settings.job_state, settings.job_stage = "cancelled", "cancelled"
        settings.job_message = "cancelled; the previous result (if any) is unchanged"
        panels.notify("WARNING", "Bump Studio: bump cancelled")
    elif event.kind == jobs.FAILED:
        settings.job_state, settings.job_stage = "failed", "failed"
        settings.job_message = (f"the backend could not bump the render: {event.message}. Check the backend's log; "
                                "if it ran out of memory lower the steps or the image size, then try again")
        panels.notify("ERROR", f"Bump Studio: {settings.job_message}")
    elif event.kind == jobs.ERROR:
        settings.job_state, settings.job_stage = "error", "error"
        if job.job_id is None:  # never reached the backend: its render and sidecar are of no use
            shutil.rmtree(job.meta["folder"], ignore_errors=True)
        settings.job_message = event.message
        panels.notify("ERROR", f"Bump Studio: {event.message}")
    panels.tag_redraw()


# -- operators -----------------------------------------------------------------------------------
class BUMP_STUDIO_OT_render_bump(bpy.types.Operator):
    """Render the active camera (or take the last render), send it with the character's package to the backend, and come back at once"""

    bl_idname = "bump_studio.render_bump"
    bl_label = "Render & Bump"
    bl_options = {"REGISTER"}

    use_last_render: BoolProperty(name="Use last render", default=False,
                                  description="Send the last render instead of rendering again (default: the "
                                              "scene's setting)")
    wait: BoolProperty(name="Wait", default=False, options={"SKIP_SAVE"},
                       description="Block until the job ends (batch scripts: no event loop runs the timers there)")
    timeout: FloatProperty(name="Timeout", default=3600.0, min=1.0, options={"SKIP_SAVE"})

    _range: RangeJob | None = None
    _timer: Any = None

    def invoke(self, context: bpy.types.Context, event: Any) -> set[str]:
        """From the UI, a frame range renders one frame per timer tick: the UI draws and Esc cancels in between."""
        if bpy.app.background or context.scene.bump_studio.frames == "CURRENT" or self.wait:
            return self.execute(context)
        try:
            self._range = start_range(context, plan_bump(context, use_last_render=False))
        except (BumpError, OSError) as exc:
            return self._not_started(exc)
        wm = context.window_manager
        self._timer = wm.event_timer_add(RANGE_TICK_S, window=context.window)
        wm.modal_handler_add(self)
        panels.tag_redraw()
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: Any) -> set[str]:
        job = self._range
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
        if job.render.cancelled:
            self._stop(context)
            self.report({"WARNING"}, cancel_range(job))
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            if not range_step(job):
                return {"PASS_THROUGH"}
            self._stop(context)
            submit_range(job)
        except (BumpError, OSError, RuntimeError) as exc:  # the range is dropped; say why instead of a traceback
            self._stop(context)
            scene = bpy.data.scenes.get(job.key)
            if scene is not None:
                scene.bump_studio.job_state, scene.bump_studio.job_message = "error", str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, "frames rendered; the sequence is bumping (progress in the panel and the status bar)")
        return {"FINISHED"}

    def _not_started(self, exc: Exception) -> set[str]:
        """Why the bump or the range did not start; a file error is the disk or the work folder."""
        message = str(exc) if isinstance(exc, BumpError) else \
            f"{exc}; check free disk space and the work folder in the preferences"
        self.report({"ERROR"}, message)
        return {"CANCELLED"}

    def _stop(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        panels.tag_redraw()

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        use_last = self.use_last_render if self.properties.is_property_set("use_last_render") \
            else scene.bump_studio.use_last_render
        try:
            job = start_bump(context, use_last)
        except (BumpError, OSError) as exc:
            return self._not_started(exc)
        if not self.wait:
            self.report({"INFO"}, "Bump submitted; progress shows in the Bump Studio panel and the status bar")
            return {"FINISHED"}
        try:
            jobs.MANAGER.wait(job.key, self.timeout)
        except TimeoutError as exc:
            job.cancel()
            self.report({"ERROR"}, f"{exc}; it was cancelled")
            return {"CANCELLED"}
        settings = scene.bump_studio
        if settings.job_state != "done":
            self.report({"ERROR"}, settings.job_message)
            return {"CANCELLED"}
        self.report({"INFO"}, settings.job_message)
        return {"FINISHED"}


class BUMP_STUDIO_OT_cancel_bump(bpy.types.Operator):
    """Cancel this scene's running bump (the backend stops at its next step; a range render before its next frame)"""

    bl_idname = "bump_studio.cancel_bump"
    bl_label = "Cancel Bump"

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not jobs.MANAGER.cancel(context.scene.name):
            self.report({"WARNING"}, "no bump is running for this scene")
            return {"CANCELLED"}
        context.scene.bump_studio.job_stage = "cancelling"
        self.report({"INFO"}, "cancelling the bump")
        return {"FINISHED"}


class BUMP_STUDIO_OT_wait_bump(bpy.types.Operator):
    """Wait for this scene's bump to end (for scripts; the UI never needs it)"""

    bl_idname = "bump_studio.wait_bump"
    bl_label = "Wait for Bump"
    bl_options = {"INTERNAL"}

    timeout: FloatProperty(default=3600.0, min=0.1)

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            jobs.MANAGER.wait(context.scene.name, self.timeout)
        except TimeoutError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class BUMP_STUDIO_OT_clear_result(bpy.types.Operator):
    """Remove the bump result nodes from the compositor and give its output back to what fed it before"""

    bl_idname = "bump_studio.clear_result"
    bl_label = "Remove Bump Result"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not compositor.clear_result(context.scene):
            self.report({"WARNING"}, "there is no bump result in this scene's compositor")
            return {"CANCELLED"}
        return {"FINISHED"}


class BUMP_STUDIO_OT_show_result(bpy.types.Operator):
    """Show the bumped image in an Image Editor"""

    bl_idname = "bump_studio.show_result"
    bl_label = "Show Result"

    def execute(self, context: bpy.types.Context) -> set[str]:
        image = bpy.data.images.get(IMAGE_BUMP)
        if image is None:
            self.report({"WARNING"}, "no bump result yet: run Render & Bump first")
            return {"CANCELLED"}
        if not panels.show_image(image):
            self.report({"INFO"}, f"the result is the image {IMAGE_BUMP!r} ({image.filepath})")
        return {"FINISHED"}


class BUMP_STUDIO_OT_check_backend(bpy.types.Operator):
    """Ask the backend for its version, device and model (short timeouts: a local backend answers in milliseconds)"""

    bl_idname = "bump_studio.check_backend"
    bl_label = "Check Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        prefs = get_prefs(context)
        status = local_server.check(prefs.backend_url, prefs.backend_token or None, timeout=3.0)
        if status.level in (local_server.UNREACHABLE, local_server.FAILED):
            self.report({"ERROR"}, status.text)
            return {"CANCELLED"}
        health = status.health
        caps = health.capabilities
        self.report({"INFO"}, f"backend {health.version}: {status.text}" + (f"; {identity_line(caps)}" if caps else ""))
        return {"FINISHED"}


classes = (BUMP_STUDIO_OT_render_bump, BUMP_STUDIO_OT_cancel_bump, BUMP_STUDIO_OT_wait_bump,
           BUMP_STUDIO_OT_clear_result, BUMP_STUDIO_OT_show_result, BUMP_STUDIO_OT_check_backend)
