"""The daemon on an emulated Raspberry Pi OS bookworm 64-bit userland (see tests/arm64/harness.py).

Real aarch64 wheels in a Debian bookworm arm64 sysroot under qemu-aarch64-static (cortex-a72), one emulated
process: import, `edge-daemon info`/`classify` with the right top-1, then `edge-daemon run` on a video file
publishing to a real mosquitto until SIGTERM. What emulation cannot show (camera, Coral, speed) is listed
in docs/testing.md ("Needs a real board"). Needs Debian's arm64 packages and PyPI on first run (cached after).
"""

from __future__ import annotations

import pytest

from tests.arm64 import harness
from tests.conformance import lite0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        harness.qemu() is None,
        reason="qemu-aarch64-static not installed (apt-get install qemu-user-static): aarch64 emulation not possible",
    ),
]


def test_daemon_on_emulated_raspberry_pi_os():
    if harness.published_case() is None and not harness.DEMO_MODEL.exists():
        pytest.skip(f"no model to run: {harness.SHARED} absent and {harness.DEMO_MODEL} not committed")
    report = harness.run(frames=5)
    for name, seconds in report.timings.items():
        print(f"{name:<60} {seconds:8.2f}")
    print("\n".join(report.notes))
    assert not report.failures, "\n".join(report.failures)
    # The run really happened: these are the guest's own result lines, not defaults.
    assert [s["step"] for s in report.steps][:1] == ["import"]
    assert report.step("run-end"), "the daemon's run step did not finish"
    if lite0.unavailable() is None and (harness.SHARED / "coral/parrot.jpg").exists():
        assert any("efficientnet_lite0" in s["model"] for s in report.step("classify")), "Lite0 was not classified"
