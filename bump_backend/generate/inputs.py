"""A bump's inputs, checked before anything slow starts (torch imports, model loads).

Each check raises :class:`InputError` with one line that names the file or the option, so the
command line prints ``error: ...`` within a second of starting instead of after the model has
loaded. Light on purpose: PIL and the contracts only (the server's intake checks packages with
the same :func:`check_package`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bump_contracts.errors import ContractError
from bump_contracts.package_manifest import load_package
from bump_contracts.render_sidecar import RenderSidecar, load


class InputError(ValueError):
    """A bad input; the message names the file or option (``field``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def check_image(path: str | Path, what: str = "image", *, shown: str | None = None,
                max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of an image file whose pixels decode completely (a truncated PNG is refused).

    The one rule for a readable input image: the command line calls it before loading the model,
    the server's intake before answering 202. ``shown``: how the file is named in the message (the
    server names the upload, never its own paths); ``max_pixels``: refused from the header, before
    any decoding.
    """
    path = Path(path)
    shown = str(path) if shown is None else shown
    if not path.exists():
        raise InputError(f"{what} {shown}: no such file", what)
    if not path.is_file():
        raise InputError(f"{what} {shown}: not a file", what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if max_pixels is not None and width * height > max_pixels:
                    raise InputError(f"{what} {shown}: {width}x{height} is above the {max_pixels / 1e6:.1f} MP "
                                     "limit (refused before decoding)", what)
                image.load()  # decodes every row: a cut-off file fails here, not inside the job
                return image.size
    except UnidentifiedImageError:
        raise InputError(f"{what} {shown}: not an image file (PNG, JPEG, WebP...)", what) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        reason = str(exc).replace(str(path), shown)
        raise InputError(f"{what} {shown}: unreadable or truncated image ({reason})", what) from None


def check_package(folder: str | Path, what: str = "package") -> Path:
    """A profile package folder whose ``package.json`` is valid and whose view images exist."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"{what} {folder}: no such folder", what)
    try:
        load_package(folder, check_files=True)
    except (ValueError, OSError) as exc:
        raise InputError(f"{what}: {exc}", what) from None
    return folder


def check_sidecar(path: str | Path, what: str = "sidecar") -> RenderSidecar:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path}: no such file", what)
    try:
        return load(str(path))
    except (ContractError, ValueError, RecursionError) as exc:
        raise InputError(f"{what} {path}: {exc}", what) from None


def check_out_folder(path: str | Path, what: str = "out") -> Path:
    """An output folder: absent (it is created) or a folder, never an existing file."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path}: an existing file, not a folder", what)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{what} {path}: {parent} is a file, not a folder", what)
            break
    return path
