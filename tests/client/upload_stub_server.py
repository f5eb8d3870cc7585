"""A tiny real HTTP server that takes ``POST /v1/sequences`` like the backend and records what arrived.

``python upload_stub_server.py --port N --log FILE [--drop-first]``: each POST appends one JSON line to
FILE (the attempt, the request part's client_key, and per part its name, file name, size and SHA-256,
for ZIP parts the member names) and answers 202 with a queued job status. With ``--drop-first`` the
first POST is cut off after 64 KiB of its body (the connection closed without an answer): what a
restarting server or a dropped network does to a client mid-upload. It runs in its own process so
the client's memory can be measured alone.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import socket
import sys
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bump_contracts.bump_job import JobStatus


def parts_of(body: bytes, boundary: bytes) -> list[dict]:
    found = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        data = data[:-2]  # the CRLF before the next boundary
        disposition = head.decode("latin-1")
        name = re.search(r'name="([^"]*)"', disposition).group(1)
        filename = re.search(r'filename="([^"]*)"', disposition)
        part = {"name": name, "filename": filename.group(1) if filename else None, "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}
        if name == "request":
            part["json"] = json.loads(data)
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                part["members"] = sorted(archive.namelist())
        found.append(part)
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--drop-first", action="store_true")
    args = parser.parse_args()
    attempts = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            attempts[0] += 1
            length = int(self.headers["Content-Length"])
            boundary = self.headers["Content-Type"].split("boundary=")[1].encode()
            if args.drop_first and attempts[0] == 1:
                head = self.rfile.read(65536)
                with open(args.log, "a", encoding="utf-8") as log:
                    log.write(json.dumps({"attempt": 1, "dropped": True, "length": length,
                                          "request": parts_of(head + b"--" + boundary + b"--", boundary)[0]
                                          .get("json")}) + "\n")
                self.connection.shutdown(socket.SHUT_RDWR)
                self.connection.close()
                self.close_connection = True
                return
            body = self.rfile.read(length)
            with open(args.log, "a", encoding="utf-8") as log:
                log.write(json.dumps({"attempt": attempts[0], "length": length, "parts": parts_of(body, boundary)})
                          + "\n")
            status = JobStatus(id="j1", state="queued", created="2026-12-02T00:00:00+00:00", queue_position=0)
            out = json.dumps(status.to_dict()).encode()
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, fmt: str, *items: object) -> None:
            print("request:", fmt % items, flush=True)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"stub: serving on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
