"""Test helper: a real headless Chromium (Debian's `chromium`) that loads a page and takes a screenshot, and OCR.

`screenshot(url, out)` runs one `chromium --headless --screenshot` with a fresh profile directory and the flags
known to work on this machine (no sandbox as root, no GPU, no QUIC, no background networking), letting the page
run for `budget_ms` of virtual time first (its scripts poll, its `<img>` streams). `ocr_words(png)` reads the
words in an image with Debian's `tesseract`, so a test can check what a person would read on the pixels.
Both skip the test with a reason when the program is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TESSERACT = shutil.which("tesseract") or "/usr/bin/tesseract"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio")  # fmt: skip


def _need(program: str, package: str) -> None:
    if not Path(program).exists():
        pytest.skip(f"{program} not installed (apt-get install {package})")


def screenshot(url: str, out: Path, *, size: tuple[int, int] = (1280, 800), budget_ms: int = 4000,
               timeout: float = 90.0) -> Path:  # fmt: skip
    """Load `url` in headless Chromium and write a PNG screenshot of the window to `out`.

    Raises:
        AssertionError: Chromium failed or wrote no screenshot (its output is in the message).
    """
    _need(CHROMIUM, "chromium")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        argv = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", url]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert out.exists() and out.stat().st_size > 0, f"chromium wrote no screenshot (exit {proc.returncode}):\n" + (
        proc.stderr[-3000:]
    )
    return out


def ocr_words(png: Path) -> list[str]:
    """The words tesseract reads in an image, in reading order."""
    _need(TESSERACT, "tesseract-ocr")
    proc = subprocess.run([TESSERACT, str(png), "-", "--psm", "11"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def webdriver_chromium(profile: Path, size: tuple[int, int] = (1280, 800)):
    """A selenium WebDriver on Debian's headless chromium through chromium-driver (skips without them)."""
    _need(CHROMIUM, "chromium")
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    _need(driver_path, "chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--window-size={size[0]},{size[1]}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(driver_path))


def page_screenshot(url: str, out: Path, *, ready: str, size: tuple[int, int] = (1280, 800),
                    timeout: float = 30.0) -> Path:  # fmt: skip
    """Load `url` in a selenium-driven headless Chromium, wait until the JS expression `ready` is true (pages that
    stream: `screenshot()`'s virtual time never lets a fetch stream run), and write a PNG screenshot to `out`."""
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        driver = webdriver_chromium(Path(profile), size)
        try:
            driver.get(url)
            WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(f"return {ready}"))
            driver.get_screenshot_as_file(str(out))
        finally:
            driver.quit()
    return out
