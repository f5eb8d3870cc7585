"""Face finding on the CPU-side prep pool (never the GPU worker) and a package per character."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from server_helpers import FAST

from bump_client.client import JobRejected, packages_from_sidecar
from bump_contracts.bump_job import RUNNING, ContractError, JobRequest, validate_packages


def _two_face_sidecar(second_id: str = "other", second_package: str | None = None):
    from bump_contracts.face_geometry import FaceGeometry
    from bump_contracts.render_sidecar import RenderSidecar, SidecarFace

    a = FaceGeometry(head_centre=(40.0, 40.0), right_eye=(32.0, 36.0), left_eye=(48.0, 36.0),
                     face_box=(20.0, 20.0, 60.0, 60.0), roll=0.0, yaw=0.0, pitch=0.0, eye_distance_px=16.0,
                     depth_m=1.2)
    b = replace(a, head_centre=(88.0, 88.0), right_eye=(80.0, 84.0), left_eye=(96.0, 84.0),
                face_box=(68.0, 68.0, 108.0, 108.0), yaw=40.0)
    return RenderSidecar(width=128, height=128, faces=(SidecarFace("tiny_character", "Tiny", a),
                                                        SidecarFace(second_id, "Other", b, second_package)))


@pytest.fixture(scope="module")
def other_package(tmp_path_factory):
    from bump_backend.testing import tiny_models as tiny

    rng = np.random.default_rng(11)
    views = {name: (rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), yaw)
             for name, yaw in (("front", 0.0), ("three_quarter_left", 45.0), ("three_quarter_right", -45.0))}
    return tiny.build_tiny_package(tmp_path_factory.mktemp("other_package"), views, character_id="other")


def test_faces_are_found_on_the_prep_pool_and_match_the_engine(client, server, images, tiny_models, tmp_path,
                                                              monkeypatch):
    import bump_backend.faces as faces_module

    original = faces_module.find_faces
    threads: list[str] = []

    def watched(*args, **kwargs):
        threads.append(threading.current_thread().name)
        time.sleep(0.3)  # long enough for the GPU worker to be waiting on it: the stage shows "faces"
        return original(*args, **kwargs)

    monkeypatch.setattr(faces_module, "find_faces", watched)
    sidecar = _two_face_sidecar()
    params = {**FAST, "face_pass": True, "face_size": 64, "max_side": 120, "face": {"steps": 3}}
    seen = []
    result = client.run(images["face"], tmp_path / "job", params, sidecar=sidecar, package=tiny_models["package"],
                        on_progress=seen.append)
    assert threads and all(name.startswith("bump-prep") for name in threads), threads
    assert result.record["face_search"]["found_by"] == "caller"
    assert result.record["face_search"]["thread"].startswith("bump-prep")
    running = [s.stage for s in seen if s.state == RUNNING]
    assert "faces" in running and "face pass" in running
    assert running.index("faces") < running.index("face pass")
    assert len(result.faces) == 2

    # The same job through the engine's own path (faces found inside run) gives the same bits.
    from bump_backend.generate.settings import BumpSettings

    engine = server.scheduler.generator.engine
    pixels = np.asarray(Image.open(images["face"]).convert("RGB"))
    direct = engine.run(pixels, tiny_models["package"], sidecar, BumpSettings.from_dict(params))
    assert direct.record.face_search["found_by"] == "engine"
    assert threads[-1] != "bump-gpu"
    assert np.array_equal(np.asarray(Image.open(result.image).convert("RGB")), direct.image)
    assert direct.record.to_dict()["faces"] == result.record["faces"]


def test_each_face_is_bumped_with_its_characters_package(client, images, tiny_models, other_package, tmp_path):
    sidecar = _two_face_sidecar(second_package=str(other_package))
    params = {**FAST, "face_pass": True, "face_size": 64, "face": {"steps": 3}}
    packages = packages_from_sidecar(sidecar)
    assert packages == {"other": str(other_package)}
    result = client.run(images["face"], tmp_path / "two", params, sidecar=sidecar, package=tiny_models["package"],
                        packages=packages)
    faces = result.record["faces"]
    assert [f["character_id"] for f in faces] == ["tiny_character", "other"]
    assert [f["package"]["id"] for f in faces] == ["tiny_character", "other"]
    assert result.record["packages"]["other"]["path"] == str(other_package.resolve())
    shared = client.run(images["face"], tmp_path / "one", params, sidecar=sidecar, package=tiny_models["package"])
    assert [f["package"]["id"] for f in shared.record["faces"]] == ["tiny_character", "tiny_character"]
    crops = [np.asarray(Image.open(p)) for p in result.faces]
    shared_crops = [np.asarray(Image.open(p)) for p in shared.faces]
    assert np.array_equal(crops[0], shared_crops[0]) and not np.array_equal(crops[1], shared_crops[1])


def test_each_face_gets_its_characters_prompt_through_the_server(client, server, images, tiny_models, tmp_path):
    import json

    sidecar = _two_face_sidecar()
    params = {**FAST, "face_pass": True, "face_size": 64, "whole_pass": False, "face": {"steps": 3}}
    prompts = {"other": {"prompt": "red hair, freckles", "negative_prompt": "blurry"}}
    result = client.run(images["face"], tmp_path / "own", params, sidecar=sidecar, package=tiny_models["package"],
                        character_prompts=prompts)
    # The mapping reached the engine (its record says so) and is in the durable request on disk.
    assert result.record["character_prompts"] == prompts
    faces = result.record["faces"]
    assert "prompt" not in faces[0] and faces[1]["prompt"] == "photo of a man, red hair, freckles"
    request = json.loads((server.config.data_dir / "jobs" / result.job_id / "request.json").read_text())
    assert request["character_prompts"] == prompts
    plain = client.run(images["face"], tmp_path / "plain", params, sidecar=sidecar, package=tiny_models["package"])
    assert plain.record["character_prompts"] == {}
    crops = [np.asarray(Image.open(p)) for p in result.faces]
    plain_crops = [np.asarray(Image.open(p)) for p in plain.faces]
    assert np.array_equal(crops[0], plain_crops[0]) and not np.array_equal(crops[1], plain_crops[1])
    with pytest.raises(JobRejected) as info:
        client.submit(images["png"], FAST, character_prompts={"other": {"promt": "x"}})
    assert info.value.status == 422 and info.value.field == "character_prompts.other.promt"


def test_character_packages_are_checked_at_intake(client, images, tmp_path):
    for packages, status, field in (({"other": str(tmp_path / "missing")}, 422, "packages.other.package_path"),
                                    ({"other": {"package_id": "nobody"}}, 404, "packages.other.package_id"),
                                    ({"other": {"package_path": "relative/path"}}, 422, "packages.other.package_path")):
        with pytest.raises(JobRejected) as info:
            client.submit(images["png"], FAST, packages=packages)
        assert info.value.status == status and info.value.field == field, info.value


def test_packages_contract():
    assert validate_packages({"a": {"package_id": "x"}, "b": {"package_path": "/p"}}) == {
        "a": {"package_id": "x"}, "b": {"package_path": "/p"}}
    for bad, field in (([], "packages"), ({"a": "x"}, "packages.a"), ({"a": {}}, "packages.a"),
                       ({"a": {"package_id": "x", "package_path": "/p"}}, "packages.a"),
                       ({"a": {"path": "/p"}}, "packages.a.path"), ({"a": {"package_id": 3}}, "packages.a.package_id")):
        with pytest.raises(ContractError) as info:
            validate_packages(bad)
        assert info.value.field == field
    request = JobRequest(params={"seed": 1}, packages={"mira": {"package_id": "mira"}})
    assert JobRequest.from_dict(request.to_dict()) == request
    assert "packages" not in JobRequest().to_dict()  # an old server still accepts a request without it


def test_job_keeps_its_packages_across_a_restart(tmp_path):
    from bump_backend.server.jobs import Job

    request = JobRequest(packages={"other": {"package_id": "other"}})
    job = Job(id="j20250101000000-deadbeef", seq=1, request=request, folder=tmp_path, image_name="image.png",
              image_type="png", package={"kind": "none", "path": None},
              packages={"other": {"kind": "id", "id": "other", "path": "/somewhere"}})
    again = Job.from_persistent(job.persistent(), request, tmp_path)
    assert again.packages == job.packages
