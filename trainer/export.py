"""Export: full-integer TFLite (static batch 1), labels embedded as a zip member, optional Edge TPU compile.

Calibration draws a representative set from the training images (raw pixels, as the model takes them) plus
one 0..255 ramp, so the input quantization is exactly scale 1, zero point 0 (uint8) or -128 (int8): a uint8
input is the raw pixel and an int8 input is pixel - 128, which is what `edge.inference.preprocess` feeds.
The labels are appended to the flatbuffer as a zip archive holding `labels.txt` (how TFLite metadata carries
associated files); TFLite ignores the trailing bytes, `zipfile`/`unzip` and `edge.inference.labels` read them. A trained
model also carries `metrics.json` there, its held-out accuracy (`trainer.compare.metrics_doc`), which
`edge-deploy model` reads (`deploy.model_metrics`) to refuse a model worse than the one it replaces.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError
from edge.inference.labels import embedded_label_member

log = logging.getLogger(__name__)

LABELS_MEMBER = "labels.txt"
METRICS_MEMBER = "metrics.json"  # the name deploy.model_metrics reads
IO_TYPES = ("uint8", "int8")
INT_DTYPES = {np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int32)}


@dataclass(frozen=True)
class Int8Check:
    """What a converted model turned out to be."""

    input_dtype: str
    input_scale: float
    input_zero_point: int
    output_dtype: str
    output_scale: float
    output_zero_point: int
    ops: tuple[str, ...]
    size_bytes: int


def ramp_image(size: int) -> np.ndarray:
    """A (size, size, 3) uint8 image spanning 0..255, so calibration sees the full pixel range."""
    row = np.linspace(0, 255, size).round().astype(np.uint8)
    return np.repeat(np.tile(row, (size, 1))[:, :, None], 3, axis=2)


def representative_images(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Up to `count` training images, chosen at random, plus the ramp."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(images), size=min(count, len(images)), replace=False)
    return np.concatenate([ramp_image(images.shape[1])[None], images[np.sort(idx)]])


@contextlib.contextmanager
def _captured_output() -> Iterator[None]:
    """Send fd 1 and 2 to a scratch file: the converter prints its whole signature and C++ chatter there."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as scratch:
            os.dup2(scratch.fileno(), 1)
            os.dup2(scratch.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def convert(model: Any, calibration: np.ndarray, io_type: str = "uint8") -> bytes:
    """Full-int8 TFLite flatbuffer of a Keras model (raw-pixel input), batch fixed to 1.

    Args:
        calibration: uint8 NHWC images, raw pixels, drawn from the training set.
        io_type: `uint8` (default, Edge TPU friendly) or `int8` input and output.
    """
    import keras
    import tensorflow as tf

    if io_type not in IO_TYPES:
        raise EdgeError(f"--io-type: {io_type!r} is not one of {', '.join(IO_TYPES)}")
    h, w, c = model.input_shape[1:]
    inp = keras.Input(batch_shape=(1, h, w, c), name="pixels")
    fixed = keras.Model(inp, model(inp, training=False))
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = getattr(tf, io_type)
    converter.inference_output_type = getattr(tf, io_type)

    def representative() -> Any:
        for img in calibration:
            yield [img[None].astype(np.float32)]

    converter.representative_dataset = representative
    try:
        with _captured_output():
            return bytes(converter.convert())
    except Exception as e:  # the converter raises ConverterError, RuntimeError, ValueError...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgeError(f"int8 conversion failed: {first}") from None


def inspect_int8(path: Path, io_type: str) -> Int8Check:
    """Check a converted model: integer tensors only, builtin ops only, I/O dtype and quantization as asked.

    Raises:
        EdgeError: a float tensor, a Flex/custom op, or an input quantization that raw pixels would not match.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ops = tuple(sorted({o["op_name"] for o in it._get_ops_details()}))
    odd = [o for o in ops if o.startswith("Flex") or not o.isupper()]
    if odd:
        raise EdgeError(f"{path}: non-builtin ops remain ({', '.join(odd)}); the model cannot run on the device")
    floats = [t["name"] for t in it.get_tensor_details() if np.dtype(t["dtype"]) not in INT_DTYPES]
    if floats:
        raise EdgeError(f"{path}: {len(floats)} float tensor(s) remain (e.g. {floats[0]}); not a full-int8 model")
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    batch = int(i.get("shape_signature", i["shape"])[0])
    if batch != 1:
        raise EdgeError(f"{path}: input batch is {batch} (-1 = dynamic), expected a static batch of 1")
    want_zp = 0 if io_type == "uint8" else -128
    scale, zp = i["quantization"]
    if np.dtype(i["dtype"]).name != io_type or abs(scale - 1.0) > 1e-6 or zp != want_zp:
        raise EdgeError(
            f"{path}: input is {np.dtype(i['dtype']).name} scale {scale} zero point {zp}, expected {io_type} "
            f"scale 1 zero point {want_zp} (raw pixels); the calibration images do not span 0..255"
        )
    return Int8Check(
        np.dtype(i["dtype"]).name,
        float(scale),
        int(zp),
        np.dtype(o["dtype"]).name,
        float(o["quantization"][0]),
        int(o["quantization"][1]),
        ops,
        path.stat().st_size,
    )


def _embed(path: Path, member: str, text: str) -> None:
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z:
        if member in z.namelist():
            raise EdgeError(f"{path}: already carries {member}")
        info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))  # same seed, same bytes
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, text)


def embed_labels(path: Path, labels: tuple[str, ...] | list[str]) -> None:
    """Append `labels.txt` (one label per line, line N = class N) to the model as a zip member."""
    _embed(path, LABELS_MEMBER, "".join(f"{label}\n" for label in labels))


def embed_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """Append `metrics.json` (held-out accuracy, and that of the model it continues from) as a zip member."""
    _embed(path, METRICS_MEMBER, json.dumps(metrics, indent=1, sort_keys=True) + "\n")


def embedded_metrics(path: Path) -> dict[str, Any] | None:
    """The `metrics.json` a model carries, as written (None when it has none)."""
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read(METRICS_MEMBER)) if METRICS_MEMBER in z.namelist() else None
    except zipfile.BadZipFile:
        return None


def save_keras(model: Any, path: Path) -> None:
    """The model as a `.keras` file without the optimizer's state, deflated: about 1/4 of `model.save(path)`.

    A run continued from it (`--from`) starts a fresh optimizer, so Adam's two slots per weight are not kept;
    Keras stores its archive uncompressed, and the float weights deflate to about two thirds.
    """
    import keras

    raw, tmp = path.with_name(f".{path.stem}.raw.keras"), path.with_name(f".{path.name}.tmp")
    try:
        keras.Model(model.input, model.output, name=model.name).save(raw)  # the same layers, never compiled
        with zipfile.ZipFile(raw) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info, src.read(info.filename), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        os.replace(tmp, path)
    finally:
        raw.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


def write_labels(path: Path, labels: tuple[str, ...] | list[str]) -> None:
    """The sidecar label file (the same text as the embedded one)."""
    path.write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")


@dataclass(frozen=True)
class EdgeTpuResult:
    """An Edge TPU compilation: the compiled file and how many ops it maps to the TPU and the CPU."""

    path: Path
    tpu_ops: int
    cpu_ops: int
    log: str


def parse_compiler_log(text: str) -> tuple[int, int]:
    """(ops on Edge TPU, ops on CPU) from edgetpu_compiler's summary.

    The compiler prints `Number of operations that will run on Edge TPU/CPU: N` when some ops stay on the
    CPU, and only `Total number of operations: N` when all of them map to the Edge TPU.
    """
    tpu = re.search(r"Number of operations that will run on Edge TPU:\s*(\d+)", text)
    cpu = re.search(r"Number of operations that will run on CPU:\s*(\d+)", text)
    total = re.search(r"Total number of operations:\s*(\d+)", text)
    if tpu:
        return int(tpu.group(1)), int(cpu.group(1)) if cpu else 0
    if total:
        return int(total.group(1)), 0
    raise EdgeError("edgetpu_compiler printed no operation counts; run it by hand to see why")


def compile_edgetpu(
    model_path: Path, labels: tuple[str, ...] | list[str], timeout: float = 600, metrics: dict[str, Any] | None = None
) -> EdgeTpuResult:
    """Run `edgetpu_compiler` on the model, then put the labels (and metrics) back: the compiler drops them.

    Raises:
        EdgeError: the compiler is not on PATH, fails, or times out.
    """
    exe = shutil.which("edgetpu_compiler")
    if exe is None:
        raise EdgeError(
            "--edgetpu: edgetpu_compiler is not on PATH; install it from https://coral.ai/software/#debian-packages "
            f"(x86-64 Linux) and run `edgetpu_compiler -s {model_path}`, or leave out --edgetpu"
        )
    out_dir = model_path.parent
    try:
        proc = subprocess.run(
            [exe, "-s", "-o", str(out_dir), str(model_path)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise EdgeError(f"edgetpu_compiler took more than {timeout:.0f}s on {model_path}") from None
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        last = [line for line in text.splitlines() if line.strip()][-1:] or ["no output"]
        raise EdgeError(f"edgetpu_compiler failed on {model_path} (exit {proc.returncode}): {last[0]}")
    compiled = out_dir / f"{model_path.stem}_edgetpu.tflite"
    if not compiled.is_file():
        raise EdgeError(f"edgetpu_compiler wrote no {compiled.name}; its output: {text.strip()[:200]}")
    tpu, cpu = parse_compiler_log(text)
    if embedded_label_member(compiled) is None:
        embed_labels(compiled, labels)
    if metrics is not None and embedded_metrics(compiled) is None:
        embed_metrics(compiled, metrics)
    return EdgeTpuResult(compiled, tpu, cpu, text)
