"""The profile package as IP-Adapter identity: embeddings cached per package, pose-matched per face.

Each view is encoded once per (model, package hash) and kept; a face then takes the views nearest
its own yaw (the manifest knows each view's yaw), so a profile face is steered by the profile
views rather than by the front view. diffusers takes multi-image references as a nested list
per adapter; here the embeddings are assembled directly into ``ip_adapter_image_embeds`` (one
tensor per adapter, ``[negative; positive]`` along the batch), which also lets faces with
different poses share one batch.
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

from profile_rig.package_manifest import MANIFEST_NAME, PackageManifest, file_sha256, load_package

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
    embeds: torch.Tensor  # (views, ...) image embeddings (hidden states for "plus" adapters)
    negative: torch.Tensor  # (views, ...) the unconditional counterpart

    def record(self) -> dict[str, Any]:
        return {"id": self.package_id, "hash": self.package_hash,
                "views": [{"name": n, "yaw": round(float(y), 2), "sha256": s}
                          for n, y, s in zip(self.names, self.yaws, self.sha256, strict=True)]}


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


def select_embeds(refs: ReferenceViews, face_yaw: float | None, mode: str = "nearest", k: int = 3,
                  sigma: float = 30.0) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(positive, negative) embeddings of shape (1, images, ...) for one face, and what was chosen."""
    if mode == "nearest":
        idx = nearest_views(refs.yaws, face_yaw, k)
        pos, neg = refs.embeds[idx][None], refs.negative[idx][None]
        chosen = {"mode": mode, "views": [refs.names[i] for i in idx]}
    elif mode == "all":
        pos, neg = refs.embeds[None], refs.negative[None]
        chosen = {"mode": mode, "views": list(refs.names)}
    elif mode == "average":
        w = torch.as_tensor(pose_weights(refs.yaws, face_yaw, sigma), dtype=refs.embeds.dtype,
                            device=refs.embeds.device)
        shape = (-1,) + (1,) * (refs.embeds.dim() - 1)
        pos = (refs.embeds * w.reshape(shape)).sum(0, keepdim=True)[None]
        neg = (refs.negative * w.reshape(shape)).sum(0, keepdim=True)[None]
        chosen = {"mode": mode, "weights": {n: round(float(x), 4) for n, x in zip(refs.names, w, strict=True)}}
    else:
        raise ValueError(f"unknown pose mode {mode!r}; known: {', '.join(POSE_MODES)}")
    return pos, neg, chosen


def batch_ip_embeds(per_item: list[tuple[torch.Tensor, torch.Tensor]], guidance: bool) -> list[torch.Tensor]:
    """diffusers' ``ip_adapter_image_embeds`` for a batch: ``[cat(negatives, positives)]`` per adapter."""
    pos = torch.cat([p for p, _ in per_item])
    if not guidance:
        return [pos]
    return [torch.cat([torch.cat([n for _, n in per_item]), pos])]


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
        raise ValueError("this pipeline has no IP-Adapter image encoder loaded (FaceID adapters need insightface "
                         "face embeddings instead, which this version does not compute yet)")
    projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    hidden = not isinstance(projection, ImageProjection)
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

    def get(self, pipe, model_key: Any, folder: str | Path) -> ReferenceViews:
        folder = Path(folder)
        manifest = load_package(folder)
        digest = package_hash(folder, manifest)
        key = (model_key, digest)
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key]
        self.misses += 1
        pos, neg = encode_views(pipe, _load_view_images(folder, manifest))
        refs = ReferenceViews(
            package_id=manifest.character_id,
            package_hash=digest,
            names=[v.name for v in manifest.views],
            yaws=np.array([view_face_yaw(v) for v in manifest.views], dtype=np.float64),
            sha256=[v.sha256 or file_sha256(folder / v.file) for v in manifest.views],
            embeds=pos,
            negative=neg,
        )
        self._items[key] = refs
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return refs

    def clear(self) -> None:
        self._items.clear()
