"""Face mesh on an upright, upscaled crop: 478 points with irises, eye centres, roll, yaw and pitch.

The detector's own eye points are off by up to ~13° of roll on small faces; the mesh's iris
centres on a crop made upright from that first guess are not. Yaw and pitch come from the mesh's
3D points in the image frame, so a mirrored image flips yaw's sign as it must.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bump_backend.faces import runtime, transform
from bump_backend.faces.align import warp

MESH_CROP = 256
MESH_RATIO = 0.45  # face side / crop side handed to the mesh graph
RIGHT_IRIS, LEFT_IRIS = 468, 473  # subject's right / left iris centres (refine_landmarks=True)
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
FOREHEAD, CHIN = 10, 152


@dataclass(frozen=True)
class MeshFit:
    landmarks: np.ndarray  # 478x3 in image pixels
    right_eye: tuple[float, float]
    left_eye: tuple[float, float]
    centre: tuple[float, float]
    side: float
    roll: float
    yaw: float
    pitch: float


def pose(points: np.ndarray) -> tuple[float, float, float]:
    """(roll from the head's up axis, yaw, pitch) of 478x3 mesh points in image pixels."""
    right = points[LEFT_EYE_OUTER] - points[RIGHT_EYE_OUTER]  # toward the subject's left
    up = points[FOREHEAD] - points[CHIN]
    forward = np.cross(right, up)  # out of the face, toward where the nose points (z away from camera)
    forward /= np.linalg.norm(forward) + 1e-12
    # Roll from the up axis with the forward tilt removed: defined for profiles too.
    up_perp = up - forward * float(up @ forward)
    roll_up = math.degrees(math.atan2(up_perp[0], -up_perp[1]))
    # Yaw and pitch in the face's own upright frame (undo the roll first): a face rolled 100° or
    # upside down keeps its yaw (before this, yaw was read in the image frame and flipped).
    t = math.radians(-roll_up)
    fx = math.cos(t) * forward[0] - math.sin(t) * forward[1]
    fy = math.sin(t) * forward[0] + math.cos(t) * forward[1]
    yaw = math.degrees(math.atan2(fx, -forward[2]))
    pitch = math.degrees(math.atan2(-fy, math.hypot(fx, forward[2])))
    return roll_up, yaw, pitch


def fit_mesh(image: np.ndarray, centre: tuple[float, float], side: float, roll: float) -> MeshFit | None:
    """Run the mesh on an upright crop around a face guess; None when it finds no face there."""
    scale = MESH_RATIO * MESH_CROP / side
    matrix = transform.upright(centre, roll, scale, (MESH_CROP / 2, MESH_CROP / 2))
    crop = warp(image, matrix, (MESH_CROP, MESH_CROP))
    result = runtime.face_mesh().process(crop)
    if not result.multi_face_landmarks:
        return None
    best, best_dist = None, math.inf
    for lm in result.multi_face_landmarks:
        pts = np.array([(p.x, p.y, p.z) for p in lm.landmark], np.float64) * MESH_CROP
        mid = pts[:, :2].mean(axis=0)
        dist = math.hypot(mid[0] - MESH_CROP / 2, mid[1] - MESH_CROP / 2)
        if dist < best_dist:
            best, best_dist = pts, dist
    if best is None or best_dist > 0.5 * MESH_RATIO * MESH_CROP or len(best) <= LEFT_IRIS:
        return None
    points = transform.apply(transform.invert(matrix), best)
    right_eye = (float(points[RIGHT_IRIS, 0]), float(points[RIGHT_IRIS, 1]))
    left_eye = (float(points[LEFT_IRIS, 0]), float(points[LEFT_IRIS, 1]))
    roll_up, yaw, pitch = pose(points)
    eye_roll = transform.roll_of(right_eye, left_eye)
    final_roll = eye_roll if abs(yaw) <= 60 else roll_up
    # The face square: mesh bounds in the face's own upright frame.
    t = math.radians(-final_roll)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    local = points[:, :2] @ rot.T
    lo, hi = local.min(axis=0), local.max(axis=0)
    mid_local = (lo + hi) / 2
    mid = rot.T @ mid_local
    return MeshFit(points, right_eye, left_eye, (float(mid[0]), float(mid[1])), float((hi - lo).max()),
                   final_roll, yaw, pitch)
