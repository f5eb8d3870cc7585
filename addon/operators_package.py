"""Render Package: the white-studio, multi-angle head package of the character, saved into the library.

``profile_rig`` does the work (``scene_session.prepare_scene`` finds the head and the character's
objects in the open scene, ``package_render.render_package`` renders every view in a separate
scene it removes again); this module turns panel settings into its options, reports progress,
saves the result as a new library version, and puts back the little UI state an operator may
touch (active scene, camera, active object, selection, frame, mode).
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from mathutils import Vector

from bump_contracts.pose import Pose, PoseError, parse_expression_list
from bump_contracts.views import VIEWS, ViewError, near_duplicates, resolve_views
from character_library import LibraryError, NotFoundError
from profile_rig.blender import package_cli
from profile_rig.blender.demo_character import DEMO_TAG, build_demo_character
from profile_rig.blender.engine_probe import eevee_available
from profile_rig.blender.head_finder import HeadNotFoundError
from profile_rig.blender.package_render import PackageOptions, RenderCancelled, render_package
from profile_rig.blender.posing import PoseError as RigPoseError
from profile_rig.blender.posing import PoseSnapshot, RigControls, apply_pose
from profile_rig.blender.scene_session import prepare_scene
from profile_rig.core import pose_math
from profile_rig.core.expressions import known_expressions
from profile_rig.core.package_writer import PackageExistsError
from profile_rig.core.phenotype import PRESETS as DEMO_PRESETS
from profile_rig.core.render_presets import PRESETS

from . import panels
from .operators_library import LibraryUnavailable, bones_of, open_library, refresh, source_of
from .preferences import apply_defaults, ensure_initialised, get_prefs
from .properties import CHARACTER_LINK

POSE_BASE = "bump_studio_pose_base"  # on the character: its pose before Apply Pose (JSON), for Reset Pose
DEMO_CAMERA_OFFSET = (0.0, -0.7, 1.6)  # from the demo's feet: in front of its face, looking at it
CANCEL = threading.Event()  # set by bump_studio.cancel_package (or a script), read between views


class PackageError(RuntimeError):
    """Bad settings or a scene without a usable character; the message says what to change."""


@dataclass
class SceneState:
    """The UI state around a package render, put back afterwards whatever happens."""

    scene: str
    camera: str | None
    active: str | None
    selected: list[str] = field(default_factory=list)
    frame: int = 1
    mode: str = "OBJECT"

    @classmethod
    def capture(cls, context: bpy.types.Context) -> SceneState:
        scene = context.scene
        active = context.view_layer.objects.active
        return cls(scene.name, scene.camera.name if scene.camera else None, active.name if active else None,
                   [o.name for o in scene.objects if o.select_get()], scene.frame_current,
                   context.mode if context.mode in ("OBJECT", "POSE") else "OBJECT")

    def restore(self, context: bpy.types.Context) -> None:
        window = context.window
        scene = bpy.data.scenes.get(self.scene)
        if scene is None:
            return
        if window is not None and window.scene != scene:
            window.scene = scene
        scene.camera = bpy.data.objects.get(self.camera) if self.camera else None
        if scene.frame_current != self.frame:
            scene.frame_set(self.frame)
        layer = context.view_layer
        for obj in scene.objects:
            want = obj.name in self.selected
            if obj.select_get() != want:
                obj.select_set(want)
        layer.objects.active = bpy.data.objects.get(self.active) if self.active else None


def view_specs(settings: Any) -> list:
    try:
        specs = resolve_views(settings.custom_views if settings.view_set == "custom" else settings.view_set)
    except ViewError as exc:
        raise PackageError(f"{exc}; fix the views in the Package panel") from None
    close = near_duplicates(specs)
    if close:
        print(f"Bump Studio: views at nearly the same angle: {close}")
    return specs


def expression_views(settings: Any) -> tuple[str, ...]:
    """The 'Expression views' list, checked by the pose contract (names) and the demo's data (known ones)."""
    try:
        names = parse_expression_list(settings.expression_views, "Expression views")
    except PoseError as exc:
        raise PackageError(str(exc)) from None
    character = settings.character
    if names and character is not None and character.get(DEMO_TAG):  # another figure's keys: checked as it renders
        known = known_expressions()
        unknown = [name for name in names if name not in known]
        if unknown:
            raise PackageError(f"Expression views: unknown expression {unknown[0]!r}; known: "
                               f"{', '.join(known[:7])} or an MPFB2 unit like mouth-open")
    return names


def view_count(options: Any) -> int:
    """Views a package renders: the listed ones plus the expression views they add."""
    return len(options.views) + len(pose_math.expression_views(options.expressions, options.views))


def package_options(settings: Any, overwrite: bool = False) -> Any:
    preset = PRESETS[settings.preset].with_overrides(samples=settings.samples or None, engine=settings.engine)
    if preset.engine != "CYCLES" and bpy.app.background and not bpy.app.binary_path:
        ok, why = eevee_available()
        if not ok:
            raise PackageError(f"{preset.engine} cannot render here ({why}); use Cycles")
    return PackageOptions(views=view_specs(settings), resolution=(settings.resolution, settings.resolution),
                          preset=preset, studio=settings.studio, overwrite=overwrite,
                          pose_views=settings.pose_views, expressions=expression_views(settings))


def character_session(context: bpy.types.Context, character: str | None = None) -> Any:
    """The character's head and objects in the open scene (profile_rig's scene session)."""

    settings = context.scene.bump_studio
    name = character or (settings.character.name if settings.character else None)
    eyes = (settings.eye_bone_left, settings.eye_bone_right) if settings.eye_bone_left and settings.eye_bone_right else None
    try:
        return prepare_scene(character=name, head_bone=settings.head_bone or None, eye_bones=eyes,
                             head_object=settings.head_object.name if settings.head_object else None)
    except HeadNotFoundError as exc:
        raise PackageError(str(exc).replace("--character", "the Character field").replace(
            "--head-bone", "Head bone").replace("--head-object", "Head object")) from None


def describe(found: Any) -> str:
    details = ", ".join(f"{k} {v}" for k, v in found.details.items() if k in ("head_bone", "eye_bones", "mesh",
                                                                                   "eye_groups", "head_object"))
    estimated = " (eyes estimated)" if found.details.get("estimated_eyes") else ""
    return f"{found.character}: {found.method}{estimated}" + (f" ({details})" if details else "")


def _library_character(lib: Any, context: bpy.types.Context, session: Any, obj: bpy.types.Object | None) -> Any:
    """The library character the package belongs to: linked, chosen, or created from the object."""

    settings = context.scene.bump_studio
    chosen = settings.library_character
    if chosen and any(o.get(CHARACTER_LINK) == chosen and o != obj for o in context.scene.objects):
        chosen = ""  # the panel's character belongs to another figure in the scene: never file this one under it
    for ref in (obj.get(CHARACTER_LINK) if obj is not None else None, chosen):
        if ref:
            try:
                return lib.get_character(str(ref))
            except NotFoundError:
                continue
    try:
        return lib.get_character(session.name)
    except NotFoundError:
        pass
    fields: dict[str, Any] = {}
    if obj is not None:
        fields = {"source": source_of(obj), "bones": bones_of(context, obj)}
    return lib.create_character(session.name, **fields)


@dataclass
class PackagePlan:
    """What a package render needs, checked before anything renders."""

    options: Any
    session: Any
    obj: bpy.types.Object | None
    lib: Any
    target: Path
    work: Path | None

    def cleanup(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)


def plan_package(context: bpy.types.Context, *, out_dir: str = "", character: str | None = None,
                 save_to_library: bool | None = None, overwrite: bool = False) -> PackagePlan:
    settings = context.scene.bump_studio
    prefs = get_prefs(context)
    ensure_initialised(settings, prefs)
    options = package_options(settings, overwrite)
    session = character_session(context, character)
    obj = bpy.data.objects.get(session.found.character)
    to_library = settings.save_to_library if save_to_library is None else save_to_library
    if to_library and not out_dir:
        try:
            lib = open_library(prefs)
            lib.staging_dir.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix="package-", dir=lib.staging_dir))
        except LibraryUnavailable as exc:
            raise PackageError(f"{exc} (or turn off 'Save to library' and pick a folder)") from None
        except OSError as exc:
            raise PackageError(f"cannot write into the library: {exc.strerror or exc}") from None
        return PackagePlan(options, session, obj, lib, work / "package", work)
    folder = out_dir or settings.output_dir or f"//bump_studio/{session.name}_package"
    return PackagePlan(options, session, obj, None, Path(bpy.path.abspath(folder)).expanduser(), None)


def finish_package(context: bpy.types.Context, plan: PackagePlan, rendered: Path, seconds: float) -> tuple[Path, str]:
    """Move a rendered package into the library (a new active version) and update the panel."""
    settings = context.scene.bump_studio
    path, what = rendered, f"{view_count(plan.options)} views in {seconds:.0f} s"
    if plan.lib is not None:
        character = _library_character(plan.lib, context, plan.session, plan.obj)
        package = plan.lib.add_package(character.id, rendered, origin="rendered", move=True)
        path = package.path
        what += f", saved as {character.name} v{package.version}"
        if plan.obj is not None:
            plan.obj[CHARACTER_LINK] = character.id
        if not settings.library_character:
            settings.library_character = character.id
    settings.last_package, settings.package_progress = str(path), 1.0
    settings.package_message = what
    settings.detected = describe(plan.session.found)
    if plan.lib is not None:
        refresh(context)
    return path, what


def run_package(context: bpy.types.Context, *, out_dir: str = "", character: str | None = None,
                save_to_library: bool | None = None, overwrite: bool = False) -> tuple[Path, str]:
    """Render (in this process) and store the package; returns (package folder, what happened)."""

    settings = context.scene.bump_studio
    plan = plan_package(context, out_dir=out_dir, character=character, save_to_library=save_to_library,
                        overwrite=overwrite)
    session, wm, total = plan.session, context.window_manager, view_count(plan.options)
    CANCEL.clear()

    def progress(index: int, count: int, name: str, seconds: float) -> None:
        settings.package_progress = index / count
        settings.package_message = f"{index}/{count} {name} ({seconds:.1f} s)"
        wm.progress_update(index)
        print(f"Bump Studio: package [{index}/{count}] {name}: {seconds:.1f} s")
        panels.redraw_now()

    state = SceneState.capture(context)
    started = time.perf_counter()
    settings.package_running, settings.package_progress = True, 0.0
    settings.package_message = f"rendering {total} views of {session.name}"
    wm.progress_begin(0, total)
    try:
        result = render_package(session.found, session.objects, plan.target, plan.options,
                                character_name=session.name,
                                phenotype=session.phenotype.to_dict() if session.phenotype else None,
                                source=session.source, progress=progress, should_cancel=CANCEL.is_set)
        return finish_package(context, plan, result.path, time.perf_counter() - started)
    except RenderCancelled as exc:
        raise PackageError(f"{exc} (the previous package is unchanged)") from None
    except PackageExistsError as exc:
        raise PackageError(f"{exc}; pick an empty folder or save to the library") from None
    except (LibraryError, OSError) as exc:
        raise PackageError(f"{exc}; check free disk space and the library folder") from None
    finally:
        wm.progress_end()
        settings.package_running = False
        state.restore(context)
        plan.cleanup()


# -- the same render in a background process (the UI's way: Blender stays responsive, cancel kills it) --
PROGRESS_LINE = re.compile(r"^\[(\d+)/(\d+)\] (\S+): ([\d.]+) s")
ENGINE_NAMES = {"CYCLES": "cycles", "BLENDER_EEVEE": "eevee", "BLENDER_WORKBENCH": "workbench"}


def package_command(blend: Path, plan: PackagePlan, settings: Any) -> tuple[list[str], dict[str, str]]:
    """The package command on a copy of the open file: a real Blender binary, or Python with bpy."""
    options = plan.options
    views = ",".join(
        v.name if v.name in VIEWS and VIEWS[v.name] == v else f"{v.name}:{v.yaw:g}:{v.pitch:g}:{v.roll:g}"
        for v in options.views)
    args = ["package", "--character", plan.session.found.character, "--out", str(plan.target), "--views", views,
            "--resolution", f"{options.resolution[0]}x{options.resolution[1]}", "--preset", settings.preset,
            "--samples", str(options.preset.samples), "--engine", ENGINE_NAMES[options.preset.engine],
            "--studio", options.studio, "--json"]
    if options.overwrite:
        args.append("--overwrite")
    if options.expressions:
        args += ["--expressions", ",".join(options.expressions)]
    if not options.pose_views:
        args.append("--no-pose-views")
    if settings.head_bone:
        args += ["--head-bone", settings.head_bone]
    if settings.eye_bone_left and settings.eye_bone_right:
        args += ["--eye-bones", f"{settings.eye_bone_left},{settings.eye_bone_right}"]
    if settings.head_object is not None:
        args += ["--head-object", settings.head_object.name]
    site = Path(package_cli.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)}
    if bpy.app.binary_path:
        entry = Path(package_cli.__file__).with_name("blender_entry.py")
        return [bpy.app.binary_path, "-b", "--factory-startup", str(blend), "-P", str(entry), "--", *args], env
    return [sys.executable, "-m", package_cli.__name__, *args[:1], "--blend", str(blend), *args[1:]], env


class BackgroundPackage:
    """A package render in another process; ``poll()`` from the main thread reads its progress lines."""

    def __init__(self, context: bpy.types.Context, plan: PackagePlan) -> None:
        self.plan = plan
        self.started = time.perf_counter()
        self.folder = Path(tempfile.mkdtemp(prefix="bump_studio_blend_"))
        self.blend = self.folder / "scene.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(self.blend), copy=True, check_existing=False)
        command, env = package_command(self.blend, plan, context.scene.bump_studio)
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: queue.SimpleQueue = queue.SimpleQueue()
        self.readers = [threading.Thread(target=self._read, args=(stream, kind), daemon=True)
                        for stream, kind in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for reader in self.readers:
            reader.start()
        self.out: list[str] = []
        self.errors: list[str] = []
        self.progress = (0, view_count(plan.options), "")

    def _read(self, stream: Any, kind: str) -> None:  # reader thread: no bpy
        for line in stream:
            self.lines.put((kind, line.rstrip("\n")))

    def poll(self) -> bool:
        """Take in what the process printed; True once it has ended and everything is read."""
        while True:
            try:
                kind, line = self.lines.get_nowait()
            except queue.Empty:
                break
            if kind == "out":
                self.out.append(line)
            elif (match := PROGRESS_LINE.match(line)) is not None:
                self.progress = (int(match[1]), int(match[2]), match[3])
            elif line.startswith("error:"):
                self.errors.append(line.removeprefix("error:").strip())
        return self.proc.poll() is not None and not any(r.is_alive() for r in self.readers) and self.lines.empty()

    def cancel(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.plan.cleanup()

    def finish(self, context: bpy.types.Context) -> tuple[Path, str]:
        """After ``poll()`` said it ended: store the package (or raise PackageError with the process's reason)."""

        try:
            if self.proc.returncode != 0:
                why = self.errors[-1] if self.errors else f"the render process exited with code {self.proc.returncode}"
                raise PackageError(why)
            document = json.loads(next(line for line in reversed(self.out) if line.startswith("{")))
            return finish_package(context, self.plan, Path(document["package"]), time.perf_counter() - self.started)
        except (StopIteration, ValueError, KeyError):
            raise PackageError("the render process gave no package path; see the console for its output") from None
        except (LibraryError, OSError) as exc:
            raise PackageError(f"{exc}; check free disk space and the library folder") from None
        finally:
            self.close()


class BUMP_STUDIO_OT_render_package(bpy.types.Operator):
    """Render the character's profile package (white studio, every view) in a separate scene and save it to the library"""

    bl_idname = "bump_studio.render_package"
    bl_label = "Render Package"
    bl_options = {"REGISTER"}

    character: StringProperty(name="Character", description="Armature or mesh name (default: the panel's)")
    out_dir: StringProperty(name="Folder", subtype="DIR_PATH",
                            description="Write the package here instead of into the library")
    overwrite: BoolProperty(name="Overwrite", default=False, description="Replace a package already in the folder")
    show: BoolProperty(name="Show contact sheet", default=True, options={"SKIP_SAVE"})

    _job: BackgroundPackage | None = None
    _timer: Any = None

    def execute(self, context: bpy.types.Context) -> set[str]:
        """In this process (scripts, batch, tests): blocks until every view is rendered."""
        try:
            path, what = run_package(context, out_dir=self.out_dir, character=self.character or None,
                                     overwrite=self.overwrite)
        except PackageError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return self._done(context, path, what)

    def invoke(self, context: bpy.types.Context, event: Any) -> set[str]:
        """From the UI: render in a background process, so Blender stays responsive and Esc/Cancel stop it."""
        if bpy.app.background:
            return self.execute(context)
        settings = context.scene.bump_studio
        try:
            plan = plan_package(context, out_dir=self.out_dir, character=self.character or None,
                                overwrite=self.overwrite)
            self._job = BackgroundPackage(context, plan)
        except PackageError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        CANCEL.clear()
        settings.package_running, settings.package_progress = True, 0.0
        settings.package_message = f"rendering {view_count(plan.options)} views of {plan.session.name} (Esc cancels)"
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: Any) -> set[str]:
        settings = context.scene.bump_studio
        job = self._job
        if event.type == "ESC" or CANCEL.is_set():
            job.cancel()
            self._stop(context)
            settings.package_message = "package render cancelled; nothing was written"
            self.report({"WARNING"}, settings.package_message)
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        ended = job.poll()
        index, total, name = job.progress
        settings.package_progress = index / max(total, 1)
        settings.package_message = f"{index}/{total} {name}" if name else settings.package_message
        panels.tag_redraw()
        if not ended:
            return {"PASS_THROUGH"}
        self._stop(context)
        try:
            path, what = job.finish(context)
        except PackageError as exc:
            settings.package_message = str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return self._done(context, path, what)

    def _stop(self, context: bpy.types.Context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        context.scene.bump_studio.package_running = False

    def _done(self, context: bpy.types.Context, path: Path, what: str) -> set[str]:
        sheet = path / "contact_sheet.png"
        if self.show and sheet.is_file() and not bpy.app.background:
            image = bpy.data.images.load(str(sheet), check_existing=True)
            image.reload()
            panels.show_image(image)
        self.report({"INFO"}, f"package: {what} ({path})")
        return {"FINISHED"}


class BUMP_STUDIO_OT_cancel_package(bpy.types.Operator):
    """Stop the package render before its next view (nothing is written)"""

    bl_idname = "bump_studio.cancel_package"
    bl_label = "Cancel Package"

    def execute(self, context: bpy.types.Context) -> set[str]:
        CANCEL.set()
        return {"FINISHED"}


class BUMP_STUDIO_OT_detect_head(bpy.types.Operator):
    """Find the character's head and eyes (bones, eye groups or mesh) and show what was found"""

    bl_idname = "bump_studio.detect_head"
    bl_label = "Detect Head"

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.bump_studio
        try:
            session = character_session(context)
        except PackageError as exc:
            settings.detected = ""
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        settings.detected = describe(session.found)
        self.report({"INFO"}, settings.detected)
        return {"FINISHED"}


# -- the current shot's pose: the panel's head/neck/eye angles and expression on the character's rig --
def panel_pose(settings: Any) -> Pose:
    """The panel's pose, checked by the pose contract (the limits the CLI and job files use)."""
    controls = {"head": [settings.pose_head_turn, settings.pose_head_tilt, settings.pose_head_roll],
                "neck": [settings.pose_neck_turn, settings.pose_neck_tilt, settings.pose_neck_roll],
                "eyes": [settings.pose_eyes_turn, settings.pose_eyes_tilt]}
    expression = {} if settings.pose_expression == "neutral" else {
        settings.pose_expression: settings.pose_expression_weight}
    try:
        return Pose.from_dict({"controls": controls, "expression": expression}, "pose")
    except PoseError as exc:
        raise PackageError(str(exc)) from None


def _posed_character(context: bpy.types.Context) -> tuple[Any, bpy.types.Object]:
    session = character_session(context)
    obj = bpy.data.objects.get(session.found.character)
    if obj is None:
        raise PackageError(f"{session.found.character}: found by {session.found.method}, not an object to pose")
    return session, obj


def apply_panel_pose(context: bpy.types.Context) -> str:
    """Put the panel's pose on the character, from the pose it had before the first Apply (never compounded)."""
    pose = panel_pose(context.scene.bump_studio)
    session, obj = _posed_character(context)
    base = PoseSnapshot.from_dict(json.loads(obj[POSE_BASE])) if obj.get(POSE_BASE) else None
    if base is not None:
        base.restore(keep_added=True)
        session, obj = _posed_character(context)  # the head frame of the character as it was
    rig = obj if obj.type == "ARMATURE" else None
    meshes = [o for o in session.objects if o.type == "MESH"]
    eyes = session.found.details.get("eye_bones")
    controls = RigControls.of(rig, session.found.details.get("head_bone"), tuple(eyes) if eyes else None) if rig else None
    if base is None:
        base = PoseSnapshot.capture(rig, controls.bones() if controls else [], meshes)
    try:
        apply_pose(rig, meshes, pose, session.found.frame, controls, base)
    except RigPoseError as exc:
        base.restore()
        if POSE_BASE in obj:
            del obj[POSE_BASE]
        raise PackageError(str(exc)) from None
    obj[POSE_BASE] = json.dumps(base.to_dict())
    return session.name


def reset_panel_pose(context: bpy.types.Context) -> str | None:
    """Back to the pose before the first Apply; None when the character was not posed from the panel."""
    _session, obj = _posed_character(context)
    if not obj.get(POSE_BASE):
        return None
    PoseSnapshot.from_dict(json.loads(obj[POSE_BASE])).restore()
    del obj[POSE_BASE]
    return obj.name


class BUMP_STUDIO_OT_apply_pose(bpy.types.Operator):
    """Turn the character's head, neck and eyes and set its expression as the panel says (Reset Pose undoes it)"""

    bl_idname = "bump_studio.apply_pose"
    bl_label = "Apply Pose"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            name = apply_panel_pose(context)
        except PackageError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"posed {name}")
        return {"FINISHED"}


class BUMP_STUDIO_OT_reset_pose(bpy.types.Operator):
    """Put the character back in the pose it had before Apply Pose"""

    bl_idname = "bump_studio.reset_pose"
    bl_label = "Reset Pose"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            name = reset_panel_pose(context)
        except PackageError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{name}: pose reset" if name else "the character was not posed from the panel")
        return {"FINISHED"}


class BUMP_STUDIO_OT_reset_settings(bpy.types.Operator):
    """Set this scene's package and bump settings to the defaults in the add-on's preferences"""

    bl_idname = "bump_studio.reset_settings"
    bl_label = "Use Default Settings"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        apply_defaults(context.scene.bump_studio, get_prefs(context))
        return {"FINISHED"}


class BUMP_STUDIO_OT_add_demo_character(bpy.types.Operator):
    """Add the demo character (generated body, head and rig) and a camera on its face, made the scene's camera"""

    bl_idname = "bump_studio.add_demo_character"
    bl_label = "Add Demo Character"
    bl_options = {"REGISTER", "UNDO"}

    preset: EnumProperty(name="Character", items=[(k, p.name, f"{p.name} ({k})") for k, p in DEMO_PRESETS.items()],
                         default="demo_man")
    subdivision: IntProperty(name="Subdivision", min=0, max=2, default=1)

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        rig = build_demo_character(DEMO_PRESETS[self.preset], scene.collection, subdivision=self.subdivision)
        rig.location = scene.cursor.location
        camera = bpy.data.objects.new(f"{rig.name} Camera", bpy.data.cameras.new(f"{rig.name} Camera"))
        camera.data.lens = 60.0
        camera.location = rig.location + Vector(DEMO_CAMERA_OFFSET)  # the face fills about 40 % of the height
        camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
        scene.collection.objects.link(camera)
        scene.camera = camera
        for obj in context.view_layer.objects:
            if obj.select_get():
                obj.select_set(False)
        rig.select_set(True)
        context.view_layer.objects.active = rig
        scene.bump_studio.character = rig
        self.report({"INFO"}, f"added {rig.name} and {camera.name} (the scene's camera now)")
        return {"FINISHED"}


classes = (BUMP_STUDIO_OT_add_demo_character, BUMP_STUDIO_OT_render_package, BUMP_STUDIO_OT_cancel_package, BUMP_STUDIO_OT_detect_head,
           BUMP_STUDIO_OT_reset_settings, BUMP_STUDIO_OT_apply_pose, BUMP_STUDIO_OT_reset_pose)
