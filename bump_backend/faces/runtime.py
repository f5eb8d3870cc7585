"""mediapipe model instances (one per thread) and the worker pool that runs them.

mediapipe's legacy ``solutions`` graphs are not thread-safe, but they release the GIL while they
run, so two threads with their own graphs use both cores (measured: 1.5 -> 0.74 ms per tile call).
The models ship inside the mediapipe 0.10.21 wheel; nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("GLOG_minloglevel", "2")  # keep mediapipe's C++ logging off the CLI's stderr
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_local = threading.local()
_pools: dict[int, ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()


def _solutions():
    try:
        from mediapipe.python.solutions import face_detection, face_mesh, selfie_segmentation
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "mediapipe 0.10.21 is needed for face detection (pip install --no-deps mediapipe==0.10.21)"
        ) from exc
    return face_detection, face_mesh, selfie_segmentation


def face_detector(threshold: float):
    """This thread's short-range BlazeFace graph (128 px input) for a given score threshold."""
    cache = _local.__dict__.setdefault("detectors", {})
    key = round(threshold, 3)
    if key not in cache:
        face_detection, _, _ = _solutions()
        cache[key] = face_detection.FaceDetection(model_selection=0, min_detection_confidence=key)
    return cache[key]


def full_range_detector():
    """This thread's full-range BlazeFace graph (192 px input): the independent second opinion."""
    if not hasattr(_local, "full_range"):
        face_detection, _, _ = _solutions()
        _local.full_range = face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.05)
    return _local.full_range


def face_mesh():
    """This thread's face-mesh graph: 478 points with irises, static images, up to two faces."""
    if not hasattr(_local, "mesh"):
        _, mesh, _ = _solutions()
        _local.mesh = mesh.FaceMesh(static_image_mode=True, max_num_faces=2, refine_landmarks=True,
                                    min_detection_confidence=0.3)
    return _local.mesh


def selfie_segmenter():
    """This thread's person-segmentation graph (general 256x256 model)."""
    if not hasattr(_local, "segmenter"):
        _, _, selfie = _solutions()
        _local.segmenter = selfie.SelfieSegmentation(model_selection=0)
    return _local.segmenter


def pool(workers: int) -> ThreadPoolExecutor:
    """A shared pool per worker count, so repeated searches do not rebuild graphs."""
    with _pool_lock:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="faces")
        return _pools[workers]


@contextlib.contextmanager
def quiet_native_logs():
    """Send the C++ side's stderr chatter (TFLite/absl warnings) to /dev/null for a while.

    Python's own ``sys.stderr`` is flushed first and keeps working once the block ends; used by the
    command line so users see one line per problem, not mediapipe's start-up log.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (embedded, captured): nothing to do
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, fd)
    finally:
        os.close(saved)
