"""The profile package as IP-Adapter identity: embeddings cached per package, pose-matched per face.

Each view is encoded once per (model, package hash) and kept; a face then takes the views nearest
its own yaw (the manifest knows each view's yaw), so a profile face is steered by the profile
views rather than by the front view. diffusers takes multi-image references as a nested list
per adapter; here the embeddings are assembled directly into ``ip_adapter_image_embeds`` (one
tensor per adapter, ``[negative; positive]`` along the batch), which also lets faces with
different poses share one batch.

FaceID adapters take a face-recognition embedding per view instead (``faceid.py``: the user's
insightface model on the aligned face); "plus" FaceID adapters also take the CLIP hidden states of
that aligned face, which ride along as ``clip_embeds``/``clip_negative`` and are selected with the
same views.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bump_contracts.package_manifest import MANIFEST_NAME, PackageManifest, file_sha256, load_package

POSE_MODES = ("nearest", "average", "all")


def package_hash(folder: str | Path, manifest: PackageManifest | None = None) -> str:
    """SHA-256 over ``package.json`` and every view image: changes whenever the identity changes."""
    folder = Path(folder)
    manifest = manifest or load_package(folder)
    digest = hashlib.sha256((folder / MANIFEST_NAME).read_bytes())
    for view in manifest.views:
        digest.update(view.name.encode())
        digest.update(file_sha256(folder / view.file).encode())
    return digest.hexdigest()


def view_face_yaw(view) -> float:
    """Yaw of the face as seen in a view (face-geometry convention: the camera's yaw, negated)."""
    if view.face is not None:
        return float(view.face.yaw)
    return float(-view.yaw)


@dataclass
class ReferenceViews:
    """One package's views, encoded for one pipeline's image encoder."""

    package_id: str
    package_hash: str
    names: list[str]
    yaws: np.ndarray
    sha256: list[str]
    embeds: torch.Tensor  # (views, ...) image embeddings (hidden states for "plus" adapters; ArcFace for FaceID)
    negative: torch.Tensor  # (views, ...) the unconditional counterpart
    clip_embeds: torch.Tensor | None = None  # FaceID-plus: CLIP hidden states of the aligned view faces
    clip_negative: torch.Tensor | None = None
    skipped: dict[str, str] | None = None  # FaceID: views without a usable face, and why

    def record(self) -> dict[str, Any]:
        out = {"id": self.package_id, "hash": self.package_hash,
               "views": [{"name": n, "yaw": round(float(y), 2), "sha256": s}
                         for n, y, s in zip(self.names, self.yaws, self.sha256, strict=True)]}
        if self.skipped:
            out["skipped_views"] = dict(self.skipped)
        return out


def angle_difference(a: np.ndarray | float, b: float) -> np.ndarray:
    """Smallest absolute difference of angles in degrees (wraps at 360)."""
    return np.abs((np.asarray(a, dtype=np.float64) - b + 180.0) % 360.0 - 180.0)


def pose_weights(view_yaws: np.ndarray, face_yaw: float | None, sigma: float = 30.0) -> np.ndarray:
    """Gaussian weights over views by yaw distance, summing to 1 (uniform without a yaw)."""
    yaws = np.asarray(view_yaws, dtype=np.float64)
    if face_yaw is None or not math.isfinite(face_yaw):
        return np.full(len(yaws), 1.0 / len(yaws))
    w = np.exp(-0.5 * (angle_difference(yaws, face_yaw) / sigma) ** 2)
    if w.sum() < 1e-12:  # every view far away: fall back to the nearest
        w = (angle_difference(yaws, face_yaw) == angle_difference(yaws, face_yaw).min()).astype(np.float64)
    return w / w.sum()


def nearest_views(view_yaws: np.ndarray, face_yaw: float | None, k: int) -> list[int]:
    """Indices of the ``k`` views nearest the face's yaw, nearest first (all, in order, without a yaw)."""
    n = len(view_yaws)
    k = n if k <= 0 else min(k, n)
    if face_yaw is None:
        return list(range(k))
    order = np.argsort(angle_difference(view_yaws, face_yaw), kind="stable")
    return [int(i) for i in order[:k]]


def _pick(tensors: list[torch.Tensor], refs: ReferenceViews, face_yaw: float | None, mode: str, k: int,
          sigma: float) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """The same pose-matched choice applied to each of ``tensors`` (views first); each gets shape (1, images, ...)."""
    if mode == "nearest":
        idx = nearest_views(refs.yaws, face_yaw, k)
        return [t[idx][None] for t in tensors], {"mode": mode, "views": [refs.names[i] for i in idx]}
    if mode == "all":
        return [t[None] for t in tensors], {"mode": mode, "views": list(refs.names)}
    if mode == "average":
        weights = pose_weights(refs.yaws, face_yaw, sigma)
        out = []
        for t in tensors:
            w = torch.as_tensor(weights, dtype=t.dtype, device=t.device).reshape((-1,) + (1,) * (t.dim() - 1))
            out.append((t * w).sum(0, keepdim=True)[None])
        return out, {"mode": mode, "weights": {n: round(float(x), 4) for n, x in zip(refs.names, weights, strict=True)}}
    raise ValueError(f"unknown pose mode {mode!r}; known: {', '.join(POSE_MODES)}")


def select_embeds(refs: ReferenceViews, face_yaw: float | None, mode: str = "nearest", k: int = 3,
                  sigma: float = 30.0) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(positive, negative) embeddings of shape (1, images, ...) for one face, and what was chosen."""
    (pos, neg), chosen = _pick([refs.embeds, refs.negative], refs, face_yaw, mode, k, sigma)
    return pos, neg, chosen


def select_clip_embeds(refs: ReferenceViews, face_yaw: float | None, mode: str = "nearest", k: int = 3,
                       sigma: float = 30.0) -> tuple[torch.Tensor, torch.Tensor] | None:
    """FaceID-plus: the CLIP (positive, negative) of the same views :func:`select_embeds` chooses."""
    if refs.clip_embeds is None or refs.clip_negative is None:
        return None
    (pos, neg), _ = _pick([refs.clip_embeds, refs.clip_negative], refs, face_yaw, mode, k, sigma)
    return pos, neg


def batch_ip_embeds(per_item: list[tuple[torch.Tensor, ...]], guidance: bool) -> list[torch.Tensor]:
    """diffusers' ``ip_adapter_image_embeds`` for a batch: ``[cat(negatives, positives)]`` per adapter.

    Each item is ``(positive, negative)``, or ``(positive, negative, clip_positive, clip_negative)``
    for FaceID-plus (see :func:`batch_clip_embeds` for the last two).
    """
    pos = torch.cat([item[0] for item in per_item])
    if not guidance:
        return [pos]
    return [torch.cat([torch.cat([item[1] for item in per_item]), pos])]


def batch_clip_embeds(per_item: list[tuple[torch.Tensor, ...]], guidance: bool) -> torch.Tensor | None:
    """FaceID-plus: the CLIP hidden states in the same ``[negatives; positives]`` layout, or None."""
    if not per_item or any(len(item) < 4 or item[2] is None for item in per_item):
        return None
    pos = torch.cat([item[2] for item in per_item])
    return torch.cat([torch.cat([item[3] for item in per_item]), pos]) if guidance else pos


def _load_view_images(folder: Path, manifest: PackageManifest) -> list[Image.Image]:
    images = []
    for view in manifest.views:
        with Image.open(folder / view.file) as image:
            images.append(image.convert("RGB"))
    return images


def encode_views(pipe, images: list[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
    """Image-encoder embeddings of the views: hidden states for plus/plus-face, pooled for plain."""
    from diffusers.models.embeddings import ImageProjection

    if getattr(pipe, "image_encoder", None) is None:
        raise ValueError("this pipeline has no IP-Adapter image encoder loaded: plain and plus adapters need the "
                         "CLIP image encoder of their release (the image_encoder folder)")
    projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    hidden = not isinstance(projection, ImageProjection)  # plus and FaceID-plus take hidden states
    with torch.no_grad():
        pos, neg = pipe.encode_image(images, pipe.image_encoder.device, 1, hidden)
    return pos, neg


class ReferenceCache:
    """Encoded packages, keyed by (pipeline identity, package hash); a small LRU."""

    def __init__(self, max_items: int = 8) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple, ReferenceViews] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, pipe, model_key: Any, folder: str | Path, face_embedder=None, kind: str | None = None
            ) -> ReferenceViews:
        """A package's encoded views; FaceID kinds (``faceid*``) need the ArcFace ``face_embedder``."""
        folder = Path(folder)
        manifest = load_package(folder)
        digest = package_hash(folder, manifest)
        key = (model_key, digest)
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key]
        self.misses += 1
        if kind is not None and kind.startswith("faceid"):
            refs = encode_faceid_views(pipe, folder, manifest, digest, face_embedder, kind)
        else:
            refs = self._encode(pipe, folder, manifest, digest)
        self._items[key] = refs
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return refs

    @staticmethod
    def _encode(pipe, folder: Path, manifest: PackageManifest, digest: str) -> ReferenceViews:
        pos, neg = encode_views(pipe, _load_view_images(folder, manifest))
        return ReferenceViews(
            package_id=manifest.character_id,
            package_hash=digest,
            names=[v.name for v in manifest.views],
            yaws=np.array([view_face_yaw(v) for v in manifest.views], dtype=np.float64),
            sha256=[v.sha256 or file_sha256(folder / v.file) for v in manifest.views],
            embeds=pos,
            negative=neg,
        )

    def clear(self) -> None:
        self._items.clear()


def _view_eyes(view) -> tuple | None:
    """The manifest's projected eyes of a view, image-left first (None without geometry)."""
    if view.face is None:
        return None
    return tuple(sorted((tuple(view.face.right_eye), tuple(view.face.left_eye))))


def encode_faceid_views(pipe, folder: Path, manifest: PackageManifest, digest: str, embedder, kind: str
                        ) -> ReferenceViews:
    """FaceID references: ArcFace vectors of the views' faces (+ CLIP hidden states for "plus" kinds).

    Views turned too far for a recognition model, or without a face, are left out and named in
    ``skipped``; a package with no usable view is refused with a message saying why.
    """
    from bump_backend.generate import faceid

    if embedder is None:
        raise ValueError("FaceID adapters need a face embedder (the insightface recognition model)")
    images = [np.asarray(image) for image in _load_view_images(folder, manifest)]
    yaws = [view_face_yaw(v) for v in manifest.views]
    faces = faceid.view_faces(embedder, images, [v.name for v in manifest.views], yaws,
                              [_view_eyes(v) for v in manifest.views])
    keep = [i for i, f in enumerate(faces) if f.identity is not None]
    skipped = {f.name: f.reason for f in faces if f.identity is None}
    if not keep:
        raise ValueError(f"no package view of {manifest.character_id} has a face FaceID can use ("
                         + "; ".join(f"{n}: {r}" for n, r in skipped.items()) + ")")
    device = pipe.unet.device
    dtype = pipe.unet.dtype
    pos = torch.as_tensor(np.stack([faces[i].identity for i in keep]), dtype=dtype, device=device)
    clip_pos = clip_neg = None
    if kind != "faceid":
        clip_pos, clip_neg = encode_views(pipe, [Image.fromarray(faces[i].clip_crop) for i in keep])
    return ReferenceViews(
        package_id=manifest.character_id,
        package_hash=digest,
        names=[manifest.views[i].name for i in keep],
        yaws=np.array([yaws[i] for i in keep], dtype=np.float64),
        sha256=[manifest.views[i].sha256 or file_sha256(folder / manifest.views[i].file) for i in keep],
        embeds=pos,
        negative=torch.zeros_like(pos),
        clip_embeds=clip_pos,
        clip_negative=clip_neg,
        skipped=skipped or None,
    )


def blank_faceid_embeds(pipe, kind: str, dim: int) -> tuple[torch.Tensor, ...]:
    """What a FaceID adapter sees (at scale 0) without a package: a zero identity, CLIP of a white face."""
    zero = torch.zeros(1, 1, dim, dtype=pipe.unet.dtype, device=pipe.unet.device)
    if kind == "faceid":
        return zero, zero
    pos, neg = encode_views(pipe, [Image.new("RGB", (224, 224), (255, 255, 255))])
    return zero, zero, pos[None], neg[None]
