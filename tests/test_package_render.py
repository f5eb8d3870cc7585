"""Real package renders of the demo character at tiny sizes (Cycles on the CPU)."""


import bpy
import numpy as np
import pytest
from blender_helpers import empty_scene, vec
from bpy_extras.object_utils import world_to_camera_view

from bump_contracts.package_manifest import load_package
from bump_contracts.views import ViewSpec, resolve_views
from profile_rig.blender.package_render import PackageOptions, StudioScene, make_camera
from profile_rig.blender.scene_session import prepare_scene
from profile_rig.blender.studio import add_lights
from profile_rig.core.camera_math import Framing, Intrinsics, place_camera, project_points
from profile_rig.core.package_writer import PackageExistsError
from profile_rig.core.phenotype import PRESETS
from profile_rig.core.render_presets import PREVIEW
from profile_rig.core.studio_hdri import STUDIOS
from profile_rig.imaging.png_io import read_png

TINY = PREVIEW.with_overrides(samples=2)


@pytest.fixture(scope="module")
def demo_package(tmp_path_factory):
    out = tmp_path_factory.mktemp("pkg") / "demo"
    session = prepare_scene(demo=PRESETS["demo_man"])
    options = PackageOptions(views=resolve_views("front,three_quarter_left,profile_right,up"), resolution=(128, 128), preset=TINY)
    seen = []
    result = session.render(out, options, lambda i, n, name, s: seen.append((i, n, name)))
    return result, seen


def test_package_folder_has_views_manifest_and_contact_sheet(demo_package):
    result, seen = demo_package
    assert seen == [(1, 4, "front"), (2, 4, "three_quarter_left"), (3, 4, "profile_right"), (4, 4, "up")]
    manifest = load_package(result.path, check_hashes=True)
    assert [v.name for v in manifest.views] == ["front", "three_quarter_left", "profile_right", "up"]
    assert (result.path / "contact_sheet.png").is_file()
    assert manifest.phenotype["name"] == "Mateo"
    assert manifest.renderer["engine"] == "CYCLES" and manifest.renderer["resolution"] == [128, 128]
    assert not [p for p in result.path.parent.iterdir() if p.name.startswith(".")]  # no staging left
    front = manifest.view("front")
    assert front.face.right_eye[0] < front.face.left_eye[0]
    assert manifest.view("three_quarter_left").face.yaw == pytest.approx(-45, abs=1e-3)


def test_background_is_near_white_and_the_face_is_not(demo_package):
    result, _ = demo_package
    manifest = load_package(result.path)
    for view in manifest.views:
        image = read_png(result.path / view.file)
        assert image.shape == (128, 128, 3)
        corners = np.concatenate([image[:6, :6].reshape(-1, 3), image[:6, -6:].reshape(-1, 3)])
        assert corners.min() >= 240, view.name
        x0, y0, x1, y1 = (int(round(v)) for v in view.face.face_box)
        face = image[max(y0, 0) : y1, max(x0, 0) : x1]
        assert face.mean() < 235, view.name  # something other than backdrop where the face should be


def test_users_scene_is_left_as_it_was(tmp_path):
    scene = empty_scene()
    bpy.ops.object.camera_add(location=(0, -3, 1.6))
    user_camera = bpy.context.active_object
    scene.camera = user_camera
    bpy.ops.object.light_add(type="SUN")
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = 333
    world = bpy.data.worlds.new("UserWorld")
    scene.world = world
    from profile_rig.blender.demo_character import build_demo_character

    build_demo_character(PRESETS["demo_woman"], scene.collection, subdivision=0)
    blend = tmp_path / "user.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    before = _state()

    session = prepare_scene(blend=str(blend), character="Aiko")
    assert session.found.method == "bones"
    options = PackageOptions(views=[ViewSpec("front", 0)], resolution=(64, 64), preset=TINY)
    session.render(tmp_path / "pkg", options)
    assert _state() == before
    assert not [s for s in bpy.data.scenes if s.get("bump_studio")]
    assert not [o for o in bpy.data.objects if o.get("bump_studio")]
    assert not [w for w in bpy.data.worlds if w.get("bump_studio")]


def _state():
    scene = bpy.data.scenes[0]
    return {
        "scenes": sorted(s.name for s in bpy.data.scenes),
        "objects": sorted((o.name, o.type, tuple(round(v, 6) for v in o.location)) for o in scene.objects),
        "camera": scene.camera.name,
        "world": scene.world.name,
        "engine": scene.render.engine,
        "resolution": (scene.render.resolution_x, scene.render.resolution_y),
        "view_transform": scene.view_settings.view_transform,
        "lights": sorted(o.name for o in bpy.data.objects if o.type == "LIGHT"),
    }


def test_existing_output_is_refused_and_kept(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    session = prepare_scene(demo=PRESETS["demo_man"], subdivision=0)
    with pytest.raises(PackageExistsError):
        session.render(out, PackageOptions(views=[ViewSpec("front", 0)], resolution=(32, 32), preset=TINY))
    assert (out / "precious.txt").read_text() == "keep me"


def test_projection_matches_blenders_own_camera_maths():
    empty_scene()
    studio = StudioScene([])
    try:
        from profile_rig.core.camera_math import head_frame_from_eyes

        frame = head_frame_from_eyes([-0.03, -0.1, 1.6], [0.03, -0.1, 1.6])
        rng = np.random.default_rng(3)
        for width, height in ((160, 96), (96, 160), (128, 128)):
            view = ViewSpec("v", float(rng.uniform(-150, 150)), float(rng.uniform(-40, 40)), float(rng.uniform(-30, 30)))
            matrix, intr = place_camera(frame, view, Intrinsics(width=width, height=height), Framing(face_fill=0.3))
            camera = make_camera(studio, "check", matrix, intr)
            studio.scene.render.resolution_x, studio.scene.render.resolution_y = width, height
            bpy.context.view_layer.update()
            points = frame.centre + rng.normal(scale=0.1, size=(10, 3))
            ours, _ = project_points(points, matrix, intr)
            for point, px in zip(points, ours, strict=True):
                ndc = world_to_camera_view(studio.scene, camera, __import__("mathutils").Vector(point.tolist()))
                theirs = np.array([ndc.x * width, (1 - ndc.y) * height])
                assert np.allclose(px, theirs, atol=1e-3), (width, height, view)
            bpy.data.objects.remove(camera)
    finally:
        studio.close()


def test_studio_lights_are_not_on_the_camera():
    empty_scene()
    studio = StudioScene([])
    try:
        lights = add_lights(studio.collection, STUDIOS["soft_key"], np.array([0, 0, 1.6]), np.array([0, -1.0, 0]))
        assert len(lights) == 2
        for light in lights:
            assert light.parent is None
            direction = np.array([0, 0, 1.6]) - vec(light.location)
            aim = vec(light.rotation_quaternion.to_matrix() @ __import__("mathutils").Vector((0, 0, -1)))
            assert np.dot(direction / np.linalg.norm(direction), aim) > 0.999
    finally:
        studio.close()


def test_user_hdri_replaces_the_preset(tmp_path):
    from profile_rig.core.studio_hdri import render_hdri, write_hdr

    hdri = write_hdr(tmp_path / "mine.hdr", render_hdri(STUDIOS["grey"], 64, 32))
    session = prepare_scene(demo=PRESETS["demo_woman"], subdivision=0)
    options = PackageOptions(views=[ViewSpec("front", 0)], resolution=(48, 48), preset=TINY, hdri_path=str(hdri))
    result = session.render(tmp_path / "pkg", options)
    assert result.manifest.renderer["studio"] == f"hdri:{hdri}"
    assert not [i for i in bpy.data.images if i.filepath and "mine.hdr" in i.filepath]  # cleaned up
