import json

import pytest

from bump_contracts import package_manifest, render_sidecar
from bump_contracts.face_geometry import ContractError
from bump_contracts.package_manifest import ManifestError, PackageManifest, ViewRecord
from bump_contracts.views import VIEWS
from profile_rig.core.camera_math import Intrinsics, face_geometry, head_frame_from_eyes, place_camera


def _manifest() -> PackageManifest:
    frame = head_frame_from_eyes([-0.03, 0, 1.6], [0.03, 0, 1.6])
    views = []
    for name in ("front", "profile_left"):
        matrix, intr = place_camera(frame, VIEWS[name], Intrinsics(width=64, height=64))
        views.append(
            ViewRecord(
                name=name, file=f"{name}.png", yaw=VIEWS[name].yaw, pitch=0.0, roll=0.0, width=64, height=64,
                camera=intr.record(matrix), face=face_geometry(frame, matrix, intr), sha256="a" * 64,
            )
        )
    return PackageManifest(character_id="demo_1", character_name="Demo", views=tuple(views), phenotype={"age": 25})


def test_manifest_round_trips():
    manifest = _manifest()
    again = package_manifest.loads(manifest.dumps())
    assert again.to_dict() == manifest.to_dict()
    assert again.view("profile_left").face.yaw == pytest.approx(-90, abs=1e-3)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d.update(schema="other"), "schema"),
        (lambda d: d.update(schema_version=99), "newer"),
        (lambda d: d.update(surprise=1), "unknown field"),
        (lambda d: d["views"][0].update(name="Front View"), "views[0].name"),
        (lambda d: d["views"][0].update(file="../escape.png"), "views[0].file"),
        (lambda d: d["views"][1].update(name="front"), "duplicate"),
        (lambda d: d["views"][0]["face"].update(roll="x"), "views[0].face.roll"),
        (lambda d: d["views"][0]["face"].update(face_box=[5, 5, 1, 1]), "face_box"),
        (lambda d: d["views"][0]["camera"].update(resolution=[0, 5]), "resolution"),
        (lambda d: d["views"][0].update(yaw=float("nan")), "finite"),
        (lambda d: d.update(views=[]), "views"),
        (lambda d: d.update(origin="stolen"), "origin"),
    ],
)
def test_manifest_rejects_bad_documents_naming_the_field(mutate, message):
    data = _manifest().to_dict()
    mutate(data)
    with pytest.raises(ContractError) as info:
        package_manifest.from_dict(json.loads(json.dumps(data)))
    assert message in str(info.value)


def test_load_package_reports_missing_pieces(tmp_path):
    with pytest.raises(ManifestError, match="no package.json"):
        package_manifest.load_package(tmp_path)
    (tmp_path / "package.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        package_manifest.load_package(tmp_path)
    (tmp_path / "package.json").write_text(_manifest().dumps())
    with pytest.raises(ManifestError, match="front.png, which is missing"):
        package_manifest.load_package(tmp_path)


def test_sidecar_round_trip_and_validation():
    manifest = _manifest()
    face = manifest.views[0].face
    sidecar = render_sidecar.RenderSidecar(
        width=64, height=64, camera=manifest.views[0].camera,
        faces=(render_sidecar.SidecarFace("demo_1", "Demo", face, package="demo_1/v1"),),
    )
    again = render_sidecar.loads(sidecar.dumps())
    assert again.faces[0].geometry.to_dict() == face.to_dict()
    data = json.loads(sidecar.dumps())
    data["faces"][0]["bogus"] = 1
    with pytest.raises(ContractError, match="bogus"):
        render_sidecar.from_dict(data)
    with pytest.raises(render_sidecar.SidecarError, match="schema"):
        render_sidecar.from_dict({"schema": "x"})


def test_character_ids_are_stable_and_safe():
    a = package_manifest.character_id_from_name("Mateo García / ../../x")
    assert a == package_manifest.character_id_from_name("Mateo García / ../../x")
    assert "/" not in a and ".." not in a
    assert a != package_manifest.character_id_from_name("Mateo")
