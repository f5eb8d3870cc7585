"""Running the app under uvicorn with the server's connection timeouts (one place, for the CLI and tests).

uvicorn closes an idle kept-alive connection (``timeout_keep_alive``) but has no deadline for a
request's headers: a client that sends one header byte a second holds a connection for ever.
:class:`HeaderDeadlineProtocol` closes a connection whose request headers are not complete
``header_s`` after it opened (or after its previous response). Body reads are bounded by the
app's ``BodyDeadline`` middleware.
"""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from bump_backend.server.config import ServerConfig

log = logging.getLogger("bump_backend.server")


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request's headers (``header_s``, a class value)."""

    header_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None
    _waiting_cycle: object = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        self._arm_header_deadline()  # before super(): it may start a pipelined request's cycle at once
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._waiting_cycle = self.cycle  # a new request's headers replace this cycle
        self._header_timer = self.loop.call_later(self.header_s, self._header_deadline)

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self.cycle is self._waiting_cycle and not self.transport.is_closing():
            log.warning("closing a connection whose request headers took over %.0f s", self.header_s)
            self.transport.close()


def uvicorn_config(app, config: ServerConfig, **overrides) -> uvicorn.Config:
    """The uvicorn configuration for ``app`` with ``config``'s host, port and timeouts."""
    protocol = type("BumpH11Protocol", (HeaderDeadlineProtocol,), {"header_s": config.timeouts.header_s})
    options = {"host": config.host, "port": config.port, "log_level": config.log_level, "access_log": False,
               "http": protocol, "timeout_keep_alive": config.timeouts.keep_alive_s, **overrides}
    return uvicorn.Config(app, **options)
