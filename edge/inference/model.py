"""A loaded classifier and its description as data (`ModelSpec`).

`load_model()` does the I/O once (interpreter, labels); `Classifier.classify()` is the per-frame path:
preprocess, invoke, postprocess, nothing else.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError, InferenceFailed
from edge.inference import labels as labels_mod
from edge.inference.backends import EDGETPU_OP, _first_line, is_edgetpu_model, open_interpreter, quiet_stderr
from edge.inference.postprocess import OutputFormat, Prediction, scores, top_k
from edge.inference.preprocess import InputFormat, preprocess

# Ops that keep state between invocations (variable tensors): reset before each independent image.
STATEFUL_OPS = frozenset(
    {
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "UNIDIRECTIONAL_SEQUENCE_RNN",
        "BIDIRECTIONAL_SEQUENCE_LSTM",
        "BIDIRECTIONAL_SEQUENCE_RNN",
        "LSTM",
        "RNN",
        "SVDF",
        "VAR_HANDLE",
        "ASSIGN_VARIABLE",
        "READ_VARIABLE",
    }
)
PROBABILITY_OPS = frozenset({"SOFTMAX", "LOGISTIC"})
PASS_THROUGH_OPS = frozenset({"DEQUANTIZE", "QUANTIZE", "RESHAPE", "SQUEEZE"})
# An output made by pooling or normalising is a feature vector (an embedding extractor), not class scores.
FEATURE_OPS = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "REDUCE_MAX", "L2_NORMALIZATION"})
_DTYPES = {np.uint8: "uint8", np.int8: "int8", np.float32: "float32"}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """Everything about a loaded model that code and users need, as plain immutable data."""

    path: str
    name: str
    layout: str  # NHWC or NHW (2-D grayscale input)
    input: InputFormat
    output: OutputFormat
    num_classes: int
    labels: tuple[str, ...]
    labels_source: str  # "embedded:<member>", a file path, or "none"
    edgetpu: bool  # compiled for the Edge TPU
    stateful: bool
    device: str  # where it runs: cpu | edgetpu
    threads: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (labels summarised by count and first few)."""
        d = asdict(self)
        d["input"]["dtype"] = _DTYPES.get(self.input.dtype, str(self.input.dtype))
        d["output"]["dtype"] = _DTYPES.get(self.output.dtype, str(self.output.dtype))
        d["input"]["shape"] = list(self.input.shape)
        d["labels"] = list(self.labels[:5])
        return d


@dataclass(frozen=True)
class Classification:
    """The result for one image: best classes first, and the time spent in invoke()."""

    predictions: tuple[Prediction, ...]
    inference_ms: float

    @property
    def top(self) -> Prediction | None:
        return self.predictions[0] if self.predictions else None


def _producers(ops: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(t): op for op in ops for t in op["outputs"]}


def _output_op(ops: list[dict[str, Any]] | None, out: dict[str, Any]) -> str | None:
    """The op that makes the output, past reshapes and (de)quantization; None when unknown or a delegate's."""
    if not ops:
        return None
    producers = _producers(ops)
    op = producers.get(int(out["index"]))
    while op is not None and op["op_name"] in PASS_THROUGH_OPS:
        op = producers.get(int(op["inputs"][0]))
    if op is None or op["op_name"] == "DELEGATE" or not op["op_name"].isupper():
        return None  # produced inside a custom op (e.g. the Edge TPU's)
    return str(op["op_name"])


def _outputs_probabilities(op: str | None, out: dict[str, Any]) -> bool:
    """True when the output is already a probability (softmax/logistic), so no softmax is applied."""
    scale, zp = out["quantization"]
    softmax_quantized = abs(scale - 1 / 256) < 1e-9 and zp in (0, -128)
    if op is None:  # judge by the quantization softmax outputs get
        return out["dtype"] != np.float32 and softmax_quantized
    return op in PROBABILITY_OPS


def _input_format(detail: dict[str, Any], mean: float | None, std: float | None) -> tuple[InputFormat, str]:
    shape = tuple(int(s) for s in detail["shape"])
    dtype = detail["dtype"]
    if dtype not in _DTYPES:
        raise EdgeError(f"input dtype {dtype} is not supported (uint8, int8 or float32 image input)")
    if len(shape) == 4 and shape[0] == 1 and shape[3] in (1, 3):
        layout, (h, w, c) = "NHWC", shape[1:]
    elif len(shape) == 3 and shape[0] == 1:
        layout, (h, w), c = "NHW", shape[1:], 1
    else:
        raise EdgeError(f"input shape {list(shape)} is not an image (expected [1,H,W,3], [1,H,W,1] or [1,H,W])")
    scale, zp = detail["quantization"]
    fmt = InputFormat(shape, h, w, c, dtype, float(scale), int(zp), mean, std)
    return fmt, layout


def _output_format(detail: dict[str, Any], op: str | None) -> tuple[OutputFormat, int]:
    dtype = detail["dtype"]
    if dtype not in _DTYPES:
        raise EdgeError(f"output dtype {dtype} is not supported (uint8, int8 or float32 scores)")
    scale, zp = detail["quantization"]
    num_classes = int(np.prod(detail["shape"]))
    return OutputFormat(dtype, float(scale), int(zp), _outputs_probabilities(op, detail)), num_classes


class Classifier:
    """A loaded model ready to classify images. Use `load_model()`; close (or `with`) when done."""

    def __init__(self, interpreter: Any, spec: ModelSpec) -> None:
        self.spec = spec
        self._interpreter = interpreter
        self._in = int(interpreter.get_input_details()[0]["index"])
        self._out = int(interpreter.get_output_details()[0]["index"])

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Invoke on a ready input tensor; returns a copy of the raw output tensor."""
        it = self._interpreter
        if it is None:
            raise EdgeError(f"{self.spec.path}: model is closed")
        if self.spec.stateful:
            it.reset_all_variables()
        it.set_tensor(self._in, tensor)
        try:
            it.invoke()
        except (RuntimeError, ValueError) as e:
            raise InferenceFailed(f"{self.spec.path}: inference failed ({_first_line(e)})") from None
        return it.get_tensor(self._out)

    def timed_scores(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """All class scores in [0, 1] for a decoded image (BGR or gray uint8), and the ms spent in invoke().

        Raises:
            EdgeError: inference failed, or a float model gave NaN or infinite scores.
        """
        return self.infer(preprocess(image, self.spec.input))

    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, float]:
        """All class scores in [0, 1] for a ready input tensor (`preprocess`), and the ms spent in invoke().

        Raises:
            EdgeError: inference failed, or a float model gave NaN or infinite scores.
        """
        t0 = time.perf_counter()
        raw = self.run(tensor)
        ms = (time.perf_counter() - t0) * 1000.0
        class_scores = scores(raw, self.spec.output)
        # Only a float output can be NaN or infinite: dequantized integers and their softmax are always finite.
        if self.spec.output.dtype == np.float32 and not np.all(np.isfinite(class_scores)):
            raise EdgeError(f"{self.spec.path}: the model output NaN or infinite scores")
        return class_scores, ms

    def warm_up(self) -> None:
        """Run the model once on a blank image, so a model that cannot run is refused before it is used.

        Raises:
            EdgeError: the model fails on invoke or gives non-finite scores.
        """
        i = self.spec.input
        self.timed_scores(np.zeros((i.height, i.width, 3), np.uint8))

    def scores(self, image: np.ndarray) -> np.ndarray:
        """All class scores in [0, 1] for a decoded image (BGR or gray uint8)."""
        return self.timed_scores(image)[0]

    def classify(self, image: np.ndarray, top_k_: int = 5, threshold: float = 0.0) -> Classification:
        """Classify a decoded image (BGR or gray uint8, any size): the top classes and invoke time."""
        class_scores, ms = self.timed_scores(image)
        return Classification(top_k(class_scores, self.spec.labels, top_k_, threshold), ms)

    def close(self) -> None:
        """Release the interpreter (idempotent)."""
        self._interpreter = None

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_model(
    path: str | Path,
    *,
    labels: str | Path | None = None,
    device: str = "auto",
    threads: int = 2,
    mean: float | None = None,
    std: float | None = None,
    verify: Callable[[Path], bytes] | None = None,
) -> Classifier:
    """Load a .tflite classifier with its labels on a device.

    Args:
        path: the model; an `_edgetpu` model needs an Edge TPU (see `edge.inference.backends` for the policy).
        labels: a label file; by default the labels embedded in the model, else `class_N`.
        device: `auto | cpu | edgetpu[:usb|:pci][:N]`.
        threads: CPU threads for the interpreter (the runtime's default is 1).
        mean, std: normalise pixels as (p - mean) / std before quantizing; default: raw pixels for
            quantized inputs, p / 255 for float inputs.
        verify: given a file (the model used, a label file), its bytes once they verify (a signed model: see
            `edge.inference.signature`); the model and its labels are then read only from those bytes.

    Raises:
        EdgeError: with a one-line message naming the file, for every expected failure.
    """
    if (mean is None) != (std is None):
        raise EdgeError("mean and std go together: give both or neither")
    if std is not None and std == 0:
        raise EdgeError("std: must not be 0")
    interpreter, used, kind, content = open_interpreter(path, device, threads, verify)
    try:
        ops = interpreter._get_ops_details()
    except Exception:  # older runtimes lack the private op list; the quantization heuristic serves
        ops = None
    try:
        with quiet_stderr():
            interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        raise EdgeError(f"{used}: cannot prepare the model ({_first_line(e)})") from None
    out_detail = interpreter.get_output_details()[0]
    out_op = _output_op(ops, out_detail)
    try:
        in_fmt, layout = _input_format(interpreter.get_input_details()[0], mean, std)
        out_fmt, num_classes = _output_format(out_detail, out_op)
    except EdgeError as e:
        raise EdgeError(f"{used}: {e}") from None
    if out_op in FEATURE_OPS:
        what = (f"{used}: an embedding extractor, not a classifier: its {num_classes} outputs come from {out_op}, "
                "not a classification layer")  # fmt: skip
        if labels is None:
            raise EdgeError(f"{what}; give a classifier model (or --labels FILE if these outputs really are classes)")
        log.warning("%s; classifying anyway with the labels given", what)
    label_map, source = labels_mod.model_labels(used, labels, content, verify)
    names = labels_mod.align_labels(label_map, num_classes, source if labels else str(used))
    op_names = {o["op_name"] for o in ops or ()}
    spec = ModelSpec(
        path=str(used),
        name=used.stem,
        layout=layout,
        input=in_fmt,
        output=out_fmt,
        num_classes=num_classes,
        labels=names,
        labels_source=source,
        edgetpu=EDGETPU_OP in content if content is not None else is_edgetpu_model(used),
        stateful=bool(op_names & STATEFUL_OPS),
        device=kind,
        threads=threads,
    )
    return Classifier(interpreter, spec)


def file_signature(path: str) -> tuple[int, int, int] | None:
    """What identifies a version of the model file (mtime, size, inode), or None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
