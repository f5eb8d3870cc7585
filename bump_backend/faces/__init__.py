"""The bump backend's face pipeline: find every face, align it upright, mask it, paste it back."""

from bump_backend.faces.align import align_face, sd_size
from bump_backend.faces.finder import find_faces
from bump_backend.faces.image_io import ImageError, load_image
from bump_backend.faces.paste import combined_mask, paste_back
from bump_backend.faces.types import AlignedFace, Face, FaceFinderSettings, FaceSearchResult, SkippedFace

__all__ = [
    "AlignedFace",
    "Face",
    "FaceFinderSettings",
    "FaceSearchResult",
    "ImageError",
    "SkippedFace",
    "align_face",
    "combined_mask",
    "find_faces",
    "load_image",
    "paste_back",
    "sd_size",
]
