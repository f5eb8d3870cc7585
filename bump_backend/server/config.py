"""Server configuration: one frozen dataclass, checked once (a public bind needs a token)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bump_contracts.bump_job import DEFAULT_HOST, DEFAULT_PORT

MB = 1024 * 1024


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; anything beyond is a 4xx before work starts."""

    max_request_bytes: int = 256 * MB
    max_pixels: int = 40_000_000  # the image, from its header, before decoding
    max_reference_pixels: int = 16_000_000  # each package view
    max_references: int = 32
    min_side: int = 16
    max_side_param: int = 2048  # params.max_side: the working size the GPU is asked for
    max_face_size: int = 1536
    max_batch_size: int = 16
    max_frames_unpacked_bytes: int = 8 * 1024 * MB  # a frames_zip upload, unpacked


@dataclass(frozen=True)
class Timeouts:
    """How long a client may take to send a request, so slow-drip connections cannot pile up.

    The headers must be complete ``header_s`` after the connection opens (or after the previous
    response, on a kept-alive connection); the body gets ``body_s`` plus the time its bytes need at
    ``min_body_bytes_per_s`` (a 256 MB upload at the default rate: about 8.5 minutes). An idle
    kept-alive connection is closed after ``keep_alive_s``.
    """

    header_s: float = 10.0
    body_s: float = 15.0
    min_body_bytes_per_s: float = 512 * 1024
    keep_alive_s: float = 5.0


@dataclass(frozen=True)
class Retention:
    """Pruning: finished jobs go after ``keep_s`` once fetched, after ``keep_unfetched_s`` if never.

    ``max_bytes`` prunes the oldest fetched jobs first; a job nobody has fetched is kept even
    over the size limit until ``keep_unfetched_s`` (a warning says so), and never while a
    download of it is open.
    """

    keep_s: float = 7 * 24 * 3600
    keep_unfetched_s: float = 30 * 24 * 3600
    min_keep_s: float = 3600  # even when over max_bytes, a fetched job stays this long
    max_bytes: int = 20 * 1024 * MB
    tombstone_s: float = 90 * 24 * 3600  # how long GET answers 410 "pruned" instead of 404
    interval_s: float = 600


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    data_dir: Path = field(default_factory=lambda: Path.home() / ".bump_backend")
    model: Any = None  # a registry name, path, hub id, a ModelSpec, or a .json file holding one
    model_name: str | None = None  # the model as the user named it (health shows this, never a path)
    device: str | None = None
    max_queue: int = 256
    prep_workers: int = 2
    encode_workers: int = 1
    prefetch: int = 2  # jobs decoded ahead of the GPU worker
    max_attempts: int = 2  # a job that was running when the server died is retried once
    library: Path | None = None  # the character library folder (package ids)
    package_roots: tuple[Path, ...] = ()  # if set, package paths must lie under one of these
    limits: Limits = field(default_factory=Limits)
    retention: Retention = field(default_factory=Retention)
    timeouts: Timeouts = field(default_factory=Timeouts)
    log_level: str = "info"
    sse_heartbeat_s: float = 10.0

    def check(self) -> None:
        """Refuse a configuration that would expose the GPU to the network without a token."""
        if not is_loopback(self.host) and not self.token:
            raise ValueError(f"refusing to bind {self.host} without a token: pass --token (or bind 127.0.0.1)")
        if self.token is not None and len(self.token) < 8:
            raise ValueError("the token must be at least 8 characters")
        if self.max_queue < 1 or self.prep_workers < 1 or self.encode_workers < 1:
            raise ValueError("max_queue, prep_workers and encode_workers must be at least 1")
