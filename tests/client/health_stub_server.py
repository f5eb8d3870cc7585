"""A tiny real HTTP server that answers ``/v1/health`` like the backend (for the process-management tests).

``python health_stub_server.py --host 127.0.0.1 --port N --token T [--loading-s S] [--capabilities JSON]``:
reports ``loading`` for S seconds, then ``ready``; without the token only the public fields,
as the real server does. Exits cleanly on SIGTERM (and says so in its log).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--loading-s", type=float, default=0.0)
    parser.add_argument("--capabilities", default=None)
    args = parser.parse_args()
    started = time.monotonic()
    caps = json.loads(args.capabilities) if args.capabilities else None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/v1/health":
                self.send_error(404)
                return
            doc = {"status": "ok", "version": "stub", "contract_version": 1, "auth_required": bool(args.token)}
            if not args.token or self.headers.get("Authorization") == f"Bearer {args.token}":
                ready = time.monotonic() - started >= args.loading_s
                doc.update(model_state="ready" if ready else "loading", queue_length=0, queue_capacity=8,
                           model={"name": "tiny", "family": "sd15"} if ready else None, capabilities=caps)
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *items: object) -> None:
            print("request:", fmt % items, flush=True)

    server = ThreadingHTTPServer((args.host, args.port), Handler)

    def stop(*_args: object) -> None:
        print("stub: terminated", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"stub: serving on {args.host}:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
