"""Face tracks over a clip: linking, cuts, smoothing, size/sharpness gating, auto references.

Pure numpy/OpenCV, no torch. Renders link by the sidecar's character id (exact, never smoothed);
footage links by predicted position plus an appearance embedding, which also re-links a face after
an occlusion or a cut. Everything per frame is a handful of numbers, so a 3,000-frame clip's tracks
are a few hundred kilobytes; pixels are never kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from bump_backend.faces.align import crop_matrix, warp
from bump_backend.faces.types import Face, rotated_square_bounds
from bump_backend.library_import import ImportOptions
from bump_contracts.views import MIN_ANGLE_SEPARATION_DEG, ViewSpec, angular_separation

EMBED_SIDE = 24  # the appearance embedding's grey thumbnail side
CUT_DISTANCE = 0.45  # Bhattacharyya distance of frame colour histograms above which a cut is declared


# -- appearance and cuts ---------------------------------------------------------------------------
def appearance(image: np.ndarray, face: Face) -> np.ndarray:
    """A unit vector describing the face's look: its upright grey thumbnail (zero mean) and its
    hue/saturation histogram. Cheap (one 24 px warp); good enough to tell the faces of one clip
    apart and to re-link a face after an occlusion. Not a recognition model."""
    m = crop_matrix(face, EMBED_SIDE, 0.0)
    crop = warp(image, m, (EMBED_SIDE, EMBED_SIDE), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32).ravel()
    grey -= grey.mean()
    grey /= np.linalg.norm(grey) + 1e-6
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [12, 4], [0, 180, 0, 256]).ravel()
    hist = np.sqrt(hist / (hist.sum() + 1e-6))  # Hellinger: dot product = Bhattacharyya coefficient
    vec = np.concatenate([grey, hist])
    return (vec / (np.linalg.norm(vec) + 1e-6)).astype(np.float32)


def frame_histogram(image: np.ndarray) -> np.ndarray:
    small = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256])
    return cv2.normalize(hist, None).astype(np.float32)


def is_cut(previous: np.ndarray | None, current: np.ndarray, threshold: float = CUT_DISTANCE) -> bool:
    """A hard cut: the colour histograms of two consecutive frames hardly overlap."""
    if previous is None:
        return False
    return float(cv2.compareHist(previous, current, cv2.HISTCMP_BHATTACHARYYA)) > threshold


# -- linking ---------------------------------------------------------------------------------------
@dataclass
class Observation:
    """One face in one frame of a track (source-image pixels)."""

    frame: int
    eyes: tuple[tuple[float, float], tuple[float, float]]
    centre: tuple[float, float]
    size: float
    roll: float
    yaw: float
    pitch: float
    sharpness: float
    source: str
    segment: int  # frames of one segment are continuous (no cut, no gap, no lost frames between them)
    bump: bool = True  # set by the gate

    def face(self, character_id: str | None = None) -> Face:
        return Face(box=rotated_square_bounds(self.centre, self.size, self.roll), score=1.0, eyes=self.eyes,
                    roll=self.roll, yaw=self.yaw, pitch=self.pitch, source=self.source,  # type: ignore[arg-type]
                    character_id=character_id, sharpness=self.sharpness)

    def to_dict(self) -> dict[str, Any]:
        # full precision: a restarted job reads these back and must align its crops exactly as before
        return {"frame": self.frame, "eyes": [list(map(float, p)) for p in self.eyes],
                "centre": list(map(float, self.centre)), "size": float(self.size), "roll": float(self.roll),
                "yaw": float(self.yaw), "pitch": float(self.pitch), "sharpness": float(self.sharpness),
                "source": self.source, "segment": self.segment, "bump": self.bump}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Observation:
        return cls(frame=int(d["frame"]), eyes=tuple(tuple(p) for p in d["eyes"]), centre=tuple(d["centre"]),
                   size=float(d["size"]), roll=float(d["roll"]), yaw=float(d["yaw"]), pitch=float(d["pitch"]),
                   sharpness=float(d["sharpness"]), source=str(d["source"]), segment=int(d["segment"]),
                   bump=bool(d.get("bump", True)))


@dataclass
class Track:
    id: str
    character_id: str | None
    observations: list[Observation] = field(default_factory=list)
    embedding: np.ndarray | None = None  # running mean of the appearance
    segment: int = 0
    velocity: tuple[float, float] = (0.0, 0.0)

    @property
    def last(self) -> Observation:
        return self.observations[-1]

    def predicted(self, frame: int) -> tuple[float, float]:
        dt = frame - self.last.frame
        return (self.last.centre[0] + self.velocity[0] * dt, self.last.centre[1] + self.velocity[1] * dt)

    def by_frame(self) -> dict[int, Observation]:
        return {o.frame: o for o in self.observations}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "character_id": self.character_id, "frames": [self.observations[0].frame,
                self.observations[-1].frame] if self.observations else None,
                "observations": [o.to_dict() for o in self.observations]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Track:
        return cls(id=str(d["id"]), character_id=d.get("character_id"),
                   observations=[Observation.from_dict(o) for o in d["observations"]])


def observation(face: Face, frame: int, segment: int) -> Observation:
    eyes = (tuple(map(float, face.eyes[0])), tuple(map(float, face.eyes[1])))
    return Observation(frame=frame, eyes=eyes, centre=tuple(map(float, face.centre)), size=float(face.size),
                       roll=float(face.roll), yaw=float(face.yaw), pitch=float(face.pitch),
                       sharpness=float(face.sharpness or 0.0), source=face.source, segment=segment)


@dataclass
class Tracker:
    """Links each frame's faces to tracks.

    Sidecar faces (``character_id`` set) join the track of their character, exactly. Other faces
    are matched greedily by cost = distance from the track's predicted centre (in face sizes) +
    ``appearance_weight`` x (1 - similarity); a track unseen for more than ``max_lost`` frames, or
    any track after a cut, can only be re-linked by appearance (similarity >= ``relink_similarity``
    and a size within 2x).
    """

    max_distance: float = 1.0  # face sizes between the prediction and the detection
    appearance_weight: float = 1.0
    min_similarity: float = 0.5
    relink_similarity: float = 0.75
    max_lost: int = 12
    tracks: list[Track] = field(default_factory=list)
    _next: int = 0

    def update(self, frame: int, faces: list[Face], embeddings: list[np.ndarray], *, cut: bool = False,
               gap: bool = False) -> list[str]:
        """Track id per face, in order."""
        ids: list[str | None] = [None] * len(faces)
        taken: set[str] = set()
        if cut or gap:
            for t in self.tracks:
                t.segment += 1
        for i, face in enumerate(faces):
            if face.character_id:
                tid = f"character:{face.character_id}"
                if tid in taken:  # two faces claim one character: keep the first, give the other its own track
                    continue
                track = next((t for t in self.tracks if t.id == tid), None)
                if track is None:
                    track = Track(tid, face.character_id)
                    self.tracks.append(track)
                ids[i] = tid
                taken.add(tid)
        live = [t for t in self.tracks if t.character_id is None and not cut and not gap
                and frame - t.last.frame <= self.max_lost]
        pairs = []
        for i, face in enumerate(faces):
            if ids[i] is not None:
                continue
            for t in live:
                px, py = t.predicted(frame)
                dist = math.hypot(face.centre[0] - px, face.centre[1] - py) / max(t.last.size, 1.0)
                sim = float(embeddings[i] @ t.embedding) if t.embedding is not None else 1.0
                ratio = face.size / max(t.last.size, 1e-6)
                if dist <= self.max_distance and sim >= self.min_similarity and 0.5 <= ratio <= 2.0:
                    pairs.append((dist + self.appearance_weight * (1.0 - sim), i, t))
        for _, i, t in sorted(pairs, key=lambda p: p[0]):
            if ids[i] is None and t.id not in taken:
                ids[i] = t.id
                taken.add(t.id)
        # re-link after an occlusion or a cut: appearance only
        lost = [t for t in self.tracks if t.character_id is None and t.id not in taken and t.embedding is not None]
        pairs = []
        for i, face in enumerate(faces):
            if ids[i] is not None:
                continue
            for t in lost:
                sim = float(embeddings[i] @ t.embedding)
                ratio = face.size / max(t.last.size, 1e-6)
                if sim >= self.relink_similarity and 0.5 <= ratio <= 2.0:
                    pairs.append((-sim, i, t))
        for _, i, t in sorted(pairs, key=lambda p: p[0]):
            if ids[i] is None and t.id not in taken:
                ids[i] = t.id
                taken.add(t.id)
                t.segment += 1  # not continuous with what came before: no motion carried
        for i in range(len(faces)):
            if ids[i] is None:
                track = Track(f"face:{self._next}", None)
                self._next += 1
                self.tracks.append(track)
                ids[i] = track.id
        by_id = {t.id: t for t in self.tracks}
        for i, face in enumerate(faces):
            t = by_id[ids[i]]
            if t.observations and t.last.frame == frame - 1 and t.last.segment == t.segment:
                c = face.centre
                v = (c[0] - t.last.centre[0], c[1] - t.last.centre[1])
                t.velocity = (0.5 * t.velocity[0] + 0.5 * v[0], 0.5 * t.velocity[1] + 0.5 * v[1])
            elif t.observations and t.last.frame != frame - 1:
                if face.character_id is None:
                    t.segment += 1
                t.velocity = (0.0, 0.0)
            t.observations.append(observation(face, frame, t.segment))
            e = embeddings[i]
            t.embedding = e if t.embedding is None else _unit(0.8 * t.embedding + 0.2 * e)
        return [str(x) for x in ids]


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / (np.linalg.norm(v) + 1e-6)).astype(np.float32)


# -- smoothing -------------------------------------------------------------------------------------
def smooth_track(track: Track, sigma: float) -> Track:
    """Zero-lag (two-sided Gaussian) smoothing of eyes, centre, size and roll within each continuous
    segment, so the aligned crop does not jitter. Geometry faces (renders) are exact and kept as they are."""
    if sigma <= 0 or not track.observations or track.character_id is not None:
        return track
    obs = track.observations
    out: list[Observation] = []
    start = 0
    for end in range(1, len(obs) + 1):
        if end == len(obs) or obs[end].segment != obs[start].segment or obs[end].frame != obs[end - 1].frame + 1:
            out.extend(_smooth_segment(obs[start:end], sigma))
            start = end
    return replace(track, observations=out)


def _smooth_segment(obs: list[Observation], sigma: float) -> list[Observation]:
    if len(obs) < 3:
        return list(obs)
    values = np.array([[*o.eyes[0], *o.eyes[1], *o.centre, math.log(o.size)] for o in obs], dtype=np.float64)
    rolls = np.unwrap(np.radians([o.roll for o in obs]))
    values = np.column_stack([values, rolls])
    smoothed = gaussian_1d(values, sigma)
    result = []
    for o, v in zip(obs, smoothed, strict=True):
        result.append(replace(o, eyes=((v[0], v[1]), (v[2], v[3])), centre=(v[4], v[5]), size=float(math.exp(v[6])),
                              roll=float((math.degrees(v[7]) + 180.0) % 360.0 - 180.0)))
    return result


def gaussian_1d(values: np.ndarray, sigma: float) -> np.ndarray:
    """Two-sided Gaussian along axis 0 with edges handled by renormalising the kernel (no lag, no pull
    toward a padded value at the ends)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    n = len(values)
    out = np.empty_like(values)
    for i in range(n):
        lo, hi = max(0, i - radius), min(n, i + radius + 1)
        w = k[lo - i + radius:hi - i + radius]
        out[i] = (w[:, None] * values[lo:hi]).sum(0) / w.sum()
    return out


# -- gating ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gate:
    """Bump a face from ``min_size`` px and ``min_sharpness`` up; once bumped it stays bumped until it
    falls below ``hysteresis`` x those (and back), so a face near the limits does not flicker between
    bumped and untouched."""

    min_size: float = 32.0
    min_sharpness: float = 22.0
    hysteresis: float = 0.8

    def apply(self, track: Track) -> Track:
        on = False
        out = []
        for o in track.observations:
            if on and (o.frame != (out[-1].frame + 1 if out else -2) or o.segment != out[-1].segment):
                on = False  # a new segment decides afresh
            if on:
                on = o.size >= self.hysteresis * self.min_size and o.sharpness >= self.hysteresis * self.min_sharpness
            else:
                on = o.size >= self.min_size and o.sharpness >= self.min_sharpness
            out.append(replace(o, bump=on))
        return replace(track, observations=out)


# -- auto references -------------------------------------------------------------------------------
def pick_references(track: Track, count: int = 3, options: ImportOptions | None = None) -> list[Observation]:
    """The track's best frames as references: the library's import rules (sharpness relative to the
    75th percentile of the set, with its absolute floor scaled to our measure; no two views closer than
    the minimum angle), ranked by size x sharpness and spread over yaw: the first is the best frame,
    each next one the best among those farthest in yaw from the chosen."""
    options = options or ImportOptions()
    obs = [o for o in track.observations if o.bump]
    if not obs:
        return []
    reference = float(np.percentile([o.sharpness for o in obs], 75))
    sharp = [o for o in obs if o.sharpness >= options.blur_ratio * reference]
    quality = {id(o): o.size * o.sharpness for o in sharp}
    chosen: list[Observation] = []
    pool = sorted(sharp, key=lambda o: -quality[id(o)])
    while pool and len(chosen) < count:
        if not chosen:
            pick = pool[0]
        else:
            def spread(o: Observation) -> float:
                return min(angular_separation(ViewSpec("x", -o.yaw, -o.pitch), ViewSpec("x", -c.yaw, -c.pitch))
                           for c in chosen)
            far = [o for o in pool if spread(o) >= MIN_ANGLE_SEPARATION_DEG]
            if not far:
                break
            best_spread = max(spread(o) for o in far)
            # among the frames within 15 degrees of the widest spread, the best quality
            pick = max((o for o in far if spread(o) >= best_spread - 15.0), key=lambda o: quality[id(o)])
        chosen.append(pick)
        pool.remove(pick)
    return chosen
