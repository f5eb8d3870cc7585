"""Render & Bump over a frame range: the user's scene rendered frame by frame into a clip folder, and back.

``RangeRender`` renders one frame per ``step()`` (the operator calls it from a modal timer, so the UI
draws, shows ``frame i/n`` and takes Esc between frames; scripts call it in a loop). Each frame is one
render: a multilayer EXR for Cycles' Vector pass (``profile_rig.blender.animation_render``, the code the
demo clip uses) and the Render Result saved as PNG through the scene's view transform, like a single
Render & Bump. With the frame's render sidecar they go into a clip folder (``clip.json``) that the
sequence job reads. Every render setting it touches and the current frame are put back by ``close()``,
whether the range finished, failed or was cancelled; an unfinished clip folder is removed.

The result comes back as image sequences (``source = 'SEQUENCE'``) in the compositor's result nodes,
mapped so that scene frame ``start + i`` shows the range's frame ``i``.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import bpy

from bump_contracts import clip as clip_contract
from bump_contracts.errors import ContractError
from profile_rig.blender.animation_render import ClipWriter, render_exr, render_vectors, vector_pass
from profile_rig.blender.shot_sidecar import ShotCharacter, ShotError, build_sidecar, render_size

CLIP_FOLDER = "clip"  # in the job folder: the rendered clip the backend reads
DISK_MARGIN = 1.2  # free space wanted over the clip's estimated size


class RangeError(RuntimeError):
    """A frame range that cannot be rendered (empty, too long, no disk space, the scene gone); the message says why."""


def frames_of(scene: bpy.types.Scene) -> range | None:
    """The frames the panel asks for: None for the current frame only, else the checked range."""
    settings = scene.bump_studio
    if settings.frames == "CURRENT":
        return None
    start, end = ((scene.frame_start, scene.frame_end) if settings.frames == "SCENE"
                  else (settings.range_start, settings.range_end))
    try:
        return clip_contract.frame_range(start, end)
    except ContractError as exc:
        where = "the scene's frame range (Output properties)" if settings.frames == "SCENE" else "Start / End"
        raise RangeError(f"{exc} (change {where})") from None


def check_disk(folder: Path, width: int, height: int, frames: int) -> None:
    """Refuse before rendering when the clip would not fit: its vectors take 16 bytes a pixel per frame."""
    need = clip_contract.clip_bytes(width, height, frames)
    free = shutil.disk_usage(folder).free
    if free < need * DISK_MARGIN:
        raise RangeError(f"{frames} frames at {width}x{height} need about {need / 1e9:.1f} GB in the work folder "
                         f"({folder}) and {free / 1e9:.1f} GB are free: render fewer frames or pick another work "
                         "folder in the add-on's preferences")


class RangeRender:
    """The frames of one range, rendered one per ``step()`` into ``out`` (a clip folder, renamed into place
    by ``finish()``). ``engine`` is the render-engine context (a quick look or the scene's own engine);
    ``save_png(scene, path)`` writes the Render Result as the frame's PNG."""

    def __init__(self, scene: bpy.types.Scene, frames: range, out: Path, shot: list[ShotCharacter],
                 engine: AbstractContextManager, save_png: Callable[[bpy.types.Scene, Path], None]) -> None:
        self.scene_name = scene.name
        self.frames = frames
        self.shot = shot
        self.save_png = save_png
        self.size = render_size(scene)
        self.fps = scene.render.fps / scene.render.fps_base
        self.saved_frame = (scene.frame_current, scene.frame_subframe)
        self.done = 0
        self.cancelled = False
        self.finished = False
        self.seconds: list[float] = []
        self.notes: list[str] = []
        self.vectors = 0
        self.writer = ClipWriter(out)
        self.stack = contextlib.ExitStack()
        try:
            self.engine = self.stack.enter_context(engine)
            self.stack.enter_context(vector_pass(scene))
        except BaseException:
            self.close()
            raise

    @property
    def total(self) -> int:
        return len(self.frames)

    def scene(self) -> bpy.types.Scene:
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            raise RangeError(f"the scene {self.scene_name!r} is gone; the range render stopped")
        return scene

    def cancel(self) -> None:
        self.cancelled = True

    def eta_s(self) -> float | None:
        if not self.seconds:
            return None
        return sum(self.seconds) / len(self.seconds) * (self.total - self.done)

    def step(self) -> bool:
        """Render the next frame (blocking for that frame only); True once every frame is in the clip."""
        if self.cancelled or self.done >= self.total:
            return self.done >= self.total
        started = time.perf_counter()
        scene = self.scene()
        frame = self.frames[self.done]
        scene.frame_set(frame)
        camera = scene.camera  # per frame: camera markers may switch it
        if camera is None:
            raise RangeError(f"frame {frame}: the scene has no active camera")
        stem = f"frame_{self.done + 1:04d}"  # numbered 1..n like the clip's records (Blender's frame is in notes)
        channels = render_exr(scene, self.writer.raw_path(stem))
        self.save_png(scene, self.writer.frame_path(stem))
        vectors = render_vectors(channels)
        if vectors is None:
            self.notes.append(f"frame {frame}: the engine wrote no Vector pass (no motion carried to it)")
        else:
            self.vectors += 1
        try:
            sidecar, notes = build_sidecar(scene, camera, self.shot, f"{stem}.png")
        except ShotError as exc:
            raise RangeError(f"frame {frame}: {exc}") from None
        self.writer.add(stem, vectors, sidecar, notes=(f"scene frame {frame}", *notes))
        self.done += 1
        self.seconds.append(time.perf_counter() - started)
        return self.done >= self.total

    def finish(self, character_id: str, character_name: str) -> Path:
        """Write clip.json and move the clip into place (after the last ``step``); settings are put back."""
        width, height = self.size
        try:
            path = self.writer.finish(character_id, character_name, min(self.fps, clip_contract.MAX_FPS), width,
                                      height)
        finally:
            self.close()
        self.finished = True
        return path

    def close(self) -> None:
        """Put back every setting and the frame (always); an unfinished clip folder is removed."""
        try:
            self.stack.close()
        finally:
            scene = bpy.data.scenes.get(self.scene_name)
            if scene is not None and (scene.frame_current, scene.frame_subframe) != self.saved_frame:
                scene.frame_set(self.saved_frame[0], subframe=self.saved_frame[1])
            if not self.finished:
                self.writer.abort()


# -- the result: image sequences in the compositor --------------------------------------------------
def load_sequence(name: str, first: Path) -> bpy.types.Image:
    """An image sequence datablock ``name`` starting at ``first`` (reused if it was one already)."""
    image = bpy.data.images.get(name)
    if image is not None and image.source == "SEQUENCE":
        image.filepath = str(first)
        image.reload()
        return image
    if image is not None:
        bpy.data.images.remove(image)
    image = bpy.data.images.load(str(first), check_existing=False)
    image.name = name
    image.source = "SEQUENCE"
    return image


def sequence_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("frame_*.png"))


def result_summary(record: dict[str, Any]) -> str:
    """One line from sequence.json: frames bumped and faces left alone."""
    frames = record.get("frames") or []
    bumped = sum(1 for f in frames if any(face.get("bumped") for face in f.get("faces") or ()))
    return f"{bumped} of {len(frames)} frames with a bumped face" if frames else "no per-frame record"
