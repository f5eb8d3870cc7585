"""ASGI middleware: the request size cap and the token check, before any body is parsed.

The size cap answers 413 from ``Content-Length`` without reading; a chunked body is counted as
it streams and cut off at the cap (the framework's parse error is replaced by the 413).
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from bump_contracts.bump_job import API_PREFIX, error_document

HEALTH_PATHS = (f"{API_PREFIX}/health",)


async def _send_error(send, status: int, code: str, message: str, headers: list | None = None) -> None:
    body = json.dumps(error_document(status, code, message)).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class TokenAuth:
    """Every request but health needs ``Authorization: Bearer <token>`` when a token is set."""

    def __init__(self, app, token: str | None) -> None:
        self.app = app
        self.token = token.encode("utf-8") if token else None

    @staticmethod
    def authorised(header: str | None, token: str | None) -> bool:
        """Whether an ``Authorization`` header carries ``token`` (always, on a server without one)."""
        if not token:
            return True
        given = header[7:].strip() if header and header[:7].lower() == "bearer " else ""
        return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"] in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
        if not hmac.compare_digest(given, self.token):
            await _send_error(send, 401, "unauthorized",
                              "missing or wrong token: send 'Authorization: Bearer <token>' (the server's --token)",
                              [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse bodies above ``max_bytes`` with 413 (stamps the arrival time for the job timings)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["received"] = time.perf_counter()
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_error(send, 400, "bad_content_length", "Content-Length is not a number")
                    return
                if declared > self.max_bytes:
                    await _send_error(send, 413, "request_too_large", self._message(declared))
                    return
        seen = 0
        over = False
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    raise ValueError(self._message(seen))
            return message

        async def guarded_send(message) -> None:
            nonlocal started
            if over:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_error(send, 413, "request_too_large", self._message(seen))
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except ValueError:
            if not over:
                raise
            if not started:
                await _send_error(send, 413, "request_too_large", self._message(seen))

    def _message(self, size: int) -> str:
        return f"request body of {size / 1e6:.1f} MB is above the server's {self.max_bytes / 1e6:.1f} MB limit"
