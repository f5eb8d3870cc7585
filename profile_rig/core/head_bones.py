"""Where to look for a character's head and eyes: bone-name candidates per rig family, and estimates
for rigs that only have a head bone. Pure Python.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# Rig family -> head bone names, in the order they are tried.
HEAD_BONES: dict[str, tuple[str, ...]] = {
    "daz_genesis": ("head",),
    "rigify": ("head", "DEF-spine.006", "ORG-spine.006", "spine.006"),
    "mpfb": ("head",),
    "mixamo": ("mixamorig:Head", "mixamorig1:Head", "mixamorig2:Head", "Head"),
    "character_creator": ("CC_Base_Head",),
    "biped": ("Bip01 Head", "Bip001 Head"),
}

# Rig family -> neck bone chains (lowest first); a neck turn is spread over the chain's bones.
NECK_BONES: dict[str, tuple[tuple[str, ...], ...]] = {
    "mpfb": (("neck01", "neck02", "neck03"),),
    "game_engine": (("neck_01",),),
    "mixamo": (("mixamorig:Neck",), ("mixamorig1:Neck",), ("mixamorig2:Neck",)),
    "rigify": (("neck",), ("spine.004", "spine.005")),
    "daz_genesis_3_8": (("neckLower", "neckUpper"),),
    "daz_genesis_9": (("neck1", "neck2"),),
    "character_creator": (("CC_Base_NeckTwist01", "CC_Base_NeckTwist02"),),
    "biped": (("Bip01 Neck",), ("Bip001 Neck",)),
    "generic": (("neck",), ("Neck",)),
}

# (subject's left eye, subject's right eye) bone names.
EYE_BONES: dict[str, tuple[tuple[str, str], ...]] = {
    "daz_genesis_3_8": (("lEye", "rEye"),),
    "daz_genesis_9": (("l_eye", "r_eye"),),
    "rigify": (("eye.L", "eye.R"), ("DEF-eye.L", "DEF-eye.R"), ("ORG-eye.L", "ORG-eye.R"), ("MCH-eye.L", "MCH-eye.R")),
    "mpfb": (("eye.L", "eye.R"),),
    "mixamo": (("mixamorig:LeftEye", "mixamorig:RightEye"), ("mixamorig1:LeftEye", "mixamorig1:RightEye"), ("LeftEye", "RightEye")),
    "character_creator": (("CC_Base_L_Eye", "CC_Base_R_Eye"),),
    "generic": (("eye_L", "eye_R"), ("Eye_L", "Eye_R"), ("EyeL", "EyeR"), ("left_eye", "right_eye")),
}

# Vertex-group names that mark the eyes on a mesh without a rig.
EYE_GROUPS: tuple[tuple[str, str], ...] = (
    ("eye.L", "eye.R"),
    ("lEye", "rEye"),
    ("l_eye", "r_eye"),
    ("LeftEye", "RightEye"),
    ("helper-l-eye", "helper-r-eye"),
)

# Head-bone-only estimate, measured on the MPFB2 base mesh (skull-base head bone to the top of the
# head): eyes sit 0.26 bone lengths up the bone and 0.54 in front of it, 0.38 apart.
EYE_UP_FRACTION = 0.26
EYE_FORWARD_FRACTION = 0.54
EYE_DISTANCE_FRACTION = 0.38
# Mesh-only estimate: head height as a share of body height, eyes below the top of the head.
HEAD_SHARE_OF_HEIGHT = 1 / 7.5
EYES_BELOW_TOP = 0.47
EYES_FORWARD = 0.38
EYE_DISTANCE_OF_HEAD = 0.27


def all_head_bones() -> list[str]:
    seen: list[str] = []
    for names in HEAD_BONES.values():
        seen.extend(n for n in names if n not in seen)
    return seen


def match_neck_chain(available: Iterable[str]) -> list[str]:
    """The first neck chain with at least one bone present (names as they are in the rig)."""
    available = list(available)
    for chains in NECK_BONES.values():
        for chain in chains:
            found = [hit for hit in (match_name(available, [name]) for name in chain) if hit is not None]
            if found:
                return found
    return []


def all_eye_pairs() -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for pairs in EYE_BONES.values():
        seen.extend(p for p in pairs if p not in seen)
    return seen


def _normalise(name: str) -> str:
    return name.split(":")[-1].split("|")[-1].lower()


def match_name(available: Iterable[str], candidates: Iterable[str]) -> str | None:
    """First candidate present: exact, then ignoring case and namespace prefixes (``Genesis8:head``)."""
    available = list(available)
    exact = set(available)
    for candidate in candidates:
        if candidate in exact:
            return candidate
    loose = {}
    for name in available:
        loose.setdefault(_normalise(name), name)
    for candidate in candidates:
        hit = loose.get(_normalise(candidate))
        if hit is not None:
            return hit
    return None


def match_eye_pair(available: Iterable[str], pairs: Iterable[tuple[str, str]] | None = None) -> tuple[str, str] | None:
    available = list(available)
    for left, right in pairs or all_eye_pairs():
        a, b = match_name(available, [left]), match_name(available, [right])
        if a and b and a != b:
            return a, b
    return None


def eyes_from_head_bone(head: np.ndarray, tail: np.ndarray, forward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Estimated (right eye, left eye) world positions from a head bone and the facing direction."""
    head, tail, forward = (np.asarray(v, dtype=float) for v in (head, tail, forward))
    axis = tail - head
    length = float(np.linalg.norm(axis))
    if length < 1e-6:
        raise ValueError("head bone has zero length")
    up = axis / length
    forward = forward - up * float(np.dot(forward, up))
    forward /= np.linalg.norm(forward)
    left = np.cross(up, forward)
    mid = head + up * EYE_UP_FRACTION * length + forward * EYE_FORWARD_FRACTION * length
    half = left * EYE_DISTANCE_FRACTION * length / 2
    return mid - half, mid + half


def eyes_from_top_of_mesh(top: np.ndarray, height: float, forward: np.ndarray, up=(0.0, 0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Estimated eyes from the highest point of a figure and its height (no rig, no eye groups)."""
    up = np.asarray(up, dtype=float)
    forward = np.asarray(forward, dtype=float)
    head = height * HEAD_SHARE_OF_HEIGHT
    left = np.cross(up, forward)
    mid = np.asarray(top, dtype=float) - up * EYES_BELOW_TOP * head + forward * EYES_FORWARD * head
    half = left * EYE_DISTANCE_OF_HEAD * head / 2
    return mid - half, mid + half
