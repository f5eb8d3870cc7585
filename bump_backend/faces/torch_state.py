"""Read a PyTorch state dict into numpy arrays without importing torch.

The face search runs without torch (``sequence --analyse-only`` loads no model library; the face
command starts in about a second), yet MTCNN's weights ship as ``torch.save`` files. Both of torch's
formats are read here: the zip archive (torch >= 1.6) and the legacy stream (magic number, protocol,
system info, the pickled object, the storage keys, then each storage's element count and raw bytes),
which is what the ``facenet-pytorch`` wheel ships. Only float, double, half and integer storages
and tensors rebuilt by ``torch._utils._rebuild_tensor_v2`` (or ``_rebuild_parameter``) are
understood: anything else is refused with a clear error instead of being unpickled.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
           "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class StateDictError(ValueError):
    """The file is not a torch state dict of plain tensors."""


class _Storage:
    def __init__(self, dtype: np.dtype, key: str) -> None:
        self.dtype, self.key, self.array = np.dtype(dtype), key, None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.array
        if data is None:
            raise StateDictError(f"storage {self.storage.key} has no data")
        item = data.itemsize
        if not self.size:
            return np.array(data[self.offset])
        return np.lib.stride_tricks.as_strided(data[self.offset:], self.size,
                                               tuple(s * item for s in self.stride)).copy()


def _rebuild_tensor(storage, offset, size, stride, *_args):
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(tensor, *_args):
    return tensor


class _Unpickler(pickle.Unpickler):
    """Only the names a state dict of plain tensors needs; anything else is refused."""

    def __init__(self, file, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _DTYPES:
            return name
        raise StateDictError(f"not a plain state dict: it refers to {module}.{name}")

    def persistent_load(self, saved_id):
        if not isinstance(saved_id, tuple) or saved_id[0] != "storage":
            raise StateDictError(f"unknown persistent id {saved_id!r}")
        kind, key = saved_id[1], str(saved_id[2])
        name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
        if name not in _DTYPES:
            raise StateDictError(f"unsupported storage type {name}")
        if key not in self.storages:
            self.storages[key] = _Storage(_DTYPES[name], key)
        return self.storages[key]


def load(path: str | Path, data: bytes | None = None) -> dict[str, np.ndarray]:
    """Name -> numpy array of a ``torch.save``-d state dict (StateDictError if it is not one); ``data``: the
    file's bytes when the caller has read them already."""
    path = Path(path)
    data = path.read_bytes() if data is None else data
    storages: dict[str, _Storage] = {}
    if zipfile.is_zipfile(io.BytesIO(data)):
        obj = _load_zip(data, storages)
    else:
        obj = _load_legacy(data, storages, path)
    if not isinstance(obj, dict) or not all(isinstance(v, _Tensor) for v in obj.values()):
        raise StateDictError(f"{path} is not a state dict of tensors")
    return {str(k): v.array() for k, v in obj.items()}


def _load_zip(data: bytes, storages: dict[str, _Storage]):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        pickled = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pickled is None:
            raise StateDictError("a zip without data.pkl")
        root = pickled[: -len("data.pkl")]
        obj = _Unpickler(io.BytesIO(archive.read(pickled)), storages).load()
        for key, storage in storages.items():
            storage.array = np.frombuffer(archive.read(f"{root}data/{key}"), dtype=storage.dtype.newbyteorder("<"))
    return obj


def _load_legacy(data: bytes, storages: dict[str, _Storage], path: Path):
    stream = io.BytesIO(data)

    def restricted():  # every pickle of the stream, the header's too, goes through the restricted unpickler
        return _Unpickler(stream, storages).load()

    try:
        magic = restricted()
    except StateDictError:
        raise
    except Exception as error:
        raise StateDictError(f"{path} is not a torch file: {error}") from error
    if magic != LEGACY_MAGIC:
        raise StateDictError(f"{path} is not a torch file (no torch magic number)")
    restricted()  # protocol version
    info = restricted()
    if isinstance(info, dict) and not info.get("little_endian", True):
        raise StateDictError(f"{path} was saved big-endian")
    obj = restricted()
    keys = restricted()
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise StateDictError(f"{path}: storage {key} is not referred to")
        count = int(np.frombuffer(stream.read(8), "<i8")[0])
        raw = stream.read(count * storage.dtype.itemsize)
        if len(raw) != count * storage.dtype.itemsize:
            raise StateDictError(f"{path} is cut short")
        storage.array = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    return obj
