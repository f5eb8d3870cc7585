"""Faces found outside the engine (as the server's CPU pool does) and a package per character."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from bump_backend.generate.face_pass import find_job_faces
from bump_backend.generate.images import working_image
from bump_backend.testing import tiny_models as tiny


def same_but_rounding(a: np.ndarray, b: np.ndarray) -> bool:
    """Crops from one face run in UNet batches of different sizes: the same but for float rounding.

    The CPU's matrix kernels block a batch of one and of two differently, so a few pixels may come
    out one level apart (measured: 1 value in 12288 off by 1 on AVX2, none on another machine). A face
    that saw another face's references or prompt differs everywhere (mean 3-24 levels, max 26-196).
    """
    difference = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return a.shape == b.shape and int(difference.max()) <= 1 and float((difference > 0).mean()) < 1e-3


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
    assert in_engine.record.to_dict()["face_search"]["found_by"] == "engine"

    with ThreadPoolExecutor(1, thread_name_prefix="cpu-side") as pool:
        faces = pool.submit(find_job_faces, image, sidecar, settings).result()
    assert faces.thread.startswith("cpu-side") and faces.working_size == (96, 96)
    assert working_image(image, 96).shape == (96, 96, 3)
    monkeypatch.setattr("bump_backend.faces.find_faces", _no_finding)
    given = engine.run(image, package_dir, sidecar, settings, faces=faces)
    assert np.array_equal(given.image, in_engine.image)
    assert given.record.to_dict()["faces"] == in_engine.record.to_dict()["faces"]
    assert given.record.to_dict()["face_search"]["found_by"] == "caller"
    assert given.record.to_dict()["face_search"]["thread"].startswith("cpu-side")
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
    ids = [f["package"]["id"] for f in per_character.record.to_dict()["faces"]]
    assert [f["character_id"] for f in per_character.record.to_dict()["faces"]] == ["astronaut", "other"]
    assert ids == ["astronaut", "other"]
    assert [f["package"]["id"] for f in shared.record.to_dict()["faces"]] == ["astronaut", "astronaut"]
    # Both packages have three views, so the two faces still share one UNet batch; only the second
    # face's identity changed, so only its crop changed.
    assert {c[2] for c in calls if c[0] == "face"} == {sampling_steps(settings.denoise, settings.steps)}
    assert np.array_equal(per_character.face_crops[0], shared.face_crops[0])
    assert not np.array_equal(per_character.face_crops[1], shared.face_crops[1])
    # Each face sees only its own references: batched alone, every face comes out the same (before the
    # fix in bump._per_image_ip_embeds, diffusers repeated the embeddings and every face saw both).
    alone = engine.run(image, package_dir, sidecar, replace(settings, batch_size=1), packages={"other": other_package})
    for a, b in zip(alone.face_crops, per_character.face_crops, strict=True):
        assert same_but_rounding(a, b)
    assert per_character.record.to_dict()["packages"]["other"]["id"] == "other"
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
    assert [f["package"] for f in result.record.to_dict()["faces"]][0] is None
    assert result.record.to_dict()["faces"][1]["package"]["id"] == "other"
    # A face without identity never shares a batch with one that has it (the scale is per batch).
    assert {c[2] for c in calls if c[0] == "face"} == {2 * sampling_steps(settings.denoise, settings.steps)}
    # Packages with different view counts cannot share a batch: two batches, no error.
    mixed = engine.run(image, other_package, sidecar, replace(settings, pose_mode="all"),
                       packages={"other": two_view})
    assert [f["package"]["id"] for f in mixed.record.to_dict()["faces"]] == ["other", "two_views"]
    assert len(mixed.record.to_dict()["faces"][1]["references"]["views"]) == 2


def test_each_face_gets_its_characters_prompt(engine, two_faces, package_dir, other_package, fast_settings,
                                              tmp_path):
    from PIL import Image

    from bump_backend.generate import CharacterPrompt
    from bump_backend.generate.infotext import parse_infotext
    from bump_backend.generate.prompts import DEFAULT_NEGATIVE
    from bump_backend.generate.reproduce import reproduce
    from bump_backend.generate.samplers import sampling_steps

    image, sidecar = two_faces
    shot = tmp_path / "shot.png"
    Image.fromarray(image).save(shot)
    settings = replace(fast_settings, whole_pass=False)
    per_call = sampling_steps(settings.denoise, settings.steps)
    packages = {"other": other_package}
    base = engine.run(image, package_dir, sidecar, settings, packages=packages)
    assert base.record.to_dict()["character_prompts"] == {} and "prompt" not in base.record.to_dict()["faces"][1]

    calls = []
    red = CharacterPrompt("red hair, freckles", "blurry")
    own = engine.run(shot, package_dir, sidecar, settings, packages=packages, progress=lambda *a: calls.append(a),
                     character_prompts={"other": red})
    # Both prompts fit one 75-token chunk, so the two faces still share one UNet batch, and the astronaut's
    # face (no entry) is bit-identical to the run without character prompts; only the other face changed.
    assert {c[2] for c in calls if c[0] == "face"} == {per_call}
    assert np.array_equal(own.face_crops[0], base.face_crops[0])
    assert not np.array_equal(own.face_crops[1], base.face_crops[1])
    faces = own.record.to_dict()["faces"]
    assert "prompt" not in faces[0] and "negative_prompt" not in faces[0]
    assert faces[1]["prompt"] == "photo of a man, red hair, freckles"
    assert faces[1]["negative_prompt"] == DEFAULT_NEGATIVE + ", blurry"
    assert own.record.to_dict()["character_prompts"] == {"other": {"prompt": "red hair, freckles", "negative_prompt": "blurry"}}
    assert parse_infotext(own.infotext)["Character prompts"] == "other"
    assert parse_infotext(own.infotext)["Prompt"] == "photo of a man"  # the job's prompt, as A1111 reads it
    files = own.save(tmp_path / "out")
    for source in (files["image"], files["record"]):
        rep = reproduce(source, engine=engine)
        assert rep.identical, rep.differences
        assert np.array_equal(rep.result.face_crops[1], own.face_crops[1])

    # The character's text is joined after the job's face prompt: the same text given as the job's face
    # prompt gives the same bits (mappings work as well as CharacterPrompt).
    joined = engine.run(image, package_dir, sidecar, replace(settings, face=replace(settings.face,
                        prompt="photo of a man, red hair, freckles", negative_prompt=DEFAULT_NEGATIVE + ", blurry")),
                        packages=packages)
    same = engine.run(image, package_dir, sidecar, settings, packages=packages,
                      character_prompts={"astronaut": {"prompt": "red hair, freckles", "negative_prompt": "blurry"},
                                         "other": red})
    for a, b in zip(joined.face_crops, same.face_crops, strict=True):
        assert np.array_equal(a, b)
    # Two characters with different prompts: each face follows its own prompt.
    different = engine.run(image, package_dir, sidecar, settings, packages=packages,
                           character_prompts={"astronaut": red, "other": CharacterPrompt("blue eyes, grey beard")})
    assert np.array_equal(different.face_crops[0], same.face_crops[0])
    assert not np.array_equal(different.face_crops[1], same.face_crops[1])


def test_a_long_character_prompt_leaves_other_faces_alone(engine, two_faces, package_dir, fast_settings,
                                                          monkeypatch):
    from bump_backend.generate import CharacterPrompt, prompts
    from bump_backend.generate.samplers import sampling_steps

    image, sidecar = two_faces
    settings = replace(fast_settings, whole_pass=False)
    per_call = sampling_steps(settings.denoise, settings.steps)
    base = engine.run(image, package_dir, sidecar, settings)
    long_prompt = ", ".join(f"detail {i}" for i in range(60))  # > 75 tokens: two chunks
    calls = []
    long = engine.run(image, package_dir, sidecar, settings, progress=lambda *a: calls.append(a),
                      character_prompts={"other": CharacterPrompt(long_prompt)})
    # Faces whose prompts have different chunk counts go through the UNet in separate batches ...
    assert {c[2] for c in calls if c[0] == "face"} == {2 * per_call}
    assert same_but_rounding(long.face_crops[0], base.face_crops[0])
    assert not np.array_equal(long.face_crops[1], base.face_crops[1])
    # ... because sharing one would pad the short prompt with the empty prompt's chunk (Conditioning.stack),
    # which changes that face's bits: here the astronaut's padded conditioning, alone in its batch.
    encode = prompts.encode_prompts
    monkeypatch.setattr(prompts, "encode_prompts", lambda *a, **k: encode(*a, **k).padded(2 * 77))
    padded = engine.run(image, package_dir, sidecar, replace(settings, batch_size=1))
    assert not np.array_equal(padded.face_crops[0], base.face_crops[0])


def test_find_job_faces_is_thread_safe_to_call_concurrently(scene, fast_settings):
    image, sidecar = scene
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: find_job_faces(image, sidecar, fast_settings), range(2)))
    assert results[0].faces[0].to_dict() == results[1].faces[0].to_dict()
    assert threading.current_thread().name not in {r.thread for r in results}
