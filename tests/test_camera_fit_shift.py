"""Sensor fit against the image orientation, with lens shift: our projection is where Blender puts a point.

Checked two ways: against ``bpy_extras.object_utils.world_to_camera_view`` (Blender's own camera
frame, no render), and against a tiny real Cycles render of a small emissive ball, whose bright
centroid must land where ``project_points`` says.
"""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from blender_helpers import empty_scene
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from profile_rig.core.camera_math import Intrinsics, project_points
from profile_rig.imaging.png_io import read_png

# (sensor fit, width, height, shift x, shift y): fitted against and with the orientation, both shifts
CASES = [
    ("VERTICAL", 160, 90, 0.12, -0.08),  # the case: Vertical fit on a wide shot
    ("HORIZONTAL", 90, 160, -0.1, 0.15),  # Horizontal fit on a tall shot
    ("VERTICAL", 90, 160, 0.1, 0.1),
    ("HORIZONTAL", 160, 90, -0.05, 0.2),
    ("AUTO", 160, 90, 0.1, -0.1),
    ("AUTO", 90, 160, -0.1, 0.1),
]
POINTS = np.array([[0.0, 0.0, 0.0], [0.12, 0.05, 0.08], [-0.1, -0.05, -0.06], [0.05, 0.1, -0.1]])


def _camera(scene: bpy.types.Scene, fit: str, width: int, height: int, sx: float, sy: float) -> bpy.types.Object:
    cam = bpy.data.objects.new("FitCam", bpy.data.cameras.new("FitCam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.data.lens, cam.data.sensor_width, cam.data.sensor_height = 50.0, 36.0, 24.0
    cam.data.sensor_fit, cam.data.shift_x, cam.data.shift_y = fit, sx, sy
    cam.location = (0.1, -1.2, 0.05)
    cam.rotation_euler = (1.5708 + 0.05, 0.0, 0.08)
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    bpy.context.view_layer.update()
    return cam


def _intrinsics(cam: bpy.types.Object, width: int, height: int) -> Intrinsics:
    data = cam.data
    return Intrinsics(lens_mm=data.lens, sensor_width_mm=data.sensor_width, sensor_height_mm=data.sensor_height,
                      sensor_fit=data.sensor_fit, width=width, height=height, shift_x=data.shift_x,
                      shift_y=data.shift_y)


@pytest.mark.parametrize(("fit", "width", "height", "sx", "sy"), CASES)
def test_projection_matches_world_to_camera_view(fit, width, height, sx, sy):
    scene = empty_scene()
    cam = _camera(scene, fit, width, height, sx, sy)
    ours, depth = project_points(POINTS, np.array(cam.matrix_world), _intrinsics(cam, width, height))
    for point, pixel, z in zip(POINTS, ours, depth, strict=True):
        ndc = world_to_camera_view(scene, cam, Vector(point))
        blender = (ndc.x * width, (1.0 - ndc.y) * height)  # ndc y up from the bottom; pixels y down
        assert z == pytest.approx(ndc.z, rel=1e-5)
        assert pixel == pytest.approx(blender, abs=1e-3), (fit, width, height)


def test_the_old_longer_side_rule_was_off_for_vertical_fit_on_a_wide_shot():
    """The issue's numbers: the shift scaled by the longer side moved the point by shift*(160-90) px."""
    wide = Intrinsics(sensor_fit="VERTICAL", width=160, height=90, shift_x=0.12, shift_y=-0.08)
    cx, cy = wide.principal_point()
    assert (cx, cy) == pytest.approx((80 - 0.12 * 90, 45 - 0.08 * 90))
    assert wide.fitted_side() == 90 and Intrinsics(width=160, height=90).fitted_side() == 160


def _ball_scene(fit: str, width: int, height: int, sx: float, sy: float) -> tuple[bpy.types.Scene, bpy.types.Object]:
    scene = empty_scene()
    cam = _camera(scene, fit, width, height, sx, sy)
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.025, location=(0.12, 0.05, 0.08), segments=16, ring_count=8)
    ball = bpy.context.active_object
    material = bpy.data.materials.new("Glow")
    tree = material.node_tree if material.node_tree is not None else None
    if tree is None:
        material.use_nodes = True
        tree = material.node_tree
    tree.nodes.clear()
    emission = tree.nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 5.0
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(emission.outputs[0], output.inputs["Surface"])
    ball.data.materials.append(material)
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    scene.cycles.device = "CPU"
    render.filter_size = 0.5
    scene.view_settings.view_transform = "Standard"
    return scene, cam


@pytest.mark.parametrize(("fit", "width", "height", "sx", "sy"), CASES[:2])
def test_projection_matches_a_cycles_render(tmp_path, fit, width, height, sx, sy):
    scene, cam = _ball_scene(fit, width, height, sx, sy)
    path = tmp_path / f"{fit}_{width}x{height}.png"
    scene.render.filepath = str(path)
    scene.render.image_settings.file_format = "PNG"
    bpy.ops.render.render(write_still=True)
    image = read_png(path).astype(float)
    gray = image[..., :3].mean(axis=2) if image.ndim == 3 else image
    ys, xs = np.nonzero(gray > 128)
    assert xs.size > 4, "the ball should be in frame"
    weights = gray[ys, xs]
    seen = (float((xs * weights).sum() / weights.sum()) + 0.5, float((ys * weights).sum() / weights.sum()) + 0.5)
    (ours,), _ = project_points(POINTS[1:2], np.array(cam.matrix_world), _intrinsics(cam, width, height))
    assert ours == pytest.approx(seen, abs=1.0), (fit, width, height)
    # the longer-side rule would have put it this far off: more than the tolerance, so the render tells them apart
    assert float(np.hypot(sx, sy)) * (max(width, height) - min(width, height)) > 5
