"""ASGI middleware: the request size cap, the body deadline and the token check, before any body is
parsed; and the crash guard that keeps a connection usable after an internal error.

The size cap answers 413 from ``Content-Length`` without reading; a chunked body is counted as
it streams and cut off at the cap (the framework's parse error is replaced by the 413). The body
deadline answers 408 and closes the connection when a body arrives too slowly (a slow-drip client).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from typing import Any

from bump_contracts.bump_job import API_PREFIX, error_document

HEALTH_PATHS = (f"{API_PREFIX}/health",)
log = logging.getLogger("bump_backend.server")


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


class BodyTooSlow(Exception):
    """The request body did not arrive within its deadline."""


class BodyDeadline:
    """Bound the time a request body may take: ``body_s`` plus its bytes at ``min_bytes_per_s``.

    A client that drips its body a byte at a time gets 408 and a closed connection instead of
    holding a connection (and a parser) open for ever. Only reads of the body are timed: once the
    body is complete, ``receive`` (which a streamed response uses to notice a disconnect) is not.
    """

    def __init__(self, app, body_s: float, min_bytes_per_s: float) -> None:
        self.app = app
        self.body_s = body_s
        self.rate = min_bytes_per_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        seen = 0
        complete = False
        late = False
        started = False

        async def timed_receive() -> dict[str, Any]:
            nonlocal seen, complete, late
            if complete:
                return await receive()
            remaining = start + self.body_s + seen / self.rate - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                late = True
                raise BodyTooSlow(self._message(seen, time.monotonic() - start)) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        async def guarded_send(message) -> None:
            nonlocal started
            if late:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send, seen, time.monotonic() - start)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except BodyTooSlow:
            if not started:
                await self._refuse(send, seen, time.monotonic() - start)

    async def _refuse(self, send, seen: int, elapsed: float) -> None:
        log.warning("closing a connection whose request body was too slow (%d bytes in %.1f s)", seen, elapsed)
        await _send_error(send, 408, "body_timeout", self._message(seen, elapsed), [(b"connection", b"close")])

    def _message(self, seen: int, elapsed: float) -> str:
        return (f"request body too slow: {seen} bytes in {elapsed:.1f} s (the server allows {self.body_s:g} s plus "
                f"{self.rate / 1024:.0f} KiB/s)")


class CrashGuard:
    """The outermost layer: an error after the response was sent is logged, not re-raised, so the
    server keeps the client's kept-alive connection open; one before it answers a JSON 500."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"started": False, "complete": False}

        async def tracking_send(message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                state["complete"] = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if state["complete"]:
                log.debug("error after the response was sent (connection kept): %s", exc)
                return
            if state["started"]:
                raise  # half a response went out: only closing the connection is honest
            log.exception("unhandled error")
            await _send_error(send, 500, "internal", f"internal error: {type(exc).__name__}")
