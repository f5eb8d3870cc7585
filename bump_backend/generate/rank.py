"""Identity ranking: which candidate looks most like the character's package.

The embedder is pluggable (:class:`IdentityEmbedder`); the one that works offline is dlib's
128-d face-recognition ResNet (``dlib-bin`` + ``face_recognition_models``, both wheels with
weights). It wants upright faces, which is what the face pass produces. Same person: distance
~0.06 (rotated up to 45 degrees), different people 0.63-0.75; dlib's threshold is 0.6.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class IdentityEmbedder(Protocol):
    name: str

    def embed(self, image_rgb: np.ndarray) -> np.ndarray | None:
        """An identity vector for the (single, upright) face in the image, or None if none is found."""


def _weights_folder() -> Path:
    """``face_recognition_models``' data folder, found without importing it (it needs pkg_resources,
    which current setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("identity ranking needs `face_recognition_models` (pip install face_recognition_models)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@functools.lru_cache(maxsize=1)
def _dlib_models():
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("identity ranking needs `dlib-bin` (pip install dlib-bin)") from exc
    folder = _weights_folder()
    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")),
        dlib,
    )


@dataclass
class DlibEmbedder:
    """dlib's ResNet face descriptor; falls back to the crop's central square when detection fails.

    ``padding`` is the face-pass crop padding, so the fallback box is where the face must be.
    """

    padding: float = 0.35
    upsample: int = 1
    require_detection: bool = False  # True for package views: no made-up box on a full profile
    name: str = "dlib_resnet_v1"

    def embed(self, image_rgb: np.ndarray) -> np.ndarray | None:
        detector, predictor, encoder, dlib = _dlib_models()
        image = np.ascontiguousarray(image_rgb[..., :3], dtype=np.uint8)
        h, w = image.shape[:2]
        scale = 1.0
        if max(h, w) > 400:  # dlib's detector wants faces of 80-200 px; faster too
            import cv2

            scale = 400.0 / max(h, w)
            image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            h, w = image.shape[:2]
        rects = detector(image, self.upsample)
        if len(rects):
            rect = max(rects, key=lambda r: r.width() * r.height())
        elif self.require_detection:
            return None
        else:
            side = min(h, w) / (1.0 + 2.0 * self.padding)
            cx, cy = w / 2.0, h / 2.0
            rect = dlib.rectangle(int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
        shape = predictor(image, rect)
        return np.asarray(encoder.compute_face_descriptor(image, shape), dtype=np.float64)


def identity_distance(candidate: np.ndarray, references: Sequence[np.ndarray]) -> float:
    """Distance to the nearest reference (each view is one pose of the same person)."""
    if not references:
        return float("nan")
    return float(min(np.linalg.norm(candidate - r) for r in references))


def score_candidates(embedder: IdentityEmbedder, candidates: Sequence[np.ndarray],
                     references: Sequence[np.ndarray], points: np.ndarray | None = None) -> list[float]:
    """Similarity in [.., 1] per candidate: ``1 - distance``; -inf where no face was found.

    ``points``: where the face's alignment points are in every candidate; embedders that can use
    them (``embed_points``, e.g. FaceID's ArcFace) do, instead of searching for the face.
    """
    scores = []
    use_points = points is not None and hasattr(embedder, "embed_points")
    for image in candidates:
        vector = embedder.embed_points(image, points) if use_points else embedder.embed(image)
        scores.append(-float("inf") if vector is None else 1.0 - identity_distance(vector, references))
    return scores


def embed_references(embedder: IdentityEmbedder, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Embeddings of the package views where a face is found (full profiles usually are not)."""
    return [v for v in (embedder.embed(img) for img in images) if v is not None]


def best_index(scores: Sequence[float]) -> int:
    """The winning candidate (the first on ties, so seed order decides)."""
    return int(np.argmax(np.asarray(scores, dtype=np.float64)))
