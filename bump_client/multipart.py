"""A multipart/form-data body read from disk part by part, so an upload never sits in memory whole.

``requests`` builds a ``files=`` body in memory (a file handle is read to its end first), which a
multi-gigabyte video or frame archive cannot afford. :class:`MultipartBody` knows its length up
front (the server's size cap answers 413 from ``Content-Length`` before anything is sent) and
reads each file in 1 MiB blocks as the connection asks for them. ``rewind()`` starts it over, so
a retried POST (the same ``client_key``) sends the whole body again, reopening the files.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

BLOCK = 1 << 20


@dataclass(frozen=True)
class Part:
    """One form field: ``data`` (text or bytes) or ``path`` (a file read when sent)."""

    name: str
    content_type: str
    data: bytes | None = None
    path: Path | None = None
    filename: str | None = None

    def size(self) -> int:
        return len(self.data) if self.data is not None else os.path.getsize(self.path)  # type: ignore[arg-type]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartBody:
    """A file-like ``multipart/form-data`` body: ``read(n)``, ``len()``, ``rewind()``."""

    def __init__(self, parts: list[Part]) -> None:
        self.boundary = uuid.uuid4().hex
        self.parts = parts
        self._heads = []
        for part in parts:
            disposition = f'form-data; name="{_quote(part.name)}"'
            if part.filename is not None:
                disposition += f'; filename="{_quote(part.filename)}"'
            self._heads.append((f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n"
                                f"Content-Type: {part.content_type}\r\n\r\n").encode())
        self._tail = f"--{self.boundary}--\r\n".encode()
        self._sizes = [p.size() for p in parts]  # what Content-Length promises
        self._length = sum(len(h) + n + 2 for h, n in zip(self._heads, self._sizes, strict=True)) + len(self._tail)
        self._chunks: Iterator[bytes] | None = None
        self._chunk, self._at = b"", 0
        self._open: BinaryIO | None = None

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def _generate(self) -> Iterator[bytes]:
        for head, part, size in zip(self._heads, self.parts, self._sizes, strict=True):
            yield head
            if part.data is not None:
                yield part.data
            else:
                with open(part.path, "rb") as handle:  # type: ignore[arg-type]
                    self._open = handle
                    sent = 0
                    while sent < size and (block := handle.read(min(BLOCK, size - sent))):
                        sent += len(block)
                        yield block
                    grew = bool(handle.read(1))
                    self._open = None
                if sent != size or grew:  # the Content-Length is already on the wire: a changed file cannot be sent
                    raise OSError(f"{part.path}: changed while it was being uploaded")
            yield b"\r\n"
        yield self._tail

    def rewind(self) -> None:
        """Start from the first byte again (a retried request); closes a file left open."""
        self.close()
        self._chunks = None
        self._chunk, self._at = b"", 0

    def close(self) -> None:
        if self._chunks is not None:
            self._chunks.close()  # type: ignore[attr-defined]  # a generator: its open file closes with it
        if self._open is not None:
            self._open.close()
            self._open = None

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left for -1); each block is copied once, whatever ``size``."""
        if self._chunks is None:
            self._chunks = self._generate()
        out: list[bytes] = []
        wanted = size if size >= 0 else self._length
        while wanted > 0:
            if self._at >= len(self._chunk):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._chunk, self._at = chunk, 0
                continue
            piece = self._chunk[self._at:self._at + wanted]
            self._at += len(piece)
            wanted -= len(piece)
            out.append(piece)
        return b"".join(out)

    def __iter__(self) -> Iterator[bytes]:
        while block := self.read(BLOCK):
            yield block
