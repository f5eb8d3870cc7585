"""Pose maths in numpy: turning a head/neck/eye control into a world rotation, spreading it over a
bone chain, and the pose a photographer asks for in each package view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bump_contracts.pose import CONTROL_LIMITS, Pose
from bump_contracts.views import ViewSpec

# Over-the-shoulder: the camera stays behind the shoulder (the view's yaw around the body) and the
# head turns back toward it as far as a relaxed neck goes; the eyes look into the lens.
OVER_SHOULDER_MIN_YAW = 110.0
OVER_SHOULDER_MAX_YAW = 170.0  # a back view stays a back view
OVER_SHOULDER_HEAD_TURN = 90.0  # degrees, neck and head together: the face ends at three-quarter
OVER_SHOULDER_NECK_SHARE = 0.5
OVER_SHOULDER_GAZE = 35.0  # the subject looks back into the lens (the eyes limit)
# Up/down views: the head follows the camera this far (chin up toward a high camera), the rest of
# the angle stays between camera and face, so the face keeps the view's angle and the neck bends.
PITCH_FOLLOW = 0.6
PITCH_NECK_SHARE = 0.5
MIN_PITCH_FOR_POSE = 8.0


def axis_rotation(axis, degrees: float) -> np.ndarray:
    """3x3 rotation by ``degrees`` about a unit axis (right-handed)."""
    axis = np.asarray(axis, dtype=float)
    axis = axis / np.linalg.norm(axis)
    angle = math.radians(degrees)
    x, y, z = axis
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def control_rotation(values: tuple[float, ...], up, forward) -> np.ndarray:
    """World rotation of a (turn, tilt[, roll]) control in a head frame.

    Turn about up (toward the character's left), then tilt about the turned left axis (chin up),
    then roll about the turned forward axis (top of the head toward the left shoulder).
    """
    up = np.asarray(up, float) / np.linalg.norm(up)
    forward = np.asarray(forward, float) / np.linalg.norm(forward)
    left = np.cross(up, forward)
    turn, tilt, roll = (tuple(values) + (0.0, 0.0, 0.0))[:3]
    return axis_rotation(up, turn) @ axis_rotation(left, -tilt) @ axis_rotation(forward, -roll)


def split_rotation(rotation: np.ndarray, parts: int) -> np.ndarray:
    """A rotation that, applied ``parts`` times about the same world axis, gives ``rotation``."""
    if parts <= 1:
        return rotation
    cos_angle = max(-1.0, min(1.0, (np.trace(rotation) - 1) / 2))
    angle = math.degrees(math.acos(cos_angle))
    if angle < 1e-9:
        return np.eye(3)
    axis = np.array(
        [rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]]
    )
    if np.linalg.norm(axis) < 1e-9:  # 180 degrees: any axis from the symmetric part
        values, vectors = np.linalg.eigh((rotation + np.eye(3)) / 2)
        axis = vectors[:, np.argmax(values)]
    return axis_rotation(axis, angle / parts)


def _clamp(name: str, values: list[float]) -> tuple[float, ...]:
    limits = CONTROL_LIMITS[name]
    return tuple(max(-lim, min(lim, v)) for v, lim in zip(values, limits, strict=False))


def view_pose(view: ViewSpec) -> tuple[Pose, float, float]:
    """(pose, camera yaw, camera pitch relative to the posed face) for a package view.

    Views that show the face head-on to three-quarter need no pose; over-the-shoulder views turn
    the head back toward a camera behind the shoulder; steep up/down views bend the neck.
    """
    controls: dict[str, tuple[float, ...]] = {}
    yaw, pitch, body_turn = view.yaw, view.pitch, 0.0
    if OVER_SHOULDER_MIN_YAW <= abs(view.yaw) <= OVER_SHOULDER_MAX_YAW:
        side = 1.0 if view.yaw > 0 else -1.0
        turn = min(OVER_SHOULDER_HEAD_TURN, abs(view.yaw) - 30.0)
        neck = turn * OVER_SHOULDER_NECK_SHARE
        controls["neck"] = _clamp("neck", [side * neck, 0.0, 0.0])
        controls["head"] = _clamp("head", [side * (turn - neck), 0.0, 0.0])
        controls["eyes"] = _clamp("eyes", [side * OVER_SHOULDER_GAZE, 0.0])
        yaw = view.yaw - side * turn
        body_turn = view.yaw
    if abs(view.pitch) >= MIN_PITCH_FOR_POSE:
        follow = view.pitch * PITCH_FOLLOW
        neck_tilt = follow * PITCH_NECK_SHARE
        neck = controls.get("neck", (0.0, 0.0, 0.0))
        head = controls.get("head", (0.0, 0.0, 0.0))
        controls["neck"] = _clamp("neck", [neck[0], neck_tilt, 0.0])
        controls["head"] = _clamp("head", [head[0], follow - neck_tilt, 0.0])
    return Pose(controls=controls, body_turn=body_turn), yaw, pitch


EXPRESSION_VIEW_ANGLES = ("front", "three_quarter_left")


def expression_views(expressions: tuple[str, ...] | list[str], views: list[ViewSpec]) -> list[tuple[ViewSpec, str]]:
    """Front and three-quarter views per expression (``front_smile``, ...); neutral reuses existing views."""
    existing = {v.name for v in views}
    by_name = {v.name: v for v in views}
    base = {"front": ViewSpec("front", 0.0), "three_quarter_left": ViewSpec("three_quarter_left", 45.0)}
    out: list[tuple[ViewSpec, str]] = []
    for expression in expressions:
        for angle in EXPRESSION_VIEW_ANGLES:
            spec = by_name.get(angle, base[angle])
            name = angle if expression == "neutral" else f"{angle}_{expression.replace('-', '_')}"
            if name in existing:
                continue
            existing.add(name)
            out.append((ViewSpec(name[:48], spec.yaw, spec.pitch, spec.roll), expression))
    return out


def _ease(t: float) -> float:
    t = max(0.0, min(1.0, t))
    return t * t * (3 - 2 * t)


def demo_clip_walk(frames: int, start: Sequence[float], camera: Sequence[float], share: float) -> list[np.ndarray]:
    """The demo clip's steps toward the camera: per frame, the body's offset (world metres) along the
    floor toward the camera, easing in and out, ``share`` of the head's floor distance to it by the end."""
    if frames < 1:
        raise ValueError("a clip needs at least one frame")
    if not 0.0 <= share < 1.0:
        raise ValueError("the walk must stop short of the camera (share in 0..1)")
    toward = np.asarray(camera, float) - np.asarray(start, float)
    toward[2] = 0.0  # along the floor: the head keeps its height
    return [toward * share * _ease(index / max(1, frames - 1)) for index in range(frames)]


def demo_clip_poses(frames: int) -> list[Pose]:
    """The demo clip: the head turns from the character's right to its left, the eyes lead the turn,
    a blink at 45 %, a smile growing over the last 40 %."""
    if frames < 1:
        raise ValueError("a clip needs at least one frame")
    poses = []
    for index in range(frames):
        t = index / max(1, frames - 1)
        turn = -35.0 + 70.0 * _ease(t)
        lead = 12.0 * math.sin(math.pi * t)  # eyes run ahead of the head while it turns
        blink = max(0.0, 1.0 - abs(t - 0.45) * frames / 2.0) if frames >= 5 else 0.0
        smile = _ease((t - 0.6) / 0.4)
        expression = {k: round(v, 4) for k, v in (("blink", blink), ("smile", smile)) if v > 0}
        controls = {"neck": (0.4 * turn, 0.0, 0.0), "head": (0.6 * turn, 2.0, 0.0), "eyes": (_clamp("eyes", [lead])[0], 0.0)}
        poses.append(Pose(controls=controls, expression=expression))
    return poses
