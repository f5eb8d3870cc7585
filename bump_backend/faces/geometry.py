"""Faces from a render sidecar: the scene's own projected geometry, exact at any size, no detector."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bump_backend.faces.types import Face, SkippedFace

if TYPE_CHECKING:
    from bump_contracts.render_sidecar import RenderSidecar


class GeometryMismatch(ValueError):
    """The sidecar describes an image of another shape than the one given."""


def faces_from_sidecar(sidecar: RenderSidecar, image_shape: tuple[int, ...]) -> tuple[list[Face], list[SkippedFace]]:
    """Every sidecar face scaled to the image (renders are often resized before a bump).

    Faces marked out of frame, or lying wholly outside the image, come back as skipped.
    """
    height, width = image_shape[:2]
    sx, sy = width / sidecar.width, height / sidecar.height
    if abs(sx - sy) > 0.01 * max(sx, sy):
        raise GeometryMismatch(
            f"sidecar is for a {sidecar.width}x{sidecar.height} image but the image is {width}x{height} "
            "(a different aspect ratio)")
    faces: list[Face] = []
    skipped: list[SkippedFace] = []
    for item in sidecar.faces:
        g = item.geometry
        x0, y0, x1, y1 = g.face_box
        eyes = tuple((p[0] * sx, p[1] * sy) for p in g.eyes)
        face = Face(
            box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy),
            score=1.0,
            eyes=(eyes[0], eyes[1]),
            roll=g.roll,
            yaw=g.yaw,
            pitch=g.pitch,
            source="geometry",
            character_id=item.character_id,
            extra={"character_name": item.character_name, "package": item.package, "depth_m": g.depth_m},
        )
        bx0, by0, bx1, by1 = face.box
        if not g.in_frame:
            skipped.append(SkippedFace(face, "out of frame (sidecar)"))
        elif bx1 <= 0 or by1 <= 0 or bx0 >= width or by0 >= height:
            skipped.append(SkippedFace(face, "outside the image"))
        else:
            faces.append(face)
    return faces, skipped
