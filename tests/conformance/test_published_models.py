"""Conformance: published models nobody here wrote give upstream's known-good results.

Expectations come from ../shared/data/README.md (the upstream projects' own tests) and TFLite's
label_image example (Grace Hopper -> military uniform).
"""

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.frames.images import read_image
from edge.inference.model import load_model
from tests.support.shared_data import SHARED_DATA, shared


def test_coral_mobilenet_v1_cat():
    with load_model(shared("coral/mobilenet_v1_0.25_128_quant.tflite")) as clf:
        result = clf.classify(read_image(shared("coral/cat.bmp")), 3)
    assert clf.spec.labels_source == "embedded:imagenet_labels.txt"
    top3 = {p.index: p for p in result.predictions}
    assert 283 in top3 and top3[283].score > 0.25
    assert top3[283].label == "tiger cat"


def test_tflite_support_mobilenet_v1_burger():
    with load_model(shared("tflite-support/mobilenet_v1_0.25_224_quant.tflite")) as clf:
        top = clf.classify(read_image(shared("tflite-support/burger.jpg")), 1).top
    assert top is not None and top.index == 934 and top.label == "cheeseburger"
    assert top.score == pytest.approx(0.96, abs=0.01)


@pytest.mark.parametrize("model", ["tflite-micro/mnist_lstm_int8.tflite", "tflite-micro/mnist_lstm_float.tflite"])
def test_mnist_lstm_digits_in_any_order(model):
    """Stateful: the state is reset per image, so order does not change the answers."""
    images = [read_image(shared(f"tflite-micro/mnist_lstm_samples/sample{k}.png")) for k in range(10)]
    with load_model(shared(model)) as clf:
        assert clf.spec.stateful and clf.spec.layout == "NHW"
        forward = [clf.classify(img, 1).top.index for img in images]
        backward = [clf.classify(img, 1).top.index for img in reversed(images)][::-1]
        again = clf.scores(images[3])
        np.testing.assert_array_equal(again, clf.scores(images[3]))
    assert forward == list(range(10))
    assert backward == list(range(10))


def test_int8_io_model_description():
    with load_model(shared("tflite-micro/mnist_lstm_int8.tflite")) as clf:
        spec = clf.spec
    assert spec.input.dtype == np.int8 and spec.output.dtype == np.int8
    assert spec.input.zero_point == -128 and spec.output.probabilities
    assert spec.num_classes == 10 and spec.labels[0] == "class_0"


def test_coral_keras_lstm_uint8_nine():
    with load_model(shared("coral/keras_lstm_mnist_ptq.tflite")) as clf:
        assert clf.spec.stateful and clf.spec.input.dtype == np.uint8
        assert clf.classify(read_image(shared("coral/mnist_nine.bmp")), 1).top.index == 9


def test_logits_model_gets_softmax_and_sidecar_labels():
    """This model outputs uint8 logits (no softmax op): scores must still be probabilities."""
    labels = shared("tflite-support/labels.txt")
    with load_model(shared("tflite-support/mobilenet_v2_1.0_224_quant_with_metadata.tflite"), labels=labels) as clf:
        assert not clf.spec.output.probabilities
        s = clf.scores(read_image(shared("tflite-support/burger.jpg")))
        top = clf.classify(read_image(shared("tflite-support/burger.jpg")), 1).top
    assert s.sum() == pytest.approx(1.0, abs=1e-4)
    assert top.label == "cheeseburger" and top.score > 0.9


def test_automl_flowers_embedded_labels():
    with load_model(shared("tflite-support/automl_labeler_model.tflite")) as clf:
        assert clf.spec.labels == ("daisy", "dandelion", "roses", "sunflowers", "tulips")
        assert clf.classify(read_image(shared("coral/sunflower.bmp")), 1).top.label == "sunflowers"


def test_mobilenet_v2_grace_hopper():
    with load_model(shared("coral/mobilenet_v2_1.0_224_quant.tflite")) as clf:
        top = clf.classify(read_image(shared("coral/grace_hopper.bmp")), 1).top
    assert top.label == "military uniform"


def test_coral_label_file_matches_embedded():
    emb = load_model(shared("coral/mobilenet_v1_0.25_128_quant.tflite"))
    side = load_model(shared("coral/mobilenet_v1_0.25_128_quant.tflite"), labels=shared("coral/imagenet_labels.txt"))
    assert emb.spec.labels == side.spec.labels and side.spec.labels[0] == "background"


def test_wrong_label_file_is_refused():
    with pytest.raises(EdgeError, match=r"inat_bird_labels.txt: \d+ labels but the model has 1001 classes"):
        load_model(shared("coral/mobilenet_v1_0.25_128_quant.tflite"), labels=shared("coral/inat_bird_labels.txt"))


def test_model_that_cannot_run_is_a_clean_error():
    with pytest.raises(EdgeError, match=r"model_invoking_error\.tflite: cannot prepare the model"):
        load_model(shared("coral/invalid_models/model_invoking_error.tflite"))


EDGETPU_MODELS = sorted(p.relative_to(SHARED_DATA).as_posix() for p in SHARED_DATA.glob("coral/*_edgetpu.tflite"))


@pytest.mark.parametrize("model", EDGETPU_MODELS or ["coral/mobilenet_v1_0.25_128_quant_edgetpu.tflite"])
@pytest.mark.parametrize("device", ["auto", "cpu", "edgetpu", "edgetpu:usb"])
def test_edgetpu_model_without_a_coral_is_refused(model, device):
    path = shared(model)
    try:
        import ctypes

        ctypes.CDLL("libedgetpu.so.1")
        pytest.skip("an Edge TPU runtime is installed here; this checks the no-Coral path")
    except OSError:
        pass
    with pytest.raises(EdgeError, match="Edge TPU") as e:
        load_model(path, device=device)
    message = str(e.value)
    assert str(path) in message and "\n" not in message
    assert "CPU model" in message or "--device cpu" in message
