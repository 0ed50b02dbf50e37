"""Run a module's `main` in a child process and read the child's own peak memory (VmHWM, /proc/self/status).

The child imports the module first and reads its VmHWM (the baseline: interpreter plus imports), then calls
its `main(args)` (as `python -m module args...` does), then reads VmHWM again. Both figures are written by the
child itself, so the growth is what the run under test added, not the parent's or the harness's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_CHILD = r"""
import importlib, json, sys
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
out, module, function, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
call = getattr(importlib.import_module(module), function)
from edge.errors import EdgeError
base = hwm()
code = 0
try:
    code = call(args) if function == "main" else (print(type(call(*args)).__name__) and 0)
except EdgeError as e:  # a library function's expected failure: printed as a CLI would
    print(f"error: {e}", file=sys.stderr)
    code = 2
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
finally:
    with open(out, "w") as f:
        json.dump({"baseline": base, "peak": hwm()}, f)
sys.exit(code)
"""


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    baseline: int  # bytes: VmHWM after imports
    peak: int  # bytes: VmHWM at the end

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def run_measured(module: str, *args: str, tmp: Path, cwd: Path | None = None, timeout: float = 120,
                 function: str = "main") -> Measured:
    """`python -m module args` in a child (or `module.function(*args)`, an `EdgeError` printed as `error: ...`
    with status 2), with the child's own baseline and peak VmHWM."""
    out = tmp / f"hwm-{os.getpid()}-{module}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    r = subprocess.run([sys.executable, "-c", _CHILD, str(out), module, function, *args], capture_output=True,
                       text=True, cwd=cwd, env=env, timeout=timeout, check=False)  # fmt: skip
    figures = json.loads(out.read_text())
    return Measured(r.returncode, r.stdout, r.stderr, figures["baseline"], figures["peak"])
