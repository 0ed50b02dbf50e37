"""The import rules of docs/ARCHITECTURE.md, enforced on the source (AST) of every module, recursively.

- `edge/` is its parts (subpackages) and three shared modules at its root; each part may import only the parts
  below it (`ALLOWED`): `config` no runtime part, `inference` neither `mqtt` nor `http`, nothing imports `cli`;
- `edge` never imports `trainer`, `deploy` or TensorFlow/Keras/PyTorch (it installs on a Pi without them);
- pure modules import no I/O: no project I/O module, no socket/process/device/network library;
- the parts never load the config: only the wiring (`service.daemon`) and `cli` import the loader, the schema,
  the checks or the docs at run time (type hints under `TYPE_CHECKING` only);
- no import circle in `edge`, `trainer`, `deploy` or `benchmarks` (deferred imports count);
- no module over ~300 lines; tests mirror the parts.

Each rule is a function of a source tree, so `test_the_rules_catch_*` prove them on a tree with a broken rule.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "trainer", "deploy", "benchmarks")
ROOT_MODULES = {"errors", "files", "ratelog", "bounded", "names"}  # used across parts; at most 5 at edge/'s root
# The parts and what each may import at run time (besides itself and the root modules): the floors of the house.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "frames": set(),
    "sources": {"config", "frames"},
    "inference": {"config", "frames"},
    "mqtt": {"config", "inference"},
    "collect": {"config", "frames", "inference", "mqtt"},
    "http": {"config", "frames", "inference", "mqtt"},
    "service": {"config", "frames", "sources", "inference", "mqtt", "collect", "http"},
    "cli": {"config", "frames", "sources", "inference", "mqtt", "collect", "http", "service"},
}
PURE = {"errors", "frames.frame", "frames.mjpeg", "frames.decode", "frames.regions", "frames.similar",
        "sources.source", "config.schema", "config.fields", "config.urls", "config.devices", "inference.preprocess",
        "inference.postprocess", "inference.smoothing", "inference.stats", "mqtt.contract", "mqtt.discovery",
        "mqtt.outbox", "collect.policy", "inference.reference", "inference.drift", "service.model_watch",
        "http.state", "http.overlay"}  # fmt: skip
CONFIG_MODULES = {"config.load", "config.schema", "config.checks", "config.docs"}  # the loader and what it is made of
WIRING = {"service.daemon"}  # with `cli.*` and `config.*`: may load and read the config at run time
# Outside libraries a pure module may use: no I/O among them (cv2 only for preprocess's resize/colour).
PURE_EXTERNAL = {"__future__", "dataclasses", "typing", "collections", "math", "re", "json", "datetime", "enum",
                 "functools", "itertools", "threading", "numpy", "cv2", "urllib"}  # fmt: skip
NEVER_IN_EDGE = ("trainer", "deploy", "tensorflow", "keras", "torch", "tf_keras")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_name(path: Path, root: Path) -> str:
    """`edge/config/load.py` -> `edge.config.load`; a package's `__init__.py` -> the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path, name: str = "") -> set[str]:
    """Every module a file imports at run time (anywhere in it, also inside functions), `if TYPE_CHECKING:` blocks
    left out. `name` (the file's own dotted name) resolves relative imports; `from pkg import mod` names
    `pkg.mod` as well as `pkg`, so an import of a module through its package is seen."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if not alias.name.startswith("__"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {m for m in found if m}


def modules(root: Path, package: str = "edge") -> dict[str, Path]:
    """Every module of a package, recursively, by dotted name."""
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def project_imports(root: Path, package: str = "edge") -> dict[str, set[str]]:
    """Each module's run-time imports of the package's own modules (names that are no module are dropped)."""
    mods = modules(root, package)
    return {name: {m for m in runtime_imports(path, name) if m in mods and m != name} for name, path in mods.items()}


def part_of(module: str) -> str:
    """`edge.config.load` -> `config`; a root module (`edge.errors`) -> its own name."""
    return module.split(".")[1] if module.count(".") else ""


def layering_faults(root: Path) -> list[str]:
    """Imports from one part of `edge` to another that `ALLOWED` does not allow; unknown parts; a full root."""
    faults = []
    mods = modules(root)
    for sub in sorted({part_of(m) for m in mods if m.count(".") >= 2} - set(ALLOWED)):
        faults.append(f"edge/{sub}/ is no known part: add it to ALLOWED and docs/ARCHITECTURE.md")
    at_root = sorted(m for m, path in mods.items() if path.parent == root / "edge" and path.name != "__init__.py")
    if len(at_root) > 5:
        faults.append(f"edge/ holds {len(at_root)} modules at its root (at most 5): {', '.join(at_root)}")
    for name, deps in project_imports(root).items():
        mine = part_of(name)
        for dep in deps:
            theirs = part_of(dep)
            if dep == "edge" or theirs == mine or (dep.count(".") == 1 and theirs in ROOT_MODULES):
                continue
            if mine in ROOT_MODULES and dep != "edge":
                faults.append(f"{name} (shared root module) imports {dep}")
            elif mine in ALLOWED and theirs not in ALLOWED[mine]:
                faults.append(f"{name} imports {dep}: `{mine}` may not import `{theirs}`")
    return faults


def purity_faults(root: Path) -> list[str]:
    faults = []
    mods = modules(root)
    for short in sorted(PURE):
        name = f"edge.{short}"
        imports = runtime_imports(mods[name], name)
        impure = {m for m in imports if m in mods and m != name and m.removeprefix("edge.") not in PURE
                  and mods[m].name != "__init__.py"}  # fmt: skip
        outside = {m.split(".")[0] for m in imports if m.split(".")[0] != "edge"} - PURE_EXTERNAL
        if impure or outside or "urllib.request" in imports:
            faults.append(f"{name} (pure) imports {sorted(impure | outside)}")
    return faults


def config_faults(root: Path) -> list[str]:
    """Parts that load or read the config at run time instead of taking their section as an argument."""
    faults = []
    for name, deps in project_imports(root).items():
        short = name.removeprefix("edge.")
        if part_of(name) in ("config", "cli") or short in WIRING:
            continue
        if taken := {d for d in deps if d.removeprefix("edge.") in CONFIG_MODULES}:
            faults.append(f"{name} imports {sorted(taken)} at run time; take the section as an argument instead")
    return faults


def circles(root: Path, package: str) -> list[list[str]]:
    """The import circles among a package's modules (strongly connected components of two or more)."""
    graph = project_imports(root, package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


# --- the rules on this tree ---------------------------------------------------------------------------------------


def test_edge_is_its_parts() -> None:
    assert layering_faults(REPO) == []


def test_edge_never_imports_the_trainer_deploy_or_tensorflow() -> None:
    bad = {name: sorted(m for m in runtime_imports(path, name) if m.split(".")[0] in NEVER_IN_EDGE)
           for name, path in modules(REPO).items()}  # fmt: skip
    assert {k: v for k, v in bad.items() if v} == {}


def test_pure_modules_import_no_io() -> None:
    assert purity_faults(REPO) == []


def test_parts_never_load_the_config() -> None:
    assert config_faults(REPO) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle(package: str) -> None:
    assert circles(REPO, package) == []


def test_every_part_and_module_is_on_the_map() -> None:
    """docs/ARCHITECTURE.md has a line per part (`edge/<part>/`) and names every module of it."""
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    for part in ALLOWED:
        assert f"`edge/{part}/`" in doc, f"edge/{part}/ is missing from docs/ARCHITECTURE.md's map"
    for path in modules(REPO).values():
        if path.name in ("__init__.py", "__main__.py"):
            continue
        assert f"`{path.stem}`" in doc, f"{path.relative_to(REPO)} is missing from docs/ARCHITECTURE.md"


def test_tests_mirror_the_parts() -> None:
    """tests/edge/<part>/ for each part, and no test folder for a part that does not exist."""
    folders = {p.name for p in (REPO / "tests" / "edge").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= set(ALLOWED), f"tests/edge/ folders without a part: {folders - set(ALLOWED)}"


def test_the_parts_load_without_the_config() -> None:
    parts = "edge.sources.camera, edge.mqtt.publisher, edge.inference.model, edge.http.server, edge.collect.collector"
    loaded = f"sorted(m for m in sys.modules if m.removeprefix('edge.') in {sorted(CONFIG_MODULES)})"
    code = f"import sys, {parts}; print({loaded})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_no_module_over_300_lines() -> None:
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            assert len(path.read_text().splitlines()) <= 310, f"{path.relative_to(REPO)} is over ~300 lines: split it"


# --- the rules can fail -------------------------------------------------------------------------------------------


def test_the_reader_sees_imports_anywhere(tmp_path: Path) -> None:
    """Imports in functions count, TYPE_CHECKING blocks do not, relative imports resolve to the module."""
    f = tmp_path / "m.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import edge.config.load\n"
                 "def g():\n    from ..sources import camera\n    import tensorflow\n")  # fmt: skip
    seen = {"typing", "typing.TYPE_CHECKING", "edge.sources", "edge.sources.camera", "tensorflow"}
    assert runtime_imports(f, "edge.inference.m") == seen


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of this tree's packages, to break a rule in."""
    for package in ("edge", "benchmarks"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("assets", "__pycache__"))
    return tmp_path


def test_the_rules_catch_a_forbidden_import(tree: Path) -> None:
    assert layering_faults(tree) == [] and purity_faults(tree) == [] and config_faults(tree) == []
    (tree / "edge" / "inference" / "leak.py").write_text('"""x"""\n\ndef f():\n    from edge.mqtt import contract\n')
    (tree / "edge" / "config" / "back.py").write_text('"""x"""\nimport edge.service.streams\n')
    (tree / "edge" / "mqtt" / "up.py").write_text('"""x"""\nfrom edge.cli.shape import run_main\n')
    (tree / "edge" / "collect" / "loads.py").write_text('"""x"""\nfrom edge.config.load import load_config\n')
    (tree / "edge" / "frames" / "mjpeg.py").write_text('"""x"""\nimport socket\n')
    (tree / "edge" / "video").mkdir()
    (tree / "edge" / "video" / "x.py").write_text('"""x"""\n')
    faults = layering_faults(tree)
    assert any("edge.inference.leak imports edge.mqtt" in f for f in faults), faults
    assert any("edge.config.back imports edge.service.streams" in f for f in faults), faults
    assert any("edge.mqtt.up imports edge.cli.shape" in f for f in faults), faults
    assert any("edge/video/ is no known part" in f for f in faults), faults
    assert any("edge.collect.loads" in f for f in config_faults(tree))
    assert any("edge.frames.mjpeg (pure) imports ['socket']" in f for f in purity_faults(tree))


def test_the_rules_catch_a_circle_and_a_full_root(tree: Path) -> None:
    assert circles(tree, "edge") == []
    (tree / "edge" / "frames" / "a.py").write_text('"""x"""\nfrom edge.frames import b\n')
    (tree / "edge" / "frames" / "b.py").write_text('"""x"""\n\ndef f():\n    from edge.frames.a import g\n')
    assert circles(tree, "edge") == [["edge.frames.a", "edge.frames.b"]]
    for n in range(3):
        (tree / "edge" / f"extra{n}.py").write_text('"""x"""\n')
    assert any("modules at its root" in f for f in layering_faults(tree))
