"""Debug output: one folder per image with readable names, and a contact sheet to look at first.

    <dir>/<image stem>/00_detections.png   every face: box, score, eyes, up arrow (skipped in grey)
    <dir>/<image stem>/face_01_crop.png    the upright working crop
    <dir>/<image stem>/face_01_mask.png    its feathered mask (crop space)
    <dir>/<image stem>/face_01_overlay.png crop with mesh points and the mask tinted
    <dir>/<image stem>/combined_mask.png   all masks in image space
    <dir>/<image stem>/contact_sheet.png   all of the above on one page
    <dir>/<image stem>/faces.json          the search result
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

from bump_backend.faces import transform
from bump_backend.faces.image_io import save_image
from bump_backend.faces.paste import combined_mask
from bump_backend.faces.types import AlignedFace, Face, FaceSearchResult

KEPT, SKIPPED = (40, 220, 60), (160, 160, 160)
RIGHT_EYE_COLOUR, LEFT_EYE_COLOUR = (255, 60, 60), (60, 120, 255)


def _corners(face: Face) -> np.ndarray:
    side = face.size
    half = side / 2
    t = math.radians(face.roll)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    square = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    return square @ rot.T + np.asarray(face.centre)


def draw_faces(image: np.ndarray, result: FaceSearchResult) -> np.ndarray:
    """The image with every face's rotated square, score, eyes and an arrow toward the top of the head."""
    canvas = image.copy()
    thick = max(1, round(max(image.shape[:2]) / 600))
    entries = [(f, KEPT, "") for f in result.faces] + [(s.face, SKIPPED, s.reason) for s in result.skipped]
    for i, (face, colour, reason) in enumerate(entries, 1):
        pts = np.round(_corners(face)).astype(np.int32)
        cv2.polylines(canvas, [pts], True, colour, thick, cv2.LINE_AA)
        cx, cy = face.centre
        t = math.radians(face.roll)
        tip = (cx + math.sin(t) * face.size * 0.8, cy - math.cos(t) * face.size * 0.8)
        cv2.arrowedLine(canvas, (round(cx), round(cy)), (round(tip[0]), round(tip[1])), colour, thick,
                        cv2.LINE_AA, tipLength=0.15)
        # Subject's right eye red, left eye blue: roll is measured from the first to the second.
        for p, c in zip(_subject_eyes(face), (RIGHT_EYE_COLOUR, LEFT_EYE_COLOUR), strict=True):
            cv2.circle(canvas, (round(p[0]), round(p[1])), max(2, thick + 1), c, -1, cv2.LINE_AA)
        label = f"{i} {face.source[0]} {face.score:.2f} r{face.roll:.0f} y{face.yaw:.0f}"
        if reason:
            label += f" [{reason.split(':')[0]}]"
        size, baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, thick + 2)
        origin = label_origin(size, baseline, face.box, image.shape[:2])
        cv2.putText(canvas, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(canvas, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, colour, thick, cv2.LINE_AA)
    return canvas


def label_origin(size: tuple[int, int], baseline: int, box: tuple[float, float, float, float],
                 shape: tuple[int, int], gap: int = 4) -> tuple[int, int]:
    """Where ``cv2.putText`` starts a label of ``size`` (width, height above the baseline) and ``baseline`` (depth
    under it): above the face's box, below the box where there is no room above, and moved inside the image so that
    none of it is cut off (a face at the right edge had its label cut to a few letters). ``shape``: (rows, cols)."""
    width, height = size
    rows, cols = shape
    x = min(max(int(box[0]), 0), max(cols - width, 0))
    top = int(box[1]) - gap - height - baseline
    if top < 0:
        top = int(math.ceil(box[3])) + gap
    top = min(max(top, 0), max(rows - height - baseline, 0))
    return x, top + height


def _subject_eyes(face: Face) -> tuple[tuple[float, float], tuple[float, float]]:
    """(right, left) of the subject: the order whose eye line matches the face's roll."""
    a, b = face.eyes
    if abs(transform.wrap(transform.roll_of(a, b) - face.roll)) <= 90:
        return a, b
    return b, a


def overlay(aligned: AlignedFace) -> np.ndarray:
    """The crop with the mask tinted green and the mesh points (irises in red/blue)."""
    crop = aligned.crop.astype(np.float32)
    tint = np.zeros_like(crop)
    tint[:, :, 1] = 255
    m = aligned.mask[:, :, None] * 0.35
    out = np.clip(crop * (1 - m) + tint * m, 0, 255).astype(np.uint8)
    if aligned.face.landmarks is not None:
        pts = transform.apply(aligned.matrix, aligned.face.landmarks)
        radius = max(1, aligned.crop.shape[0] // 360)
        for i, p in enumerate(pts):
            colour = RIGHT_EYE_COLOUR if i == 468 else LEFT_EYE_COLOUR if i == 473 else (255, 255, 255)
            cv2.circle(out, (round(p[0]), round(p[1])), radius if i < 468 else 3 * radius, colour, -1)
    return out


def contact_sheet(tiles: list[tuple[str, np.ndarray]], cell: int = 256, columns: int = 4) -> np.ndarray:
    """Labelled thumbnails on a grid (greyscale masks shown as grey)."""
    rows = math.ceil(len(tiles) / columns) or 1
    sheet = np.full((rows * (cell + 20), columns * cell, 3), 32, np.uint8)
    for i, (label, picture) in enumerate(tiles):
        pic = picture
        if pic.dtype != np.uint8:
            pic = np.clip(pic * 255 + 0.5, 0, 255).astype(np.uint8)
        if pic.ndim == 2:
            pic = np.repeat(pic[:, :, None], 3, axis=2)
        h, w = pic.shape[:2]
        k = cell / max(h, w)
        thumb = cv2.resize(pic, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
        r, c = divmod(i, columns)
        y, x = r * (cell + 20) + 20, c * cell
        sheet[y:y + thumb.shape[0], x:x + thumb.shape[1]] = thumb
        cv2.putText(sheet, label[:34], (x + 3, y - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (235, 235, 235), 1, cv2.LINE_AA)
    return sheet


def write_debug(folder: str | os.PathLike, name: str, image: np.ndarray, result: FaceSearchResult,
                aligned: list[AlignedFace]) -> Path:
    """Write the debug set for one image under ``folder/name``; returns that folder."""
    out = Path(folder) / (Path(name).stem or "image")
    out.mkdir(parents=True, exist_ok=True)
    detections = draw_faces(image, result)
    save_image(out / "00_detections.png", detections)
    tiles: list[tuple[str, np.ndarray]] = [("detections", detections)]
    for i, a in enumerate(aligned, 1):
        ov = overlay(a)
        save_image(out / f"face_{i:02d}_crop.png", a.crop)
        save_image(out / f"face_{i:02d}_mask.png", a.mask)
        save_image(out / f"face_{i:02d}_overlay.png", ov)
        tiles += [(f"face {i} {a.face.size:.0f}px r{a.face.roll:.0f}", a.crop), (f"face {i} overlay", ov)]
    mask = combined_mask(image.shape, aligned)
    save_image(out / "combined_mask.png", mask)
    tiles.append(("combined mask", mask))
    save_image(out / "contact_sheet.png", contact_sheet(tiles))
    (out / "faces.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return out
