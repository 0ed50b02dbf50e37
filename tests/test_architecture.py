"""The import rules of docs/ARCHITECTURE.md, enforced on the source (AST) and at run time.

- `edge` never imports `trainer`, `deploy` or TensorFlow/Keras/PyTorch (it installs on a Pi without them);
- pure modules import no I/O: no project I/O module, no socket/process/device/network library;
- the config layer imports no consumer of the config;
- the parts (camera, publisher, model ...) never import the config at run time: the service hands them their
  section (type hints under `TYPE_CHECKING` only); only the wiring and the commands load a config file.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EDGE = REPO / "edge"

PURE = {"errors", "config_schema", "urls", "devices", "preprocess", "postprocess", "smoothing", "mqtt_contract",
        "ha_discovery", "stats", "model_watch", "outbox", "collect_policy", "mjpeg", "decode", "regions", "http_state",
        "http_overlay"}  # fmt: skip
CONFIG_LAYER = {"config_schema", "config_checks", "config", "config_docs", "tls", "urls", "devices", "errors",
                "source_commands", "http_listen"}  # fmt: skip
WIRING = {"service", "cli", "cli_main", "commands", "health", "demo", "forget"}  # may load and read the config
# Outside libraries a pure module may use: no I/O among them (cv2 only for preprocess's resize/colour).
PURE_EXTERNAL = {"__future__", "dataclasses", "typing", "collections", "math", "re", "json", "datetime", "enum",
                 "functools", "itertools", "threading", "numpy", "cv2", "urllib"}  # fmt: skip
NEVER_IN_EDGE = ("trainer", "deploy", "tensorflow", "keras", "torch", "tf_keras")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path) -> set[str]:
    """Every module a file imports at run time (anywhere in it), `if TYPE_CHECKING:` blocks left out."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or "" if node.level == 0 else f"edge.{node.module}" if node.module else "edge"
            if base != "edge":
                found.add(base)
            if base == "edge":  # `from edge import camera` / `from . import camera`: modules by name
                found.update(f"edge.{alias.name}" for alias in node.names if not alias.name.startswith("__"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


MODULES = sorted(p.stem for p in EDGE.glob("*.py") if p.stem != "__init__")


def _edge_deps(name: str) -> set[str]:
    return {m.split(".")[1] for m in runtime_imports(EDGE / f"{name}.py") if m.startswith("edge.")}


def test_every_module_is_placed() -> None:
    """A new module must be put in a category here and in docs/ARCHITECTURE.md."""
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    for name in MODULES:
        assert f"`{name}`" in doc or f"`{name}.py`" in doc, f"edge/{name}.py is missing from docs/ARCHITECTURE.md"


@pytest.mark.parametrize("name", MODULES)
def test_edge_never_imports_the_trainer_deploy_or_tensorflow(name: str) -> None:
    bad = {m for m in runtime_imports(EDGE / f"{name}.py") if m.split(".")[0] in NEVER_IN_EDGE}
    assert not bad, f"edge/{name}.py imports {bad}"


@pytest.mark.parametrize("name", sorted(PURE))
def test_pure_modules_import_no_io(name: str) -> None:
    imports = runtime_imports(EDGE / f"{name}.py")
    edge_deps = {m.split(".")[1] for m in imports if m.startswith("edge.") and m != "edge"}
    assert edge_deps <= PURE, f"edge/{name}.py (pure) imports I/O modules {edge_deps - PURE}"
    outside = {m.split(".")[0] for m in imports if not m.startswith("edge")}
    assert outside <= PURE_EXTERNAL, f"edge/{name}.py (pure) imports {outside - PURE_EXTERNAL}"
    assert "urllib.request" not in imports


@pytest.mark.parametrize("name", sorted(CONFIG_LAYER))
def test_config_layer_imports_no_consumer(name: str) -> None:
    deps = _edge_deps(name) - {"__init__"}
    assert deps <= CONFIG_LAYER, f"edge/{name}.py (config layer) imports consumers {deps - CONFIG_LAYER}"


@pytest.mark.parametrize("name", sorted(set(MODULES) - CONFIG_LAYER - WIRING))
def test_parts_never_import_the_config(name: str) -> None:
    deps = _edge_deps(name) & {"config", "config_schema", "config_checks", "config_docs"}
    assert not deps, f"edge/{name}.py imports {deps} at run time; take the section as an argument instead"


def test_camera_and_publisher_load_without_the_config() -> None:
    code = ("import sys, edge.camera, edge.publisher, edge.model, edge.smoothing; "
            "print(sorted(m for m in sys.modules if m.startswith('edge.config')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_no_module_over_300_lines() -> None:
    for path in [*EDGE.glob("*.py"), *(REPO / "trainer").glob("*.py"), *(REPO / "deploy").glob("*.py")]:
        assert len(path.read_text().splitlines()) <= 310, f"{path.relative_to(REPO)} is over ~300 lines: split it"


def test_the_rules_can_fail(tmp_path: Path) -> None:
    """The AST reader sees imports anywhere (also in functions), and skips only TYPE_CHECKING blocks."""
    f = tmp_path / "m.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import edge.config\n"
                 "def g():\n    from . import camera\n    import tensorflow\n")  # fmt: skip
    assert runtime_imports(f) == {"typing", "edge.camera", "tensorflow"}
