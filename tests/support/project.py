"""The project as a user gets it: its files as git sees them, and its wheel built from a clean copy of them.

Built from a copy, never in place: setuptools keeps `build/` in the source tree and packs what it holds, so a
module removed or moved since an earlier build would ride along in the wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def project_files() -> list[str]:
    """The working tree's files as git sees them (tracked and new, ignored ones left out)."""
    proc = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                          capture_output=True, check=True, timeout=60)  # fmt: skip
    return [name for name in proc.stdout.decode().split("\0") if name and (REPO / name).is_file()]


def clean_copy(dest: Path) -> Path:
    """Copy the project's files but the tests into `dest` (what a wheel or sdist is built from)."""
    for name in project_files():
        if not name.startswith(("tests/", ".ci/")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def build_project_wheel(out: Path, timeout: float = 300) -> Path:
    """edge_daemon-*.whl in `out`, built from a clean copy in pip's isolated build environment (the project's own
    build requirements, setuptools>=68 and wheel, not the test venv's: Debian's venv gives setuptools 66)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edge-src-") as tmp:
        src = clean_copy(Path(tmp))
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                               "-w", str(out), str(src)], capture_output=True, text=True, timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"building the project wheel failed:\n{proc.stdout}{proc.stderr}")
    return next(out.glob("edge_daemon-*.whl"))
