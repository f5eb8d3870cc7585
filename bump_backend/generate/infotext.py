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

from bump_contracts.bump_job import FACE_PARAMS, PARAMS
from bump_contracts.bump_record import BumpRecord

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


# -- our parameters, through the job contract's labels (ParamRule.infotext) -------------------
def _label(name: str) -> str:
    """The infotext label of a parameter ("steps") or of a face-pass value ("face.steps")."""
    return FACE_PARAMS[name[5:]].infotext if name.startswith("face.") else PARAMS[name].infotext


def bump_infotext(settings: Any, record: BumpRecord) -> str:
    """A1111 ``parameters`` text of a bump (``settings``: its BumpSettings): A1111's keys first, then ours."""
    fs = settings.face_pass_settings()
    faces = record.faces
    scores = record.identity_scores
    package = record.package
    L = _label
    params: dict[str, Any] = {
        L("steps"): settings.steps,
        L("sampler"): settings.sampler,
        L("cfg"): settings.cfg,
        L("seed"): settings.seed,
        "Size": f"{record.output.width}x{record.output.height}",  # the result's: the input's size
        # The model's own size (a multiple of 8 within max_side) when it is not the result's.
        "Work size": f"{record.working_size[0]}x{record.working_size[1]}"
        if tuple(record.working_size) != (record.output.width, record.output.height) else None,
        "Model hash": record.model.hash,
        "Model": record.model.name,
        L("denoise"): settings.denoise,
        L("clip_skip"): settings.clip_skip if settings.clip_skip > 1 else None,
        L("whole_pass"): settings.whole_pass,
        L("face_pass"): settings.face_pass,
        "Faces": len(faces) if settings.face_pass else None,
    }
    if settings.face_pass:
        params.update({
            L("face.steps"): fs.steps, L("face.cfg"): fs.cfg, L("face.denoise"): fs.denoise,
            L("face.sampler"): fs.sampler if fs.sampler != settings.sampler else None,
            L("face.prompt"): fs.prompt if fs.prompt != settings.prompt else None,
            L("face.negative_prompt"): fs.negative_prompt if fs.negative_prompt != settings.negative_prompt else None,
            L("face_size"): settings.face_size, L("face_padding"): settings.face_padding,
            L("candidates"): settings.candidates,
        })
    if record.model.ip_adapter_kind is not None:
        params.update({
            "IP-Adapter": Path(str(record.model.spec.get("ip_adapter_weight") or "")).stem,
            L("ip_adapter_scale"): settings.ip_adapter_scale,
            L("face.ip_adapter_scale"): fs.ip_adapter_scale if settings.face_pass else None,
            L("pose_mode"): settings.pose_mode, L("pose_views"): settings.pose_views,
        })
    params.update({
        "Reference package": package.id if package is not None else None,
        "Reference hash": package.hash[:10] if package is not None and package.hash else None,
        "Character packages": ", ".join(
            f"{cid}: {(p.id if p is not None else None) or Path(p.path if p is not None else '?').name}"
            for cid, p in sorted(record.packages.items())) or None,
        # Only who had their own face prompt (the texts can be long; they are in the bump_record chunk).
        "Character prompts": ", ".join(sorted({str(f.character_id) for f in faces if f.prompt is not None})) or None,
        "Identity score": ", ".join(f"{s:.3f}" for s in scores) if scores else None,
        "Version": "bump-studio",
    })
    return build_infotext(settings.prompt, settings.negative_prompt, params)


def _value(kind: str, text: str) -> Any:
    if kind == "bool":
        return text.lower() in ("true", "on", "1")
    return {"int": int, "float": float}.get(kind, str)(text)


def settings_values(params: dict[str, str]) -> dict[str, Any]:
    """BumpSettings fields from a parsed ``parameters`` text (:func:`parse_infotext`), read through the
    job contract's labels; the face pass's values under ``"face"``. A1111's ``Schedule type: Karras``
    is folded into the sampler name."""
    values: dict[str, Any] = {}
    for name, rule in PARAMS.items():
        text = params.get(rule.infotext) if rule.infotext else None
        if text is not None and (text != "" or rule.kind == "bool"):
            values[name] = _value(rule.kind, text)
    face = {name: _value(rule.kind, params[rule.infotext]) for name, rule in FACE_PARAMS.items()
            if rule.infotext in params}
    if values.get("sampler") and params.get("Schedule type", "").lower() == "karras" \
            and "Karras" not in values["sampler"] and values["sampler"] != "Restart":
        values["sampler"] = values["sampler"] + " Karras"
    if face:
        values["face"] = face
    return values


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
