"""The job contract and the client import with the stdlib and requests only (Blender's Python)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from conftest import REPO

from bump_backend.job_contract import (
    FACE_FIELDS,
    PARAM_FIELDS,
    ContractError,
    JobRequest,
    JobStatus,
    sniff_image_type,
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
        "import bump_backend.client, bump_backend.job_contract\n"
        "c = bump_backend.client.BumpClient('http://127.0.0.1:9', retries=0)\n"
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
