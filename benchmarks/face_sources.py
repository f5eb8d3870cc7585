"""Face sources for benchmarks/bench_faces.py: many demo-character phenotypes (rendered once, cached)
plus the real photos that ship inside installed wheels, split into a tune part, a held-out part and a
fresh part (held out from the fifth pass of the face search on).

Renders come from the project's own package renderer (Blender, Cycles on the CPU, 256 px, 4 samples):
each package's manifest carries the exact projected face geometry (eyes, face box, roll, yaw) of
every view, so pasted renders have exact truth. They are cached under ``.cache/bench_faces/`` (ignored).
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bump_backend.faces.groundtruth import FaceSource

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench_faces"
VIEWS = "front,three_quarter_left,three_quarter_right"
# The turned part's views (bench_faces --part turned, from the thirteenth pass): heads turned 22.5-90°, profiles included.
TURNED_VIEWS = "quarter_left,quarter_right,side_left:67.5,side_right:-67.5,profile_left,profile_right"


@dataclass(frozen=True)
class Identity:
    """One demo-character phenotype: the renderer's CLI arguments and whether it is held out.

    ``fresh``: held out from the fifth pass on, in a part of its own that is run once per pass, after
    its choices are made (the first held-out part had been reported four times by then).
    """

    name: str
    args: tuple[str, ...]
    held_out: bool
    fresh: bool = False
    second_tune: bool = False


# Tune identities are the only ones looked at while changing the pipeline; held-out ones are reported apart.
IDENTITIES: tuple[Identity, ...] = (
    Identity("man_35_caucasian", ("--age", "35", "--gender", "male", "--ethnicity", "caucasian"), False),
    Identity("woman_28_asian", ("--age", "28", "--gender", "female", "--ethnicity", "asian",
                                "--hair-color", "black"), False),
    Identity("man_60_african", ("--age", "60", "--gender", "male", "--ethnicity", "african",
                                "--hair-color", "grey"), False),
    Identity("girl_9_mixed", ("--age", "9", "--gender", "female", "--ethnicity", "african=0.5,caucasian=0.5"), False),
    Identity("woman_70_caucasian", ("--age", "70", "--gender", "female", "--ethnicity", "caucasian",
                                    "--hair-color", "white", "--weight", "0.8"), True),
    Identity("man_22_asian_bald", ("--age", "22", "--gender", "male", "--ethnicity", "asian", "--hair", "none",
                                   "--face", "nose-scale-horiz=0.8"), True),
    Identity("woman_45_african", ("--age", "45", "--gender", "female", "--ethnicity", "african",
                                  "--muscle", "0.8", "--hair-color", "black"), True),
    Identity("boy_12_caucasian", ("--age", "12", "--gender", "male", "--ethnicity", "caucasian",
                                  "--hair-color", "blonde", "--eye-color", "blue"), True),
    Identity("man_80_mixed", ("--age", "80", "--gender", "male", "--ethnicity", "asian=0.5,african=0.5",
                              "--hair-color", "white", "--weight", "0.2"), True),
    Identity("woman_30_mixed", ("--age", "30", "--gender", "0.7", "--ethnicity", "asian=0.4,caucasian=0.6",
                                "--hair-color", "auburn", "--face", "nose-scale-horiz=0.3"), True),
    Identity("man_50_african_heavy", ("--age", "50", "--gender", "male", "--ethnicity", "african",
                                      "--weight", "1.0", "--hair", "none"), True),
    Identity("woman_20_asian", ("--age", "20", "--gender", "female", "--ethnicity", "asian",
                                "--hair-color", "dark_brown", "--eye-color", "dark_brown"), True),
    # The fresh part: expressions and a raised chin too.
    Identity("woman_60_asian_smile", ("--age", "60", "--gender", "female", "--ethnicity", "asian",
                                      "--hair-color", "grey", "--expression", "smile"), True, True),
    Identity("man_40_caucasian_heavy", ("--age", "40", "--gender", "male", "--ethnicity", "caucasian",
                                        "--weight", "0.9", "--hair-color", "brown",
                                        "--expression", "open_mouth=0.6"), True, True),
    Identity("girl_6_african", ("--age", "6", "--gender", "female", "--ethnicity", "african",
                                "--hair-color", "black"), True, True),
    Identity("man_28_mixed_bald", ("--age", "28", "--gender", "male", "--ethnicity", "african=0.3,caucasian=0.7",
                                   "--hair", "none", "--expression", "surprise"), True, True),
    Identity("woman_85_african", ("--age", "85", "--gender", "female", "--ethnicity", "african",
                                  "--hair-color", "white", "--weight", "0.3"), True, True),
    Identity("man_18_asian_chin_up", ("--age", "18", "--gender", "male", "--ethnicity", "asian",
                                      "--hair-color", "blonde", "--eye-color", "green", "--pose", "head=0,15"),
             True, True),
    # The second tune part (from the eighth pass on): more people to tune on, so that a choice is not made on
    # the four identities and two photos alone (the held-out misses of 32-64 px upside-down faces had no
    # counterpart among them).
    Identity("man_45_african_bald", ("--age", "45", "--gender", "male", "--ethnicity", "african", "--hair", "none",
                                     "--weight", "0.8"), False, second_tune=True),
    Identity("woman_35_caucasian_heavy", ("--age", "35", "--gender", "female", "--ethnicity", "caucasian",
                                          "--weight", "1.0", "--hair-color", "auburn",
                                          "--expression", "frown"), False, second_tune=True),
    Identity("man_65_asian", ("--age", "65", "--gender", "male", "--ethnicity", "asian", "--hair-color", "grey",
                              "--expression", "smile"), False, second_tune=True),
    Identity("woman_24_mixed", ("--age", "24", "--gender", "female", "--ethnicity", "african=0.6,asian=0.4",
                                "--hair-color", "dark_brown", "--muscle", "0.7",
                                "--expression", "brows_up"), False, second_tune=True),
)


def ancestry(name: str) -> str:
    """The identity's ``--ethnicity`` as one word ("african", "asian", "caucasian"; "mixed" for a blend; "photo" for
    a name no identity has: the photos, the LFW faces and the group photo's, whose ancestry is not recorded): recall
    is reported per group, because the misses gather on the darker skin tones."""
    identity = next((i for i in IDENTITIES if i.name == name), None)
    if identity is None:
        return "photo"
    value = identity.args[identity.args.index("--ethnicity") + 1]
    return "mixed" if "=" in value else value


@dataclass(frozen=True)
class Render:
    """One rendered view: the RGB image and its face's eyes and box (render pixels, sidecar convention)."""

    identity: str
    view: str
    image: np.ndarray
    right_eye: tuple[float, float]
    left_eye: tuple[float, float]
    face_box: tuple[float, float, float, float]
    yaw: float
    held_out: bool
    fresh: bool = False
    second_tune: bool = False


def render_folder(identity: Identity, turned: bool = False) -> Path:
    """Where the identity's package (``turned``: of its TURNED_VIEWS) is cached."""
    return CACHE / ("renders_turned" if turned else "renders") / identity.name


def render_identity(identity: Identity, resolution: int = 256, samples: int = 4, turned: bool = False,
                    views: str | None = None, out: Path | None = None) -> Path:
    """Render (once) the identity's package into the cache (``turned``: its TURNED_VIEWS), or only ``views`` of it into
    ``out`` (tests); returns the package folder."""
    out = out or render_folder(identity, turned)
    if (out / "package.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "headless_renderer", "package", "--demo", *identity.args, "--out", str(out),
           "--overwrite", "--views", views or (TURNED_VIEWS if turned else VIEWS), "--resolution", str(resolution),
           "--samples", str(samples), "--preset", "preview"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def load_renders(render_missing: bool = True, turned: bool = False) -> list[Render]:
    """Every view of every identity (``turned``: the TURNED_VIEWS; rendering the missing ones when allowed)."""
    renders: list[Render] = []
    for identity in IDENTITIES:
        folder = render_folder(identity, turned)
        if not (folder / "package.json").exists():
            if not render_missing:
                continue
            render_identity(identity, turned=turned)
        renders += renders_in(folder, identity)
    return renders


def renders_in(folder: Path, identity: Identity) -> list[Render]:
    """The views with a face in the identity's package at ``folder``."""
    import cv2  # only the benchmark reads PNGs here

    renders = []
    manifest = json.loads((folder / "package.json").read_text())
    for view in manifest["views"]:
        face = view.get("face")
        if not face:
            continue
        bgr = cv2.imread(str(folder / view["file"]), cv2.IMREAD_COLOR)
        renders.append(Render(identity.name, view["name"], np.ascontiguousarray(bgr[:, :, ::-1]),
                              tuple(face["right_eye"]), tuple(face["left_eye"]), tuple(face["face_box"]),
                              float(face["yaw"]), identity.held_out, identity.fresh, identity.second_tune))
    return renders


def face_side(render: Render) -> float:
    """Face-square side comparable with the detector's: the face box height (brow to chin)."""
    x0, y0, x1, y1 = render.face_box
    return float(max(y1 - y0, 1e-6)) if math.isfinite(y1 - y0) else 0.0


# Real people (from the thirtieth pass of the face search): scikit-image's LFW subset ships 100 face crops of people in
# Labeled Faces in the Wild, 25x25 grey, tight (brow to chin, cheek to cheek), in its wheel. Even indices are tuned on,
# odd ones held out (an LFW person can appear more than once; the subset names nobody, so a person may fall on both
# sides). The crops are aligned alike, so one geometry serves all of them, measured on the tune half read by the search
# at 4x on grey (44 of 50 found): the detector's face side over the crop's (median 0.898, 5-95 % 0.82-0.95), its
# centre off the crop's (over the crop's side: x -0.044, y +0.023), its eye points (median, fractions of the crop).
LFW_SIDE = 0.9
LFW_CENTRE = (-0.044, 0.023)
LFW_EYES = ((0.256, 0.356), (0.614, 0.336))  # the subject's right eye (image-left), then the left


@dataclass(frozen=True)
class RealFace:
    """One LFW face crop: 25x25 grey uint8, and whether it is held out (odd index) or tuned on (even)."""

    index: int
    image: np.ndarray
    held_out: bool

    @property
    def name(self) -> str:
        return f"lfw/{self.index}"


def real_faces() -> list[RealFace]:
    """The LFW subset's 100 faces (its 100 non-faces are left out: some are parts of faces)."""
    from skimage import data

    crops = np.asarray(data.lfw_subset()[:100])
    if crops.dtype != np.uint8:
        crops = np.clip(crops * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return [RealFace(i, np.ascontiguousarray(crop), bool(i % 2)) for i, crop in enumerate(crops)]


# A group photo of six real people with their whole heads (from the thirty-first pass of the face search): insightface's
# wheel ships ``data/images/t1.jpg`` (1280x886, colour; six adults around a card table, looking down, aside, smiling,
# eyes half shut, one head turned ~50°). Only that file is read, without importing insightface (installed with
# --no-deps, requirements-nodeps.txt). Each face was measured once like groundtruth.SOURCES' photos: the search's face
# square and eye points (all six mesh-fitted, 102-130 px), left to right; odd indices are held out, even ones tuned on.
GROUP_PHOTO = ("insightface", "data/images/t1.jpg")
GROUP_FACES = (  # (the subject's right eye, left eye, face centre, face side), image pixels
    ((87.3, 328.9), (128.8, 309.0), (114.8, 339.2), 125.7),
    ((293.0, 210.9), (321.1, 194.2), (329.7, 210.3), 101.9),
    ((489.8, 318.9), (536.5, 330.7), (513.9, 351.2), 130.4),
    ((761.9, 398.2), (801.2, 403.3), (793.4, 423.4), 112.1),
    ((921.4, 122.1), (943.4, 116.7), (966.4, 138.1), 124.7),
    ((1149.9, 326.8), (1191.3, 324.0), (1181.7, 344.2), 111.5),
)
# The soft ellipse a group face is pasted through (face sides, half-axes): smaller than a portrait's, so it holds the
# head and little of the neighbours.
GROUP_ELLIPSE = (0.8, 1.05)


@dataclass(frozen=True)
class GroupFace:
    """One face of the group photo: its measured geometry, and whether it is held out (odd index) or tuned on."""

    index: int
    source: FaceSource
    held_out: bool

    @property
    def name(self) -> str:
        return self.source.name


@functools.cache
def group_photo() -> np.ndarray:
    """The group photo as RGB uint8 (read-only), read once from the installed insightface wheel (its package is not
    imported): every group face pasted uses it."""
    import importlib.util

    import cv2

    package, relative = GROUP_PHOTO
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the group parts read {relative} from the {package} wheel: "
                           f"pip install --no-deps -r requirements-nodeps.txt")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError(f"cannot read the group photo {path}")
    image = np.ascontiguousarray(bgr[:, :, ::-1])
    image.setflags(write=False)
    return image


def group_faces() -> list[GroupFace]:
    """The group photo's six faces, left to right."""
    from bump_backend.faces.groundtruth import FaceSource

    return [GroupFace(i, FaceSource(f"group/{i}", right, left, centre, side), bool(i % 2))
            for i, (right, left, centre, side) in enumerate(GROUP_FACES)]


if __name__ == "__main__":
    for ident in IDENTITIES:
        print(ident.name, render_identity(ident), flush=True)
