"""The demo character's geometry in numpy: shaped vertices, kept parts, masks and bones.

Everything here is plain numpy so it is tested without Blender; :mod:`profile_rig.blender.demo_character`
turns the result into Blender data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from profile_rig.core.mpfb_data import apply_targets, available_targets, load_base_mesh
from profile_rig.core.phenotype import Phenotype
from profile_rig.core.rig_data import DEFAULT_RIG, PlacedBone, load_rig, load_weights, place_bones, remap_weights

# Base-mesh groups -> material slot. Groups not listed (joint cubes, the genital, skirt, tights and
# long-hair helper shells) are dropped; hair is a cap grown from the scalp, the top is painted on.
PART_MATERIAL = {
    "body": "skin",
    "helper-l-eye": "eyes",
    "helper-r-eye": "eyes",
    "helper-upper-teeth": "mouth",
    "helper-lower-teeth": "mouth",
    "helper-tongue": "mouth",
    "helper-l-eyelashes-1": "lashes",
    "helper-l-eyelashes-2": "lashes",
    "helper-r-eyelashes-1": "lashes",
    "helper-r-eyelashes-2": "lashes",
}
MATERIAL_SLOTS = ("skin", "eyes", "mouth", "lashes", "hair")


@dataclass(frozen=True)
class DemoShape:
    vertices: np.ndarray  # (V, 3) Blender space, feet on the ground
    faces: list[np.ndarray]
    material_index: np.ndarray
    material_slots: tuple[str, ...]
    point_attributes: dict[str, np.ndarray]
    corner_attributes: dict[str, np.ndarray]
    corner_uvs: np.ndarray | None
    bones: dict[str, PlacedBone]  # parents first
    landmarks: dict[str, np.ndarray]
    neckline: tuple[float, float, float, float, float]
    source_index: np.ndarray  # (V,) base-mesh vertex each output vertex follows (hair shell: its scalp vertex)
    weights: dict[str, tuple[np.ndarray, np.ndarray]]  # vertex group -> (output vertex ids, weights)
    rig: str = DEFAULT_RIG


# Eye bones added to rigs whose data has none, so gaze works on every demo rig (names the head
# finder knows for that family).
EXTRA_EYE_BONES: dict[str, tuple[str, str, str]] = {  # rig -> (head bone, left eye, right eye)
    "game_engine": ("head", "eye_l", "eye_r"),
    "mixamo": ("mixamorig:Head", "mixamorig:LeftEye", "mixamorig:RightEye"),
}
EYE_BONES: dict[str, tuple[str, str]] = {"default": ("eye.L", "eye.R"), "rigify": ("eye.L", "eye.R")}


# Hairline height (in eye distances above the eye line) by azimuth around the head (0 = front,
# 180 = back): forehead, temples, sideburn, over the ear, behind the ear, nape.
_HAIRLINE = np.array(
    [[0.0, 1.3], [30.0, 1.2], [55.0, 0.95], [72.0, 0.1], [82.0, -0.35], [90.0, 0.45], [104.0, 0.45], [118.0, -0.7], [150.0, -1.35], [180.0, -1.55]]
)
HAIR_THICKNESS_M = 0.007


def head_local(verts: np.ndarray, landmarks: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(across, up, forward) coordinates in eye distances from the eye midpoint (character faces -Y)."""
    local = (verts - landmarks["eye_mid"]) / landmarks["eye_distance"]
    return local[:, 0], local[:, 2], -local[:, 1]


def hair_signed_distance(verts: np.ndarray, landmarks: dict[str, np.ndarray]) -> np.ndarray:
    """Metres above the hairline (positive = hair), from a hairline curve around the head."""
    x, y, z = head_local(verts, landmarks)
    centre_back = 1.15  # head centre behind the eyes, in eye distances
    azimuth = np.degrees(np.abs(np.arctan2(x, z + centre_back)))
    line = np.interp(azimuth, _HAIRLINE[:, 0], _HAIRLINE[:, 1])
    return (y - line) * landmarks["eye_distance"]


def neckline(landmarks: dict[str, np.ndarray]) -> tuple[float, float, float, float, float]:
    """Crew neckline of the painted top: neck axis x/y, radius, extra radius at the front, top height."""
    neck = landmarks["neck"]
    radius = 1.25 * landmarks["eye_distance"]
    return (float(neck[0]), float(neck[1]), float(radius), 0.035, float(neck[2] - 0.01))


def vertex_normals(verts: np.ndarray, faces: list[np.ndarray]) -> np.ndarray:
    normals = np.zeros_like(verts)
    quads = np.array([f for f in faces if len(f) == 4])
    if len(quads):
        n = np.cross(verts[quads[:, 2]] - verts[quads[:, 0]], verts[quads[:, 3]] - verts[quads[:, 1]])
        for k in range(4):
            np.add.at(normals, quads[:, k], n)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(length < 1e-12, 1, length)


def _brow_mask(verts: np.ndarray, landmarks: dict[str, np.ndarray]) -> np.ndarray:
    """Soft eyebrow arcs above each eye, in head-local units of the inter-eye distance."""
    mid = landmarks["eye_mid"]
    d = landmarks["eye_distance"]
    local = (verts - mid) / d
    x, y, z = local[:, 0], local[:, 2], -local[:, 1]  # across (left +), up, forward
    mask = np.zeros(len(verts))
    for side in (-1.0, 1.0):
        t = (side * x - 0.12) / 0.85  # 0 at the inner end, 1 at the outer end
        arc = 0.42 + 0.12 * np.sin(np.clip(t, 0, 1) * np.pi * 0.8) - 0.05 * t
        thickness = 0.16 * (1 - 0.5 * np.clip(t, 0, 1))
        inside = np.clip(1.4 * (1 - np.abs(y - arc) / thickness), 0, 1) ** 0.6
        along = np.clip(t * 6, 0, 1) * np.clip((1.05 - t) * 5, 0, 1)
        front = np.clip((z + 0.4) * 4, 0, 1)
        mask = np.maximum(mask, inside * along * front)
    return mask


def build_demo_shape(phenotype: Phenotype, root: str | None = None, rig: str = DEFAULT_RIG) -> DemoShape:
    base = load_base_mesh(root)
    weights = phenotype.target_weights(available_targets(root))
    verts = apply_targets(base, weights, root)
    verts[:, 2] -= base.joint("ground", verts)[2]

    landmarks = {name: base.joint(name, verts) for name in ("head", "head-2", "neck", "l-eye", "r-eye", "pelvis", "jaw")}
    landmarks["l-eye"] = verts[base.group_vertices("helper-l-eye")].mean(axis=0)
    landmarks["r-eye"] = verts[base.group_vertices("helper-r-eye")].mean(axis=0)
    landmarks["eye_mid"] = (landmarks["l-eye"] + landmarks["r-eye"]) / 2
    landmarks["eye_distance"] = float(np.linalg.norm(landmarks["l-eye"] - landmarks["r-eye"]))
    landmarks["shoulder_half_width"] = float(abs(base.joint("l-shoulder", verts)[0]))

    kept_faces: list[int] = []
    material_index: list[int] = []
    for group, slot in PART_MATERIAL.items():
        faces = base.faces_in(group)
        kept_faces.extend(int(f) for f in faces)
        material_index.extend([MATERIAL_SLOTS.index(slot)] * len(faces))

    used = np.unique(np.concatenate([base.face_vertices[f] for f in kept_faces]))
    remap = -np.ones(len(verts), np.int64)
    remap[used] = np.arange(len(used))
    faces_out = [remap[base.face_vertices[f]] for f in kept_faces]
    corner_uvs = np.concatenate([base.uvs[base.face_uvs[f]] for f in kept_faces])
    new_verts = verts[used]
    hair_sd = hair_signed_distance(new_verts, landmarks)

    if phenotype.hair != "none":
        # a scalp cap: the skin faces around the hair region, pushed out along the normals
        skin = MATERIAL_SLOTS.index("skin")
        normals = vertex_normals(new_verts, faces_out)
        margin = -0.25 * landmarks["eye_distance"]
        cap = [i for i, f in enumerate(faces_out) if material_index[i] == skin and hair_sd[f].min() > margin]
        cap_vertices = np.unique(np.concatenate([faces_out[i] for i in cap]))
        offset = np.full(len(new_verts), -1, np.int64)
        offset[cap_vertices] = np.arange(len(cap_vertices)) + len(new_verts)
        lift = HAIR_THICKNESS_M * np.clip(hair_sd[cap_vertices] / (0.6 * landmarks["eye_distance"]), 0.15, 1.0)
        shell = new_verts[cap_vertices] + normals[cap_vertices] * lift[:, None]
        faces_out.extend(offset[faces_out[i]] for i in cap)
        corner_uvs = np.concatenate([corner_uvs, np.zeros((sum(len(faces_out[i]) for i in cap), 2))])
        material_index.extend([MATERIAL_SLOTS.index("hair")] * len(cap))
        new_verts = np.concatenate([new_verts, shell])
        hair_sd = np.concatenate([hair_sd, hair_sd[cap_vertices]])
        source_index = np.concatenate([used, used[cap_vertices]])
    else:
        hair_sd = np.full(len(new_verts), -1.0)
        source_index = used

    eye_local = np.zeros_like(new_verts)
    for group, key in (("helper-l-eye", "l-eye"), ("helper-r-eye", "r-eye")):
        ids = remap[base.group_vertices(group)]
        eye_local[ids] = new_verts[ids] - landmarks[key]
    brow = _brow_mask(new_verts, landmarks)

    bones, weights = _rig_and_weights(rig, base, verts, source_index, remap, landmarks, root)
    return DemoShape(
        vertices=new_verts,
        faces=faces_out,
        material_index=np.asarray(material_index, np.int32),
        material_slots=MATERIAL_SLOTS,
        point_attributes={"eye_local": eye_local, "brow_mask": brow, "hair_sd": hair_sd},
        corner_attributes={},
        corner_uvs=corner_uvs,
        bones=bones,
        landmarks=landmarks,
        neckline=neckline(landmarks),
        source_index=source_index,
        weights=weights,
        rig=rig,
    )


def _rig_and_weights(rig_name, base, verts, source_index, remap, landmarks, root):
    """The rig placed on the shaped body and its weights on the kept vertices; eyes ride their eye bones."""
    bones = place_bones(load_rig(rig_name, root), base, verts)
    weights = remap_weights(load_weights(rig_name, root), source_index)
    if rig_name in EXTRA_EYE_BONES:
        head, left, right = EXTRA_EYE_BONES[rig_name]
        d = landmarks["eye_distance"]
        for name, key in ((left, "l-eye"), (right, "r-eye")):
            centre = landmarks[key]
            bones[name] = PlacedBone(name, centre, centre + np.array([0.0, -0.4 * d, 0.0]), 0.0, head)
        pair = (left, right)
    else:
        pair = EYE_BONES[rig_name]
        # pivot exactly at the eyeball's centre (the joint cube sits ~0.5 mm off), so gaze keeps the
        # eye in its socket and an unposed head frame is the eyeballs' own
        for name, key in zip(pair, ("l-eye", "r-eye"), strict=True):
            bone = bones[name]
            bones[name] = PlacedBone(name, landmarks[key], landmarks[key] + bone.tail - bone.head, bone.roll, bone.parent)
    eye_ids = {}
    for group, bone in zip(("helper-l-eye", "helper-r-eye"), pair, strict=True):
        eye_ids[bone] = remap[base.group_vertices(group)]
    everything = np.concatenate(list(eye_ids.values()))
    for group, (ids, w) in list(weights.items()):
        keep = ~np.isin(ids, everything)
        weights[group] = (ids[keep], w[keep])
    for bone, ids in eye_ids.items():
        weights[bone] = (ids, np.ones(len(ids)))
    return bones, {g: v for g, v in weights.items() if len(v[0])}
