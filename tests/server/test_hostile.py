"""Hostile input, as an attacker sends it: deep nesting, huge integers, lone surrogates, degenerate faces,
slow-drip connections, and a systematic suite of several hundred bad requests.

Every answer must be below 500; every refusal a 4xx JSON error that names the field; the kept-alive
connection keeps serving after an error; and ``GET /v1/jobs`` stays readable (also after a restart
with a bad record on disk).
"""

from __future__ import annotations

import io
import itertools
import json
import socket
import struct
import time
import zlib

import pytest
import requests
from PIL import Image
from server_helpers import FAST

from bump_backend.server.config import Timeouts
from bump_contracts.bump_job import PARAMS, JobRequest

DEEP = 100_000
HUGE_INT = "9" * 5000


# -- helpers ----------------------------------------------------------------------------------
def parts(request: str | bytes, image: bytes | None, *extra: tuple) -> list[tuple]:
    files = [("request", (None, request, "application/json"))]
    if image is not None:
        files.append(("image", ("shot.png", image, "application/octet-stream")))
    files.extend(extra)
    return files


def check_refusal(response: requests.Response, what: str) -> dict | None:
    """No 5xx; a 4xx is the contract's JSON error document naming a field. Returns the error (None if accepted)."""
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code < 400:
        return None
    assert response.headers["content-type"].startswith("application/json"), what
    err = response.json()["error"]
    assert err["status"] == response.status_code and err["message"], what
    assert err["field"], f"{what}: {response.status_code} names no field: {err}"
    return err


def sidecar_doc(**face_overrides) -> dict:
    face = {"character_id": "alice", "character_name": "Alice", "head_centre": [32, 30], "right_eye": [26, 28],
            "left_eye": [38, 28], "face_box": [20, 16, 44, 46], "roll": 0, "yaw": 0, "pitch": 0,
            "eye_distance_px": 12, "depth_m": 2.0, **face_overrides}
    return {"schema": "render-sidecar", "schema_version": 1, "width": 64, "height": 64, "faces": [face]}


def http_bytes(url: str, files: list[tuple]) -> tuple[bytes, bytes]:
    """A prepared multipart POST as raw bytes (head, body), for sending over one raw socket."""
    prepared = requests.Request("POST", f"{url}/v1/jobs", files=files).prepare()
    head = ["POST /v1/jobs HTTP/1.1", "Host: test"]
    head += [f"{k}: {v}" for k, v in prepared.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode(), prepared.body


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk
    return status, headers, body


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closes ``sock`` (reads any response first), or None if it stays open."""
    sock.settimeout(0.5)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except ConnectionError:
            return time.monotonic() - start
    return None


@pytest.fixture(scope="module")
def png_bytes(images) -> bytes:
    return images["png"].read_bytes()


@pytest.fixture(scope="module")
def hostile(make_server):
    """One server for this module, short connection deadlines so the drip tests stay quick."""
    return make_server(max_queue=1000, timeouts=Timeouts(header_s=2.0, body_s=3.0, keep_alive_s=5.0))


# -- 11: nesting and huge integers --------------------------------------------------------------
def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("where", ["top", "label", "params", "prompt"])
def test_deep_nesting_in_the_request_is_422_naming_the_field(hostile, png_bytes, where):
    text = {"top": nested(DEEP),
            "label": '{"label": ' + nested(DEEP) + "}",
            "params": '{"params": ' + nested(DEEP) + "}",
            "prompt": '{"params": {"prompt": ' + nested(DEEP) + "}}"}[where]
    response = requests.post(f"{hostile.url}/v1/jobs", files=parts(text, png_bytes), timeout=30)
    err = check_refusal(response, where)
    assert response.status_code == 422 and err["field"] == "request" and "nested deeper" in err["message"]


def test_deep_nesting_in_a_sidecar_and_an_uploaded_package_json(hostile, png_bytes, images):
    deep_sidecar = '{"schema": "render-sidecar", "extra": ' + nested(DEEP) + "}"
    response = requests.post(f"{hostile.url}/v1/jobs", timeout=30, files=parts(
        json.dumps({"params": FAST}), png_bytes, ("sidecar", ("s.json", deep_sidecar.encode(), "application/json"))))
    err = check_refusal(response, "sidecar")
    assert response.status_code == 422 and err["field"].startswith("sidecar") and "nested" in err["message"]
    face = images["face"].read_bytes()
    response = requests.post(f"{hostile.url}/v1/jobs", timeout=30, files=parts(
        json.dumps({"params": FAST}), png_bytes, ("references", ("package.json", nested(DEEP).encode(), "x")),
        ("references", ("front.png", face, "image/png"))))
    err = check_refusal(response, "package.json")
    assert response.status_code == 422 and err["field"] == "references" and "nested" in err["message"]


@pytest.mark.parametrize("field", ["params.steps", "params.seed", "params.clip_skip", "schema_version"])
def test_a_5000_digit_integer_is_422(hostile, png_bytes, field):
    if field == "schema_version":
        text = '{"schema_version": ' + HUGE_INT + "}"
    else:
        text = '{"params": {"' + field.split(".")[1] + '": ' + HUGE_INT + "}}"
    response = requests.post(f"{hostile.url}/v1/jobs", files=parts(text, png_bytes), timeout=30)
    err = check_refusal(response, field)
    assert response.status_code == 422 and err["field"] == field and "5000 digits" in err["message"]


def test_kept_alive_connection_serves_after_errors(hostile, png_bytes):
    """Several refusals and a good request on one socket: the server never drops the connection."""
    bad = [parts(nested(DEEP), png_bytes), parts('{"label": "\\ud800"}', png_bytes),
           parts('{"params": {"steps": ' + HUGE_INT + "}}", png_bytes), parts("{", png_bytes)]
    with socket.create_connection(("127.0.0.1", hostile.config.port), timeout=30) as sock:
        for files in bad:
            head, body = http_bytes(hostile.url, files)
            sock.sendall(head + body)
            status, headers, _ = read_response(sock)
            assert 400 <= status < 500 and headers.get("connection", "").lower() != "close"
        sock.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: test\r\n\r\n")
        status, _headers, body = read_response(sock)
        assert status == 200 and "jobs" in json.loads(body)


# -- 12: lone surrogates -----------------------------------------------------------------------
SURROGATE_REQUESTS = {
    "label": '{"label": "a\\ud800b"}',
    "params.prompt": '{"params": {"prompt": "x\\udfff"}}',
    "params.negative_prompt": '{"params": {"negative_prompt": "\\udc80"}}',
    "params.face.prompt": '{"params": {"face": {"prompt": "\\ud800"}}}',
    "unknown field name": '{"\\ud800": 1}',
    "params field name": '{"params": {"st\\ud800eps": 1}}',
    "package_path": '{"package_path": "/tmp/\\ud800"}',
    "package_id": '{"package_id": "a\\ud800"}',
    "packages id": '{"packages": {"al\\ud800": {"package_id": "x"}}}',
    "packages path": '{"packages": {"alice": {"package_path": "/tmp/\\ud800"}}}',
    "character_prompts": '{"character_prompts": {"alice": {"prompt": "\\ud800"}}}',
    "client_key": '{"client_key": "\\ud800"}',
}


@pytest.mark.parametrize("case", sorted(SURROGATE_REQUESTS))
def test_lone_surrogates_are_refused_at_intake(hostile, png_bytes, case):
    before = len(requests.get(f"{hostile.url}/v1/jobs?limit=1000", timeout=30).json()["jobs"])
    response = requests.post(f"{hostile.url}/v1/jobs", files=parts(SURROGATE_REQUESTS[case], png_bytes), timeout=30)
    err = check_refusal(response, case)
    assert response.status_code == 422 and "surrogate" in err["message"], err
    listing = requests.get(f"{hostile.url}/v1/jobs?limit=1000", timeout=30)
    assert listing.status_code == 200 and len(listing.json()["jobs"]) == before


def test_a_bad_record_on_disk_does_not_poison_the_job_list(make_server, images, tmp_path):
    """A record written by an older server (surrogate label) is skipped, also after a restart; good jobs stay."""
    data = tmp_path / "data"
    first = make_server(data_dir=data)
    with open(images["png"], "rb") as handle:
        response = requests.post(f"{first.url}/v1/jobs", timeout=30,
                                 files=parts(json.dumps({"params": FAST, "label": "good"}), handle.read()))
    assert response.status_code == 202
    good_id = response.json()["id"]
    bad_id = "j20250101000000-deadbeef"
    bad = data / "jobs" / bad_id
    (bad / "input").mkdir(parents=True)
    (bad / "request.json").write_text('{"schema": "bump-job-request", "params": {}, "label": "\\ud800"}')
    state = json.loads((data / "jobs" / good_id / "state.json").read_text())
    (bad / "state.json").write_text(json.dumps({**state, "id": bad_id, "seq": 0}))
    first.stop()
    second = make_server(data_dir=data)
    listing = requests.get(f"{second.url}/v1/jobs", timeout=30)
    assert listing.status_code == 200
    ids = [j["id"] for j in listing.json()["jobs"]]
    assert good_id in ids and bad_id not in ids
    assert requests.get(f"{second.url}/v1/jobs/{bad_id}", timeout=30).status_code == 404


# -- 13: clip_skip -----------------------------------------------------------------------------
@pytest.mark.parametrize("value", [10**23, 13, 0])
def test_clip_skip_out_of_range_is_422(hostile, png_bytes, value):
    response = requests.post(f"{hostile.url}/v1/jobs", timeout=30,
                             files=parts(json.dumps({"params": {**FAST, "clip_skip": value}}), png_bytes))
    err = check_refusal(response, "clip_skip")
    assert response.status_code == 422 and err["field"] == "params.clip_skip"
    assert PARAMS["clip_skip"].describe() in err["message"]


# -- 14: degenerate sidecar faces --------------------------------------------------------------
DEGENERATE = {
    "zero box": ({"face_box": [10, 10, 10, 10], "head_centre": [10, 10], "right_eye": [10, 10],
                  "left_eye": [10, 10], "eye_distance_px": 0}, "faces[0].face_box"),
    "zero-width box": ({"face_box": [10, 10, 10, 40]}, "faces[0].face_box"),
    "coincident eyes": ({"right_eye": [30, 28], "left_eye": [30, 28]}, "faces[0].left_eye"),
    "eye distance 0": ({"eye_distance_px": 0}, "faces[0].eye_distance_px"),
}


@pytest.mark.parametrize("case", sorted(DEGENERATE))
def test_degenerate_sidecar_faces_are_refused(hostile, png_bytes, case):
    overrides, field = DEGENERATE[case]
    sidecar = json.dumps(sidecar_doc(**overrides)).encode()
    response = requests.post(f"{hostile.url}/v1/jobs", timeout=30, files=parts(
        json.dumps({"params": FAST}), png_bytes, ("sidecar", ("s.json", sidecar, "application/json"))))
    err = check_refusal(response, case)
    assert response.status_code == 422 and err["field"] == f"sidecar.{field}", err


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_sidecar_numbers_are_refused(hostile, png_bytes, literal):
    text = json.dumps(sidecar_doc(roll=12345)).replace("12345", literal).encode()
    response = requests.post(f"{hostile.url}/v1/jobs", timeout=30, files=parts(
        json.dumps({"params": FAST}), png_bytes, ("sidecar", ("s.json", text, "application/json"))))
    err = check_refusal(response, literal)
    assert response.status_code == 422 and err["field"].startswith("sidecar"), err


def test_a_face_behind_the_camera_may_have_a_point_box(hostile, png_bytes):
    """The renderer records a face behind the camera with a point box and in_frame false: still accepted."""
    sidecar = sidecar_doc(face_box=[10, 10, 10, 10], right_eye=[10, 10], left_eye=[10, 10], eye_distance_px=0,
                          in_frame=False)
    response = requests.post(f"{hostile.url}/v1/jobs", timeout=30, files=parts(
        json.dumps({"params": FAST}), png_bytes, ("sidecar", ("s.json", json.dumps(sidecar).encode(), "x"))))
    assert response.status_code == 202, response.text
    requests.delete(f"{hostile.url}/v1/jobs/{response.json()['id']}", timeout=30)


# -- 16: slow-drip connections -----------------------------------------------------------------
def test_slow_drip_connections_are_closed_while_others_are_served(hostile, png_bytes):
    port = hostile.config.port
    header_drips = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    for sock in header_drips:
        sock.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\n")  # headers never finish
    head, body = http_bytes(hostile.url, parts(json.dumps({"params": FAST}), png_bytes))
    body_drips = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    for sock in body_drips:
        sock.sendall(head + body[:10])  # the body never finishes
    start = time.monotonic()
    served = 0
    for i in range(10, 15):  # a few bytes a second is a drip, not an upload
        for sock in header_drips:
            sock.sendall(b"X")
        for sock in body_drips:
            sock.sendall(body[i:i + 1])
        assert requests.get(f"{hostile.url}/v1/jobs", timeout=5).status_code == 200
        served += 1
        time.sleep(0.4)
    assert served >= 3
    limit = hostile.config.timeouts
    for sock in header_drips:
        took = closed_within(sock, limit.header_s + 5)
        assert took is not None, "a header drip stayed open"
        sock.close()
    statuses = []
    for sock in body_drips:
        sock.settimeout(limit.body_s + 5)
        try:
            statuses.append(read_response(sock)[0])
        except ConnectionError:
            statuses.append(None)
        assert closed_within(sock, 5) is not None, "a body drip stayed open"
        sock.close()
    assert all(s in (408, None) for s in statuses) and 408 in statuses, statuses
    assert time.monotonic() - start < 20


def test_default_deadlines_close_a_drip_within_20_seconds():
    defaults = Timeouts()
    assert defaults.header_s <= 20 and defaults.body_s <= 20 and defaults.keep_alive_s <= 20


# -- the hostile suite ---------------------------------------------------------------------------
def png_of(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buf, "PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def hostile_cases(png: bytes) -> list[tuple[str, list[tuple]]]:
    """Several hundred requests, generated by category: (name, multipart parts)."""
    ok = {"params": FAST}
    req = json.dumps(ok)
    cases: list[tuple[str, list[tuple]]] = []

    def add(name: str, request: str | bytes | dict, image: bytes | None = png, *extra: tuple) -> None:
        text = request if isinstance(request, (str, bytes)) else json.dumps(request)
        cases.append((name, parts(text, image, *extra)))

    # nesting: depth just over the bound up to 100,000, in several places
    for depth, place in itertools.product((65, 500, 5000, DEEP), ("top", "label", "params", "prompt", "unknown",
                                                                    "packages", "face")):
        inner = nested(depth)
        text = {"top": inner, "label": f'{{"label": {inner}}}', "params": f'{{"params": {inner}}}',
                "prompt": f'{{"params": {{"prompt": {inner}}}}}', "unknown": f'{{"zz": {inner}}}',
                "packages": f'{{"packages": {{"a": {inner}}}}}',
                "face": f'{{"params": {{"face": {{"steps": {inner}}}}}}}'}[place]
        add(f"nest {depth} in {place}", text)
    # huge and out-of-range integers in every numeric parameter
    numeric = [n for n, r in PARAMS.items() if r.kind in ("int", "float")]
    for name, value in itertools.product(numeric, (HUGE_INT, "1" + "0" * 101, str(10**23), str(-(10**23)), "1e999",
                                                   "-1e999")):
        add(f"{name}={value[:12]}", f'{{"params": {{"{name}": {value}}}}}')
    for value in (HUGE_INT, str(10**23), "-5", "0", "true", '"1"'):
        add(f"schema_version={value[:12]}", f'{{"schema_version": {value}}}')
    # lone surrogates in every string, in field names, and raw bytes that are not UTF-8
    for where in ("label", "package_path", "package_id", "client_key"):
        for s in ("\\ud800", "\\udfff", "a\\udbffb"):
            add(f"surrogate {where} {s}", f'{{"{where}": "{s}"}}')
    for name in [n for n, r in PARAMS.items() if r.kind == "str"]:
        for s in ("\\ud800", "\\udc00x"):
            add(f"surrogate params.{name}", f'{{"params": {{"{name}": "{s}"}}}}')
    for s in ("\\ud800", "x\\udfff"):
        add(f"surrogate top key {s}", f'{{"{s}": 1}}')
        add(f"surrogate params key {s}", f'{{"params": {{"{s}": 1}}}}')
        add(f"surrogate face key {s}", f'{{"params": {{"face": {{"{s}": 1}}}}}}')
        add(f"surrogate packages id {s}", f'{{"packages": {{"{s}": {{"package_id": "x"}}}}}}')
        add(f"surrogate character_prompts id {s}", f'{{"character_prompts": {{"{s}": {{"prompt": "x"}}}}}}')
    add("invalid utf-8 request", b'{"label": "\xff\xfe"}')
    add("utf-16 request", '{"label": "x"}'.encode("utf-16"))
    # wrong types for every parameter and top-level field
    wrong = [True, "x", [], {}, None, 1.5, -1, [1, 2], {"a": 1}, ""]
    for (name, rule), value in itertools.product(PARAMS.items(), wrong):
        if value is None and rule.kind != "face":
            continue
        add(f"params.{name}={value!r}", {"params": {name: value}})
    for key, value in itertools.product(sorted(JobRequest.FIELDS), [7, True, [], {"a": 1}, 1.5, ""]):
        add(f"{key}={value!r}", {key: value})
    for value in (7, "x", [1], True):
        add(f"params.face={value!r}", {"params": {"face": value}})
        add(f"packages.a={value!r}", {"packages": {"a": value}})
        add(f"character_prompts.a={value!r}", {"character_prompts": {"a": value}})
    for doc in ([], "x", 3, None, True):
        add(f"request document {doc!r}", json.dumps(doc))
    # huge strings
    for key in ("label", "package_id", "client_key", "package_path"):
        add(f"huge {key}", {key: "x" * 100_000})
    for key in ("prompt", "negative_prompt"):
        add(f"huge params.{key}", {"params": {key: "y" * 100_000}})
    add("huge field name", {"z" * 100_000: 1})
    add("huge character id", {"packages": {"c" * 100_000: {"package_id": "x"}}})
    add("many characters", {"packages": {f"c{i}": {"package_id": "x"} for i in range(1000)}})
    add("NUL in label", {"label": "a\x00b"})
    # unknown fields at every level
    add("unknown top", {**ok, "hack": 1})
    add("unknown params", {"params": {**FAST, "hack": 1}})
    add("unknown face", {"params": {"face": {"hack": 1}}})
    add("unknown packages entry", {"packages": {"a": {"package_id": "x", "hack": 1}}})
    add("unknown character_prompts entry", {"character_prompts": {"a": {"hack": "x"}}})
    add("both package refs", {"packages": {"a": {"package_id": "x", "package_path": "/tmp"}}})
    add("package_path and package_id", {"package_path": "/tmp", "package_id": "x"})
    # bad multipart: missing, repeated and unknown parts; wrong content types
    cases.append(("no request part", [("image", ("s.png", png, "image/png"))]))
    cases.append(("no image part", parts(req, None)))
    cases.append(("request twice", parts(req, png, ("request", (None, req, "application/json")))))
    cases.append(("image twice", parts(req, png, ("image", ("t.png", png, "image/png")))))
    cases.append(("sidecar twice", parts(req, png, ("sidecar", ("a.json", b"{}", "x")), ("sidecar", ("b.json", b"{}",
                                                                                                     "x")))))
    cases.append(("unknown part", parts(req, png, ("hack", (None, "1", "text/plain")))))
    cases.append(("non-ascii part name", parts(req, png, ("h\u00ffck\u4e2d", (None, "1", "text/plain")))))
    cases.append(("request as a file", [("request", ("r.json", req.encode(), "application/json")),
                                        ("image", ("s.png", png, "image/png"))]))
    cases.append(("image as text", [("request", (None, req, "application/json")), ("image", (None, "abc"))]))
    cases.append(("empty image", parts(req, b"")))
    # bad images
    truncated = png[: len(png) // 2]
    gif = io.BytesIO()
    Image.new("RGB", (32, 32)).save(gif, "GIF")
    for name, data in (("truncated png", truncated), ("gif", gif.getvalue()), ("text", b"hello"),
                       ("header bomb", png_header_only(60000, 60000)), ("1x1 png", png_of(1, 1)),
                       ("bad crc", png[:-5] + b"\0\0\0\0\0"), ("jpeg magic only", b"\xff\xd8\xff" + b"\0" * 50),
                       ("exr magic only", b"\x76\x2f\x31\x01" + b"\0" * 50), ("webp magic only",
                                                                              b"RIFF\0\0\0\0WEBP" + b"\0" * 20),
                       ("zero width png", png_header_only(0, 64)), ("tall png", png_header_only(1, 40_000_000))):
        add(f"image {name}", req, data)
        add(f"reference {name}", req, png, ("references", (f"{name.replace(' ', '_')}.png", data, "image/png")))
    # bad sidecars
    sidecars = {
        "not json": b"{", "a list": b"[]", "wrong schema": json.dumps({**sidecar_doc(), "schema": "x"}).encode(),
        "string width": json.dumps({**sidecar_doc(), "width": "64"}).encode(),
        "huge width": json.dumps(sidecar_doc()).replace('"width": 64', f'"width": {HUGE_INT}').encode(),
        "surrogate id": json.dumps(sidecar_doc()).replace('"alice"', '"\\ud800"').encode(),
        "unknown face field": json.dumps(sidecar_doc(hack=1)).encode(),
        "deep extra": ('{"schema": "render-sidecar", "schema_version": 1, "extra": ' + nested(5000) + "}").encode(),
        "nan roll": json.dumps(sidecar_doc(roll=123.0)).replace("123.0", "NaN").encode(),
        "box upside down": json.dumps(sidecar_doc(face_box=[40, 40, 10, 10])).encode(),
        "point box": json.dumps(sidecar_doc(face_box=[10, 10, 10, 10])).encode(),
        "same eyes": json.dumps(sidecar_doc(right_eye=[1, 1], left_eye=[1, 1])).encode(),
        "eye distance 0": json.dumps(sidecar_doc(eye_distance_px=0)).encode(),
        "eye as string": json.dumps(sidecar_doc(right_eye="x")).encode(),
        "invalid utf-8": b'{"schema": "\xff"}',
        "faces not a list": json.dumps({**sidecar_doc(), "faces": {}}).encode(),
    }
    for name, data in sidecars.items():
        add(f"sidecar {name}", req, png, ("sidecar", ("s.json", data, "application/json")))
    # path traversal in names and paths
    for name in ("../../etc/passwd", "..", "/etc/passwd", "a/../../b.png", "..\\..\\x.png", ".hidden.png",
                 "x\x00.png", "-rf.png", "p" * 300 + ".png", "con:.png", "\u4e2d.png", ""):
        cases.append((f"reference name {name[:20]!r}", parts(req, png, ("references", (name, png, "image/png")))))
    for path in ("../../etc", "relative/path", "/etc", "/nonexistent/folder", "~root", "/proc/self/root"):
        add(f"package_path {path}", {"package_path": path})
        add(f"packages path {path}", {"packages": {"alice": {"package_path": path}}})
    for pid in ("../x", "..", "a/b", "/abs", "x" * 300, ".hidden", "a b"):
        add(f"package_id {pid[:20]}", {"package_id": pid})
        add(f"packages id {pid[:20]}", {"packages": {"alice": {"package_id": pid}}})
    return cases


def test_hostile_suite_has_no_5xx_and_every_refusal_names_the_field(hostile, png_bytes):
    cases = hostile_cases(png_bytes)
    assert len(cases) >= 300, len(cases)
    refused = accepted = 0
    failures: list[str] = []
    with requests.Session() as session:
        for name, files in cases:
            response = session.post(f"{hostile.url}/v1/jobs", files=files, timeout=60)
            try:
                err = check_refusal(response, name)
            except AssertionError as exc:
                failures.append(str(exc)[:300])
                continue
            if err is None:
                accepted += 1
                session.delete(f"{hostile.url}/v1/jobs/{response.json()['id']}", timeout=30)
            else:
                refused += 1
        for path in ("/v1/jobs/..%2F..%2Fetc", "/v1/jobs/j1/files/..%2F..%2Fstate.json", "/v1/jobs/%ED%A0%80",
                     "/v1/jobs?limit=" + HUGE_INT, "/v1/jobs?state=%ED%A0%80", "/v1/jobs?limit=-1"):
            response = session.get(f"{hostile.url}{path}", timeout=30)
            if response.status_code >= 500:
                failures.append(f"GET {path}: {response.status_code}")
        listing = session.get(f"{hostile.url}/v1/jobs?limit=1000", timeout=30)
    assert not failures, f"{len(failures)} of {len(cases)}:\n" + "\n".join(failures[:20])
    assert listing.status_code == 200 and isinstance(listing.json()["jobs"], list)
    print(f"hostile suite: {len(cases)} requests, {refused} refused (4xx), {accepted} accepted, 0 5xx")
    assert refused > 0.9 * len(cases), (refused, accepted)


def test_crash_guard_keeps_a_connection_after_a_late_error_and_answers_json_before_one() -> None:
    """An error after the answer went out is logged, not re-raised (uvicorn would drop the connection);
    one before any answer becomes the contract's JSON 500."""
    import asyncio

    from bump_backend.server.middleware import CrashGuard

    async def late(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        raise RuntimeError("after the answer")

    async def early(scope, receive, send):
        raise RuntimeError("before the answer")

    async def drive(app) -> list[dict]:
        sent: list[dict] = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await CrashGuard(app)({"type": "http", "path": "/"}, receive, send)
        return sent

    sent = asyncio.run(drive(late))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    sent = asyncio.run(drive(early))
    assert sent[0]["status"] == 500 and json.loads(sent[1]["body"])["error"]["code"] == "internal"
