"""The PyTorch checkpoint reader: state dicts come back as NumPy arrays; anything else in a pickle is refused
before it runs. Checkpoints are written here in both of PyTorch's layouts by a minimal writer (PyTorch itself
is not a dependency), with the same opcodes `torch.save` emits."""

from __future__ import annotations

import collections
import io
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge.errors import EdgeError
from tests.support.peak_memory import run_measured
from trainer.nets.torch_checkpoint import LEGACY_MAGIC, load_state_dict

STORAGE = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage"}


class _Stub:
    """Stands in for a torch global so that pickle writes GLOBAL 'torch ...' opcodes."""


def _fake_torch() -> dict[str, types.ModuleType]:
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in STORAGE.values():
        stub = type(name, (_Stub,), {"__module__": "torch"})
        setattr(torch, name, stub)

    def _rebuild_tensor_v2(*args):  # pragma: no cover - never called, only named
        raise AssertionError

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    return {"torch": torch, "torch._utils": utils}


class _Tensor:
    def __init__(self, key: str, array: np.ndarray, modules: dict) -> None:
        self.key, self.array, self.modules = key, array, modules

    def __reduce__(self):
        strides = tuple(s // self.array.itemsize for s in self.array.strides)
        kind = getattr(self.modules["torch"], STORAGE[self.array.dtype])
        storage = ("storage", kind, self.key, "cpu", self.array.size)
        return (self.modules["torch._utils"]._rebuild_tensor_v2,
                (_Persistent(storage), 0, self.array.shape, strides, False, collections.OrderedDict()))


class _Persistent:
    def __init__(self, pid: tuple) -> None:
        self.pid = pid


class _Writer(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Persistent) else None


def _dump(obj, modules: dict) -> bytes:
    buf = io.BytesIO()
    saved = {k: sys.modules.get(k) for k in modules}
    sys.modules.update(modules)
    try:
        _Writer(buf, protocol=2).dump(obj)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return buf.getvalue()


def write_checkpoint(path: Path, state: dict[str, np.ndarray], layout: str = "legacy", payload: bytes | None = None):
    """A state dict as torch.save writes it (`legacy`: before PyTorch 1.6; `zip`: after). `payload` replaces the
    main pickle (to plant something malicious)."""
    modules = _fake_torch()
    tensors = collections.OrderedDict((k, _Tensor(str(i), v.copy(order="C"), modules))
                                      for i, (k, v) in enumerate(state.items()))
    main = payload if payload is not None else _dump(tensors, modules)
    if layout == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", main)
            for t in tensors.values():
                z.writestr(f"archive/data/{t.key}", t.array.tobytes())
        return
    with path.open("wb") as f:
        for head in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
            f.write(pickle.dumps(head, protocol=2))
        f.write(main)
        f.write(pickle.dumps([t.key for t in tensors.values()], protocol=2))
        for t in tensors.values():
            f.write(int(t.array.size).to_bytes(8, "little") + t.array.tobytes())


STATE = {
    "conv.weight": np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) / 7,
    "bn.running_var": np.array([1.5, 2.5], np.float32),
    "bn.num_batches_tracked": np.array(42, np.int64),
    "fc.weight": np.arange(12, dtype=np.float32).reshape(3, 4).T,  # a transposed (non-contiguous) tensor
}


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_state_dict_round_trip(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "model.pth"
    write_checkpoint(path, STATE, layout)
    state = load_state_dict(path)
    assert list(state) == list(STATE)
    for k, v in STATE.items():
        assert state[k].dtype == v.dtype and state[k].shape == v.shape
        np.testing.assert_array_equal(state[k], v)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("layout", ["legacy", "zip"])
@pytest.mark.parametrize(
    "make",
    [
        lambda m: {"weight": _Evil(m)},  # os.system inside the state dict
        lambda m: _Evil(m),  # the whole payload
        lambda m: {"x": (eval, (f"open('{m}', 'w')",))},  # a builtin named inside a tuple: still refused below
    ],
    ids=["nested", "top-level", "builtin"],
)
def test_malicious_checkpoint_is_refused(tmp_path: Path, layout: str, make) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(make(marker), protocol=2)
    path = tmp_path / "evil.pth"
    write_checkpoint(path, {}, layout, payload=payload)
    with pytest.raises(EdgeError, match=r"evil\.pth: refused to load (posix\.system|(__builtin__|builtins)\.eval)"):
        load_state_dict(path)
    assert not marker.exists()


def test_malicious_header_is_refused(tmp_path: Path) -> None:
    """The legacy file's first pickles (magic number, protocol) go through the same safe unpickler."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(EdgeError, match=r"refused to load posix\.system"):
        load_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "cannot read the checkpoint"),
        (pickle.dumps(12345, protocol=2), "wrong magic number"),
        (b"\x80\x02not a pickle at all", "cannot read the checkpoint"),
    ],
)
def test_not_a_checkpoint(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(EdgeError, match=needle):
        load_state_dict(path)


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    write_checkpoint(path, STATE)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(EdgeError, match="truncated"):
        load_state_dict(path)


BOMB = 4 << 30  # bytes a bomb member inflates to (the 4 GB)


def _inflating(z: zipfile.ZipFile, name: str, size: int) -> None:
    block = b"\0" * (4 << 20)
    with z.open(zipfile.ZipInfo(name), "w", force_zip64=True) as f:
        for _ in range(size // len(block)):
            f.write(block)


def _zip_bomb(path: Path, member: str) -> Path:
    """A zip checkpoint of one 4-element tensor whose `member` (the storage, or data.pkl) inflates to 4 GB."""
    state = {"w": np.zeros(4, np.float32)}
    modules = _fake_torch()
    main = _dump(collections.OrderedDict(w=_Tensor("0", state["w"], modules)), modules)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        if member == "archive/data.pkl":
            _inflating(z, member, BOMB)
        else:
            z.writestr("archive/data.pkl", main)
            _inflating(z, member, BOMB)
    return path


def _legacy_claiming(path: Path, numel: int) -> Path:
    """A legacy checkpoint whose tensor and storage header claim `numel` float32 elements (8 bytes follow)."""
    modules = _fake_torch()
    claimed = np.broadcast_to(np.float32(0), (numel,))  # a view: no memory behind the claim
    main = _dump(collections.OrderedDict(w=_Tensor("0", claimed, modules)), modules)
    with path.open("wb") as f:
        for head in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
            f.write(pickle.dumps(head, protocol=2))
        f.write(main + pickle.dumps(["0"], protocol=2) + numel.to_bytes(8, "little") + bytes(8))
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: _zip_bomb(p, "archive/data/0"), "bomb.pth: storage 0: over 16 bytes, the most read from it"),
    (lambda p: _zip_bomb(p, "archive/data.pkl"), "bomb.pth: data.pkl: over 64 MB, the most read from it"),
    (lambda p: _legacy_claiming(p, 10**12), "storage 0 claims 4000000000000 bytes (at most 1024 MB)"),
], ids=["storage inflates to 4 GB", "data.pkl inflates to 4 GB", "legacy claims 10^12 elements"])  # fmt: skip
def test_a_checkpoint_bomb_is_one_line_within_the_memory_budget(tmp_path: Path, make, message) -> None:
    path = make(tmp_path / "bomb.pth")
    r = run_measured("trainer.nets.torch_checkpoint", str(path), function="load_state_dict", tmp=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert r.growth < 100 << 20, f"{r.growth >> 20} MB over the baseline"
    print(f"peak {r.growth / 2**20:.2f} MB over a {r.baseline >> 20} MB baseline")
