"""A1111-compatible infotext (the PNG ``parameters`` chunk) and the JSON record beside it.

A1111's "PNG Info" tab reads ``parameters``: the prompt, a ``Negative prompt:`` line and one last
line of ``Key: value`` pairs, where a value containing a comma, colon or newline is JSON-quoted.
We write that (plus our own keys) and parse it back the way A1111 does, so users can bring
settings from their own A1111 images. The full record for :mod:`reproduce` goes into a second
chunk (``bump_record``) and a JSON sidecar file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

PARAMETERS_KEY = "parameters"
RECORD_KEY = "bump_record"
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")


def quote(value: Any) -> str:
    """A1111's quoting: JSON-quote values that contain a comma, a colon or a newline."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def format_number(value: float) -> str:
    """``7`` not ``7.0``; otherwise the shortest round-trip form."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def build_infotext(prompt: str, negative_prompt: str, params: dict[str, Any]) -> str:
    """``prompt\\nNegative prompt: ...\\nKey: value, ...`` with A1111's quoting; None values skipped."""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "True" if value else "False"
        elif isinstance(value, float):
            value = format_number(value)
        pairs.append(f"{key}: {quote(value)}")
    lines = [prompt]
    if negative_prompt:
        lines.append(f"Negative prompt: {negative_prompt}")
    lines.append(", ".join(pairs))
    return "\n".join(lines)


def parse_infotext(text: str) -> dict[str, str]:
    """A1111's ``parse_generation_parameters``: Prompt, Negative prompt and every ``Key: value``.

    ``Size: 512x768`` also gives ``Size-1`` = 512 and ``Size-2`` = 768, as in A1111.
    """
    result: dict[str, str] = {}
    prompt, negative, done_with_prompt = "", "", False
    *lines, last = text.strip().split("\n")
    if len(_RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    result["Prompt"] = prompt
    result["Negative prompt"] = negative
    for key, value in _RE_PARAM.findall(last):
        value = unquote(value) if value[:1] == '"' and value[-1:] == '"' else value
        size = _RE_IMAGESIZE.match(value)
        if size is not None:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        result[key] = value
    return result


def save_png(path: str | Path, image: np.ndarray | Image.Image, infotext: str | None = None,
             record: dict[str, Any] | None = None) -> Path:
    """Write a PNG with the ``parameters`` chunk (and the JSON record) embedded."""
    path = Path(path)
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    info = PngImagePlugin.PngInfo()
    if infotext is not None:
        info.add_text(PARAMETERS_KEY, infotext)
    if record is not None:
        info.add_text(RECORD_KEY, json.dumps(record, sort_keys=True), zip=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.save(path, pnginfo=info)
    return path


def read_png_text(path: str | Path) -> dict[str, str]:
    """Every text chunk of a PNG (``parameters``, ``bump_record``...)."""
    with Image.open(path) as image:
        image.load()
        return {str(k): str(v) for k, v in getattr(image, "text", {}).items()}


def write_record(path: str | Path, record: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_record(source: str | Path) -> dict[str, Any]:
    """The JSON record from a sidecar ``.json`` or from a PNG's ``bump_record`` chunk."""
    source = Path(source)
    if source.suffix.lower() == ".json":
        return json.loads(source.read_text(encoding="utf-8"))
    texts = read_png_text(source)
    if RECORD_KEY not in texts:
        raise ValueError(f"{source}: no {RECORD_KEY} chunk (not written by the bump backend); "
                         "use parse_infotext on its 'parameters' text for A1111 settings")
    return json.loads(texts[RECORD_KEY])
