"""The capability rules the panel greys settings by: unknown allows everything; known limits are named."""

from __future__ import annotations

from bump_client.capabilities import blocking, identity_line, unavailable
from bump_contracts.health import Capabilities

VALUES = {"sampler": "Restart", "face_size": 720, "face_pass": True, "ip_adapter_scale": 0.6}


def test_unknown_capabilities_allow_everything():
    assert unavailable(None, VALUES) == {} and blocking(None, VALUES) == {}
    assert "unknown" in identity_line(None)


def test_a_backend_without_identity_adapter_greys_the_scale_but_does_not_block():
    caps = Capabilities(ip_adapter_kinds=(), samplers=("Restart",))
    assert set(unavailable(caps, VALUES)) == {"ip_adapter_scale"}
    assert blocking(caps, VALUES) == {}


def test_sampler_and_face_size_beyond_the_backend_block():
    caps = Capabilities(ip_adapter_kinds=("plus-face",), samplers=("Euler", "DDIM"), max_face_size=512)
    found = blocking(caps, VALUES)
    assert set(found) == {"sampler", "face_size"}
    assert "Euler, DDIM" in found["sampler"] and "512" in found["face_size"]
    assert blocking(caps, {**VALUES, "sampler": "Euler", "face_pass": False}) == {}  # no face pass: no face size


def test_identity_line_names_adapters_and_extras():
    caps = Capabilities(ip_adapter_kinds=("plus-face", "faceid-plusv2"), faceid=True, sdxl=False)
    assert identity_line(caps) == "identity: plus-face, faceid-plusv2; FaceID"


def test_clip_skip_deeper_than_the_backends_model_blocks():
    caps = Capabilities(samplers=("Euler",), max_clip_skip=2)
    values = {"sampler": "Euler", "clip_skip": 3}
    assert set(blocking(caps, values)) == {"clip_skip"} and "limit of 2" in blocking(caps, values)["clip_skip"]
    assert blocking(caps, {**values, "clip_skip": 2}) == {}
    assert blocking(Capabilities(samplers=("Euler",)), values) == {}  # an older backend: unknown, allowed
