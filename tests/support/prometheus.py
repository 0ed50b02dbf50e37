"""Test helper: a real Prometheus server (Debian's `prometheus`) on a free loopback port, with its own config and
storage directory, and a client for its HTTP API.

    with PrometheusServer(tmp_path, scrape_configs=[{...}]) as prom:
        prom.wait_for("edge_daemon_frames_classified_total > 0")
        prom.query("up")  # the `result` list of /api/v1/query

The process is always killed on exit; the test is skipped with a reason when `prometheus` is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.mosquitto import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def need_prometheus() -> None:
    """Skip the calling test when Prometheus is not installed."""
    if not Path(PROMETHEUS).exists():
        pytest.skip(f"{PROMETHEUS} not installed (apt-get install prometheus)")


def check_config(path: Path) -> str:
    """`promtool check config FILE`: its output; AssertionError when Prometheus would refuse the file."""
    need_prometheus()
    proc = subprocess.run([PROMTOOL, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


class PrometheusServer:
    """`prometheus` as a child process on 127.0.0.1:<free port>, scraping what `scrape_configs` says.

    Args:
        directory: where its config, storage and log go.
        scrape_configs: Prometheus `scrape_configs` entries (dicts, written as YAML).
        scrape_interval: the global default, e.g. "1s".
    """

    def __init__(self, directory: Path, scrape_configs: list[dict[str, Any]], scrape_interval: str = "1s") -> None:
        need_prometheus()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = directory / "prometheus.yml"
        document = {"global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
                    "scrape_configs": scrape_configs}  # fmt: skip
        self.config.write_text(yaml.safe_dump(document, sort_keys=False))
        self.log_path = directory / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={self.directory / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise AssertionError(f"prometheus not ready within {timeout} s:\n{self.log()}")

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path> and return its `data` (AssertionError unless the status is success)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (each item: `metric` labels and `value` [time, "string"])."""
        return self.api("query", query=expr)["result"]

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until an instant query returns something; its result."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.5)
        targets = self.api("targets")
        raise AssertionError(f"{expr!r} returned nothing within {timeout} s; targets: {targets}\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
