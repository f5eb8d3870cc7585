"""Faces found outside the engine (as the server's CPU pool does) and a package per character."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from bump_backend.generate import tiny
from bump_backend.generate.bump import find_job_faces, working_image


@pytest.fixture(scope="module")
def two_faces(scene):
    """The scene's sidecar with a second character's face, shifted and turned (yaw +80)."""
    image, sidecar = scene
    face = sidecar.faces[0]
    g = face.geometry
    shifted = replace(g, head_centre=(g.head_centre[0] + 40, g.head_centre[1] + 40),
                      right_eye=(g.right_eye[0] + 40, g.right_eye[1] + 40),
                      left_eye=(g.left_eye[0] + 40, g.left_eye[1] + 40),
                      face_box=tuple(v + 40 for v in g.face_box), yaw=80.0)
    other = replace(face, character_id="other", character_name="Other", geometry=shifted)
    return image, replace(sidecar, faces=(face, other))


@pytest.fixture(scope="module")
def other_package(tmp_path_factory):
    """A second character: three views of a made-up pattern (not the astronaut)."""
    return tiny.build_tiny_package(tmp_path_factory.mktemp("other"), character_id="other")


def _no_finding(*_args, **_kwargs):
    raise AssertionError("find_faces ran inside BumpEngine.run although the faces were given")


def test_faces_found_on_another_thread_give_the_same_bump(engine, scene, package_dir, fast_settings, monkeypatch):
    image, sidecar = scene
    settings = replace(fast_settings, max_side=96)  # the engine scales 128 -> 96: faces must follow
    in_engine = engine.run(image, package_dir, sidecar, settings)
    assert in_engine.record["face_search"]["found_by"] == "engine"

    with ThreadPoolExecutor(1, thread_name_prefix="cpu-side") as pool:
        faces = pool.submit(find_job_faces, image, sidecar, settings).result()
    assert faces.thread.startswith("cpu-side") and faces.working_size == (96, 96)
    assert working_image(image, 96).shape == (96, 96, 3)
    monkeypatch.setattr("bump_backend.faces.find_faces", _no_finding)
    given = engine.run(image, package_dir, sidecar, settings, faces=faces)
    assert np.array_equal(given.image, in_engine.image)
    assert given.record["faces"] == in_engine.record["faces"]
    assert given.record["face_search"]["found_by"] == "caller"
    assert given.record["face_search"]["thread"].startswith("cpu-side")
    # Faces found for another working size are refused, not pasted in the wrong place.
    with pytest.raises(ValueError, match="96x96"):
        engine.run(image, package_dir, sidecar, replace(settings, max_side=128), faces=faces)


def test_each_face_gets_its_characters_package(engine, two_faces, package_dir, other_package, fast_settings,
                                               tmp_path):
    from PIL import Image

    from bump_backend.generate.reproduce import reproduce
    from bump_backend.generate.samplers import sampling_steps

    image, sidecar = two_faces
    shot = tmp_path / "shot.png"
    Image.fromarray(image).save(shot)
    settings = replace(fast_settings, whole_pass=False)
    shared = engine.run(image, package_dir, sidecar, settings)
    calls = []
    per_character = engine.run(shot, package_dir, sidecar, settings, packages={"other": other_package},
                               progress=lambda *a: calls.append(a))
    ids = [f["package"]["id"] for f in per_character.record["faces"]]
    assert [f["character_id"] for f in per_character.record["faces"]] == ["astronaut", "other"]
    assert ids == ["astronaut", "other"]
    assert [f["package"]["id"] for f in shared.record["faces"]] == ["astronaut", "astronaut"]
    # Both packages have three views, so the two faces still share one UNet batch; only the second
    # face's identity changed, so only its crop changed.
    assert {c[2] for c in calls if c[0] == "face"} == {sampling_steps(settings.denoise, settings.steps)}
    assert np.array_equal(per_character.face_crops[0], shared.face_crops[0])
    assert not np.array_equal(per_character.face_crops[1], shared.face_crops[1])
    # Each face sees only its own references: batched alone, every face comes out the same (before the
    # fix in bump._per_image_ip_embeds, diffusers repeated the embeddings and every face saw both).
    alone = engine.run(image, package_dir, sidecar, replace(settings, batch_size=1), packages={"other": other_package})
    for a, b in zip(alone.face_crops, per_character.face_crops, strict=True):
        assert np.array_equal(a, b)
    assert per_character.record["packages"]["other"]["id"] == "other"
    assert "Character packages: \"other: other\"" in per_character.infotext
    files = per_character.save(tmp_path / "out")
    rep = reproduce(files["record"], engine=engine)
    assert rep.identical, rep.differences


def test_unknown_characters_and_uneven_packages(engine, two_faces, other_package, fast_settings, tmp_path):
    from bump_backend.generate.samplers import sampling_steps

    image, sidecar = two_faces
    rng = np.random.default_rng(5)
    views = {name: (rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), yaw) for name, yaw in (("front", 0.0),
                                                                                              ("profile_right", -90.0))}
    two_view = tiny.build_tiny_package(tmp_path / "two_views", views, character_id="two_views")
    settings = replace(fast_settings, whole_pass=False)
    # No default package: the astronaut's face has none (adapter off for it), the other face has its own.
    calls = []
    result = engine.run(image, None, sidecar, settings, packages={"other": other_package},
                        progress=lambda *a: calls.append(a))
    assert [f["package"] for f in result.record["faces"]][0] is None
    assert result.record["faces"][1]["package"]["id"] == "other"
    # A face without identity never shares a batch with one that has it (the scale is per batch).
    assert {c[2] for c in calls if c[0] == "face"} == {2 * sampling_steps(settings.denoise, settings.steps)}
    # Packages with different view counts cannot share a batch: two batches, no error.
    mixed = engine.run(image, other_package, sidecar, replace(settings, pose_mode="all"),
                       packages={"other": two_view})
    assert [f["package"]["id"] for f in mixed.record["faces"]] == ["other", "two_views"]
    assert len(mixed.record["faces"][1]["references"]["views"]) == 2


def test_find_job_faces_is_thread_safe_to_call_concurrently(scene, fast_settings):
    image, sidecar = scene
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: find_job_faces(image, sidecar, fast_settings), range(2)))
    assert results[0].faces[0].to_dict() == results[1].faces[0].to_dict()
    assert threading.current_thread().name not in {r.thread for r in results}
