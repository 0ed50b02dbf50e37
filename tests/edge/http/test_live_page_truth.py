"""The live page never shows a stale truth (issue 27), in a real headless Chromium driven by selenium, against
the real daemon, mosquitto and an MJPEG camera: started without a camera the page finishes loading and says
"camera offline"; with the camera the picture runs and the label is in colour; the camera lost: "camera offline",
the picture and the label greyed (on the pixels too); the daemon stopped: "daemon unreachable", the badges grey;
the daemon restarted: the picture restarts by itself (new frames, no reload) and everything is current again.
The drift line shows the stream's drift state (issue 26).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.edge.conftest import write_config
from tests.edge.http.test_http_daemon import AUTH, DEV, TOKEN
from tests.support.browser import webdriver_chromium
from tests.support.http_clients import get
from tests.support.media import MjpegServer
from tests.support.mosquitto import free_port

DIM = "rgb(141, 151, 165)"  # --dim: the colour of what is not current


@pytest.fixture
def browser(tmp_path):
    driver = webdriver_chromium(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()


def until(driver, script: str, timeout: float = 20.0):
    """Wait until the page's `script` (a JS expression) is truthy; returns its value."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(f"return {script}"))
    except TimeoutException:
        raise AssertionError(f"{script}: never true; the browser's console: {driver.get_log('browser')[-5:]}") from None


def picture_brightness(driver) -> float:
    """The mean brightness of the picture's pixels in a screenshot."""
    import cv2
    from selenium.webdriver.common.by import By

    img = driver.find_element(By.ID, "live")
    shot = cv2.imdecode(np.frombuffer(driver.get_screenshot_as_png(), np.uint8), cv2.IMREAD_GRAYSCALE)
    r = img.rect
    box = shot[int(r["y"]) + 5 : int(r["y"] + r["height"]) - 5, int(r["x"]) + 5 : int(r["x"] + r["width"]) - 5]
    assert box.size, r
    return float(box.mean())


def config(tmp_path, broker, model, source: str):
    """The daemon's config with the page on a free port and a token; returns (config file, port)."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    port = free_port()
    cfg = write_config(tmp_path / "config.toml", {
        "camera": {"source": source, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, "timeout_s": 2.0},
        "model": {"path": str(model), "threads": 1, "watch": False},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "device_id": DEV},
        "smoothing": {"mode": "stable", "frames": 2, "heartbeat_s": 1.0},
        "http": {"listen": f"127.0.0.1:{port}", "token_file": "token"},
    })  # fmt: skip
    return cfg, port


def serving(port: int, timeout: float = 30.0) -> None:
    """Wait until the page's API answers (health is not needed: the camera may be away)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(port, "/api/state", headers=AUTH, timeout=2).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("the daemon's page never answered")


def test_the_live_page_says_what_is_not_current(
    mosquitto, daemon_factory, demo_model, fm_images, fm_labels, tmp_path, browser
) -> None:
    camera = MjpegServer(fm_images, fps=10)  # not started: the daemon starts without its camera
    cfg, port = config(tmp_path, mosquitto, demo_model, camera.url)
    d = daemon_factory(cfg)
    serving(port)
    try:
        browser.set_page_load_timeout(15)
        browser.get(f"http://127.0.0.1:{port}/#token={TOKEN}")  # returns once loaded: no stream keeps it loading
        assert browser.execute_script("return document.readyState") == "complete"
        until(browser, "document.getElementById('pstate').textContent === 'camera offline'")

        camera.start()
        until(browser, "document.getElementById('pstate').hidden && !document.getElementById('panel')"
                       ".classList.contains('notcurrent')")  # fmt: skip
        until(browser, "$('live').naturalWidth > 0")  # a frame decoded and shown
        label = until(browser, "document.getElementById('label').textContent")
        assert label in fm_labels
        assert browser.execute_script("return getComputedStyle(document.getElementById('label')).color") != DIM
        lit = picture_brightness(browser)
        drift = until(browser, "document.getElementById('drift').textContent !== '?' && "
                               "document.getElementById('drift').textContent")  # fmt: skip
        assert drift == "learning", drift  # the demo model carries its reference; 300 frames before judging

        camera.stop()  # the camera goes away
        until(browser, "document.getElementById('pstate').textContent === 'camera offline'")
        until(browser, "document.getElementById('panel').classList.contains('notcurrent')")
        assert browser.execute_script("return getComputedStyle(document.getElementById('label')).color") == DIM
        assert browser.execute_script("return document.getElementById('camera').textContent") == "offline"
        assert picture_brightness(browser) < lit * 0.6, "the frozen picture is not greyed"

        camera.start()
        until(browser, "document.getElementById('pstate').hidden")

        assert d.stop()[0] == 0  # the daemon stops
        until(browser, "document.getElementById('pstate').textContent === 'daemon unreachable'")
        until(browser, "document.getElementById('camera').className === 'pill unknown' && "
                       "document.getElementById('mqtt').className === 'pill unknown'")  # fmt: skip
        assert browser.execute_script("return getComputedStyle(document.getElementById('label')).color") == DIM
        stopped_at = browser.execute_script("return Date.now()")

        d = daemon_factory(cfg)  # the same daemon again: the page is not reloaded
        serving(port)
        until(browser, f"frameAt > {stopped_at} && document.getElementById('pstate').hidden", timeout=30)
        until(browser, "!document.getElementById('panel').classList.contains('notcurrent')")
        assert picture_brightness(browser) > lit * 0.8  # a live picture again, in colour
        assert browser.execute_script("return document.getElementById('mqtt').textContent") == "connected"
        assert d.stop()[0] == 0
    finally:
        camera.stop()
