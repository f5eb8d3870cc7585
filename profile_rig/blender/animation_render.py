"""Render clips: PNG frames, a render sidecar and motion vectors per frame, and ``clip.json``.

Two users share the pieces here: the demo clip (``render_clip``: the pose of every frame is keyed on
the rig and shape keys, so Cycles sees real motion, in a studio scene like the package's) and the
add-on's Render & Bump over a frame range of the user's own scene. Each frame is rendered once to an
uncompressed multilayer EXR (``vector_pass`` sets the scene up for it and puts every setting back),
from which Cycles' Vector pass is taken (``render_vectors``); ``ClipWriter`` builds the clip folder
beside its destination and renames it into place only when every frame is there. Layout in
``docs/architecture.md`` ("Demo clip").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Vector

from bump_contracts.atomic_io import write_bytes_atomic
from bump_contracts.clip import FILE_NAME as CLIP_FILE
from bump_contracts.clip import Clip, ClipFrame
from bump_contracts.pose import Pose
from bump_contracts.views import ViewSpec
from profile_rig.blender.head_finder import FoundHead
from profile_rig.blender.package_render import StudioScene, make_camera
from profile_rig.blender.posing import PoseSnapshot, RigControls, apply_pose
from profile_rig.blender.shot_sidecar import ShotCharacter, build_sidecar
from profile_rig.blender.studio import (
    add_lights,
    apply_color_management,
    apply_render_settings,
    apply_threads,
    setup_world,
)
from profile_rig.core.camera_math import Framing, Intrinsics, place_camera
from profile_rig.core.pose_math import demo_clip_walk
from profile_rig.core.render_presets import FAST, RenderPreset
from profile_rig.core.studio_hdri import get_studio
from profile_rig.imaging.exr_io import read_exr
from profile_rig.imaging.png_io import write_png


@dataclass
class ClipOptions:
    poses: list[Pose]
    fps: int = 12
    resolution: tuple[int, int] = (384, 384)
    preset: RenderPreset = FAST
    studio: str = "almost_white"
    view: ViewSpec = field(default_factory=lambda: ViewSpec("clip", 15.0, 0.0))
    framing: Framing = field(default_factory=lambda: Framing(face_fill=0.3))
    overwrite: bool = False
    threads: int = 0
    walk: float = 0.25  # share of the head's floor distance to the camera the character walks toward it


def _srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, None)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


# the settings ``vector_pass`` changes on a scene (owner attribute path, name): all put back afterwards
_EXR_FIELDS = ("media_type", "file_format", "exr_codec", "color_depth", "color_mode")


@contextlib.contextmanager
def vector_pass(scene: bpy.types.Scene) -> Iterator[None]:
    """Render ``scene`` to a multilayer EXR with the Vector pass on, then put every setting back exactly.

    Motion blur is off while it renders: Cycles writes no Vector pass with it on. Every view layer that
    renders gets the pass (the EXR's first one is read). ``render.filepath`` is set per frame by the caller
    and put back here too.
    """
    render, settings = scene.render, scene.render.image_settings
    saved: list[tuple[Any, str, Any]] = [(render, "use_motion_blur", render.use_motion_blur),
                                         (render, "filepath", render.filepath)]
    saved += [(settings, name, getattr(settings, name)) for name in _EXR_FIELDS if hasattr(settings, name)]
    saved += [(layer, "use_pass_vector", layer.use_pass_vector) for layer in scene.view_layers]
    try:
        render.use_motion_blur = False
        for layer in scene.view_layers:
            layer.use_pass_vector = True
        if hasattr(settings, "media_type"):
            settings.media_type = "MULTI_LAYER_IMAGE"
        settings.file_format = "OPEN_EXR_MULTILAYER"
        settings.exr_codec = "NONE"
        settings.color_depth = "32"
        yield
    finally:
        for owner, name, value in saved:  # in order: the file format before the depths it allows
            if getattr(owner, name) != value:
                setattr(owner, name, value)


def render_exr(scene: bpy.types.Scene, path: Path) -> dict[str, np.ndarray]:
    """Render the scene's current frame (inside ``vector_pass``) to ``path``; its channels, the file removed."""
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    try:
        return read_exr(path)
    finally:
        path.unlink(missing_ok=True)


def first_layer(channels: dict[str, np.ndarray]) -> str:
    """The first render layer's name in a multilayer EXR's channels (``<layer>.Combined.R``)."""
    return next(k.rsplit(".", 2)[0] for k in channels if k.endswith("Combined.R"))


def render_vectors(channels: dict[str, np.ndarray]) -> np.ndarray | None:
    """The first layer's Vector pass as ``clip.VECTORS_LAYOUT`` says (float32 H x W x 4); None without one
    (an engine that writes no Vector pass, e.g. Workbench)."""
    layer = first_layer(channels)
    if f"{layer}.Vector.X" not in channels:
        return None
    return np.stack([channels[f"{layer}.Vector.{c}"] for c in "XYZW"], axis=-1).astype(np.float32)


class ClipWriter:
    """A clip folder (frames/, sidecars/, vectors/, clip.json) built in a staging folder beside ``out``.

    ``add`` records one frame whose PNG the caller wrote at ``frame_path(stem)``; ``finish`` writes
    clip.json through the contract and renames the folder into place; ``abort`` (or an error) leaves
    nothing behind. Frames are numbered 1, 2, 3 ... in the order they are added (the contract's rule).
    """

    def __init__(self, out: str | Path, overwrite: bool = False) -> None:
        self.out = Path(out).resolve()
        if self.out.exists() and any(self.out.iterdir()) and not overwrite:
            raise FileExistsError(f"{self.out} is not empty; choose another folder or pass --overwrite")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        for sub in ("frames", "sidecars", "vectors"):
            (self.staging / sub).mkdir()
        self.records: list[ClipFrame] = []

    def frame_path(self, stem: str) -> Path:
        return self.staging / "frames" / f"{stem}.png"

    def raw_path(self, stem: str) -> Path:
        """Where the frame's EXR goes while it is read (inside the staging folder: removed with it)."""
        return self.staging / f".raw_{stem}.exr"

    def add(self, stem: str, vectors: np.ndarray | None, sidecar: Any, pose: Pose | None = None,
            notes: tuple[str, ...] = ()) -> ClipFrame:
        if not self.frame_path(stem).is_file():
            raise FileNotFoundError(f"{self.frame_path(stem)}: the frame's PNG was not written")
        vector_file = None
        if vectors is not None:
            vector_file = f"vectors/{stem}.npy"
            np.save(self.staging / vector_file, vectors)
        write_bytes_atomic(self.staging / "sidecars" / f"{stem}.json", sidecar.dumps().encode())
        record = ClipFrame(len(self.records) + 1, f"frames/{stem}.png", f"sidecars/{stem}.json", vector_file,
                           pose or Pose(), tuple(notes))
        self.records.append(record)
        return record

    def finish(self, character_id: str, character_name: str, fps: float, width: int, height: int) -> Path:
        clip = Clip(character_id, character_name, float(fps), width, height, tuple(self.records))
        write_bytes_atomic(self.staging / CLIP_FILE, clip.dumps().encode())
        if self.out.exists():
            shutil.rmtree(self.out)
        os.replace(self.staging, self.out)
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _key_pose(rig: bpy.types.Object, bones: list[str], meshes: list[bpy.types.Object], frame: int) -> None:
    for name in bones:
        pb = rig.pose.bones[name]
        rotation = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(pb.rotation_mode, "rotation_euler")
        pb.keyframe_insert(rotation, frame=frame)
        pb.keyframe_insert("location", frame=frame)
    for obj in meshes:
        keys = obj.data.shape_keys
        for block in keys.key_blocks[1:] if keys else []:
            block.keyframe_insert("value", frame=frame)


def render_clip(
    found: FoundHead,
    objects: list[bpy.types.Object],
    out_dir: str | Path,
    options: ClipOptions,
    *,
    character_name: str,
    progress: Callable[[int, int, float], None] | None = None,
) -> Path:
    """Render every frame into ``out_dir`` (written next to it and renamed when complete)."""
    rig = bpy.data.objects[found.character]
    meshes = [o for o in objects if o.type == "MESH"]
    eyes = found.details.get("eye_bones")
    controls = RigControls.of(rig, found.details.get("head_bone"), tuple(eyes) if eyes else None)
    snapshot = PoseSnapshot.capture(rig, controls.bones(), meshes)
    user_scene = bpy.context.scene
    frames = len(options.poses)
    writer = ClipWriter(out_dir, options.overwrite)
    try:
        studio = StudioScene(objects, name="BumpClip")
    except BaseException:
        writer.abort()
        raise
    width, height = options.resolution
    intrinsics = Intrinsics(lens_mm=85.0, sensor_width_mm=36.0, width=width, height=height)
    matrix, intrinsics = place_camera(found.frame, options.view, intrinsics, options.framing)
    root = rig
    while root.parent is not None:
        root = root.parent
    base_location = root.location.copy()
    walk = demo_clip_walk(frames, found.frame.centre, matrix[:3, 3], options.walk)
    try:
        # key every frame's pose and the body's steps on the timeline, so the vector pass sees the motion
        for index, pose in enumerate(options.poses, start=1):
            snapshot.restore(keep_added=True)
            apply_pose(rig, meshes, pose, found.frame, controls, snapshot)
            _key_pose(rig, controls.bones(), meshes, index)
            root.location = base_location + Vector(walk[index - 1].tolist())
            root.keyframe_insert("location", frame=index)
        scene = studio.scene
        scene.frame_start, scene.frame_end = 1, frames
        scene.render.fps = options.fps
        apply_render_settings(scene, options.preset, width, height)
        apply_threads(scene, options.threads)
        apply_color_management(scene)
        scene.render.film_transparent = True
        preset = get_studio(options.studio)
        hdri = tempfile.TemporaryDirectory(prefix="bump_clip_")
        studio.cleanup.append(hdri.cleanup)
        setup_world(scene, preset, found.frame.forward, Path(hdri.name), None)
        add_lights(studio.collection, preset, found.frame.centre, found.frame.forward)
        camera = make_camera(studio, "clip", matrix, intrinsics)
        scene.camera = camera
        backdrop = preset.background
        character_id = character_name.lower()
        with vector_pass(scene):
            for index, pose in enumerate(options.poses, start=1):
                started = time.perf_counter()
                user_scene.frame_set(index)  # the head finder evaluates the character in the user's scene
                scene.frame_set(index)
                stem = f"frame_{index:04d}"
                channels = render_exr(scene, writer.raw_path(stem))
                layer = first_layer(channels)
                rgba = np.stack([channels[f"{layer}.Combined.{c}"] for c in "RGBA"], axis=-1)
                flat = _srgb(rgba[..., :3] + backdrop * (1 - rgba[..., 3:4]))
                write_png(writer.frame_path(stem), np.clip(flat * 255 + 0.5, 0, 255).astype(np.uint8))
                sidecar, notes = build_sidecar(scene, camera, [ShotCharacter(rig.name, character_id, character_name)],
                                               image_name=f"{stem}.png")
                writer.add(stem, render_vectors(channels), sidecar, pose, tuple(notes))
                if progress is not None:
                    progress(index, frames, time.perf_counter() - started)
        out = writer.finish(character_id, character_name, float(options.fps), width, height)
    except BaseException:
        writer.abort()
        raise
    finally:
        studio.close()
        rig.animation_data_clear()
        root.animation_data_clear()
        root.location = base_location
        for obj in meshes:
            if obj.data.shape_keys is not None:
                obj.data.shape_keys.animation_data_clear()
        snapshot.restore()
        user_scene.frame_set(1)
    return out
