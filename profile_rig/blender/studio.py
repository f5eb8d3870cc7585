"""The white studio in a Blender scene: world HDRI, optional area lights, colour management, render settings.

Thin ``bpy`` layer over :mod:`profile_rig.core.studio_hdri` and :mod:`profile_rig.core.render_presets`.
Lights are placed in world space around the head, never parented to the camera (no headlamp), so
the light on the face stays put as the camera orbits.
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy
import numpy as np

from profile_rig.core.render_presets import RenderPreset
from profile_rig.core.studio_hdri import StudioPreset, light_position, render_hdri, write_hdr

STUDIO_TAG = "bump_studio"


def _world_nodes(world: bpy.types.World):
    world.use_nodes = True
    tree = world.node_tree
    tree.nodes.clear()
    return tree


def setup_world(
    scene: bpy.types.Scene,
    preset: StudioPreset,
    facing: np.ndarray,
    work_dir: Path,
    hdri_path: str | None = None,
) -> bpy.types.World:
    """A world lit by the preset's HDRI (or the user's), seen by the camera as a flat near-white backdrop."""
    if hdri_path:
        if not os.path.isfile(hdri_path):
            raise FileNotFoundError(f"HDRI not found: {hdri_path}")
        path = Path(hdri_path)
    else:
        work_dir.mkdir(parents=True, exist_ok=True)
        path = write_hdr(work_dir / f"studio_{preset.name}.hdr", render_hdri(preset, facing=facing))
    world = bpy.data.worlds.new(f"{STUDIO_TAG}_{preset.name}")
    world[STUDIO_TAG] = True
    tree = _world_nodes(world)
    nodes, links = tree.nodes, tree.links
    env = nodes.new("ShaderNodeTexEnvironment")
    env.image = bpy.data.images.load(str(path), check_existing=True)
    env.image.colorspace_settings.name = "Linear Rec.709"
    lighting = nodes.new("ShaderNodeBackground")
    lighting.inputs["Strength"].default_value = preset.strength
    links.new(env.outputs["Color"], lighting.inputs["Color"])
    backdrop = nodes.new("ShaderNodeBackground")
    backdrop.inputs["Color"].default_value = (preset.background, preset.background, preset.background, 1.0)
    backdrop.inputs["Strength"].default_value = 1.0
    light_path = nodes.new("ShaderNodeLightPath")
    mix = nodes.new("ShaderNodeMixShader")
    links.new(light_path.outputs["Is Camera Ray"], mix.inputs["Fac"])
    links.new(lighting.outputs["Background"], mix.inputs[1])
    links.new(backdrop.outputs["Background"], mix.inputs[2])
    output = nodes.new("ShaderNodeOutputWorld")
    links.new(mix.outputs["Shader"], output.inputs["Surface"])
    scene.world = world
    return world


def add_lights(
    collection: bpy.types.Collection, preset: StudioPreset, head_centre: np.ndarray, facing: np.ndarray
) -> list[bpy.types.Object]:
    """The preset's soft area lights, aimed at the head from fixed world positions."""
    objects = []
    for spec in preset.lights:
        data = bpy.data.lights.new(f"{STUDIO_TAG}_{spec.name}", type="AREA")
        data.shape = "DISK"
        data.size = spec.size
        data.energy = spec.power_w
        data.color = spec.color
        obj = bpy.data.objects.new(f"{STUDIO_TAG}_{spec.name}", data)
        obj[STUDIO_TAG] = True
        position = light_position(head_centre, facing, spec)
        obj.location = position.tolist()
        direction = np.asarray(head_centre, dtype=float) - position
        obj.rotation_mode = "QUATERNION"
        obj.rotation_quaternion = _track_quaternion(direction)
        collection.objects.link(obj)
        objects.append(obj)
    return objects


def _track_quaternion(direction: np.ndarray):
    from mathutils import Vector

    return Vector(direction.tolist()).to_track_quat("-Z", "Y")


def apply_color_management(scene: bpy.types.Scene) -> None:
    """'Standard' keeps a white backdrop white (AgX and Filmic grey it)."""
    settings = scene.view_settings
    settings.view_transform = "Standard"
    settings.look = "None"
    settings.exposure = 0.0
    settings.gamma = 1.0
    scene.display_settings.display_device = "sRGB"
    scene.sequencer_colorspace_settings.name = "sRGB"


def apply_threads(scene: bpy.types.Scene, threads: int) -> None:
    """A fixed render thread count (0 = Blender's automatic one: every core).

    Set on the scene before the render starts: a ``render_init`` handler runs too late for the render
    it belongs to (measured: no effect on the time of a package render).
    """
    scene.render.threads_mode = "FIXED" if threads > 0 else "AUTO"
    if threads > 0:
        scene.render.threads = threads


def apply_render_settings(scene: bpy.types.Scene, preset: RenderPreset, width: int, height: int) -> None:
    render = scene.render
    render.engine = preset.engine
    render.resolution_x, render.resolution_y = width, height
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.film_transparent = False
    render.use_border = False
    render.use_persistent_data = preset.persistent_data
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGB"
    render.image_settings.color_depth = preset.color_depth
    render.image_settings.compression = 15
    if preset.engine == "CYCLES":
        cycles = scene.cycles
        cycles.device = "CPU"
        cycles.samples = preset.samples
        cycles.use_adaptive_sampling = preset.adaptive_threshold > 0
        cycles.adaptive_threshold = max(preset.adaptive_threshold, 1e-4)
        cycles.adaptive_min_samples = preset.adaptive_min_samples
        cycles.use_denoising = preset.denoise
        cycles.denoiser = "OPENIMAGEDENOISE"
        cycles.denoising_prefilter = preset.denoiser_prefilter
        cycles.denoising_input_passes = preset.denoise_passes
        cycles.max_bounces = preset.max_bounces
        cycles.diffuse_bounces = preset.diffuse_bounces
        cycles.glossy_bounces = preset.glossy_bounces
        cycles.transmission_bounces = preset.transmission_bounces
        cycles.transparent_max_bounces = preset.transparent_bounces
        cycles.volume_bounces = preset.volume_bounces
        cycles.caustics_reflective = cycles.caustics_refractive = preset.caustics
        cycles.seed = preset.seed
        cycles.use_animated_seed = False
        if hasattr(cycles, "use_light_tree"):
            cycles.use_light_tree = preset.light_tree
        cycles.time_limit = 0
    elif preset.engine == "BLENDER_EEVEE":
        eevee = scene.eevee
        eevee.taa_render_samples = max(1, preset.samples)
