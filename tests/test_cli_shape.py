"""The three command lines have one shape (issue 10): `prog: error: <one line>` on stderr for every expected
failure, exit 2 for usage, config and input errors, 1 for runtime failures, the exit statuses in `--help`.

One table over all three, run as a user runs them (the console scripts from the venv).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli.demo import DEMO_MODEL
from tests.support.mosquitto import free_port

REPO = Path(__file__).resolve().parents[1]
LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING) [\w.]+: ")  # our own log lines, the same format in all three


def command(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed in this environment (tests/run.sh installs the project into .venv)")
    return found


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("shape")
    (d / "bad.toml").write_text("[mqtt]\nhots = 1\n")
    port = free_port()
    (d / "unreachable.toml").write_text(f'[model]\npath = "{DEMO_MODEL}"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n')
    (d / "inventory.ini").write_text("[edge]\nnowhere ansible_host=127.0.0.1 ansible_port=1 ansible_user=x\n")
    (d / "data").mkdir()
    return {"dir": str(d), **{p.stem: str(p) for p in d.iterdir()}}


CASES = [
    # (program, arguments, exit status, expected in the error line)
    ("edge-daemon", ["check-config", "--no-such-flag"], 2, "unrecognized arguments: --no-such-flag"),
    ("edge-train", ["evaluate", "--model", "m", "d", "--no-such-flag"], 2, "unrecognized arguments: --no-such-flag"),
    ("edge-deploy", ["status", "--hosts", "i", "--no-such-flag"], 2, "unrecognized arguments: --no-such-flag"),
    ("edge-daemon", ["no-such-command"], 2, "invalid choice: 'no-such-command'"),
    ("edge-train", ["no-such-command"], 2, "invalid choice: 'no-such-command'"),
    ("edge-deploy", ["no-such-command"], 2, "invalid choice: 'no-such-command'"),
    ("edge-daemon", ["--log-level", "loud", "info", "--model", "x"], 2, "--log-level: 'loud' is not a log level"),
    ("edge-train", ["--log-level", "loud", "evaluate", "--model", "x", "y"], 2, "'loud' is not a log level"),
    ("edge-deploy", ["--log-level", "loud", "status", "--hosts", "x"], 2, "'loud' is not a log level"),
    ("edge-daemon", ["check-config", "{bad}"], 2, "mqtt.hots: unknown key"),
    ("edge-daemon", ["info", "--model", "{dir}/none.tflite"], 2, "none.tflite: model file not found"),
    ("edge-train", ["evaluate", "--model", "{dir}/none.tflite", "{data}"], 2, "none.tflite"),
    ("edge-deploy", ["model", "{dir}/none.tflite", "--hosts", "{inventory}"], 2, "none.tflite"),
    ("edge-daemon", ["health", "--config", "{unreachable}", "--timeout", "2"], 1, "unhealthy"),
    ("edge-deploy", ["status", "--hosts", "{inventory}"], 1, "1 of 1 device(s) not fine: nowhere"),
]  # fmt: skip


@pytest.mark.parametrize(("prog", "args", "code", "expected"), CASES, ids=[f"{c[0]} {c[1][0]}" for c in CASES])
def test_every_error_has_one_shape(prog, args, code, expected, files) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    r = subprocess.run([command(prog), *(a.format(**files) for a in args)], capture_output=True, text=True,
                       env=env, timeout=300, cwd=files["dir"])  # fmt: skip
    errors = [line for line in r.stderr.splitlines() if not LOG_LINE.match(line) and line.strip()]
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert [line for line in errors if line.startswith(f"{prog}: error: ")] == errors[-1:], r.stderr[-2000:]
    assert len([e for e in errors if "error:" in e]) == 1 and expected in errors[-1], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("prog", ["edge-daemon", "edge-train", "edge-deploy"])
def test_help_documents_the_exit_statuses(prog) -> None:
    out = subprocess.run([command(prog), "--help"], capture_output=True, text=True, timeout=120).stdout
    assert "exit status: 0 success; 1 runtime failure" in " ".join(out.split()), out
