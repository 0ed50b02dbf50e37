"""`edge-daemon classify` and `info` as a user runs them: real processes, real models, exit codes."""

import json
import subprocess
import sys

import pytest

from tests.support.shared_data import shared


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli.main", *args], capture_output=True, text=True, timeout=120, check=False
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edge-daemon: error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0]


def test_classify_json_lines():
    model = shared("coral/mobilenet_v1_0.25_128_quant.tflite")
    cat, burger = shared("coral/cat.bmp"), shared("tflite-support/burger.jpg")
    proc = run("classify", "--model", str(model), "--json", "-k", "3", str(cat), str(burger))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["image"] for d in lines] == [str(cat), str(burger)]
    first = lines[0]
    assert set(first) == {"image", "predictions", "inference_ms"}
    assert len(first["predictions"]) == 3 and first["inference_ms"] > 0
    assert set(first["predictions"][0]) == {"index", "label", "score"}
    assert 283 in [p["index"] for p in first["predictions"]]
    assert "auto: " in proc.stderr  # one line saying which device


def test_classify_table_and_threshold():
    model = shared("tflite-support/mobilenet_v1_0.25_224_quant.tflite")
    proc = run("classify", "-m", str(model), "--threshold", "0.5", str(shared("tflite-support/burger.jpg")))
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()[1:]
    assert len(rows) == 1 and "cheeseburger" in rows[0] and rows[0].split()[0] == "934"


def test_info_json_describes_the_model():
    proc = run("info", "--json", "-m", str(shared("tflite-micro/mnist_lstm_int8.tflite")))
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["input"]["shape"] == [1, 28, 28] and d["input"]["dtype"] == "int8"
    assert d["output"]["dtype"] == "int8" and d["num_classes"] == 10
    assert d["stateful"] is True and d["edgetpu"] is False and d["device"] == "cpu"


def test_info_table():
    proc = run("info", "-m", str(shared("coral/mobilenet_v2_1.0_224_quant.tflite")))
    assert proc.returncode == 0
    assert "1001 classes, uint8" in proc.stdout and "embedded:imagenet_labels.txt" in proc.stdout


def test_bad_images_are_reported_and_the_rest_classified(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_text("not really a jpeg")
    model = shared("coral/mobilenet_v1_0.25_128_quant.tflite")
    proc = run("classify", "-m", str(model), "--json", str(junk), str(shared("coral/cat.bmp")))
    assert proc.returncode == 1
    assert "junk.jpg: not an image" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stdout.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--model", "/nonexistent/m.tflite"], ["/nonexistent/m.tflite", "not found"]),
        (["--model", "@cat"], ["cat.bmp", "not a TFLite model"]),
        (["--model", "@invalid"], ["model_invoking_error.tflite", "cannot prepare"]),
        (["--model", "@edgetpu"], ["_edgetpu.tflite", "Edge TPU"]),
        (["--model", "@mnv1", "--device", "gpu"], ["device 'gpu'"]),
        (["--model", "@mnv1", "--labels", "/nope/labels.txt"], ["/nope/labels.txt"]),
        (["--model", "@mnv1", "--top-k", "0"], ["--top-k"]),
    ],
)
def test_bad_input_is_one_line(args, needles):
    aliases = {
        "@cat": "coral/cat.bmp",
        "@invalid": "coral/invalid_models/model_invoking_error.tflite",
        "@edgetpu": "coral/mobilenet_v1_0.25_128_quant_edgetpu.tflite",
        "@mnv1": "coral/mobilenet_v1_0.25_128_quant.tflite",
    }
    args = [str(shared(aliases[a])) if a in aliases else a for a in args]
    proc = run("classify", *args, str(shared("coral/cat.bmp")))
    assert_one_line_error(proc, *needles)
