"""Face sources for benchmarks/bench_faces.py: many demo-character phenotypes (rendered once, cached)
plus the real photos that ship inside installed wheels, split into a tune part, a held-out part and a
fresh part (held out from the fifth pass of the face search on).

Renders come from the project's own package renderer (Blender, Cycles on the CPU, 256 px, 4 samples):
each package's manifest carries the exact projected face geometry (eyes, face box, roll, yaw) of
every view, so pasted renders have exact truth. They are cached under ``.cache/bench_faces/`` (ignored).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    a name no identity has: the two photos and the LFW faces, whose ancestry is not recorded): recall is reported per
    group, because the misses gather on the darker skin tones."""
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


def render_identity(identity: Identity, resolution: int = 256, samples: int = 4, turned: bool = False) -> Path:
    """Render (once) the identity's package into the cache (``turned``: its TURNED_VIEWS); returns the package folder."""
    out = render_folder(identity, turned)
    if (out / "package.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "headless_renderer", "package", "--demo", *identity.args, "--out", str(out),
           "--overwrite", "--views", TURNED_VIEWS if turned else VIEWS, "--resolution", str(resolution),
           "--samples", str(samples), "--preset", "preview"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def load_renders(render_missing: bool = True, turned: bool = False) -> list[Render]:
    """Every view of every identity (``turned``: the TURNED_VIEWS; rendering the missing ones when allowed)."""
    import cv2  # only the benchmark reads PNGs here

    renders: list[Render] = []
    for identity in IDENTITIES:
        folder = render_folder(identity, turned)
        if not (folder / "package.json").exists():
            if not render_missing:
                continue
            render_identity(identity, turned=turned)
        manifest = json.loads((folder / "package.json").read_text())
        for view in manifest["views"]:
            face = view.get("face")
            if not face:
                continue
            bgr = cv2.imread(str(folder / view["file"]), cv2.IMREAD_COLOR)
            renders.append(Render(identity.name, view["name"], np.ascontiguousarray(bgr[:, :, ::-1]),
                                  tuple(face["right_eye"]), tuple(face["left_eye"]), tuple(face["face_box"]),
                                  float(face["yaw"]), identity.held_out, identity.fresh,
                                  identity.second_tune))
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


if __name__ == "__main__":
    for ident in IDENTITIES:
        print(ident.name, render_identity(ident), flush=True)
