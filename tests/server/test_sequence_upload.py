"""A frame folder uploaded as a ``frames_zip`` part (a server on another machine): the job runs on the
unpacked copy as on ``frames_path``; hostile archives (zip-slip, absolute paths, links, odd types, bombs,
lying headers, duplicates, encryption) are refused before the 202, naming ``frames_zip``, with nothing
written outside the job's incoming folder and nothing queued."""

from __future__ import annotations

import io
import json
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from bump_backend.server.config import Limits
from bump_backend.testing import clips
from bump_client.client import BumpClient, JobRejected, pack_frames
from bump_contracts.bump_job import DONE
from bump_contracts.sequence_job import FRAMES_ZIP_MAX_MEMBER_BYTES

SEQ = {"steps": 6, "denoise": 0.5, "sampler": "Euler a", "seed": 1234, "cfg": 5.0, "face_size": 64,
       "prompt": "photo of a man"}
SETTINGS = {"min_sharpness": 0.0, "crf": 23}


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = clips.write_folder(iter(clips.photo_clip(4, 160, 128, 48)), tmp_path_factory.mktemp("clip") / "frames",
                                flow=True)
    (folder / ".DS_Store").write_bytes(b"junk")  # not packed: not a frame folder's file
    (folder / "notes.txt").write_text("not packed either", encoding="utf-8")
    return folder


def _png(side: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), 128, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _zip(members: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buf.getvalue()


def _request(package: Path, **extra) -> str:
    return json.dumps({"schema": "bump-sequence-request", "schema_version": 2, "params": SEQ,
                       "package_path": str(package), "sequence": SETTINGS, "frames_zip": True, **extra})


def _post(server, request: str, archive: bytes | None) -> requests.Response:
    files = [("request", (None, request, "application/json"))]
    if archive is not None:
        files.append(("frames_zip", ("frames.zip", archive, "application/zip")))
    return requests.post(f"{server.url}/v1/sequences", files=files, timeout=60)


def test_uploaded_frames_run_like_a_frames_path(server, client, tiny_models, clip_folder, tmp_path):
    job = client.submit_sequence(frames=clip_folder, upload_frames=True, params=SEQ, sequence=SETTINGS,
                                 package=tiny_models["package"], client_key="frames-upload-1")
    again = client.submit_sequence(frames=clip_folder, upload_frames=True, params=SEQ, sequence=SETTINGS,
                                   package=tiny_models["package"], client_key="frames-upload-1")
    assert again.id == job.id  # the same client_key: the same job
    final = client.wait(job.id, timeout=600)
    assert final.state == DONE, final.error
    unpacked = server.config.data_dir / "jobs" / job.id / "input" / "frames"
    names = sorted(p.name for p in unpacked.iterdir())
    assert names == sorted(p.name for p in clip_folder.iterdir() if p.suffix in (".png", ".npy"))
    assert not (unpacked.parent / "frames.zip").exists()  # the archive is gone once unpacked
    result = client.download(job.id, tmp_path / "got")
    assert len(result.record["frames"]) == 4
    assert sorted(p.name for p in clip_folder.iterdir())[0] == ".DS_Store"  # the client's folder untouched


def test_uploaded_frames_with_an_uploaded_package_run(server, client, tiny_models, clip_folder, tmp_path):
    """Everything sent (a Blender add-on talking to a server on another machine): the package checked at
    intake where it was written, then used from the job's input folder."""
    job = client.submit_sequence(frames=clip_folder, upload_frames=True, params=SEQ, sequence=SETTINGS,
                                 package=tiny_models["package"], upload_package=True)
    final = client.wait(job.id, timeout=600)
    assert final.state == DONE, final.error
    package = server.config.data_dir / "jobs" / job.id / "input" / "package"
    assert (package / "package.json").is_file()
    assert len(client.download(job.id, tmp_path / "got").record["frames"]) == 4


def test_a_clip_folder_keeps_its_subfolders(tmp_path):
    folder = tmp_path / "clip"
    (folder / "frames").mkdir(parents=True)
    (folder / "sidecars").mkdir()
    (folder / "deeper" / "still").mkdir(parents=True)
    (folder / "clip.json").write_text("{}", encoding="utf-8")
    (folder / "frames" / "frame_0001.png").write_bytes(_png())
    (folder / "sidecars" / "frame_0001.json").write_text("{}", encoding="utf-8")
    (folder / "deeper" / "still" / "x.png").write_bytes(_png())  # three levels: left out
    archive = pack_frames(folder, tmp_path / "out.zip")
    with zipfile.ZipFile(archive) as z:
        infos = {i.filename: i.compress_type for i in z.infolist()}
    assert infos == {"clip.json": zipfile.ZIP_DEFLATED, "frames/frame_0001.png": zipfile.ZIP_STORED,
                     "sidecars/frame_0001.json": zipfile.ZIP_DEFLATED}
    (tmp_path / "empty").mkdir()
    with pytest.raises(JobRejected) as caught:
        pack_frames(tmp_path / "empty")
    assert caught.value.field == "frames_zip" and "no frames" in caught.value.reason


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def _lying_header(real: bytes) -> bytes:
    """One member whose central-directory header declares 10 bytes unpacked while the data holds more."""
    data = bytearray(_zip([("frame_0001.png", real)], zipfile.ZIP_DEFLATED))
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 10)
    struct.pack_into("<I", data, 22, 10)  # the local header agrees with the lie
    return bytes(data)


def _encrypted() -> bytes:
    data = bytearray(_zip([("frame_0001.png", _png())]))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature)
        flags = struct.unpack_from("<H", data, at + offset)[0]
        struct.pack_into("<H", data, at + offset, flags | 0x1)
    return bytes(data)


def test_hostile_archives_are_refused_naming_frames_zip(server, client, tiny_models, tmp_path):
    png = _png()
    escape = tmp_path / "escaped.png"
    cases = {  # what: (archive, the reason the answer gives)
        "zip-slip": (_zip([("frame_0001.png", png), (f"../../../../../../..{escape}", png)]), "leaving its folder"),
        "zip-slip inside": (_zip([("frames/../../escaped.png", png)]), "leaving its folder"),
        "absolute path": (_zip([(str(escape), png)]), "not a relative path"),
        "windows drive": (_zip([("C:/frames/frame_0001.png", png)]), "not a relative path"),
        "backslash": (_zip([("..\\escaped.png", png)]), "not a relative path"),
        "symlink": (_zip([("frame_0001.png", png), _symlink("frame_0002.png", "/etc/passwd")]), "symbolic link"),
        "executable type": (_zip([("frame_0001.png", png), ("run.sh", b"#!/bin/sh\n")]), "not a frame, sidecar"),
        "hidden file": (_zip([("frame_0001.png", png), (".bashrc", b"x")]), "no hidden files"),
        "too deep": (_zip([("a/b/frame_0001.png", png)]), "deeper than 2 levels"),
        "duplicate (case)": (_zip([("frame_0001.png", png), ("FRAME_0001.PNG", png)]), "given twice"),
        "lying header": (_lying_header(png + bytes(100_000)), "cannot unpack it"),
        "encrypted": (_encrypted(), "encrypted"),
        "not a zip": (b"PK\x03\x04 this is not a zip archive at all" * 10, "not a readable ZIP"),
        "empty archive": (_zip([]), "the archive is empty"),
    }
    before = len(client.jobs(1000))
    for what, (archive, reason) in cases.items():
        response = _post(server, _request(tiny_models["package"]), archive)
        assert response.status_code == 422, (what, response.status_code, response.text)
        err = response.json()["error"]
        assert err["field"] == "frames_zip" and err["message"].startswith("frames_zip: "), (what, err)
        assert reason in err["message"], (what, err)
    assert not escape.exists()
    assert len(client.jobs(1000)) == before  # nothing was queued
    assert not list(server.config.data_dir.glob("jobs/.incoming*"))  # nothing half-written left behind


def test_flag_and_part_go_together(server, tiny_models, clip_folder):
    archive = _zip([("frame_0001.png", _png())])
    cases = [(_request(tiny_models["package"]), None, "frames_zip"),  # flag, no part
             (_request(tiny_models["package"], frames_zip=False), archive, "frames_zip"),  # part, no flag
             (_request(tiny_models["package"], frames_path=str(clip_folder)), archive, "frames_zip"),
             (_request(tiny_models["package"], schema_version=1), archive, "frames_zip")]  # needs version 2
    for request, part, field in cases:
        response = _post(server, request, part)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field, response.json()


def test_zip_bombs_are_refused_before_unpacking(make_server, tiny_models, client):
    small = make_server(limits=Limits(max_frames_unpacked_bytes=2_000_000))
    png = _png()
    # honest headers, too much in all: three 1 MB sidecars deflate to a few KB each
    many = _zip([("frame_0001.png", png)] + [(f"frame_{i:04d}.json", b" " * 1_000_000) for i in range(1, 4)],
                zipfile.ZIP_DEFLATED)
    assert len(many) < 50_000
    response = _post(small, _request(tiny_models["package"]), many)
    assert response.status_code == 422 and response.json()["error"]["field"] == "frames_zip"
    assert "more than this server's 2000000" in response.json()["error"]["message"]
    # one member over the per-file limit (declared honestly): refused from the header, nothing inflated
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("frame_0001.flow.npy", "w", force_zip64=True) as member:
        block = bytes(1 << 20)
        for _ in range(FRAMES_ZIP_MAX_MEMBER_BYTES // len(block) + 1):
            member.write(block)
    response = _post(small, _request(tiny_models["package"]), buf.getvalue())
    assert response.status_code == 422 and "allowed per file" in response.json()["error"]["message"]
    assert not list(small.config.data_dir.glob("jobs/.incoming*"))


def test_an_upload_over_the_cap_is_a_413_before_it_is_sent(make_server, tmp_path):
    """The streamed body's Content-Length is known up front: the server answers 413 from the headers and
    the client reports it as such (a JobRejected, not a dropped connection or a retry)."""
    small = make_server(limits=Limits(max_request_bytes=1024 * 1024))
    video = tmp_path / "big.mp4"
    with open(video, "wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    with pytest.raises(JobRejected) as caught:
        BumpClient(small.url, timeout=30).submit_sequence(video, SEQ, package_id="someone")
    assert caught.value.status == 413 and caught.value.code == "request_too_large"
