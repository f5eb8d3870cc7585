"""The job contract and the client import with the stdlib and requests only (Blender's Python)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from server_helpers import REPO

from bump_contracts.bump_job import (
    FACE_FIELDS,
    MAX_CHARACTER_PACKAGES,
    MAX_TEXT,
    PARAM_FIELDS,
    ContractError,
    JobRequest,
    JobStatus,
    sniff_image_type,
    validate_character_prompts,
    validate_params,
)


def test_client_imports_without_torch_numpy_or_pydantic():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'numpy', 'pydantic', 'fastapi', 'PIL', 'diffusers'):\n"
        "            raise ImportError('blocked in Blender: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import bump_client.client, bump_contracts.bump_job\n"
        "c = bump_client.client.BumpClient('http://127.0.0.1:9', retries=0)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_param_names_are_the_generators_settings_fields():
    from bump_backend.generate.settings import BumpSettings, PassOverrides

    assert set(PARAM_FIELDS) == {f.name for f in dataclasses.fields(BumpSettings)}
    assert set(FACE_FIELDS) == {f.name for f in dataclasses.fields(PassOverrides)}


def test_params_type_checks_name_the_field():
    assert validate_params({"steps": 30, "cfg": 7, "face": {"denoise": 0.3, "prompt": None}}) == {
        "steps": 30, "cfg": 7.0, "face": {"denoise": 0.3, "prompt": None}}
    for bad, field in (({"steps": 3.5}, "params.steps"), ({"face_pass": 1}, "params.face_pass"),
                       ({"prompt": 5}, "params.prompt"), ({"face": {"cfg": "x"}}, "params.face.cfg"),
                       ({"nope": 1}, "params.nope"), ({"face": []}, "params.face")):
        with pytest.raises(ContractError) as info:
            validate_params(bad)
        assert info.value.field == field


def test_request_round_trip_and_rules():
    request = JobRequest(params={"seed": 4}, package_id="mira", label="x", client_key="k1")
    assert JobRequest.from_dict(request.to_dict()) == request
    with pytest.raises(ContractError, match="not both"):
        JobRequest.from_dict({"package_path": "/a", "package_id": "b"})
    with pytest.raises(ContractError) as info:
        JobRequest.from_dict({"schema": "other"})
    assert info.value.field == "schema"


def test_character_prompts_contract():
    prompts = {"mira": {"prompt": "Mira, red hair", "negative_prompt": "earrings"}, "marco": {"prompt": "goatee"}}
    request = JobRequest(params={"seed": 4}, character_prompts=prompts)
    assert request.to_dict()["character_prompts"] == prompts
    assert JobRequest.from_dict(request.to_dict()) == request
    assert "character_prompts" not in JobRequest().to_dict()  # an older server still accepts the request
    assert validate_character_prompts({"a": {"prompt": None}}) == {"a": {}}
    too_many = {f"c{i}": {"prompt": "x"} for i in range(MAX_CHARACTER_PACKAGES + 1)}
    for bad, field in (([], "character_prompts"), (too_many, "character_prompts"),
                       ({"a": "x"}, "character_prompts.a"), ({"a": {"promt": "x"}}, "character_prompts.a.promt"),
                       ({"a": {"prompt": 3}}, "character_prompts.a.prompt"),
                       ({"a": {"negative_prompt": "x" * (MAX_TEXT + 1)}}, "character_prompts.a.negative_prompt"),
                       ({"a": {"prompt": "nul\x00"}}, "character_prompts.a.prompt"),
                       ({"": {"prompt": "x"}}, "character_prompts (a character id)")):
        with pytest.raises(ContractError) as info:
            validate_character_prompts(bad)
        assert info.value.field == field, (bad, info.value.field)
        with pytest.raises(ContractError) as info:
            JobRequest.from_dict({"character_prompts": bad})
        assert info.value.field == field


def test_status_round_trip():
    status = JobStatus(id="j20250101000000-deadbeef", state="running", created="2025-01-01T00:00:00Z", progress=0.5,
                       step=3, steps=6, stage="face pass", stage_label="face pass 1/2", eta_s=1.5,
                       timings={"generate_s": 1.0})
    assert JobStatus.from_dict(status.to_dict()) == status
    with pytest.raises(ContractError):
        JobStatus.from_dict({"schema": "bump-job-status", "state": "exploded"})


def test_sniff_accepts_only_the_four_types():
    assert sniff_image_type(b"\x89PNG\r\n\x1a\n....") == "png"
    assert sniff_image_type(b"\xff\xd8\xff\xe0") == "jpeg"
    assert sniff_image_type(b"RIFF\0\0\0\0WEBPVP8 ") == "webp"
    assert sniff_image_type(b"v/1\x01\x02\0\0\0") == "exr"
    for other in (b"GIF89a", b"BM6", b"II*\0", b"", b"<svg"):
        assert sniff_image_type(other) is None


BAD_VALUES = (("steps", 0), ("steps", 151), ("cfg", 30.5), ("cfg", -1), ("denoise", 0),
              ("denoise", 1.5), ("sampler", "Magic"), ("seed", -2), ("seed", 2**32), ("max_side", 63),
              ("ip_adapter_scale", 2.5), ("face_size", 100), ("face_size", 8), ("face_padding", 3.0),
              ("candidates", 0), ("candidates", 17), ("pose_mode", "sideways"), ("pose_views", 0), ("batch_size", 0),
              ("clip_skip", 0), ("face.steps", 0), ("face.cfg", 99.0), ("face.denoise", 1.01),
              ("face.sampler", "nope"), ("face.ip_adapter_scale", -0.1))


def _as_params(name: str, value):
    return {"face": {name[5:]: value}} if name.startswith("face.") else {name: value}


def test_ranges_are_one_table_for_the_contract_and_the_generator():
    """The job contract's ranges (what batch job files and clients check) and BumpSettings (what the
    server builds) reject the same values with the same message, naming the same field."""
    from bump_backend.generate.settings import BumpSettings, PassOverrides

    for name, value in BAD_VALUES:
        validate_params(_as_params(name, value))  # names and types alone: accepted (ints as floats are fine)
        with pytest.raises(ContractError) as contract:
            validate_params(_as_params(name, value), ranges=True)
        assert contract.value.field == f"params.{name}"
        kwargs = {"face": PassOverrides(**{name[5:]: value})} if name.startswith("face.") else {name: value}
        with pytest.raises(ValueError) as generator:
            BumpSettings(**kwargs)
        assert str(contract.value) == str(generator.value).replace(name, f"params.{name}", 1), name
        assert str(generator.value).startswith(name), name  # the field first: the server's 422 names it
    good = {"steps": 150, "cfg": 0, "denoise": 1.0, "sampler": "dpm++ 2m karras", "seed": -1, "face_size": 16,
            "face": {"denoise": 0.3, "sampler": None}}
    assert validate_params(good, ranges=True)["sampler"] == "dpm++ 2m karras"  # checked, passed on as written
    settings = BumpSettings.from_dict({k: v for k, v in good.items() if k != "face"})
    assert settings.sampler == "DPM++ 2M Karras" and BumpSettings.from_dict(settings.to_dict()) == settings


def test_contract_samplers_are_the_generators():
    from bump_backend.generate import samplers
    from bump_contracts.bump_job import SAMPLER_NAMES, canonical_sampler

    assert set(SAMPLER_NAMES) == set(samplers.SAMPLERS)
    for name in [*samplers.SAMPLERS, *samplers.ALIASES, "euler A", "DPM++-2M karras", " heun "]:
        assert canonical_sampler(name) == samplers.canonical_name(name), name
    with pytest.raises(ContractError, match="unknown sampler 'Magic'"):
        canonical_sampler("Magic")
