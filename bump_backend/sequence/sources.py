"""Frame sources: a folder of frames (with optional render sidecars and motion) or a video file.

Both stream: one frame in memory at a time, whatever the clip's length. A folder's problems (gaps
in the numbering, frames of another size, an unreadable sidecar) are found by a cheap header scan
before anything slow starts; a video is probed the same way (PyAV), and a corrupt or truncated
file ends with a clear message naming the last good frame.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from bump_contracts import clip as clip_contract
from bump_contracts import render_sidecar
from bump_contracts.errors import ContractError
from bump_contracts.render_sidecar import RenderSidecar

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
MAX_PIXELS = 4096 * 2304  # a 4K DCI frame; larger frames are refused before decoding (memory per frame)
FLOW_SUFFIX = ".flow.npy"  # per-frame motion: HxWx2 float32, offset from each pixel to where it was in the previous frame
_NUMBER = re.compile(r"^(.*?)(\d+)$")


class SourceError(ValueError):
    """The input cannot be read as a frame sequence; the message names the file and the problem."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: RGB pixels plus what came with it."""

    index: int  # position in the sequence (0-based)
    image: np.ndarray  # HxWx3 uint8, full-range RGB
    name: str  # file name (folder) or "frame_000123" (video)
    time: float  # seconds from the start
    pts: int | None = None  # the video's own timestamp (time_base units), kept for variable frame rates
    sidecar: RenderSidecar | None = None
    motion: np.ndarray | None = None  # HxWx2 backward motion (see FLOW_SUFFIX) when the renderer wrote it


@dataclass
class SourceInfo:
    """What the output must keep: size, rate, colour range, timecode, audio; and what was odd."""

    kind: str  # "folder" | "video"
    path: str
    width: int
    height: int
    frames: int
    fps: float
    variable_frame_rate: bool = False
    time_base: Fraction | None = None
    color_range: int | None = None  # libav's: 1 limited (MPEG), 2 full (JPEG)
    colorspace: int | None = None
    timecode: str | None = None
    has_audio: bool = False
    codec: str | None = None
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "width": self.width, "height": self.height,
                "frames": self.frames, "fps": round(self.fps, 6), "variable_frame_rate": self.variable_frame_rate,
                "time_base": str(self.time_base) if self.time_base else None, "color_range": self.color_range,
                "colorspace": self.colorspace, "timecode": self.timecode, "has_audio": self.has_audio,
                "codec": self.codec, "warnings": list(self.warnings)}


def open_source(path: str | Path, *, fps: float = 24.0) -> FolderSource | VideoSource:
    """A folder of frames or a video file; ``fps`` is the folder's rate (a folder has none of its own)."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file or folder")
    if p.is_dir():
        return FolderSource(p, fps=fps)
    if p.suffix.lower() in FRAME_SUFFIXES:
        raise SourceError(f"{p}: a single image; give the folder that holds the frames")
    return VideoSource(p)


class FolderSource:
    """Frames ``name0001.png`` ... in a folder, each with an optional ``name0001.json`` render sidecar
    and ``name0001.flow.npy`` motion. Frames are ordered by their number; gaps are reported (the
    frames present are bumped, the record lists the missing numbers); mixed sizes are refused."""

    def __init__(self, folder: Path, fps: float = 24.0) -> None:
        self.folder = folder
        self.sidecars: dict[Path, Path] = {}  # a clip.json's frame -> its sidecar (else name.json beside it)
        self.clip = self._read_clip(folder)
        if self.clip is not None:
            fps = self.clip.fps  # a rendered clip knows its own rate
            files = [folder / f.image for f in self.clip.frames]
            for f, record in zip(files, self.clip.frames, strict=True):
                if not f.is_file():
                    raise SourceError(f"{folder / clip_contract.FILE_NAME}: frame {record.frame}: {f} is missing")
                if record.sidecar is not None:
                    self.sidecars[f] = folder / record.sidecar
        else:
            files = sorted(f for f in folder.iterdir() if f.suffix.lower() in FRAME_SUFFIXES and f.is_file())
        if not files:
            raise SourceError(f"{folder}: no frames ({', '.join(FRAME_SUFFIXES)}) in the folder")
        numbered = []
        for f in files:
            m = _NUMBER.match(f.stem)
            if m is None:
                raise SourceError(f"{f}: frame names must end in a number (e.g. shot_0001.png)")
            numbered.append((m.group(1), int(m.group(2)), f))
        prefixes = {p for p, _, _ in numbered}
        if len(prefixes) > 1:
            raise SourceError(f"{folder}: frames of several sequences ({', '.join(sorted(prefixes))}); one per folder")
        numbered.sort(key=lambda t: t[1])
        self.files = [f for _, _, f in numbered]
        self.numbers = [n for _, n, _ in numbered]
        if len(set(self.numbers)) != len(self.numbers):
            raise SourceError(f"{folder}: two frames share a number")
        expected = set(range(self.numbers[0], self.numbers[-1] + 1))
        self.missing = sorted(expected - set(self.numbers))
        sizes: dict[tuple[int, int], str] = {}
        for f in self.files:
            try:
                with Image.open(f) as im:
                    sizes.setdefault(im.size, f.name)
            except Exception as exc:
                raise SourceError(f"{f}: not a readable image ({exc})") from None
        if len(sizes) > 1:
            described = ", ".join(f"{w}x{h} ({name})" for (w, h), name in sizes.items())
            raise SourceError(f"{folder}: frames of mixed sizes: {described}; render or resize them to one size")
        (width, height), = sizes
        if self.clip is not None and (width, height) != (self.clip.width, self.clip.height):
            raise SourceError(f"{folder / clip_contract.FILE_NAME}: says {self.clip.width}x{self.clip.height}, "
                              f"the frames are {width}x{height}")
        if width * height > MAX_PIXELS:
            raise SourceError(f"{self.files[0]}: {width}x{height} is larger than 4K ({MAX_PIXELS} pixels); scale it down")
        warnings = []
        if self.missing:
            shown = ", ".join(map(str, self.missing[:10])) + (" ..." if len(self.missing) > 10 else "")
            warnings.append(f"{len(self.missing)} frame number(s) missing: {shown} (the frames present are bumped; "
                            "motion is not carried across a gap)")
        self.info = SourceInfo(kind="folder", path=str(folder.resolve()), width=width, height=height,
                               frames=len(self.files), fps=fps, warnings=warnings)

    @staticmethod
    def _read_clip(folder: Path) -> clip_contract.Clip | None:
        """The folder's clip.json (the animation command's), checked; None for a plain frame folder."""
        path = folder / clip_contract.FILE_NAME
        if not path.is_file():
            return None
        try:
            return clip_contract.load(str(path))
        except ContractError as exc:
            raise SourceError(str(exc)) from None

    def _clip_motion(self, i: int, size: tuple[int, ...]) -> np.ndarray | None:
        """A clip frame's Cycles vectors as backward motion (FLOW_SUFFIX's meaning): X as it is, Y negated
        (the array's rows run top-down, Blender's Y up); measured on the demo clip by warping the frame
        before onto this one. None for the first frame (nothing before it) or without vectors."""
        record = self.clip.frames[i] if self.clip is not None else None
        if record is None or record.vectors is None or i == 0:
            return None
        path = self.folder / record.vectors
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SourceError(f"{path}: cannot read the motion vectors ({exc})") from None
        if vectors.shape != (*size, 4):
            raise SourceError(f"{path}: vectors of shape {vectors.shape}, expected {(*size, 4)}")
        return np.stack([vectors[..., 0], -vectors[..., 1]], axis=-1).astype(np.float32)

    def sidecar_path(self, frame: Path) -> Path:
        return self.sidecars.get(frame, frame.with_suffix(".json"))

    def after_gap(self, index: int) -> bool:
        """True when the frame before ``index`` is missing from the numbering (no motion across it)."""
        return index > 0 and self.numbers[index] - self.numbers[index - 1] != 1

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self, start: int = 0) -> Iterator[Frame]:
        for i in range(start, len(self.files)):
            yield self.read(i)

    def read(self, i: int) -> Frame:
        path = self.files[i]
        try:
            with Image.open(path) as im:
                image = np.asarray(im.convert("RGB"))
        except Exception as exc:
            raise SourceError(f"{path}: cannot decode ({exc})") from None
        sidecar = None
        side = self.sidecar_path(path)
        if side.exists():
            sidecar = render_sidecar.load(str(side))  # SidecarError (a ValueError) names the file
        motion = None
        flow = path.with_name(path.stem + FLOW_SUFFIX)
        if self.clip is not None:
            motion = self._clip_motion(i, image.shape[:2])
        elif flow.exists():
            motion = np.load(flow, allow_pickle=False)
            if motion.shape != (*image.shape[:2], 2):
                raise SourceError(f"{flow}: motion of shape {motion.shape}, expected {(*image.shape[:2], 2)}")
            motion = motion.astype(np.float32)
        return Frame(index=i, image=image, name=path.name, time=(self.numbers[i] - self.numbers[0]) / self.info.fps,
                     sidecar=sidecar, motion=motion)


class VideoSource:
    """A video file decoded with PyAV, one frame at a time, with its own timestamps kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            container = av.open(str(path))
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise SourceError(f"{path}: not a readable video ({exc})") from None
        with container:
            if not container.streams.video:
                raise SourceError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            width, height = ctx.width, ctx.height
            if not width or not height:
                raise SourceError(f"{path}: the video stream has no size (corrupt header?)")
            if width * height > MAX_PIXELS:
                raise SourceError(f"{path}: {width}x{height} is larger than 4K ({MAX_PIXELS} pixels); scale it down")
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            frames = stream.frames or (int(float(stream.duration * stream.time_base) * float(rate))
                                       if stream.duration and rate else 0)
            meta = {**dict(container.metadata), **dict(stream.metadata)}
            vfr = bool(stream.average_rate and stream.base_rate and abs(float(stream.average_rate)
                                                                      - float(stream.base_rate)) > 0.01)
            self.info = SourceInfo(kind="video", path=str(path.resolve()), width=width, height=height,
                                   frames=int(frames), fps=float(rate) if rate else 0.0, variable_frame_rate=vfr,
                                   time_base=stream.time_base, color_range=int(ctx.color_range or 0) or None,
                                   colorspace=int(ctx.colorspace or 0) or None, timecode=meta.get("timecode"),
                                   has_audio=bool(container.streams.audio), codec=ctx.name, metadata=meta)
        if not self.info.has_audio:
            self.info.warnings.append("no audio stream: the output has none either")
        if vfr:
            self.info.warnings.append("variable frame rate: every frame keeps its own timestamp")

    def after_gap(self, index: int) -> bool:
        return False

    def __len__(self) -> int:
        return self.info.frames

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self, start: int = 0) -> Iterator[Frame]:
        """Decode in order (frames before ``start`` are decoded and dropped: exact, no seek drift)."""
        index = -1
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                first_pts = None
                for vf in container.decode(stream):
                    index += 1
                    if index < start:
                        continue
                    if first_pts is None:
                        first_pts = vf.pts or 0
                    # swscale's range flags (measured with PyAV 13): the YUV side's range on its own; naming
                    # the RGB side too makes it treat full-range YUV as limited (Y 200 -> 214)
                    rgb = vf.reformat(format="rgb24", src_color_range=2 if vf.color_range == 2 else 1).to_ndarray()
                    time = float((vf.pts - first_pts) * stream.time_base) if vf.pts is not None else index / (
                        self.info.fps or 24.0)
                    yield Frame(index=index, image=rgb, name=f"frame_{index:06d}", time=time, pts=vf.pts)
        except av.error.FFmpegError as exc:
            raise SourceError(f"{self.path}: decoding stopped after frame {index} ({exc}); "
                              "the file is corrupt or truncated") from None
