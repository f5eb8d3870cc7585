"""FaceID IP-Adapters: insightface-style identity through the real loaders (ONNX model, adapter, LoRA)."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bump_backend.generate import BumpEngine, ModelError, ModelSpec, faceid
from bump_backend.generate.models import resolve_spec
from bump_backend.testing import tiny_models as tiny


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def arcface(model_dirs):
    return tiny.build_tiny_arcface(model_dirs["root"] / "buffalo_l" / "w600k_r50.onnx")


@pytest.fixture(scope="module")
def faceid_spec(model_dirs, arcface):
    ip_dir, weight = tiny.build_tiny_ip_adapter(model_dirs["root"] / "faceid", model_dirs["sd15"], "faceid-plusv2")
    return ModelSpec(base=str(model_dirs["sd15"]), ip_adapter=str(ip_dir), ip_adapter_weight=weight,
                     image_encoder=str(ip_dir / "models" / "image_encoder"), face_embedder=str(arcface.parent),
                     device="cpu")


@pytest.fixture(scope="module")
def faceid_engine(faceid_spec):
    return BumpEngine(faceid_spec)


@pytest.fixture(scope="module")
def face_package(tmp_path_factory):
    """Views large enough for the face pipeline: front, a mirrored three-quarter stand-in, a profile."""
    face = np.asarray(Image.fromarray(_astronaut()[0:256, 96:352]).resize((160, 160), Image.Resampling.LANCZOS))
    views = {"front": (face, 0.0), "three_quarter_left": (face[:, ::-1].copy(), 45.0),
             "profile_right": (face, -90.0)}
    return tiny.build_tiny_package(tmp_path_factory.mktemp("faceid_package"), views, character_id="astronaut")


@given(angle=st.floats(-math.pi, math.pi), scale=st.floats(0.2, 5.0), tx=st.floats(-500, 500),
       ty=st.floats(-500, 500))
@settings(max_examples=60, deadline=None)
def test_similarity_fit_recovers_any_similarity(angle, scale, tx, ty):
    truth = np.array([[scale * math.cos(angle), -scale * math.sin(angle), tx],
                      [scale * math.sin(angle), scale * math.cos(angle), ty]])
    src = faceid.ARCFACE_TEMPLATE
    dst = src @ truth[:, :2].T + truth[:, 2]
    np.testing.assert_allclose(faceid.similarity_matrix(src, dst), truth, atol=1e-6 * max(1.0, scale, abs(tx), abs(ty)))
    # Two points (the eyes) pin a similarity down exactly too.
    np.testing.assert_allclose(faceid.similarity_matrix(src[:2], dst[:2]), truth, atol=1e-5 * max(1.0, abs(tx), abs(ty)))


def test_alignment_lands_the_five_points_on_the_template():
    image = _astronaut()
    face = faceid.largest_face(image)
    points = faceid.face_points(face)
    for size in (112, 224):
        matrix = faceid.similarity_matrix(points, faceid.template(size))
        landed = points @ matrix[:, :2].T + matrix[:, 2]
        # A least-squares fit over a real (smiling) face: eyes within 3 % of the crop of their template
        # spots, nose and mouth corners within 8 %.
        error = np.abs(landed - faceid.template(size)) / size
        assert error[:2].max() < 0.03 and error.max() < 0.08
    assert faceid.align(image, points).shape == (112, 112, 3)
    assert faceid.align(image, points, 224).shape == (224, 224, 3)


def test_arcface_embedder_loads_the_onnx_model_and_is_pose_invariant(arcface):
    embedder = faceid.ArcFaceEmbedder(arcface.parent)  # a buffalo_l-style folder: the 112 px model is picked
    assert embedder.path == arcface and embedder.dim == 512
    image = _astronaut()
    upright = embedder.embed(image)
    assert upright.shape == (512,) and np.linalg.norm(upright) == pytest.approx(1.0)
    assert np.array_equal(upright, embedder.embed(image))  # deterministic
    turned = cv2.warpAffine(image, cv2.getRotationMatrix2D((256, 256), 25, 0.7), (512, 512))
    other = embedder.embed(_grace_hopper())
    # Alignment undoes roll and scale, so the same face is (nearly) the same vector even with random
    # weights, and another face is further away.
    assert float(upright @ embedder.embed(turned)) > 0.98
    assert float(upright @ other) < float(upright @ embedder.embed(turned))
    assert embedder.embed(np.full((128, 128, 3), 200, np.uint8)) is None  # no face: None, not a made-up vector


def test_face_embedder_errors_say_what_to_do(tmp_path, model_dirs):
    with pytest.raises(faceid.FaceEmbedderError, match="buffalo_l"):
        faceid.ArcFaceEmbedder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(faceid.FaceEmbedderError, match="no recognition model"):
        faceid.ArcFaceEmbedder(tmp_path / "empty")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model")
    with pytest.raises(faceid.FaceEmbedderError, match="cannot load"):
        faceid.ArcFaceEmbedder(junk)


def test_faceid_needs_its_face_embedder_and_encoder(faceid_spec, tmp_path):
    import shutil

    with pytest.raises(ModelError, match="insightface"):
        BumpEngine(replace(faceid_spec, face_embedder=None))
    # Like h94/IP-Adapter-FaceID: the weights alone, no image encoder beside them.
    bare = tmp_path / "faceid_release" / "models"
    bare.mkdir(parents=True)
    shutil.copy(f"{faceid_spec.ip_adapter}/models/{faceid_spec.ip_adapter_weight}", bare)
    with pytest.raises(ModelError, match="image_encoder"):
        BumpEngine(replace(faceid_spec, ip_adapter=str(bare.parent), image_encoder=None))
    preset = resolve_spec("sd15-faceid-plusv2")
    assert preset.ip_adapter_weight.endswith(".safetensors") and preset.image_encoder


def test_faceid_plusv2_loads_its_lora_and_conditions_on_identity(faceid_engine, faceid_spec, face_package, scene,
                                                                 fast_settings, model_dirs):
    engine = faceid_engine
    assert engine.loaded.ip_adapter_kind == "faceid-plusv2"
    assert "faceid_0" in engine.pipe.unet.peft_config  # FaceID's own LoRA, through diffusers + peft
    image, sidecar = scene
    result = engine.run(image, face_package, sidecar, fast_settings)
    projection = engine.pipe.unet.encoder_hid_proj.image_projection_layers[0]
    assert projection.shortcut is True  # v2: the identity tokens are added back ("shortcut")
    record = result.record.to_dict()
    assert record["model"]["ip_adapter_kind"] == "faceid-plusv2"
    assert record["package"]["skipped_views"] == {"profile_right": "turned 90 degrees (> 60)"}
    assert record["faces"][0]["references"]["views"] == ["front", "three_quarter_left"]
    again = engine.run(image, face_package, sidecar, fast_settings)
    assert np.array_equal(result.image, again.image)
    assert (engine.references.misses, engine.references.hits) == (1, 1)  # encoded once, then cached
    # The identity moves the output: another person's package gives another face.
    other = tiny.build_tiny_package(model_dirs["root"] / "hopper_package", {
        "front": (np.asarray(Image.fromarray(_grace_hopper()[0:400, 100:500]).resize((160, 160))), 0.0)},
        character_id="hopper")
    hopper = engine.run(image, other, sidecar, fast_settings)
    assert not np.array_equal(result.face_crops[0], hopper.face_crops[0])
    # ... and so does the scale; at scale 0 the package no longer matters.
    zero = replace(fast_settings, ip_adapter_scale=0.0, face=replace(fast_settings.face, ip_adapter_scale=0.0))
    assert np.array_equal(engine.run(image, face_package, sidecar, zero).image,
                          engine.run(image, other, sidecar, zero).image)


def test_faceid_package_without_a_usable_face_is_refused(faceid_engine, scene, fast_settings, tmp_path):
    package = tiny.build_tiny_package(tmp_path / "flat", {"front": (np.full((96, 96, 3), 180, np.uint8), 0.0)})
    image, sidecar = scene
    with pytest.raises(ValueError, match="no package view of tiny_character has a face FaceID can use"):
        faceid_engine.run(image, package, sidecar, fast_settings)


def test_plain_faceid_needs_no_image_encoder(model_dirs, arcface, face_package, scene, fast_settings):
    ip_dir, weight = tiny.build_tiny_ip_adapter(model_dirs["root"] / "faceid_plain", model_dirs["sd15"], "faceid")
    engine = BumpEngine(ModelSpec(base=str(model_dirs["sd15"]), ip_adapter=str(ip_dir), ip_adapter_weight=weight,
                                  face_embedder=str(arcface), device="cpu"))
    assert engine.loaded.ip_adapter_kind == "faceid" and engine.pipe.image_encoder is None
    image, sidecar = scene
    result = engine.run(image, face_package, sidecar, replace(fast_settings, candidates=2))
    face = result.record.to_dict()["faces"][0]
    assert result.image.shape == image.shape and len(face["seeds"]) == 2
    # Candidates are ranked by the same identity the adapter is conditioned on.
    assert face["ranked_by"] == "arcface" and len(face["scores"]) == 2 and face["identity_score"] == max(face["scores"])


def test_user_loras_keep_faceids_own_lora_active(faceid_spec, model_dirs):
    from bump_backend.generate import LoraSpec

    lora = tiny.build_tiny_lora(model_dirs["root"] / "faceid_user_lora", model_dirs["sd15"])
    engine = BumpEngine(replace(faceid_spec, loras=(LoraSpec(str(lora), 0.7),)))
    active = engine.pipe.get_active_adapters()
    assert "faceid_0" in active and any(name.startswith("lora0_") for name in active)
