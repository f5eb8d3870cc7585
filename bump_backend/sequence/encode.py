"""Encoding the bumped frames (PyAV): H.264 with the source's size, timestamps, colour range and
timecode, the source's audio packets copied untouched (no re-encode), one frame in memory at a time."""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from bump_backend.sequence.sources import SourceInfo
from bump_contracts.sequence_job import SequenceParams

LIMITED, FULL = 1, 2  # libav's colour ranges (MPEG, JPEG)


def encode_video(frames: Iterable[tuple[np.ndarray, int | None]], info: SourceInfo, out_path: Path,
                 params: SequenceParams, audio_from: Path | None = None) -> Path:
    """Encode ``(rgb, pts)`` pairs into ``out_path`` (written to a temporary name, then renamed).

    With ``pts`` None the frames are numbered at ``info.fps``; otherwise each keeps its own timestamp
    in the source's time base (variable frame rates survive). Audio streams of ``audio_from`` are
    remuxed packet for packet.
    """
    tmp = out_path.with_name(out_path.name + ".part" + out_path.suffix)
    rate = Fraction(info.fps).limit_denominator(1001) if info.fps else Fraction(24)
    color_range = info.color_range if info.color_range in (LIMITED, FULL) else LIMITED
    with av.open(str(tmp), "w") as out:
        if info.timecode:
            out.metadata["timecode"] = info.timecode
        stream = out.add_stream(params.codec, rate=rate)
        stream.width, stream.height = info.width - info.width % 2, info.height - info.height % 2
        stream.pix_fmt = params.pixel_format
        stream.options = {"crf": str(params.crf)}
        stream.codec_context.color_range = color_range
        if info.colorspace:
            stream.codec_context.colorspace = info.colorspace
        if info.timecode:
            stream.metadata["timecode"] = info.timecode
        time_base = info.time_base if info.time_base else 1 / rate
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        audio_in, audio_map = None, {}
        if audio_from is not None:
            audio_in = av.open(str(audio_from))
            for a in audio_in.streams.audio:
                audio_map[a.index] = out.add_stream(template=a)
        try:
            for n, (rgb, pts) in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:stream.height, :stream.width]),
                                                   format="rgb24")
                # only the YUV side's range (see sources.VideoSource.frames): RGB 200 -> Y 200 full, 188 limited
                frame = frame.reformat(format=params.pixel_format, dst_color_range=color_range)
                frame.color_range = color_range
                # the source's own timestamps, unshifted: copied audio packets keep theirs, so sync holds
                frame.pts = int(round(n / rate / time_base)) if pts is None else pts
                frame.time_base = time_base
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
            if audio_in is not None and audio_map:
                for packet in audio_in.demux(*[audio_in.streams[i] for i in audio_map]):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.stream = audio_map[packet.stream.index]
                    out.mux(packet)
        finally:
            if audio_in is not None:
                audio_in.close()
    os.replace(tmp, out_path)
    return out_path
