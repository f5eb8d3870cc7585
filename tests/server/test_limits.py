"""Bad input: every refusal is a 4xx JSON error naming what is wrong; the server keeps serving."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib

import pytest
import requests
from PIL import Image
from server_helpers import FAST, slow

from bump_backend.server.config import MB, Limits
from bump_client.client import BumpClient, JobRejected, QueueFull


def post(url: str, request: dict | str, image: bytes | None, **extra) -> requests.Response:
    files = [("request", (None, request if isinstance(request, str) else json.dumps(request), "application/json"))]
    if image is not None:
        files.append(("image", ("shot.png", image, "application/octet-stream")))
    for key, value in extra.items():
        files.append((key, value))
    return requests.post(f"{url}/v1/jobs", files=files, timeout=30)


def error_of(response: requests.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height``: a few bytes that would decode to gigabytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def png_bytes(images) -> bytes:
    return images["png"].read_bytes()


@pytest.mark.parametrize("side", [10000, 60000])  # above our cap; above Pillow's own bomb limit
def test_decompression_bomb_refused_from_the_header(server, png_bytes, side):
    t = time.perf_counter()
    response = post(server.url, {}, png_header_only(side, side))
    assert response.status_code == 413
    err = error_of(response)
    assert err["code"] == "too_many_pixels" and err["field"] == "image" and "before decoding" in err["message"]
    assert time.perf_counter() - t < 2


def test_wrong_types_refused(server):
    gif = io.BytesIO()
    Image.new("RGB", (32, 32)).save(gif, "GIF")
    bmp = io.BytesIO()
    Image.new("RGB", (32, 32)).save(bmp, "BMP")
    for data in (gif.getvalue(), bmp.getvalue(), b"just text, not an image", b""):
        response = post(server.url, {}, data)
        assert response.status_code == 415, response.text
        assert error_of(response)["code"] == "unsupported_type"


def _corrupt_idat(png: bytes) -> bytes:
    """The PNG with its first IDAT chunk's compressed bytes scrambled and its CRC recomputed (so only
    decoding the pixels can tell)."""
    at = png.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", png[at:at + 4])
    data = bytes(b ^ 0x5A for b in png[at + 8:at + 8 + length])
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + data))
    return png[:at + 8] + data + crc + png[at + 12 + length:]


def test_too_small_and_truncated_images(server, png_bytes, images):
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiny, "PNG")
    response = post(server.url, {}, tiny.getvalue())
    assert response.status_code == 422 and error_of(response)["field"] == "image"
    # a good header over a cut-off or corrupt body is decoded at intake and refused there, never queued
    jpeg = images["jpeg"].read_bytes()
    before = {j["id"] for j in requests.get(f"{server.url}/v1/jobs", timeout=10).json()["jobs"]}
    for name, data in (("png cut short", png_bytes[:len(png_bytes) // 2]), ("png header only", png_bytes[:60]),
                       ("jpeg cut short", jpeg[:len(jpeg) // 2]),
                       ("png corrupt IDAT", _corrupt_idat(png_bytes))):
        t = time.perf_counter()
        response = post(server.url, {}, data)
        assert response.status_code == 422, (name, response.text)
        err = error_of(response)
        assert err["field"] == "image" and err["code"] == "bad_image", (name, err)
        assert "image (upload): unreadable or truncated image" in err["message"], (name, err)
        assert str(server.config.data_dir) not in err["message"]  # never the server's own paths
        assert time.perf_counter() - t < 2
    after = {j["id"] for j in requests.get(f"{server.url}/v1/jobs", timeout=10).json()["jobs"]}
    assert after == before  # nothing was queued


@pytest.mark.parametrize(("request_doc", "field"), [
    ({"params": {"stepz": 3}}, "params.stepz"),
    ({"colour": "red"}, "colour"),
    ({"params": {"face": {"denoize": 0.3}}}, "params.face.denoize"),
    ({"params": {"steps": 0}}, "params.steps"),
    ({"params": {"steps": 1000}}, "params.steps"),
    ({"params": {"cfg": 99.0}}, "params.cfg"),
    ({"params": {"cfg": "7"}}, "params.cfg"),
    ({"params": {"denoise": 0}}, "params.denoise"),
    ({"params": {"seed": -5}}, "params.seed"),
    ({"params": {"steps": True}}, "params.steps"),
    ({"params": {"cfg": float("nan")}}, "params.cfg"),
    ({"params": {"max_side": 100000}}, "params.max_side"),
    ({"params": {"sampler": "Nope"}}, "params.sampler"),
    ({"params": {"face": {"steps": 0}}}, "params.face.steps"),
    ({"params": {"pose_mode": "sideways"}}, "params.pose_mode"),
    ({"params": "steps=4"}, "params"),
    ({"schema_version": 99}, "schema_version"),
    ({"package_path": "relative/folder"}, "package_path"),
    ({"package_path": "/nonexistent/package"}, "package_path"),
])
def test_bad_requests_name_the_field(server, png_bytes, request_doc, field):
    response = post(server.url, json.dumps(request_doc), png_bytes)
    assert response.status_code == 422, response.text
    err = error_of(response)
    assert err["field"] == field, err
    assert err["message"]


def test_unknown_form_field_and_bad_json(server, png_bytes):
    response = post(server.url, {}, png_bytes, extra=(None, "1"))
    assert response.status_code == 422 and error_of(response)["field"] == "extra"
    response = post(server.url, "{not json", png_bytes)
    assert response.status_code == 422 and error_of(response)["field"] == "request"
    response = post(server.url, {}, None)
    assert response.status_code == 422 and error_of(response)["field"] == "image"


def test_bad_sidecar_and_unknown_package_id(server, png_bytes):
    response = post(server.url, {}, png_bytes, sidecar=("s.json", b'{"schema": "render-sidecar"}', "application/json"))
    assert response.status_code == 422 and error_of(response)["field"] == "sidecar.schema_version"
    response = post(server.url, {"package_id": "nobody"}, png_bytes)
    assert response.status_code == 404 and error_of(response)["field"] == "package_id"
    response = post(server.url, {"package_id": "../etc"}, png_bytes)
    assert response.status_code == 422


def test_client_raises_typed_errors(server, images):
    client = BumpClient(server.url)
    with pytest.raises(JobRejected) as info:
        client.submit(images["png"], {"steps": 0})
    assert info.value.status == 422 and info.value.field == "params.steps"
    with pytest.raises(JobRejected) as info:  # refused locally by the contract before any upload
        client.submit(images["png"], {"stepz": 1})
    assert info.value.field == "params.stepz"
    with pytest.raises(JobRejected) as info:
        client.submit(b"GIF89a....", {})
    assert info.value.status == 415


def test_unknown_job_and_file_paths(server):
    client = BumpClient(server.url)
    for path in ("/v1/jobs/j20250101000000-deadbeef", "/v1/jobs/..%2F..%2Fetc", "/v1/jobs/x/files/y"):
        response = requests.get(server.url + path, timeout=10)
        assert response.status_code == 404 and error_of(response)["code"]
    response = requests.delete(server.url + "/v1/jobs/nope", timeout=10)
    assert response.status_code == 404
    assert client.health().status == "ok"


def test_request_size_cap(make_server, png_bytes):
    server = make_server(limits=Limits(max_request_bytes=1 * MB))
    big = png_bytes + b"\0" * (2 * MB)
    response = post(server.url, {}, big)
    assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"

    def chunks():  # no Content-Length: counted while streaming, cut at the cap
        body = (b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
                + big + b"\r\n--b--\r\n")
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    response = requests.post(f"{server.url}/v1/jobs", data=chunks(), timeout=30,
                             headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"
    assert BumpClient(server.url).health().status == "ok"


def test_queue_full_is_429(make_server, images):
    server = make_server(max_queue=1)
    client = BumpClient(server.url)
    running = client.submit(images["png"], slow(150))
    while client.status(running.id).state == "queued":
        time.sleep(0.02)
    waiting = client.submit(images["png"], FAST)
    with pytest.raises(QueueFull) as info:
        client.submit(images["png"], FAST)
    assert info.value.status == 429 and "queue is full" in info.value.reason
    client.cancel(waiting.id)
    client.cancel(running.id)
    assert client.wait(running.id, timeout=30).state == "cancelled"


def test_clip_skip_deeper_than_the_model_fails_before_diffusion(server, png_bytes):
    """Within the contract (1-12) but beyond the loaded model (2 layers): accepted, then the job fails
    before any sampler step with the field and the model's limit, which /v1/health also announces."""
    client = BumpClient(server.url)
    assert client.health().capabilities.max_clip_skip == 2
    job = client.submit(png_bytes, {**FAST, "clip_skip": 5})
    final = client.wait(job.id, timeout=60)
    assert final.state == "failed" and "params.clip_skip" in final.error and "limit of 2" in final.error, final.error
    assert final.step == 0 and "whole" not in (final.stage_label or "")
