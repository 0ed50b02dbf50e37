"""Interpreter creation: which runtime, which device, and the Edge TPU fallback policy.

Runtimes: `ai-edge-litert` (preferred: aarch64 cp311 wheels, numpy 2), else `tflite-runtime`.
Devices: `auto | cpu | edgetpu[:usb|:pci][:N]`. The Edge TPU delegate is `libedgetpu.so.1`; loading
it raises OSError when the library is missing and ValueError when no device answers. pycoral is not
needed (and the PyPI package of that name is unrelated).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from edge.config.devices import Device, parse_device
from edge.errors import EdgeError

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_OP = b"edgetpu-custom-op"


def runtime_module() -> ModuleType:
    """The interpreter module: ai_edge_litert.interpreter, else tflite_runtime.interpreter."""
    try:
        from ai_edge_litert import interpreter

        return interpreter
    except ImportError:
        pass
    try:
        import tflite_runtime.interpreter as interpreter  # type: ignore[import-not-found]

        return interpreter
    except ModuleNotFoundError:
        raise EdgeError("no TFLite runtime installed: pip install ai-edge-litert") from None
    except (ImportError, AttributeError) as e:  # tflite-runtime 2.14 was built against numpy 1
        import numpy

        if int(numpy.__version__.split(".")[0]) >= 2:
            raise EdgeError(
                f"tflite-runtime does not load with numpy {numpy.__version__} ({e}); "
                "pip install ai-edge-litert (recommended) or pin 'numpy<2'"
            ) from None
        raise EdgeError(f"tflite-runtime failed to import ({e}); pip install ai-edge-litert") from None


def is_edgetpu_model(path: str | Path) -> bool:
    """True when the model was compiled by edgetpu_compiler (it then needs an Edge TPU to run)."""
    return EDGETPU_OP in Path(path).read_bytes()


def twin(path: Path, edgetpu: bool) -> Path:
    """The other build of a model: `x.tflite` <-> `x_edgetpu.tflite` (edgetpu_compiler's naming)."""
    if edgetpu:
        return path.with_name(path.stem.removesuffix("_edgetpu") + path.suffix)
    return path.with_name(path.stem + "_edgetpu" + path.suffix)


def load_edgetpu_delegate(selector: str | None) -> Any:
    """Load the Edge TPU delegate or raise EdgeError saying why (no library, or no device)."""
    module = runtime_module()
    options = {"device": selector} if selector else {}
    try:
        # Probe first: a failed load_delegate() leaves a half-built Delegate whose __del__ prints a traceback.
        ctypes.CDLL(EDGETPU_LIBRARY)
        return module.load_delegate(EDGETPU_LIBRARY, options)
    except OSError:
        raise EdgeError(f"{EDGETPU_LIBRARY} not found (install libedgetpu1-std from Coral's apt repository)") from None
    except ValueError:
        where = f" at '{selector}'" if selector else ""
        raise EdgeError(f"no Edge TPU found{where} (is the Coral plugged in, and its udev rule installed?)") from None


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence the C++ runtime's INFO lines on fd 2 while an interpreter is built (errors still raise)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _choose(path: Path, device: Device) -> tuple[Path, Any, str]:
    """Apply the device policy: (model path to load, delegate or None, one-line reason).

    A compiled (`_edgetpu`) model always needs an Edge TPU: without one it is refused, naming the CPU
    build to use instead. A CPU model runs on the Edge TPU when `auto` finds its compiled twin beside it
    and a device, and on the CPU otherwise.
    """
    compiled = is_edgetpu_model(path)
    other = twin(path, compiled)
    if compiled:
        hint = f"give the CPU model ({other.name}) instead" if other.exists() else "give the CPU model instead"
        if device.kind == "cpu":
            raise EdgeError(f"{path}: compiled for the Edge TPU, it cannot run on the CPU; {hint}")
        try:
            return path, load_edgetpu_delegate(device.selector), f"{device.kind}: Edge TPU found"
        except EdgeError as e:
            raise EdgeError(f"{path}: compiled for the Edge TPU but {e}; attach a Coral, or {hint}") from None
    if device.kind == "cpu":
        return path, None, "cpu requested"
    if device.kind == "edgetpu":
        try:
            delegate = load_edgetpu_delegate(device.selector)
        except EdgeError as e:
            raise EdgeError(f"{path}: --device edgetpu: {e}; or use --device cpu") from None
        if other.exists():
            return other, delegate, f"edgetpu requested; using the compiled {other.name}"
        log.warning("%s is not compiled for the Edge TPU (run edgetpu_compiler); it runs on the CPU", path.name)
        return path, None, "edgetpu requested but the model is a CPU model"
    if not other.exists():
        return path, None, "auto: CPU model, no compiled twin beside it"
    try:
        return other, load_edgetpu_delegate(device.selector), f"auto: Edge TPU found, using {other.name}"
    except EdgeError as e:
        return path, None, f"auto: {e}"


def open_interpreter(path: str | Path, device: str = "auto", threads: int = 2,
                     verify: Callable[[Path], bytes] | None = None) -> tuple[Any, Path, str, bytes | None]:  # fmt: skip
    """Create an interpreter for `path` on `device`: returns (interpreter, model path used, cpu|edgetpu, content).

    With `verify` (a function of the file to be used returning its bytes once they verify: a signed model,
    `edge.inference.signature.read_verified`), the interpreter runs those bytes (`content`), never the file
    again; without, it maps the file and `content` is None. Tensors are not allocated yet: the caller reads the
    op list first, then calls allocate_tensors().
    """
    p = Path(path)
    if not p.is_file():
        raise EdgeError(f"{p}: model file not found; check the path")
    if threads < 1:
        raise EdgeError(f"threads: must be at least 1, got {threads}")
    used, delegate, why = _choose(p, parse_device(device))
    content = verify(used) if verify is not None else None
    module = runtime_module()
    kind = "edgetpu" if delegate is not None else "cpu"
    source = {"model_path": str(used)} if content is None else {"model_content": content}
    try:
        with quiet_stderr():
            interpreter = module.Interpreter(
                **source,
                num_threads=threads,
                experimental_delegates=[delegate] if delegate is not None else None,
            )
    except ValueError as e:
        raise EdgeError(f"{used}: not a TFLite model ({_first_line(e)}); give a .tflite file") from None
    except RuntimeError as e:
        raise EdgeError(f"{used}: the runtime cannot load this model ({_first_line(e)})") from None
    log.info("model %s on %s, %d thread(s) (%s)%s", used.name, kind, threads, why, ", signature verified" if
             content is not None else "")  # fmt: skip
    return interpreter, used, kind, content


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
