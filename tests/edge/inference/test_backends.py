"""Device settings, model twins and the runtime fallback message."""

import builtins
from pathlib import Path

import numpy
import pytest

from edge.errors import EdgeError
from edge.inference import backends
from edge.inference.backends import Device, parse_device, twin


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auto", Device("auto")),
        ("cpu", Device("cpu")),
        ("CPU", Device("cpu")),
        ("edgetpu", Device("edgetpu")),
        ("edgetpu:usb", Device("edgetpu", "usb")),
        ("edgetpu:pci", Device("edgetpu", "pci")),
        ("edgetpu:usb:1", Device("edgetpu", "usb:1")),
        ("edgetpu:pci:0", Device("edgetpu", "pci:0")),
        ("edgetpu:0", Device("edgetpu", ":0")),
    ],
)
def test_parse_device(text, expected):
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["gpu", "cpu:0", "auto:usb", "edgetpu:usb:x", "edgetpu:", "tpu", ""])
def test_parse_device_rejects(text):
    with pytest.raises(EdgeError, match="expected auto, cpu, edgetpu"):
        parse_device(text)


def test_twin_names():
    assert twin(Path("/m/net.tflite"), edgetpu=False) == Path("/m/net_edgetpu.tflite")
    assert twin(Path("/m/net_edgetpu.tflite"), edgetpu=True) == Path("/m/net.tflite")


def test_numpy2_incompatible_tflite_runtime_is_named(monkeypatch):
    """Simulates the two imports failing as they do on a Pi with tflite-runtime 2.14 and numpy 2."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("ai_edge_litert"):
            raise ModuleNotFoundError(name)
        if name.startswith("tflite_runtime"):
            raise ImportError("numpy.core.multiarray failed to import")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(numpy, "__version__", "2.1.0")
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(EdgeError, match=r"tflite-runtime does not load with numpy 2.*pip install ai-edge-litert"):
        backends.runtime_module()


def test_threads_must_be_positive(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    with pytest.raises(EdgeError, match="threads"):
        backends.open_interpreter(model, "cpu", 0)
