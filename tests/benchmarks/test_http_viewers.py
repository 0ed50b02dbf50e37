"""`benchmarks.http_viewers` in smoke mode (seconds): every scenario runs end to end (the real daemon, a real
headless Chromium on the page, a real Prometheus scraping, the misbehaving clients) and gives positive figures.
No speed is asserted here: the figures live in BENCHMARKS.md.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.http_viewers import SCENARIOS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_viewer_benchmark_runs(tmp_path: Path) -> None:
    for program, package in (("mosquitto", "mosquitto"), ("chromium", "chromium"), ("prometheus", "prometheus")):
        if shutil.which(program) is None and not Path(f"/usr/sbin/{program}").exists():
            pytest.skip(f"{program} not installed (apt-get install {package})")
    out = tmp_path / "viewers.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.http_viewers", "--smoke", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    runs = result["runs"]["camera"]
    assert list(runs) == list(SCENARIOS)
    for scenario, (fig,) in runs.items():
        for key in ("fps", "daemon_cores", "rss_mb"):
            assert math.isfinite(fig[key]) and fig[key] > 0, (scenario, key, fig)
    assert runs["page viewer"][0]["viewer_cores"] > 0  # Chromium was really on the page
    assert "| camera | page viewer |" in proc.stdout
