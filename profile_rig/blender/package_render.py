"""Render a profile package: studio scene, one camera per view, manifest with projected face geometry.

The studio is a separate scene that links the character's objects, so the user's scene, lights,
world and render settings are never touched; it is removed again afterwards.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from bump_contracts.package_manifest import PackageManifest, ViewRecord, character_id_from_name, load_package
from bump_contracts.pose import POSE_VIEWS_DEFAULT, Pose
from bump_contracts.views import ViewSpec
from profile_rig.blender.head_finder import FoundHead, find_head
from profile_rig.blender.posing import PoseSnapshot, RigControls, apply_pose
from profile_rig.blender.studio import (
    STUDIO_TAG,
    add_lights,
    apply_color_management,
    apply_render_settings,
    apply_threads,
    setup_world,
)
from profile_rig.core.camera_math import Framing, HeadFrame, Intrinsics, face_geometry, place_camera
from profile_rig.core.package_writer import PackageStaging
from profile_rig.core.pose_math import expression_views, view_pose
from profile_rig.core.render_presets import FAST, RenderPreset
from profile_rig.core.studio_hdri import get_studio
from profile_rig.imaging.png_io import write_png

ProgressFn = Callable[[int, int, str, float], None]


class RenderCancelled(RuntimeError):
    """The caller asked to stop between views; nothing was written."""


@dataclass
class PackageOptions:
    views: list[ViewSpec]
    resolution: tuple[int, int] = (720, 720)
    preset: RenderPreset = FAST
    studio: str = "almost_white"
    hdri_path: str | None = None
    framing: Framing = field(default_factory=Framing)
    lens_mm: float = 85.0
    sensor_width_mm: float = 36.0
    overwrite: bool = False
    threads: int = 0  # render threads; 0 = every core (batch workers split the cores between them)
    pose: Pose = field(default_factory=Pose)  # applied to every view (user's --pose/--expression)
    pose_views: bool = POSE_VIEWS_DEFAULT  # over-shoulder and up/down views pose the head/neck of a rigged character
    expressions: tuple[str, ...] = ()  # extra front + three-quarter views per expression


@dataclass
class PackageResult:
    path: Path
    manifest: PackageManifest
    seconds_per_view: dict[str, float]
    total_seconds: float


def _load_pixels(path: Path) -> np.ndarray:
    """A rendered PNG through Blender (no Pillow/OpenCV inside Blender): float RGBA, top row first."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = image.size
        channels = image.channels
        buffer = np.empty(width * height * channels, np.float32)
        image.pixels.foreach_get(buffer)
    finally:
        bpy.data.images.remove(image)
    pixels = buffer.reshape(height, width, channels)[::-1]
    if channels == 3:
        pixels = np.concatenate([pixels, np.ones((height, width, 1), np.float32)], axis=2)
    return pixels


def linear_to_srgb(value: float) -> float:
    return 12.92 * value if value <= 0.0031308 else 1.055 * value ** (1 / 2.4) - 0.055


def flatten_on_backdrop(rgba: np.ndarray, backdrop_linear: float) -> np.ndarray:
    """Composite a transparent-film render over a flat backdrop (display values, straight alpha).

    The denoiser speckles a flat world backdrop; rendering the film transparent and laying the
    character over an exact colour keeps the background uniform.
    """
    backdrop = linear_to_srgb(backdrop_linear)
    alpha = rgba[..., 3:4]
    return rgba[..., :3] * alpha + backdrop * (1 - alpha)


def _to_uint(pixels: np.ndarray, depth: str) -> np.ndarray:
    scale, dtype = (65535.0, np.uint16) if depth == "16" else (255.0, np.uint8)
    return np.clip(pixels * scale + 0.5, 0, scale).astype(dtype)


class StudioScene:
    """A temporary scene holding the character (linked, not copied), the studio and the cameras."""

    def __init__(self, objects: list[bpy.types.Object], name: str = "BumpStudio") -> None:
        self.scene = bpy.data.scenes.new(name)
        self.scene[STUDIO_TAG] = True
        self.collection = bpy.data.collections.new(f"{STUDIO_TAG}_rig")
        self.scene.collection.children.link(self.collection)
        self.linked: list[bpy.types.Object] = []
        for obj in objects:
            if obj.name not in self.scene.collection.objects:
                self.scene.collection.objects.link(obj)
                self.linked.append(obj)
        self.cleanup: list[Callable[[], None]] = []

    def close(self) -> None:
        world = self.scene.world
        for obj in list(self.collection.objects):
            data = obj.data
            bpy.data.objects.remove(obj)
            if data is not None and data.users == 0:
                if isinstance(data, bpy.types.Camera):
                    bpy.data.cameras.remove(data)
                elif isinstance(data, bpy.types.Light):
                    bpy.data.lights.remove(data)
        bpy.data.collections.remove(self.collection)
        bpy.data.scenes.remove(self.scene)
        if world is not None and world.get(STUDIO_TAG) and world.users == 0:
            for node in world.node_tree.nodes if world.node_tree else []:
                image = getattr(node, "image", None)
                if image is not None and image.users <= 1:
                    bpy.data.images.remove(image)
            bpy.data.worlds.remove(world)
        for step in self.cleanup:
            step()


def render_package(
    found: FoundHead,
    objects: list[bpy.types.Object],
    out_dir: str | Path,
    options: PackageOptions,
    *,
    character_name: str,
    phenotype: dict | None = None,
    source: dict | None = None,
    progress: ProgressFn | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> PackageResult:
    """Render every view into ``out_dir`` (atomically) and return the manifest and timings."""
    frame: HeadFrame = found.frame
    studio_preset = get_studio(options.studio)
    width, height = options.resolution
    base_intrinsics = Intrinsics(
        lens_mm=options.lens_mm, sensor_width_mm=options.sensor_width_mm, width=width, height=height
    )
    started = time.perf_counter()
    timings: dict[str, float] = {}
    with PackageStaging(out_dir, overwrite=options.overwrite) as staging:
        studio = StudioScene(objects)
        try:
            scene = studio.scene
            apply_render_settings(scene, options.preset, width, height)
            apply_threads(scene, options.threads)
            apply_color_management(scene)
            scene.render.film_transparent = True
            scene.render.image_settings.color_mode = "RGBA"
            hdri_dir = tempfile.TemporaryDirectory(prefix="bump_studio_")
            studio.cleanup.append(hdri_dir.cleanup)
            setup_world(scene, studio_preset, frame.forward, Path(hdri_dir.name), options.hdri_path)
            add_lights(studio.collection, studio_preset, frame.centre, frame.forward)
            _apply_subdivision(studio.linked, options.preset.subdivision)
            records: list[ViewRecord] = []
            images: list[np.ndarray] = []
            shots = [(view, Pose()) for view in options.views] + [
                (spec, Pose(expression={name: 1.0})) for spec, name in expression_views(options.expressions, options.views)
            ]
            poser = _Poser(found, objects, options)
            studio.cleanup.insert(0, poser.close)
            for index, (view, extra) in enumerate(shots):
                if should_cancel is not None and should_cancel():
                    raise RenderCancelled("package render cancelled; nothing was written")
                view_started = time.perf_counter()
                posed_frame, camera_view, pose = poser.pose_for(view, extra)
                matrix, intrinsics = place_camera(posed_frame, camera_view, base_intrinsics, options.framing)
                camera = make_camera(studio, view.name, matrix, intrinsics)
                scene.camera = camera
                file_name = f"{view.name}.png"
                raw = staging.path / f".raw_{file_name}"
                scene.render.filepath = str(raw)
                bpy.ops.render.render(write_still=True, scene=scene.name)
                if not raw.is_file():
                    raise RuntimeError(f"Blender did not write {file_name}; check free disk space and permissions")
                flat = flatten_on_backdrop(_load_pixels(raw), studio_preset.background)
                write_png(staging.path / file_name, _to_uint(flat, options.preset.color_depth))
                raw.unlink()
                geometry = face_geometry(posed_frame, matrix, intrinsics)
                records.append(
                    ViewRecord(
                        name=view.name,
                        file=file_name,
                        yaw=camera_view.yaw,
                        pitch=camera_view.pitch,
                        roll=camera_view.roll,
                        width=width,
                        height=height,
                        camera=intrinsics.record(matrix, (camera.data.clip_start, camera.data.clip_end)),
                        face=geometry,
                        pose=None if pose.is_neutral() else pose.to_dict(),
                    )
                )
                images.append(_to_uint(flat, "8"))
                timings[view.name] = time.perf_counter() - view_started
                if progress is not None:
                    progress(index + 1, len(shots), view.name, timings[view.name])
        finally:
            studio.close()
        manifest = PackageManifest(
            character_id=character_id_from_name(character_name),
            character_name=character_name,
            views=tuple(records),
            phenotype=phenotype,
            source=source or {"kind": "scene", "object": found.character},
            renderer={
                "engine": options.preset.engine,
                "samples": options.preset.samples,
                "resolution": [width, height],
                "studio": options.studio if not options.hdri_path else f"hdri:{options.hdri_path}",
                "lens_mm": options.lens_mm,
                "face_fill": options.framing.face_fill,
                "preset": options.preset.to_dict(),
                "blender_version": bpy.app.version_string,
                "head": {"method": found.method, **found.details, "frame": frame.to_dict()},
            },
        )
        labels = [f"{r.name} {r.yaw:+.0f}/{r.pitch:+.0f}" for r in records]
        path = staging.commit(manifest, images, labels)

    return PackageResult(path, load_package(path), timings, time.perf_counter() - started)


class _Poser:
    """Poses the character per view in the package's scene and puts everything back afterwards.

    Only characters found through their bones are posed (the head frame must follow the pose);
    others render every view with the camera alone, as before.
    """

    def __init__(self, found: FoundHead, objects: list[bpy.types.Object], options: PackageOptions) -> None:
        self.found = found
        self.options = options
        rig = bpy.data.objects.get(found.character) if found.method in ("bones", "head_bone") else None
        self.rig = rig if rig is not None and rig.type == "ARMATURE" else None
        self.meshes = [o for o in objects if o.type == "MESH"]
        self.controls = None
        bones: list[str] = []
        if self.rig is not None:
            eyes = found.details.get("eye_bones")
            self.controls = RigControls.of(self.rig, found.details.get("head_bone"), tuple(eyes) if eyes else None)
            bones = self.controls.bones()
        self.snapshot = PoseSnapshot.capture(self.rig, bones, self.meshes)
        self.dirty = False

    def pose_for(self, view: ViewSpec, extra: Pose) -> tuple[HeadFrame, ViewSpec, Pose]:
        pose = self.options.pose.merged(extra)
        camera_view = view
        if self.rig is not None and self.options.pose_views:
            posed, yaw, pitch = view_pose(view)
            pose = pose.merged(posed)
            camera_view = ViewSpec(view.name, yaw, pitch, view.roll)
        if self.dirty:
            self.snapshot.restore(keep_added=True)
            self.dirty = False
        if pose.is_neutral():
            return self.found.frame, camera_view, pose
        if not pose.controls and not pose.expression:
            return self.found.frame, camera_view, pose
        apply_pose(self.rig, self.meshes, pose, self.found.frame, self.controls, self.snapshot)
        self.dirty = True
        if self.rig is None or not pose.controls:
            return self.found.frame, camera_view, pose
        eyes = self.found.details.get("eye_bones")
        posed_found = find_head(
            bpy.context.scene,
            self.rig.name,
            head_bone=self.found.details.get("head_bone"),
            eye_bones=tuple(eyes) if eyes else None,
        )
        return posed_found.frame, camera_view, pose

    def close(self) -> None:
        self.snapshot.restore()


def make_camera(studio: StudioScene, name: str, matrix: np.ndarray, intrinsics: Intrinsics) -> bpy.types.Object:
    from mathutils import Matrix

    data = bpy.data.cameras.new(f"{STUDIO_TAG}_{name}")
    data.lens = intrinsics.lens_mm
    data.sensor_width = intrinsics.sensor_width_mm
    data.sensor_height = intrinsics.sensor_height_mm
    data.sensor_fit = intrinsics.sensor_fit
    data.shift_x, data.shift_y = intrinsics.shift_x, intrinsics.shift_y
    data.clip_start, data.clip_end = 0.05, 50.0
    obj = bpy.data.objects.new(f"{STUDIO_TAG}_{name}", data)
    obj[STUDIO_TAG] = True
    obj.matrix_world = Matrix(matrix.tolist())
    studio.collection.objects.link(obj)
    return obj


def _apply_subdivision(objects: list[bpy.types.Object], level: int) -> None:
    """Match the preset's render subdivision on modifiers the demo character carries (user rigs untouched)."""
    for obj in objects:
        for modifier in getattr(obj, "modifiers", []):
            if modifier.type == "SUBSURF" and obj.get("bump_demo_character"):
                modifier.render_levels = level
