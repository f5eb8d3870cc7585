"""Pure camera maths: head frames, camera placement from view angles, framing and projection.

Blender's conventions throughout: a camera looks down its local -Z axis with +Y up; world
space is Z-up. Pixels: origin top-left, x right, y down (as in the saved image).
No ``bpy`` here, so all of it is tested without Blender and reused by the backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bump_contracts.face_geometry import CameraRecord, FaceGeometry
from bump_contracts.views import ViewSpec

# Face extent in units of the inter-eye distance, measured on the MPFB/MakeHuman base mesh:
# brow top and chin relative to the eye line, half-width at the cheekbones, and how far the
# head's centre of rotation sits behind the eyes.
FACE_TOP = 0.95
FACE_BOTTOM = 1.85
FACE_HALF_WIDTH = 1.2
FACE_DEPTH = 1.35
HEAD_CENTRE_BEHIND_EYES = 1.15


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n < 1e-12:
        raise ValueError("zero-length direction")
    return v / n


@dataclass(frozen=True)
class HeadFrame:
    """Where a head is and which way it faces, in world space (metres)."""

    right_eye: np.ndarray
    left_eye: np.ndarray
    up: np.ndarray
    forward: np.ndarray
    centre: np.ndarray

    @property
    def eye_mid(self) -> np.ndarray:
        return (self.right_eye + self.left_eye) / 2

    @property
    def left(self) -> np.ndarray:
        """Unit vector toward the character's left."""
        return _unit(np.cross(self.up, self.forward))

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.left_eye - self.right_eye))

    def to_dict(self) -> dict:
        return {k: [round(float(x), 6) for x in getattr(self, k)] for k in ("right_eye", "left_eye", "up", "forward", "centre")}


def head_frame_from_eyes(
    right_eye, left_eye, up_hint=(0.0, 0.0, 1.0), centre=None
) -> HeadFrame:
    """Build an orthonormal head frame from the eye centres and an approximate up direction.

    ``forward = (left_eye - right_eye) x up``: a character with its left eye at +X and up +Z faces
    -Y, Blender's front view convention.
    """
    r = np.asarray(right_eye, dtype=float)
    lft = np.asarray(left_eye, dtype=float)
    across = lft - r
    if np.linalg.norm(across) < 1e-6:
        raise ValueError("the two eye positions coincide")
    across = _unit(across)
    up = np.asarray(up_hint, dtype=float)
    up = _unit(up - across * float(np.dot(up, across)))
    forward = _unit(np.cross(across, up))
    eye_distance = float(np.linalg.norm(lft - r))
    if centre is None:
        centre = (r + lft) / 2 - forward * HEAD_CENTRE_BEHIND_EYES * eye_distance
    return HeadFrame(r, lft, up, forward, np.asarray(centre, dtype=float))


@dataclass(frozen=True)
class Intrinsics:
    """A Blender camera's lens and film, as the render uses them."""

    lens_mm: float = 85.0
    sensor_width_mm: float = 36.0
    sensor_height_mm: float = 24.0
    sensor_fit: str = "AUTO"
    width: int = 720
    height: int = 720
    shift_x: float = 0.0
    shift_y: float = 0.0

    def fitted_side(self) -> int:
        """The image side (px) the sensor is fitted to; Blender scales focal length and lens shift by it.

        Auto fits the longer side; Horizontal and Vertical fit the width and the height whatever
        the image's orientation (``BKE_camera_params_compute_viewplane``'s ``viewfac``).
        """
        fit = self.sensor_fit
        if fit == "AUTO":
            fit = "HORIZONTAL" if self.width >= self.height else "VERTICAL"
        return self.width if fit == "HORIZONTAL" else self.height

    def focal_px(self) -> float:
        """Focal length in pixels (square pixels), following Blender's sensor-fit rules."""
        sensor = self.sensor_height_mm if self.sensor_fit == "VERTICAL" else self.sensor_width_mm
        return self.lens_mm / sensor * self.fitted_side()

    def principal_point(self) -> tuple[float, float]:
        """Where the optical axis meets the image (px, y down): the centre moved by the shift times the fitted side."""
        side = self.fitted_side()
        return (self.width / 2 - self.shift_x * side, self.height / 2 + self.shift_y * side)

    def vertical_fov_height(self, distance: float) -> float:
        """Height in metres that the frame covers at ``distance``."""
        return distance * self.height / self.focal_px()

    def record(self, world_matrix: np.ndarray, clip=(0.01, 100.0)) -> CameraRecord:
        return CameraRecord(
            lens_mm=self.lens_mm,
            sensor_width_mm=self.sensor_width_mm,
            sensor_height_mm=self.sensor_height_mm,
            sensor_fit=self.sensor_fit,
            resolution=(self.width, self.height),
            shift=(self.shift_x, self.shift_y),
            world_matrix=tuple(tuple(float(v) for v in row) for row in np.asarray(world_matrix)),
            clip=tuple(clip),
        )

    @classmethod
    def from_record(cls, record: CameraRecord) -> Intrinsics:
        return cls(
            lens_mm=record.lens_mm,
            sensor_width_mm=record.sensor_width_mm,
            sensor_height_mm=record.sensor_height_mm,
            sensor_fit=record.sensor_fit,
            width=record.resolution[0],
            height=record.resolution[1],
            shift_x=record.shift[0],
            shift_y=record.shift[1],
        )


def look_at_matrix(position, target, up_hint, roll_deg: float = 0.0) -> np.ndarray:
    """4x4 camera-to-world matrix of a Blender camera at ``position`` looking at ``target``.

    ``roll_deg`` turns the camera about its viewing axis so the scene appears rotated clockwise
    on screen by that many degrees.
    """
    position = np.asarray(position, dtype=float)
    back = _unit(position - np.asarray(target, dtype=float))  # camera +Z
    up = np.asarray(up_hint, dtype=float)
    up = up - back * float(np.dot(up, back))
    if np.linalg.norm(up) < 1e-9:
        raise ValueError("camera up direction is parallel to the viewing direction")
    up = _unit(up)
    right = np.cross(up, back)
    if roll_deg:
        a = math.radians(roll_deg)
        # rotating the camera counter-clockwise about its view axis makes the image turn clockwise
        right, up = right * math.cos(a) + up * math.sin(a), up * math.cos(a) - right * math.sin(a)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, up, back, position
    return matrix


def view_direction(frame: HeadFrame, view: ViewSpec) -> np.ndarray:
    """Unit vector from the head centre toward the camera for a view's yaw/pitch."""
    yaw, pitch = math.radians(view.yaw), math.radians(view.pitch)
    horizontal = frame.forward * math.cos(yaw) + frame.left * math.sin(yaw)
    return _unit(horizontal * math.cos(pitch) + frame.up * math.sin(pitch))


def face_height(frame: HeadFrame) -> float:
    return (FACE_TOP + FACE_BOTTOM) * frame.eye_distance


def framing_distance(frame: HeadFrame, intrinsics: Intrinsics, face_fill: float) -> float:
    """Camera distance from the head centre at which the face (brow to chin) fills ``face_fill`` of the frame height.

    The face sits in front of the head centre, so it is measured at its own (shorter) distance.
    """
    if not 0.05 <= face_fill <= 0.95:
        raise ValueError(f"face_fill must be within 0.05..0.95, got {face_fill}")
    to_face = face_height(frame) * intrinsics.focal_px() / (face_fill * intrinsics.height)
    return to_face + HEAD_CENTRE_BEHIND_EYES * frame.eye_distance


@dataclass(frozen=True)
class Framing:
    """How a head is placed in a package view."""

    face_fill: float = 0.40
    head_above_centre: float = 0.10  # head centre sits this fraction of the frame height above the middle


def place_camera(
    frame: HeadFrame, view: ViewSpec, intrinsics: Intrinsics, framing: Framing = Framing()
) -> tuple[np.ndarray, Intrinsics]:
    """World matrix and (shifted) intrinsics of a package camera for one view.

    The camera looks straight at the head centre; a vertical lens shift (not a tilt) moves the
    head up in the frame so neck and shoulders fit below without perspective change.
    """
    distance = framing_distance(frame, intrinsics, framing.face_fill)
    direction = view_direction(frame, view)
    position = frame.centre + direction * distance
    up_hint = frame.up if abs(float(np.dot(frame.up, direction))) < 0.999 else frame.forward
    matrix = look_at_matrix(position, frame.centre, up_hint, view.roll)
    shift_y = -framing.head_above_centre * intrinsics.height / intrinsics.fitted_side()
    shifted = Intrinsics(**{**intrinsics.__dict__, "shift_y": shift_y, "shift_x": 0.0})
    return matrix, shifted


def project_points(points, world_matrix, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) and depth in front of the camera (N,) of world points (N, 3)."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    matrix = np.asarray(world_matrix, dtype=float)
    rotation, position = matrix[:3, :3], matrix[:3, 3]
    cam = (pts - position) @ rotation  # world -> camera: R^T (p - t)
    depth = -cam[:, 2]
    safe = np.where(np.abs(depth) < 1e-12, 1e-12, depth)
    f = intrinsics.focal_px()
    cx, cy = intrinsics.principal_point()
    px = np.stack([cx + f * cam[:, 0] / safe, cy - f * cam[:, 1] / safe], axis=1)
    return px, depth


def face_surface_points(frame: HeadFrame, samples: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Points and outward normals on an elliptic patch covering the face (brow to chin, cheek to cheek)."""
    d = frame.eye_distance
    lateral = np.linspace(-math.pi / 2, math.pi / 2, samples)
    vertical = np.linspace(-FACE_BOTTOM, FACE_TOP, samples)
    u, v = np.meshgrid(lateral, vertical)
    depth_centre = frame.eye_mid - frame.forward * (FACE_DEPTH - 0.15) * d
    a, c = FACE_HALF_WIDTH * d, FACE_DEPTH * d
    points = (
        depth_centre[None, None, :]
        + frame.left[None, None, :] * (np.sin(u) * a)[..., None]
        + frame.forward[None, None, :] * (np.cos(u) * c)[..., None]
        + frame.up[None, None, :] * (v * d)[..., None]
    )
    normals = frame.left[None, None, :] * (np.sin(u) / a)[..., None] + frame.forward[None, None, :] * (np.cos(u) / c)[..., None]
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return points.reshape(-1, 3), normals.reshape(-1, 3)


def face_geometry(frame: HeadFrame, world_matrix, intrinsics: Intrinsics) -> FaceGeometry:
    """Project a head frame into a camera: the per-face record of the manifest and sidecar."""
    matrix = np.asarray(world_matrix, dtype=float)
    cam_pos = matrix[:3, 3]
    d = frame.eye_distance
    key_points = np.stack([frame.centre, frame.right_eye, frame.left_eye, frame.centre + frame.up * 0.5 * d])
    px, depth = project_points(key_points, matrix, intrinsics)

    surface, normals = face_surface_points(frame)
    visible = np.einsum("ij,ij->i", normals, cam_pos[None, :] - surface) > 0
    surface_px, surface_depth = project_points(surface, matrix, intrinsics)
    usable = visible & (surface_depth > 0)
    if not usable.any():  # seen from behind: fall back to the whole patch outline
        usable = surface_depth > 0
    if usable.any():
        pts = surface_px[usable]
        face_box = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
    else:
        face_box = (float(px[0, 0]), float(px[0, 1]), float(px[0, 0]), float(px[0, 1]))

    up_vec = px[3] - px[0]
    roll = math.degrees(math.atan2(up_vec[0], -up_vec[1]))

    # yaw/pitch in the face's own upright frame around the viewing ray (independent of roll)
    to_cam = _unit(cam_pos - frame.centre)
    up_axis = frame.up - to_cam * float(np.dot(frame.up, to_cam))
    y_axis = _unit(up_axis) if np.linalg.norm(up_axis) > 1e-9 else matrix[:3, 1]
    x_axis = np.cross(y_axis, to_cam)
    fx, fy, fz = (float(np.dot(frame.forward, axis)) for axis in (x_axis, y_axis, to_cam))
    yaw = math.degrees(math.atan2(fx, fz))
    pitch = math.degrees(math.atan2(fy, math.hypot(fx, fz)))

    width, height = intrinsics.width, intrinsics.height
    x0, y0, x1, y1 = face_box
    in_frame = bool(depth[0] > 0 and x1 > 0 and y1 > 0 and x0 < width and y0 < height)
    return FaceGeometry(
        head_centre=(float(px[0, 0]), float(px[0, 1])),
        right_eye=(float(px[1, 0]), float(px[1, 1])),
        left_eye=(float(px[2, 0]), float(px[2, 1])),
        face_box=face_box,
        roll=roll,
        yaw=yaw,
        pitch=pitch,
        eye_distance_px=float(np.linalg.norm(px[2] - px[1])),
        depth_m=float(depth[0]),
        in_frame=in_frame,
        extra={"visible_fraction": round(float(visible.mean()), 3)},
    )
