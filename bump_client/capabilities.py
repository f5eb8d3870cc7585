"""What a running backend cannot do with the user's settings, from its health document's capabilities.

One rule list for every client: the add-on greys out (or marks) these settings and refuses a bump
before rendering, instead of failing after it. ``capabilities is None`` (an older server, or a
caller without the token) means unknown: everything is allowed and the server has the last word.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bump_contracts.health import Capabilities

# settings that merely have no effect on this backend (shown greyed) vs ones the backend would refuse
IGNORED = frozenset({"ip_adapter_scale"})


def unavailable(caps: Capabilities | None, values: Mapping[str, Any]) -> dict[str, str]:
    """Setting name -> why this backend cannot use the value (empty: nothing known against it)."""
    if caps is None:
        return {}
    out: dict[str, str] = {}
    if not caps.ip_adapter_kinds:
        out["ip_adapter_scale"] = "this backend loaded no identity adapter (IP-Adapter): the scale has no effect"
    sampler = values.get("sampler")
    if caps.samplers and sampler is not None and sampler not in caps.samplers:
        out["sampler"] = f"sampler {sampler!r} is not on this backend (it has {', '.join(caps.samplers)})"
    face_size = values.get("face_size")
    if caps.max_face_size is not None and face_size is not None and values.get("face_pass", True) \
            and face_size > caps.max_face_size:
        out["face_size"] = f"face size {face_size} is above this backend's limit of {caps.max_face_size}"
    clip_skip = values.get("clip_skip")
    if caps.max_clip_skip is not None and clip_skip is not None and clip_skip > caps.max_clip_skip:
        out["clip_skip"] = f"clip skip {clip_skip} is above this backend's model limit of {caps.max_clip_skip}"
    return out


def blocking(caps: Capabilities | None, values: Mapping[str, Any]) -> dict[str, str]:
    """The subset the backend would refuse (a bump must not start with these)."""
    return {k: v for k, v in unavailable(caps, values).items() if k not in IGNORED}


def identity_line(caps: Capabilities | None) -> str:
    """One line for the panel: which identity adapters and extras the backend offers."""
    if caps is None:
        return "capabilities unknown (older backend or no token)"
    kinds = ", ".join(caps.ip_adapter_kinds) or "none"
    extras = [name for name, on in (("FaceID", caps.faceid), ("SDXL", caps.sdxl)) if on]
    return f"identity: {kinds}" + (f"; {', '.join(extras)}" if extras else "")
