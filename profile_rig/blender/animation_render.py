"""Render a short clip of a posed character: PNG frames, a render sidecar and motion vectors per frame.

The pose of every frame is keyed on the rig and shape keys (so Cycles sees real motion) in a studio
scene like the package's; each frame is rendered once to an uncompressed multilayer EXR, from which
the beauty (over the studio backdrop, sRGB) and Cycles' Vector pass are taken. Layout in
``docs/architecture.md`` ("Demo clip").
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()) and not options.overwrite:
        raise FileExistsError(f"{out} is not empty; choose another folder or pass --overwrite")
    rig = bpy.data.objects[found.character]
    meshes = [o for o in objects if o.type == "MESH"]
    eyes = found.details.get("eye_bones")
    controls = RigControls.of(rig, found.details.get("head_bone"), tuple(eyes) if eyes else None)
    snapshot = PoseSnapshot.capture(rig, controls.bones(), meshes)
    user_scene = bpy.context.scene
    frames = len(options.poses)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    studio = StudioScene(objects, name="BumpClip")
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
        scene.render.use_motion_blur = False
        scene.render.film_transparent = True
        scene.view_layers[0].use_pass_vector = True
        settings = scene.render.image_settings
        settings.media_type = "MULTI_LAYER_IMAGE"
        settings.file_format = "OPEN_EXR_MULTILAYER"
        settings.exr_codec = "NONE"
        settings.color_depth = "32"
        preset = get_studio(options.studio)
        hdri = tempfile.TemporaryDirectory(prefix="bump_clip_")
        studio.cleanup.append(hdri.cleanup)
        setup_world(scene, preset, found.frame.forward, Path(hdri.name), None)
        add_lights(studio.collection, preset, found.frame.centre, found.frame.forward)
        camera = make_camera(studio, "clip", matrix, intrinsics)
        scene.camera = camera
        backdrop = preset.background
        character_id = character_name.lower()
        for sub in ("frames", "sidecars", "vectors"):
            (staging / sub).mkdir()
        records = []
        for index, pose in enumerate(options.poses, start=1):
            started = time.perf_counter()
            user_scene.frame_set(index)  # the head finder evaluates the character in the user's scene
            scene.frame_set(index)
            raw = staging / f".raw_{index:04d}.exr"
            scene.render.filepath = str(raw)
            bpy.ops.render.render(write_still=True, scene=scene.name)
            channels = read_exr(raw)
            raw.unlink()
            layer = next(k.rsplit(".", 2)[0] for k in channels if k.endswith("Combined.R"))
            rgba = np.stack([channels[f"{layer}.Combined.{c}"] for c in "RGBA"], axis=-1)
            flat = _srgb(rgba[..., :3] + backdrop * (1 - rgba[..., 3:4]))
            stem = f"frame_{index:04d}"
            write_png(staging / "frames" / f"{stem}.png", np.clip(flat * 255 + 0.5, 0, 255).astype(np.uint8))
            vectors = np.stack([channels[f"{layer}.Vector.{c}"] for c in "XYZW"], axis=-1).astype(np.float32)
            np.save(staging / "vectors" / f"{stem}.npy", vectors)
            sidecar, notes = build_sidecar(scene, camera, [ShotCharacter(rig.name, character_id, character_name)],
                                           image_name=f"{stem}.png")
            write_bytes_atomic(staging / "sidecars" / f"{stem}.json", sidecar.dumps().encode())
            records.append(ClipFrame(index, f"frames/{stem}.png", f"sidecars/{stem}.json", f"vectors/{stem}.npy",
                                     pose, tuple(notes)))
            if progress is not None:
                progress(index, frames, time.perf_counter() - started)
        clip = Clip(character_id, character_name, float(options.fps), width, height, tuple(records))
        write_bytes_atomic(staging / CLIP_FILE, clip.dumps().encode())
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
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
