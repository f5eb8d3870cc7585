"""FaceID IP-Adapters: identity from an insightface ArcFace model the user supplies.

FaceID adapters are conditioned on a face-recognition embedding (512-d ArcFace, as insightface's
``buffalo_l/w600k_r50.onnx`` computes it) instead of, or besides ("plus"), CLIP image features of
the face. The recognition model is an ONNX file the user downloads once (insightface's licence
keeps it out of wheels); it runs on ``onnxruntime``. Faces are aligned the way insightface aligns
them: a least-squares similarity from five points (eye centres, nose tip, mouth corners) onto
ArcFace's 112 px template, taken from the face pipeline's mesh landmarks (or the two eyes alone).

The embedder is also an :class:`~bump_backend.generate.rank.IdentityEmbedder`, so FaceID users can
rank candidates by the same identity the adapter was conditioned on.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# insightface's ``arcface_dst``: where the five points land in a 112x112 aligned face
# (image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner).
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
ARCFACE_SIZE = 112
CLIP_FACE_SIZE = 224  # FaceID-plus feeds the CLIP encoder the face aligned at 224 (insightface norm_crop)
# MediaPipe face-mesh indices for the five points (the face pipeline's landmarks, refine_landmarks=True).
MESH_FIVE = (468, 473, 1, 61, 291)
MAX_YAW = 60.0  # beyond this the recognition embedding of a turned face is not the person's; views are skipped
FACEID_KINDS = ("faceid", "faceid-plus", "faceid-plusv2")


class FaceEmbedderError(RuntimeError):
    """The recognition model is missing or unusable; the message says what to download or where to put it."""


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, shift) taking ``src`` points onto ``dst``.

    Umeyama's method, the same fit insightface's ``estimate_norm`` makes with scikit-image; exact
    for two points.
    """
    src = np.asarray(src, dtype=np.float64)[:, :2]
    dst = np.asarray(dst, dtype=np.float64)[:, :2]
    if len(src) != len(dst) or len(src) < 2:
        raise ValueError("a similarity needs at least two matching points")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = float((s**2).sum() / len(src))
    if var_s < 1e-12:
        raise ValueError("the points coincide: no similarity")
    u, sv, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ np.diag(sign) @ vt
    scale = float((sv * sign).sum() / var_s)
    shift = mu_d - scale * rotation @ mu_s
    return np.hstack([scale * rotation, shift[:, None]])


def template(size: int = ARCFACE_SIZE) -> np.ndarray:
    """ArcFace's five points for a ``size`` crop (insightface's ``norm_crop`` scaling)."""
    if size % 112 == 0:
        ratio, shift = size / 112.0, 0.0
    else:
        ratio, shift = size / 128.0, 8.0 * size / 128.0
    out = ARCFACE_TEMPLATE * ratio
    out[:, 0] += shift
    return out


def face_points(face: Any) -> np.ndarray:
    """The five alignment points of a face (``bump_backend.faces.Face``), or its two eyes without a mesh.

    Points are in OpenCV index coordinates (pixel centres at integers), as insightface's are.
    """
    landmarks = getattr(face, "landmarks", None)
    if landmarks is not None and len(landmarks) > max(MESH_FIVE):
        points = np.asarray(landmarks, dtype=np.float64)[list(MESH_FIVE), :2]
    else:
        points = np.asarray(face.eyes, dtype=np.float64)
    return points - 0.5  # the face pipeline's pixel centres are at +0.5


def points_in_crop(aligned: Any) -> np.ndarray:
    """A face's alignment points inside its face-pass crop (``bump_backend.faces.AlignedFace``).

    Candidates come out of img2img where the input crop was, so ranking needs no face search on
    them (a weak candidate that a detector would miss still gets a fair score).
    """
    from bump_backend.faces import transform

    return transform.apply(aligned.matrix, face_points(aligned.face) + 0.5) - 0.5


def align(image: np.ndarray, points: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """The face warped onto ArcFace's template at ``size`` px (black outside the image, like insightface)."""
    import cv2

    matrix = similarity_matrix(points, template(size)[: len(points)])  # two points: the eyes
    return cv2.warpAffine(np.ascontiguousarray(image[..., :3]), matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderValue=0.0)


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise FaceEmbedderError("FaceID needs onnxruntime to run the insightface model: pip install onnxruntime") \
            from exc
    return onnxruntime


def _session(path: Path) -> Any:
    """An onnxruntime session on the CUDA provider when present, else the CPU."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, min(4, os.cpu_count() or 1))
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise FaceEmbedderError(f"cannot load the recognition model {path}: {exc}") from exc


def _open_model(path: Path) -> tuple[Path, Any]:
    """A recognition ``.onnx`` file and its session: the path itself, or the 112x112-input model in a
    folder (buffalo_l), each candidate opened once."""
    if path.is_file():
        return path, _session(path)
    if not path.is_dir():
        raise FaceEmbedderError(
            f"insightface recognition model not found at {path}: download insightface's buffalo_l model pack "
            "(it contains w600k_r50.onnx) once and pass the .onnx file or its folder as the face embedder")
    candidates = sorted(path.glob("*.onnx"))
    preferred = [p for p in candidates if any(k in p.name.lower() for k in ("w600k", "glint", "arcface", "r100"))]
    for candidate in preferred + [p for p in candidates if p not in preferred]:
        try:
            session = _session(candidate)
        except FaceEmbedderError:
            continue  # a file onnxruntime cannot open is simply not a candidate
        if list(session.get_inputs()[0].shape)[-2:] == [ARCFACE_SIZE, ARCFACE_SIZE]:
            return candidate, session
    raise FaceEmbedderError(f"no recognition model (ONNX with a 112x112 input) in {path}; found: "
                            f"{', '.join(p.name for p in candidates) or 'no .onnx files'}")


@dataclass
class ArcFaceEmbedder:
    """insightface's ArcFace recognition model (ONNX) on aligned faces; unit-length 512-d vectors.

    ``input_mean``/``input_std`` are buffalo_l's (pixels scaled to [-1, 1], RGB). ``model`` is the
    ``.onnx`` file or the model-pack folder it is in.
    """

    model: str | Path
    input_mean: float = 127.5
    input_std: float = 127.5
    name: str = "arcface"
    _session: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.path, self._session = _open_model(Path(self.model).expanduser())
        inputs = self._session.get_inputs()
        shape = list(inputs[0].shape)
        if len(inputs) != 1 or shape[-3:] != [3, ARCFACE_SIZE, ARCFACE_SIZE]:
            raise FaceEmbedderError(f"{self.path.name} is not an ArcFace recognition model: it takes {shape}, "
                                    "not 3x112x112 faces (use buffalo_l's w600k_r50.onnx)")
        self._input = inputs[0].name
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    def embed_aligned(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, dim) unit vectors for 112x112 RGB crops aligned with :func:`align`."""
        batch = np.stack([np.asarray(c, dtype=np.float32)[..., :3] for c in crops])
        batch = ((batch - self.input_mean) / self.input_std).transpose(0, 3, 1, 2)
        with self._lock:
            out = self._session.run(None, {self._input: np.ascontiguousarray(batch)})[0]
        out = np.asarray(out, dtype=np.float64).reshape(len(crops), -1)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed_face(self, image: np.ndarray, face: Any) -> np.ndarray:
        return self.embed_points(image, face_points(face))

    def embed_points(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Identity of the face at known alignment points (OpenCV index coordinates)."""
        return self.embed_aligned([align(image, points)])[0]

    def embed(self, image_rgb: np.ndarray) -> np.ndarray | None:
        """Identity of the largest face in the image (``IdentityEmbedder``), None when there is none."""
        face = largest_face(image_rgb)
        return None if face is None else self.embed_face(image_rgb, face)


def largest_face(image: np.ndarray) -> Any:
    """The largest face the face pipeline finds in an image, or None."""
    from bump_backend.faces import FaceFinderSettings, find_faces

    found = find_faces(np.ascontiguousarray(image[..., :3]), None,
                       FaceFinderSettings(min_sharpness=0.0, skip_smaller_than=16))
    return max(found.faces, key=lambda f: f.size) if found.faces else None


@dataclass
class ViewFace:
    """One package view's face as FaceID sees it."""

    name: str
    identity: np.ndarray | None  # unit ArcFace vector, None when the view was skipped
    clip_crop: np.ndarray | None  # the face aligned at 224 px for the CLIP encoder (plus adapters)
    reason: str = ""


def view_faces(embedder: ArcFaceEmbedder, images: list[np.ndarray], names: list[str], yaws: list[float],
               eyes: list[tuple | None] | None = None) -> list[ViewFace]:
    """Recognition embeddings (and CLIP crops) of a package's views; turned views are skipped.

    A view's face comes from the face pipeline (five points from its mesh); where it finds none, the
    manifest's projected eyes (``eyes[i]``: image-left first, pixel centres at +0.5) align it.
    """
    out = []
    for i, (image, name, yaw) in enumerate(zip(images, names, yaws, strict=True)):
        if abs(yaw) > MAX_YAW:
            out.append(ViewFace(name, None, None, f"turned {abs(yaw):.0f} degrees (> {MAX_YAW:.0f})"))
            continue
        face = largest_face(image)
        if face is not None:
            points = face_points(face)
        elif eyes is not None and eyes[i] is not None:
            points = np.asarray(eyes[i], dtype=np.float64) - 0.5
        else:
            out.append(ViewFace(name, None, None, "no face found"))
            continue
        identity = embedder.embed_aligned([align(image, points)])[0]
        out.append(ViewFace(name, identity, align(image, points, CLIP_FACE_SIZE)))
    return out
