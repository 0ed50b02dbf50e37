"""Make the suite's small model: MobileNetV2 0.35/96, full int8, cached under `.cache/benchmarks/`.

`python -m benchmarks.small_model [--from MODEL.tflite]`. With `--from`, a model made by `edge-train` is copied
into the cache, which is what the suite should measure (its defaults are alpha 0.35, 96x96, uint8 I/O):

    edge-train export-dataset fashion-mnist .cache/benchmarks/edge-train/fm --per-class 40
    edge-train train .cache/benchmarks/edge-train/fm -o .cache/benchmarks/edge-train/run --backbone mobilenetv2 \\
        --epochs 3
    python -m benchmarks.small_model --from .cache/benchmarks/edge-train/run/model.tflite

Without it, the same graph is built here with Keras (MobileNetV2 alpha 0.35, 96x96 RGB input taking raw
pixels, a 10-class softmax head), untrained, and converted to full int8 (uint8 input/output) with a
representative dataset of random images: invoke time depends on the graph and the quantization, not on the
weights' values, so its speed is that of a trained one; its predictions are meaningless. Needs TensorFlow
(the `trainer` extra); never runs in CI.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from benchmarks.inputs import SMALL

ALPHA, SIZE, CLASSES = 0.35, 96, 10


def build(out: Path) -> Path:
    """Build and convert MobileNetV2 0.35/96 to full int8 at `out`."""
    import numpy as np
    import tensorflow as tf

    inputs = tf.keras.Input((SIZE, SIZE, 3))
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)  # raw pixels in, as the trainer's models take
    base = tf.keras.applications.MobileNetV2((SIZE, SIZE, 3), alpha=ALPHA, include_top=False, weights=None)
    x = tf.keras.layers.GlobalAveragePooling2D()(base(x))
    outputs = tf.keras.layers.Dense(CLASSES, activation="softmax")(x)
    model = tf.keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(32):
            yield [rng.integers(0, 256, (1, SIZE, SIZE, 3)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(conv.convert())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", help="a MobileNetV2 0.35/96 int8 model made by edge-train")
    p.add_argument("--out", default=str(SMALL))
    args = p.parse_args()
    out = Path(args.out)
    if args.source:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.source, out)
        (out.parent / "small_model_origin.txt").write_text(f"edge-train: {args.source}\n")
    else:
        build(out)
        (out.parent / "small_model_origin.txt").write_text("keras graph, untrained (benchmarks.small_model)\n")
    print(f"{out} ({out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
