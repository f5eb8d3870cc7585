"""The sequence job: analyse the clip into face tracks, then bump it frame by frame with one identity.

Two streamed passes over the input (one frame in memory at a time, whatever the length):

1. **Analyse** (no torch): faces per frame (sidecar geometry, else ``FaceTracker``: a full search
   every ``detect_every`` frames, a window re-check of each known face in between), cuts, tracks. Saved as ``analysis.json``
   (a few numbers per face per frame) and reused when the job restarts.
2. **Bump**: per frame, each gated face is aligned with its track's smoothed geometry; its img2img
   start is the aligned crop blended with the previous frame's bumped face carried over by the
   motion (occluded pixels excluded); every face of a track uses the track's seed. Each finished
   frame is written atomically as a PNG, so a killed job restarts after the last finished frame,
   and the previous bumped frame is read back from its PNG (lossless: the resumed run is the same).

Then the video is encoded from the PNGs (audio copied), and the record and a before/after strip
are written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from bump_backend.faces import align_face, find_faces, paste_back
from bump_backend.faces.align import crop_matrix, warp
from bump_backend.faces.geometry import GeometryMismatch
from bump_backend.faces.track import FaceTracker
from bump_backend.faces.types import FaceFinderSettings
from bump_backend.sequence import temporal, tracks
from bump_backend.sequence.encode import encode_video
from bump_backend.sequence.face_job import Bumper, FaceJob
from bump_backend.sequence.sources import Frame, SourceError, open_source
from bump_contracts.atomic_io import write_bytes_atomic
from bump_contracts.package_manifest import MANIFEST_NAME, PackageManifest, ViewRecord, file_sha256
from bump_contracts.sequence_job import RECORD_SCHEMA, RECORD_VERSION, SequenceParams

ANALYSIS_VERSION = 2  # 2: footage followed by FaceTracker (1: median DIS flow)
STRIP_FRAMES = 4
STRIP_HEIGHT = 160
# track colours in the analysis strip (RGB): distinct, readable on skin and on a white studio
TRACK_COLOURS = ((230, 25, 75), (0, 130, 200), (60, 180, 75), (245, 130, 48), (145, 30, 180), (70, 240, 240))
Log = Callable[[str], None]
# (stage, done, total, eta_s): stage "analysing", "frame" (done/total frames finished) or "encoding"
FrameProgress = Callable[[str, int, int, float | None], None]


class SequenceCancelled(Exception):
    """The cancel event stopped the job between two frames; every finished frame stays on disk."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class FaceOptions:
    """What the bump pass needs about faces (from the bump settings): crop size, padding, seed."""

    face_size: int = 720
    face_padding: float = 0.35
    seed: int = -1  # -1: random, resolved once per output folder and recorded


@dataclass
class Analysis:
    frames: list[dict[str, Any]]
    tracks: list[tracks.Track]
    info: dict[str, Any]
    detector_s: float = 0.0
    warnings: list[str] = field(default_factory=list)


def input_fingerprint(path: Path) -> str:
    """Path, size and modification time of the input (its files for a folder): cheap, and enough to
    tell a restarted job that the input is the same."""
    items = sorted(path.iterdir()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for p in items:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


class SequenceJob:
    """One sequence: ``INPUT`` (video or frame folder) into ``OUT`` (frames/, video, record, strip)."""

    def __init__(self, input_path: str | Path, out_dir: str | Path, params: SequenceParams | None = None, *,
                 face: FaceOptions | None = None, package: str | Path | None = None,
                 packages: dict[str, str | Path] | None = None, finder: FaceFinderSettings | None = None,
                 log: Log | None = _stderr, settings_record: dict[str, Any] | None = None,
                 analyse_only: bool = False) -> None:
        self.input = Path(input_path)
        self.out = Path(out_dir)
        self.params = params or SequenceParams()
        self.face = face or FaceOptions()
        self.package = Path(package) if package else None
        self.packages = {str(k): Path(v) for k, v in (packages or {}).items()}
        self.finder = finder or FaceFinderSettings(skip_smaller_than=0.0, min_sharpness=0.0)
        self.log = log or (lambda _m: None)
        self.settings_record = settings_record or {}
        self.analyse_only = analyse_only  # analysis, smoothing, gating, references: no bumping, no identity needed
        self.source = open_source(self.input, fps=self.params.fps)
        self._check_paths()
        self.frames_dir = self.out / "frames"
        self.timings: dict[str, float] = {"analyse_s": 0.0, "detect_s": 0.0, "flow_s": 0.0, "align_warp_s": 0.0,
                                          "diffusion_s": 0.0, "write_s": 0.0, "encode_s": 0.0}
        self.skipped_frames = 0
        self._claimed = False
        self._analysis: Analysis | None = None

    # -- checks ----------------------------------------------------------------------------------
    def _check_paths(self) -> None:
        inp, out = self.input.resolve(), self.out.resolve()
        if out == inp or (inp.is_dir() and (out == inp or inp in out.parents)):
            raise SourceError(f"{self.out}: the output folder is (inside) the input; choose another --out")
        written = {out / name for name in ("frames", "sequence.json", "analysis.json", "job.json", "before_after.png",
                                           "references", f"{self.input.stem}_bump.mp4")}
        if inp in written:
            raise SourceError(f"{self.input}: the job would write over its own input; choose another --out")
        if self.params.references == "package" and self.package is None and not self.packages \
                and self.source.info.kind == "video" and not self.analyse_only:
            raise ValueError("a video needs --package DIR or --references auto (footage has no sidecars to name one)")
        for p in [self.package, *self.packages.values()]:
            if p is not None and not (p / MANIFEST_NAME).is_file():
                raise ValueError(f"{p}: not a profile package (no {MANIFEST_NAME})")
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"{self.out}: exists and is not a folder")

    @property
    def video_path(self) -> Path:
        return self.out / f"{self.input.stem}_bump.mp4"

    def _job_identity(self) -> dict[str, Any]:
        return {"input": str(self.input.resolve()), "fingerprint": input_fingerprint(self.input),
                "params": self.params.to_dict(), "face": vars(self.face), "settings": self.settings_record,
                "package": str(self.package.resolve()) if self.package else None,
                "packages": {k: str(v.resolve()) for k, v in self.packages.items()}}

    def _claim_out(self) -> None:
        """Refuse to mix two jobs' frames in one folder; a restarted identical job carries on. Once per
        job object: the first claim resolves a random seed, which the identity then no longer matches."""
        if self._claimed:
            return
        self._claimed = True
        self.out.mkdir(parents=True, exist_ok=True)
        self.frames_dir.mkdir(exist_ok=True)
        marker = self.out / "job.json"
        ident = json.loads(json.dumps(self._job_identity()))
        if marker.exists():
            previous = json.loads(marker.read_text(encoding="utf-8"))
            if previous.get("identity") != ident:
                raise ValueError(f"{self.out}: holds a sequence made from another input or other settings; "
                                 "use another --out (or delete that folder)")
            self.face.seed = int(previous["seed"])  # a random seed (-1) resolved by the first run
        else:
            if self.face.seed == -1:
                self.face.seed = random.randrange(2**32)
            write_bytes_atomic(marker, (json.dumps({"identity": ident, "seed": self.face.seed}, indent=2)
                                        + "\n").encode())

    # -- pass 1: analyse -------------------------------------------------------------------------
    def analyse(self) -> Analysis:
        if self._analysis is not None:  # faces_to_bump, then run: one analysis per job object
            return self._analysis
        self._analysis = self._analyse()
        return self._analysis

    def _analyse(self) -> Analysis:
        cache = self.out / "analysis.json"
        key = {"version": ANALYSIS_VERSION, "fingerprint": input_fingerprint(self.input),
               "detect_every": self.params.detect_every, "finder": _finder_key(self.finder)}
        if cache.exists():
            data = json.loads(cache.read_text(encoding="utf-8"))
            if data.get("key") == key:
                self.log(f"sequence: reusing the analysis in {cache}")
                return Analysis(frames=data["frames"], tracks=[tracks.Track.from_dict(t) for t in data["tracks"]],
                                info=data["info"], detector_s=data.get("detector_s", 0.0),
                                warnings=data.get("warnings", []))
        started = time.perf_counter()
        tracker = tracks.Tracker()
        # footage: full detection every detect_every frames, a cheap window re-check of each known face between
        finder = FaceTracker(self.finder, detect_every=self.params.detect_every)
        frames: list[dict[str, Any]] = []
        prev_hist = None
        detector_s = 0.0
        total = len(self.source)
        last_note = 0.0
        for frame in self.source.frames():
            gap = self.source.after_gap(frame.index)
            hist = tracks.frame_histogram(frame.image)
            cut = tracks.is_cut(prev_hist, hist)
            prev_hist = hist
            t = time.perf_counter()
            if frame.sidecar is not None:
                try:
                    found = find_faces(frame.image, frame.sidecar, self.finder)
                except GeometryMismatch as exc:
                    raise SourceError(f"{frame.name}: {exc}") from None
                faces = list(found.faces) + [s.face for s in found.skipped if s.face.source == "geometry"
                                             and "out of frame" not in s.reason and "outside" not in s.reason]
                finder.reset()  # a later frame without a sidecar starts with a full detection
                found_by = "sidecar"
            else:
                if cut or gap:
                    finder.reset()  # another shot, or frames missing: nothing to follow from before
                faces = list(finder.update(frame.image).faces)
                found_by = finder.last_mode  # "detect" (full search) or "track" (window re-check)
            embeddings = [tracks.appearance(frame.image, f) for f in faces]
            ids = tracker.update(frame.index, faces, embeddings, cut=cut, gap=gap)
            detector_s += time.perf_counter() - t
            frames.append({"index": frame.index, "name": frame.name, "time": round(frame.time, 6), "pts": frame.pts,
                           "cut": cut, "gap": gap, "tracks": ids, "motion": frame.motion is not None,
                           "faces_by": found_by})
            now = time.perf_counter()
            if now - last_note > 2.0:
                last_note = now
                self.log(f"sequence: analysing frame {frame.index + 1}/{total or '?'}")
        if not frames:
            raise SourceError(f"{self.input}: no frames could be decoded")
        info = self.source.info.to_dict()
        warnings = list(self.source.info.warnings)
        if total and len(frames) < total:
            warnings.append(f"the container announces {total} frames but {len(frames)} were decoded "
                            "(a truncated file?); the decoded frames are bumped")
        info["frames"] = len(frames)
        if not tracker.tracks:
            warnings.append("no faces found in any frame: the output is the input, re-encoded")
        self.timings["analyse_s"] = time.perf_counter() - started
        self.timings["detect_s"] = detector_s
        analysis = Analysis(frames=frames, tracks=tracker.tracks, info=info, detector_s=detector_s, warnings=warnings)
        data = {"key": key, "frames": frames, "tracks": [t.to_dict() for t in tracker.tracks], "info": info,
                "detector_s": detector_s, "warnings": warnings}
        self.out.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(cache, json.dumps(data).encode())
        return analysis

    def faces_to_bump(self) -> int:
        """Claim the folder and analyse (saved: ``run`` reuses it); how many faces the gate would bump,
        so a clip with none never waits for a model to load."""
        self._claim_out()
        return sum(o.bump for t in self.plan(self.analyse()) for o in t.observations)

    # -- plan: smoothing, gating, seeds, references -----------------------------------------------
    def plan(self, analysis: Analysis) -> list[tracks.Track]:
        gate = tracks.Gate(self.params.min_face, self.params.min_sharpness, self.params.hysteresis)
        planned = []
        for t in analysis.tracks:
            planned.append(gate.apply(tracks.smooth_track(t, self.params.smooth)))
        return planned

    def track_seed(self, index: int) -> int:
        return (self.face.seed + 1000 * index) % 2**32

    def track_packages(self, planned: list[tracks.Track], analysis: Analysis) -> tuple[dict[str, Path | None],
                                                                                       dict[str, list[int]]]:
        """The identity of each track: its character's package, the default package, or (``auto``) a
        package built from the track's own best frames (written under ``OUT/references/``)."""
        chosen: dict[str, Path | None] = {}
        used: dict[str, list[int]] = {}
        auto: dict[str, list[tracks.Observation]] = {}
        for t in planned:
            if self.params.references == "auto":
                picks = tracks.pick_references(t, self.params.reference_views)
                if picks:
                    auto[t.id] = picks
                    used[t.id] = [o.frame for o in picks]
                chosen[t.id] = None
            elif t.character_id and t.character_id in self.packages:
                chosen[t.id] = self.packages[t.character_id]
            else:
                chosen[t.id] = self.package
        if auto:
            wanted = {o.frame: [] for picks in auto.values() for o in picks}
            for tid, picks in auto.items():
                for o in picks:
                    wanted[o.frame].append((tid, o))
            crops: dict[str, list[tuple[tracks.Observation, np.ndarray]]] = {}
            last = max(wanted)
            for frame in self.source.frames():
                for tid, o in wanted.get(frame.index, []):
                    crop = align_face(frame.image, o.face(), size=min(512, self.face.face_size),
                                      padding=self.face.face_padding).crop
                    crops.setdefault(tid, []).append((o, crop))
                if frame.index >= last:
                    break
            for tid, items in crops.items():
                chosen[tid] = write_reference_package(self.out / "references" / _safe(tid), tid, items)
        return chosen, used

    def _prepare(self):
        """What bumping and the analysis-only run share: the folder claimed, the analysis (or the saved
        one), the gated tracks, their identities and seeds, each frame's faces, the strip's frames."""
        self._claim_out()
        analysis = self.analyse()
        planned = self.plan(analysis)
        packages, used = self.track_packages(planned, analysis)
        seeds = {t.id: self.track_seed(i) for i, t in enumerate(planned)}
        n = len(analysis.frames)
        strip_at = sorted({round(x) for x in np.linspace(0, n - 1, min(STRIP_FRAMES, n))})
        return analysis, planned, packages, used, seeds, _by_frame(planned), strip_at

    # -- analysis only ---------------------------------------------------------------------------
    def run_analysis(self) -> dict[str, Any]:
        """Everything before the first diffusion step, no model loaded: analysis (or the saved one),
        smoothing, gating, seeds, reference choice (``--references auto`` writes the packages). Writes
        ``analysis.json``, ``sequence.json`` (``mode`` "analyse-only": the tracks, per frame every face
        with its track, size, sharpness and whether it would be bumped) and ``before_after.png``:
        input frames above, the same frames with each track's face box below."""
        started = time.perf_counter()
        analysis, planned, packages, used, seeds, by_frame, strip_at = self._prepare()
        colours = {t.id: TRACK_COLOURS[i % len(TRACK_COLOURS)] for i, t in enumerate(planned)}
        strip: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for frame in self.source.frames():
            if frame.index in strip_at:
                entries = sorted(by_frame.get(frame.index, []), key=lambda e: e[0].id)
                strip[frame.index] = (_thumb(frame.image), draw_tracks(frame.image, entries, colours))
            if frame.index >= strip_at[-1]:
                break
        per_frame = [_frame_entry(meta["index"], meta, sorted(by_frame.get(meta["index"], []), key=lambda e: e[0].id),
                                  seeds) for meta in analysis.frames]
        self.write_strip(strip)
        record = self.record(analysis, planned, packages, used, seeds, per_frame, time.perf_counter() - started,
                             mode="analyse-only")
        for entry in record["tracks"]:  # the colour of its box in before_after.png
            entry["colour"] = "#{:02x}{:02x}{:02x}".format(*colours[entry["id"]])
        write_bytes_atomic(self.out / "sequence.json", (json.dumps(record, indent=1) + "\n").encode())
        if self.frames_dir.is_dir() and not any(self.frames_dir.iterdir()):
            self.frames_dir.rmdir()  # nothing bumped: no empty folder left (a bumping run makes it again)
        return record

    # -- pass 2: bump ----------------------------------------------------------------------------
    def frame_path(self, name: str) -> Path:
        return self.frames_dir / (Path(name).stem + ".png")

    def run(self, bumper: Bumper | None, *, encode: bool = True, progress: FrameProgress | None = None,
            cancel: threading.Event | None = None) -> dict[str, Any]:
        """Analyse (or reuse), bump every frame not yet written, encode, write the record. ``bumper``
        None pastes the aligned starts back unchanged (the pipeline without diffusion: for measuring).

        ``progress`` hears every finished frame (a server's per-frame status); ``cancel`` is checked
        before each frame is bumped and raises :class:`SequenceCancelled` (finished frames stay, so
        the same job run again carries on from there)."""
        started = time.perf_counter()
        report = progress or (lambda *_a: None)
        report("analysing", 0, len(self.source), None)
        analysis, planned, packages, used, seeds, by_frame, strip_at = self._prepare()
        n = len(analysis.frames)
        strip: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        prev_in = prev_out = None
        prev_obs: dict[str, tracks.Observation] = {}
        bumped_now = 0
        t_loop = time.perf_counter()
        last_note = 0.0
        per_frame: list[dict[str, Any]] = []
        for done, frame in enumerate(self.source.frames(), start=1):
            if frame.index >= n:
                break
            meta = analysis.frames[frame.index]
            path = self.frame_path(meta["name"])
            entries = sorted(by_frame.get(frame.index, []), key=lambda e: e[0].id)
            if path.exists():
                with Image.open(path) as im:
                    out = np.asarray(im.convert("RGB"))
                self.skipped_frames += 1
            else:
                if cancel is not None and cancel.is_set():
                    raise SequenceCancelled(f"cancelled before frame {done}/{n} ({done - 1} finished)")
                out = self._bump_frame(frame, meta, entries, prev_in, prev_out, prev_obs, packages, seeds, bumper)
                t = time.perf_counter()
                buf = io.BytesIO()
                Image.fromarray(out).save(buf, format="PNG", compress_level=1)
                write_bytes_atomic(path, buf.getvalue())
                self.timings["write_s"] += time.perf_counter() - t
                bumped_now += 1
            per_frame.append(_frame_entry(frame.index, meta, entries, seeds))
            if frame.index in strip_at:
                strip[frame.index] = (_thumb(frame.image), _thumb(out))
            prev_in, prev_out = frame.image, out
            prev_obs = {tr.id: o for tr, o in entries}
            rate = (time.perf_counter() - t_loop) / bumped_now if bumped_now else None
            report("frame", done, n, None if rate is None else rate * (n - done))
            if bumped_now and (time.perf_counter() - last_note > 1.0 or done == n):
                last_note = time.perf_counter()
                rate = (last_note - t_loop) / max(1, bumped_now)
                eta = rate * (n - done)
                self.log(f"sequence: frame {done}/{n} ({100 * done / n:.0f} %), {rate:.2f} s/frame, "
                         f"ETA {int(eta // 60)}m{int(eta % 60):02d}s")
        if encode and self.params.video:
            report("encoding", n, n, None)
            t = time.perf_counter()
            self.encode(analysis)
            self.timings["encode_s"] = time.perf_counter() - t
        self.write_strip(strip)
        record = self.record(analysis, planned, packages, used, seeds, per_frame, time.perf_counter() - started)
        record["model"] = getattr(bumper, "model", None)  # an engine bumper's model record (name, hash, spec)
        write_bytes_atomic(self.out / "sequence.json", (json.dumps(record, indent=1) + "\n").encode())
        if not self.params.png:
            for f in self.frames_dir.iterdir():
                f.unlink()
            self.frames_dir.rmdir()
        return record

    def _bump_frame(self, frame: Frame, meta: dict[str, Any], entries, prev_in, prev_out,
                    prev_obs: dict[str, tracks.Observation], packages, seeds, bumper: Bumper | None) -> np.ndarray:
        out = frame.image.copy()
        jobs, aligned_list = [], []
        carried: list[tuple[np.ndarray, np.ndarray] | None] = []
        size, padding = self.face.face_size, self.face.face_padding
        for track, o in entries:
            if not o.bump:
                continue
            t = time.perf_counter()
            face = o.face(track.character_id)
            aligned = align_face(frame.image, face, size=size, padding=padding)
            start = aligned.crop
            self.timings["align_warp_s"] += time.perf_counter() - t
            before = prev_obs.get(track.id)
            carry = (self.params.temporal and self.params.temporal_strength > 0 and prev_out is not None
                     and before is not None and before.bump and before.segment == o.segment
                     and not meta["cut"] and not meta["gap"])
            if carry:
                t = time.perf_counter()
                prev_matrix = crop_matrix(before.face(track.character_id), size, padding)
                prev_out_crop = warp(prev_out, prev_matrix, (size, size))
                self.timings["align_warp_s"] += time.perf_counter() - t
                t = time.perf_counter()
                prev_in_crop = warp(prev_in, prev_matrix, (size, size))
                if frame.motion is not None:
                    mapping, valid = temporal.motion_mapping(frame.motion, aligned.matrix, prev_matrix, size)
                    valid = valid * temporal.photometric_valid(prev_in_crop, aligned.crop, mapping)
                else:
                    mapping, valid = temporal.crop_flow(prev_in_crop, aligned.crop)
                self.timings["flow_s"] += time.perf_counter() - t
                t = time.perf_counter()
                warped = temporal.warp_previous(prev_out_crop, mapping)
                start = temporal.blend_start(aligned.crop, warped, valid, self.params.temporal_strength)
                carried.append((warped, valid))
                self.timings["align_warp_s"] += time.perf_counter() - t
            else:
                carried.append(None)
            jobs.append(FaceJob(start=start, yaw=o.yaw, package=packages.get(track.id), seed=seeds[track.id],
                                track=track.id))
            aligned_list.append(aligned)
        if not jobs:
            return out
        t = time.perf_counter()
        results = bumper(jobs) if bumper is not None else [j.start for j in jobs]
        self.timings["diffusion_s"] += time.perf_counter() - t
        t = time.perf_counter()
        for aligned, result, carry_in in zip(aligned_list, results, carried, strict=True):
            if carry_in is not None and self.params.temporal_fuse > 0:
                # the result keeps a share of the previous bumped face along the motion (never where occluded)
                result = temporal.blend_start(_fit(result, size), carry_in[0], carry_in[1], self.params.temporal_fuse)
            out = paste_back(out, aligned, result)
        self.timings["align_warp_s"] += time.perf_counter() - t
        return out

    # -- outputs ---------------------------------------------------------------------------------
    def encode(self, analysis: Analysis) -> Path:
        info = self.source.info
        vfr_pts = info.kind == "video" and all(f["pts"] is not None for f in analysis.frames)

        def frames():
            for meta in analysis.frames:
                with Image.open(self.frame_path(meta["name"])) as im:
                    yield np.asarray(im.convert("RGB")), (meta["pts"] if vfr_pts else None)

        audio = self.input if info.kind == "video" and info.has_audio else None
        return encode_video(frames(), info, self.video_path, self.params, audio_from=audio)

    def write_strip(self, strip: dict[int, tuple[np.ndarray, np.ndarray]]) -> Path | None:
        """Input frames on top, the bumped frames below, for a person to look at."""
        if not strip:
            return None
        cols = [np.vstack([a, np.full((4, a.shape[1], 3), 255, np.uint8), b]) for _, (a, b) in sorted(strip.items())]
        gap = np.full((cols[0].shape[0], 4, 3), 255, np.uint8)
        parts = []
        for c in cols:
            parts.extend([c, gap])
        buf = io.BytesIO()
        Image.fromarray(np.hstack(parts[:-1])).save(buf, format="PNG")
        return write_bytes_atomic(self.out / "before_after.png", buf.getvalue())

    def record(self, analysis: Analysis, planned, packages, used, seeds, per_frame, seconds: float, *,
               mode: str = "bump") -> dict[str, Any]:
        timings = {k: round(v, 3) for k, v in self.timings.items()}
        bumped = mode == "bump"
        return {
            "schema": RECORD_SCHEMA,
            "schema_version": RECORD_VERSION,
            "mode": mode,  # "bump", or "analyse-only" (no frame bumped, "bumped" below = would be bumped)
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "input": analysis.info,
            "warnings": analysis.warnings,
            "params": self.params.to_dict(),
            "face": vars(self.face),
            "settings": self.settings_record,
            "outputs": {"frames": str(self.frames_dir) if self.params.png and bumped else None,
                        "video": str(self.video_path) if self.params.video and bumped else None,
                        "strip": str(self.out / "before_after.png")},
            "tracks": [{"id": t.id, "character_id": t.character_id, "seed": seeds[t.id],
                        "frames": [t.observations[0].frame, t.observations[-1].frame],
                        "observed": len(t.observations), "bumped": sum(o.bump for o in t.observations),
                        "package": str(packages[t.id].resolve()) if packages.get(t.id) else None,
                        "reference_frames": used.get(t.id)} for t in planned],
            "frames": per_frame,
            "resumed_frames": self.skipped_frames,
            "timings": timings,
            "seconds": round(seconds, 3),
        }


def write_reference_package(folder: Path, track_id: str, items: list[tuple[tracks.Observation, np.ndarray]]) -> Path:
    """A profile package made of a track's own frames (views named after their frame number)."""
    folder.mkdir(parents=True, exist_ok=True)
    views = []
    for o, crop in items:
        name = f"frame_{o.frame:06d}"
        path = folder / f"{name}.png"
        buf = io.BytesIO()
        Image.fromarray(crop).save(buf, format="PNG")
        write_bytes_atomic(path, buf.getvalue())
        views.append(ViewRecord(name=name, file=path.name, yaw=-o.yaw, pitch=-o.pitch, roll=0.0,
                                width=int(crop.shape[1]), height=int(crop.shape[0]), sha256=file_sha256(path),
                                estimated=True))
    manifest = PackageManifest(character_id=_safe(track_id), character_name=track_id, views=tuple(views),
                               contact_sheet=None, origin="imported",
                               source={"kind": "sequence", "frames": [o.frame for o, _ in items]})
    write_bytes_atomic(folder / MANIFEST_NAME, manifest.dumps().encode())
    return folder


def _by_frame(planned: list[tracks.Track]) -> dict[int, list[tuple[tracks.Track, tracks.Observation]]]:
    by_frame: dict[int, list[tuple[tracks.Track, tracks.Observation]]] = {}
    for t in planned:
        for o in t.observations:
            by_frame.setdefault(o.frame, []).append((t, o))
    return by_frame


def _frame_entry(index: int, meta: dict[str, Any], entries, seeds: dict[str, int]) -> dict[str, Any]:
    """One frame of the record: each face's track, whether it is bumped and with which seed, and the
    size (px) and sharpness the gate decided on."""
    return {"frame": index, "name": meta["name"], "cut": meta["cut"], "faces_by": meta.get("faces_by"),
            "faces": [{"track": tr.id, "bumped": o.bump, "seed": seeds[tr.id] if o.bump else None,
                       "size": round(o.size, 2), "sharpness": round(o.sharpness, 2)} for tr, o in entries]}


def draw_tracks(image: np.ndarray, entries, colours: dict[str, tuple[int, int, int]]) -> np.ndarray:
    """A strip thumbnail of ``image`` with each track's (smoothed) face box in the track's colour and
    its eye points: a thick box where the face is bumped, a thin one where the gate leaves it alone."""
    thumb = _thumb(image).copy()
    k = thumb.shape[0] / image.shape[0]
    for track, o in entries:
        corners = cv2.boxPoints(((o.centre[0] * k, o.centre[1] * k), (o.size * k, o.size * k), o.roll))
        colour = colours[track.id]
        cv2.polylines(thumb, [np.round(corners).astype(np.int32)], True, colour, 2 if o.bump else 1, cv2.LINE_AA)
        for ex, ey in o.eyes:
            cv2.circle(thumb, (round(ex * k), round(ey * k)), 2, colour, -1, cv2.LINE_AA)
    return thumb


def _fit(crop: np.ndarray, size: int) -> np.ndarray:
    """A generator's crop at the aligned size (SDXL may return another)."""
    if crop.shape[0] == size and crop.shape[1] == size:
        return crop
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _thumb(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    k = STRIP_HEIGHT / h
    return cv2.resize(image, (max(1, round(w * k)), STRIP_HEIGHT), interpolation=cv2.INTER_AREA)


def _finder_key(settings: FaceFinderSettings) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(settings)))
