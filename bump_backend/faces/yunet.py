"""YuNet, libfacedetection's face detector (the `yuface` wheel, BSD): a third detector, trained apart from BlazeFace
and MTCNN, used as a word on refined faces (finder.YUNET_CHECK, finder.YUNET_VOUCH).

Read at a face's own roll it tells faces from the clutter the other models agree on: on the tune parts every
mesh-fitted true face read >= 0.68 (872 faces), while the clutter kept as faces read 0-0.41 (docs/faces.md, the
nineteenth pass). It is upright-only and much weaker at a quarter turn off, so it checks, it does not search the
image; the one roll search it makes is over a refused candidate's square (detect.yunet_roll, finder.ROLL_SEARCH).

The wheel's C++ runs its layers through its own OpenMP; on the small crops it reads, a team of threads costs far more
than it saves (a 64 px crop: 0.4 ms on one thread, 25 ms on two), and the search already runs one crop per worker. Its
OpenMP reads OMP_NUM_THREADS once, when the library loads: it is set to 1 for that import alone.
"""

from __future__ import annotations

import os
import threading

import numpy as np

_lock = threading.Lock()
_module = None
_missing = False


def _load():
    """The `yuface` module, imported once (None when it is not installed)."""
    global _module, _missing
    if _module is not None or _missing:  # every read asks: no lock once it is settled
        return _module
    with _lock:
        if _module is None and not _missing:
            previous = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = "1"
            try:
                import yuface
            except ImportError:
                _missing = True
            else:
                # The first call sets the network's weights up, unguarded in the library: done here, under the lock.
                yuface.detect(np.zeros((32, 32, 3), np.uint8), conf=0.0)
                _module = yuface
            finally:
                if previous is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = previous
    return _module


def available() -> bool:
    """Whether YuNet can run (the `yuface` wheel is installed; without it the search goes on without its word)."""
    return _load() is not None


def detect(image: np.ndarray) -> list[tuple[float, tuple[float, float, float, float]]]:
    """YuNet's detections of an RGB uint8 image: (score 0-1, box x, y, width, height in pixels), any score."""
    return [(score, box) for score, box, _ in detect_points(image)]


def detect_points(image: np.ndarray) -> list[tuple[float, tuple[float, float, float, float], np.ndarray]]:
    """``detect``'s detections with YuNet's five points each (5 x 2 pixels: the eyes, image-left first when the face is
    upright, the nose tip, the mouth's corners)."""
    module = _load()
    if module is None:
        raise RuntimeError("YuNet needs the yuface package: pip install yuface==2023.5.1")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"YuNet takes an RGB uint8 image, got {image.dtype} {image.shape}")
    confs, boxes, points = module.detect(np.ascontiguousarray(image[:, :, ::-1]), conf=0.0)
    return [(float(c) / 100.0, tuple(float(v) for v in b), np.asarray(p, np.float64).reshape(5, 2))
            for c, b, p in zip(confs, boxes, points, strict=True)]
