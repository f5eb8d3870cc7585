"""The manifest's projected geometry agrees with what a face detector sees in the rendered views."""

import numpy as np
import pytest

from bump_contracts.package_manifest import load_package
from bump_contracts.views import resolve_views
from profile_rig.blender.package_render import PackageOptions
from profile_rig.blender.scene_session import prepare_scene
from profile_rig.core.phenotype import PRESETS
from profile_rig.core.render_presets import FAST
from profile_rig.imaging.png_io import read_png

mp = pytest.importorskip("mediapipe")

# face-mesh indices: iris centres (refined mesh), nose tip, cheek outline
IRIS = (468, 473)
NOSE_TIP = 1
CHEEKS = (234, 454)


def _mesh(image: np.ndarray):
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as mesh:
        result = mesh.process(np.ascontiguousarray(image))
    if not result.multi_face_landmarks:
        return None
    h, w = image.shape[:2]
    return np.array([[p.x * w, p.y * h, p.z * w] for p in result.multi_face_landmarks[0].landmark])


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    session = prepare_scene(demo=PRESETS["demo_man"])
    options = PackageOptions(
        views=resolve_views("front,three_quarter_left,three_quarter_right"),
        resolution=(384, 384),
        preset=FAST.with_overrides(samples=6),
    )
    result = session.render(tmp_path_factory.mktemp("truth") / "pkg", options)
    return result.path, load_package(result.path)


@pytest.mark.slow
def test_projected_eye_centres_match_detected_irises(package):
    folder, manifest = package
    view = manifest.view("front")
    points = _mesh(read_png(folder / view.file))
    assert points is not None, "face mesh found no face in the front view"
    detected = sorted((points[i][:2] for i in IRIS), key=lambda p: p[0])
    projected = sorted((np.array(view.face.right_eye), np.array(view.face.left_eye)), key=lambda p: p[0])
    for ours, theirs in zip(projected, detected, strict=True):
        assert np.linalg.norm(ours - theirs) <= 0.03 * view.width, (ours, theirs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["three_quarter_left", "three_quarter_right"])
def test_detected_yaw_sign_matches_manifest(package, name):
    folder, manifest = package
    view = manifest.view(name)
    points = _mesh(read_png(folder / view.file))
    assert points is not None, f"face mesh found no face in {name}"
    cheek_mid = (points[CHEEKS[0]][0] + points[CHEEKS[1]][0]) / 2
    detected_sign = np.sign(points[NOSE_TIP][0] - cheek_mid)  # nose right of the cheeks' middle = positive yaw
    assert detected_sign == np.sign(view.face.yaw)
    assert abs(view.face.yaw) == pytest.approx(45, abs=1e-3)
