"""Real face photos that ship in PyPI wheels, plus derived copies for the import-images tests.

``turn_head`` makes a photo of the same face turned left or right: mediapipe's face mesh gives
468 points with depth, the points are rotated about the head's vertical axis and every mesh
triangle is warped to its new place (back to front), while a ring of points around the face keeps
the background continuous. Crude next to a real turn, but the nose really moves against the
cheeks, which is what yaw estimation looks at.
"""

from __future__ import annotations

import math
import os

import cv2
import numpy as np


def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def grace_hopper() -> np.ndarray:
    import matplotlib

    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")
    return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)


def mirrored(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


def blurred(image: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def _mesh_points(image: np.ndarray) -> np.ndarray:
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        found = mesh.process(image).multi_face_landmarks
    if not found:
        raise RuntimeError("no face mesh on the fixture image")
    h, w = image.shape[:2]
    return np.array([[p.x * w, p.y * h, p.z * w] for p in found[0].landmark[:468]])


def turn_head(image: np.ndarray, degrees: float) -> np.ndarray:
    """The face turned so its nose moves toward the image's right for positive ``degrees``."""
    from scipy.spatial import Delaunay

    h, w = image.shape[:2]
    pts = _mesh_points(image)
    centre = pts.mean(axis=0)
    radius = float(np.ptp(pts[:, 0]))
    t = math.radians(degrees)
    rel = pts - centre
    # Nose tip has negative z (towards the camera): x' = x cos - z sin moves it right for t > 0.
    turned = np.stack([centre[0] + rel[:, 0] * math.cos(t) - rel[:, 2] * math.sin(t), pts[:, 1],
                       rel[:, 0] * math.sin(t) + rel[:, 2] * math.cos(t)], axis=1)
    ring = [(centre[0] + 1.2 * radius * math.cos(a), centre[1] + 1.5 * radius * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 24, endpoint=False)]
    ring += [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w / 2, 0), (w / 2, h - 1), (0, h / 2), (w - 1, h / 2)]
    src = np.concatenate([pts[:, :2], np.array(ring)])
    dst = np.concatenate([turned[:, :2], np.array(ring)])
    depth = np.concatenate([turned[:, 2], np.full(len(ring), turned[:, 2].max() + 1)])
    tris = Delaunay(src).simplices
    out = image.copy()
    for tri in sorted(tris, key=lambda s: -depth[s].mean()):
        s, d = src[tri].astype(np.float32), dst[tri].astype(np.float32)
        x, y, bw, bh = cv2.boundingRect(d)
        x, y = max(x, 0), max(y, 0)
        bw, bh = min(bw, w - x), min(bh, h - y)
        if bw <= 0 or bh <= 0:
            continue
        m = cv2.getAffineTransform(s, d - np.array([x, y], np.float32))
        patch = cv2.warpAffine(image, m, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((bh, bw), np.uint8)
        cv2.fillConvexPoly(mask, np.round(d - [x, y]).astype(np.int32), 1)
        region = out[y : y + bh, x : x + bw]
        region[mask > 0] = patch[mask > 0]
    return out
