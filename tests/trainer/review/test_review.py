"""`edge-train review`: the inbox a device's collector wrote, relabelled through the real page in a real browser.

The inbox is written by the daemon's own frame store (`edge.collect.store.FrameStore`) with sidecars made from
the bundled demo model's real predictions on the demo clip's frames, plus `collected_from` as `edge-deploy
collect` adds it. The page is driven in Debian's headless Chromium through chromium-driver and selenium;
the server's refusals (other sites, path traversal, other methods) are checked with plain HTTP requests.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.collect.store import FrameStore, folder_name
from edge.inference.model import load_model
from tests.support.browser import FLAGS
from tests.support.media import read_frames
from trainer.review import inbox as box
from trainer.review.server import ReviewServer

ASSETS = Path(__file__).resolve().parents[3] / "edge" / "assets"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def camera_frame(frame: np.ndarray, seed: int, mirror: bool = False, quality: int | None = None) -> np.ndarray:
    """A frame as a camera sends it again: its own sensor noise (seeded), mirrored, or re-encoded as a JPEG."""
    noise = np.random.default_rng(seed).normal(0, 3, frame.shape)
    out = np.clip(frame.astype(np.float64) + noise, 0, 255).astype(np.uint8)
    out = np.ascontiguousarray(out[:, ::-1]) if mirror else out
    if quality is not None:
        out = cv2.imdecode(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)
    return out


def make_inbox(root: Path, per_segment: int = 2, segments: tuple[int, ...] = (0, 1, 4), still: bool = False) -> Path:
    """Real collected frames: demo clip frames, classified by the demo model, written by the device's writer.

    The clip holds one picture per segment, so its frames of a segment are the same picture: each frame gets its
    own camera noise and every second one is mirrored, so that no two are near-duplicates (the review page would
    show them as one card; up to 2 per segment). `still`: the frames of a segment are the near-duplicates a
    camera watching a still scene sends: its first frame with fresh noise each time, re-encoded as a JPEG.
    """
    timeline = json.loads((ASSETS / "demo_clip.json").read_text())["segments"]
    frames = read_frames(ASSETS / "demo_clip.avi")
    store = FrameStore(root, max_bytes=10**8, min_free_bytes=0, queue_size=64).start()
    with load_model(ASSETS / "demo_model.tflite", device="cpu") as clf:
        for s in segments:
            for k in range(per_segment):
                n = timeline[s]["start_frame"] + (k if still else 3 * k)
                first = frames[timeline[s]["start_frame"]]
                frame = camera_frame(first, n, quality=75) if still else camera_frame(frames[n], n, mirror=k % 2 == 1)
                result = clf.classify(frame, 3)
                scores = clf.scores(frame)
                top = result.top
                sidecar = {"label": top.label, "index": top.index, "score": round(top.score, 4),
                           "top_k": [{"index": p.index, "label": p.label, "score": round(p.score, 4)}
                                     for p in result.predictions],
                           "scores": [round(float(v), 4) for v in scores], "model": "demo_model.tflite",
                           "device": "cam1", "region": None, "reason": ["below_score"],
                           "captured_at": f"2025-01-01T00:00:{n % 60:02d}Z", "frame": n,
                           "collected_from": "cam1", "collected_at": "2025-01-02T00:00:00Z"}  # fmt: skip
                assert store.submit(frame, sidecar, f"20250101T0000{n:04d}_cam1_frame")
    store.close(timeout=10)
    (root / ".edge-collect-index").write_text("{}")  # what edge-deploy collect keeps beside the frames
    return root


def inbox_ids(root: Path) -> list[str]:
    return sorted(f"{p.parent.name}/{p.name}" for p in root.glob("*/*.jpg"))


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    inbox = make_inbox(tmp_path / "inbox")
    data = tmp_path / "data"
    for name in ("Bag", "Coat"):
        (data / name).mkdir(parents=True)
        shutil.copy(next(inbox.glob("*/*.jpg")), data / name / "existing.jpg")
    return inbox, data


# -- the browser ------------------------------------------------------------------------------------------------


@contextmanager
def _review(inbox: Path, data: Path, images: int) -> Iterator[str]:
    """`edge-train review INBOX --dataset DATA --port 0` as a user starts it; yields the URL it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "trainer.cli", "review", str(inbox), "--dataset", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline()
        found = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        assert f"reviewing {images} image(s)" in line
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def review_cli(places: tuple[Path, Path]) -> Iterator[tuple[str, Path, Path]]:
    """The review page of `places`: (its URL, the inbox, the dataset)."""
    with _review(*places, images=6) as url:
        yield url, *places


@pytest.fixture
def still(tmp_path: Path) -> tuple[Path, Path]:
    """An inbox of two still scenes, five near-duplicate frames each, and a dataset with the class Coat."""
    inbox = make_inbox(tmp_path / "still", per_segment=5, segments=(0, 1), still=True)
    (tmp_path / "still-data" / "Coat").mkdir(parents=True)
    return inbox, tmp_path / "still-data"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Debian's chromium, headless, through chromium-driver (tests/run.sh installs both)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromium-driver are not installed (tests/run.sh installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: object, condition: object, timeout: float = 15) -> object:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _cards(driver: object) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, ".card")


def test_a_class_name_off_by_case_is_asked_before_it_is_created(review_cli: tuple[str, Path, Path], browser) -> None:
    """`coat` for the class `Coat` (issue 27): the page asks; cancelled, nothing moves; the existing class is
    offered. A confirmed new name is created. No dialog for an exact name."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    url, inbox, data = review_cli
    browser.get(url)
    _wait(browser, lambda d: len(_cards(d)) == 6)
    _cards(browser)[0].click()
    browser.find_element(By.ID, "class-name").send_keys("coat")
    browser.find_element(By.ID, "assign").click()
    dialog = _wait(browser, ec.alert_is_present())
    assert '"Coat"' in dialog.text and '"coat"' in dialog.text
    dialog.dismiss()
    _wait(browser, lambda d: "there is a class Coat" in d.find_element(By.ID, "status").text)
    assert len(_cards(browser)) == 6 and not (data / "coat").exists() and len(inbox_ids(inbox)) == 6

    browser.find_element(By.ID, "class-name").clear()
    browser.find_element(By.ID, "class-name").send_keys("Bags")  # one edit from Bag: asked too; confirmed
    browser.find_element(By.ID, "assign").click()
    dialog = _wait(browser, ec.alert_is_present())
    assert '"Bag"' in dialog.text
    dialog.accept()
    _wait(browser, lambda d: len(_cards(d)) == 5)
    assert "1 image(s) moved to Bags" in browser.find_element(By.ID, "status").text
    assert len(list((data / "Bags").glob("*.jpg"))) == 1

    _cards(browser)[0].click()
    browser.find_element(By.ID, "class-name").clear()
    browser.find_element(By.ID, "class-name").send_keys("Coat")  # an existing class: no question
    browser.find_element(By.ID, "assign").click()
    _wait(browser, lambda d: len(_cards(d)) == 4)
    assert not ec.alert_is_present()(browser)


def test_select_assign_discard_in_a_real_browser(review_cli: tuple[str, Path, Path], browser) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, inbox, data = review_cli
    before = inbox_ids(inbox)
    assert len(before) == 6
    browser.get(url)
    _wait(browser, lambda d: len(_cards(d)) == 6)
    groups = [g.get_attribute("data-group") for g in browser.find_elements(By.CSS_SELECTOR, ".group")]
    assert groups == sorted({i.split("/")[0] for i in before})
    first = _cards(browser)[0]
    sidecar = json.loads((inbox / first.get_attribute("data-id")).with_suffix(".json").read_text())
    caption = first.find_element(By.TAG_NAME, "figcaption").text
    assert sidecar["label"] in caption and f"{100 * sidecar['score']:.1f} %" in caption
    assert sidecar["top_k"][1]["label"] in first.get_attribute("title")  # top-k on hover
    assert browser.execute_script("return arguments[0].naturalWidth", first.find_element(By.TAG_NAME, "img")) > 0

    # click one, shift-click the fourth: a range of four, across groups
    cards = _cards(browser)
    cards[0].click()
    ActionChains(browser).key_down(Keys.SHIFT).click(cards[3]).key_up(Keys.SHIFT).perform()
    chosen = [c.get_attribute("data-id") for c in cards[:4]]
    assert browser.find_element(By.ID, "selected-count").text == "4 selected"
    assert [c.get_attribute("data-id") for c in _cards(browser) if "selected" in c.get_attribute("class")] == chosen
    cards[1].click()  # and one out again
    chosen.pop(1)
    browser.find_element(By.ID, "class-name").send_keys("Coat")
    browser.find_element(By.ID, "assign").click()
    _wait(browser, lambda d: len(_cards(d)) == 3)
    assert "3 image(s) moved to Coat" in browser.find_element(By.ID, "status").text
    for file_id in chosen:
        moved = data / "Coat" / file_id.split("/")[1]
        assert moved.is_file() and moved.with_suffix(".json").is_file(), file_id
        assert json.loads(moved.with_suffix(".json").read_text())["collected_from"] == "cam1"
        assert not (inbox / file_id).exists() and not (inbox / file_id).with_suffix(".json").exists()
    assert inbox_ids(inbox) == sorted(set(before) - set(chosen))

    # discard one: kept under .discarded/<its folder>/
    gone = _cards(browser)[0].get_attribute("data-id")
    _cards(browser)[0].click()
    browser.find_element(By.ID, "discard").click()
    _wait(browser, lambda d: len(_cards(d)) == 2)
    kept = inbox / ".discarded" / gone
    assert kept.is_file() and kept.with_suffix(".json").is_file() and not (inbox / gone).exists()

    # select all of the last group, into a new class
    last = browser.find_elements(By.CSS_SELECTOR, ".group")[-1]
    rest = [c.get_attribute("data-id") for c in last.find_elements(By.CSS_SELECTOR, ".card")]
    last.find_element(By.CSS_SELECTOR, ".select-all").click()
    assert browser.find_element(By.ID, "selected-count").text == f"{len(rest)} selected"
    name = browser.find_element(By.ID, "class-name")
    name.clear()
    name.send_keys("Odd one", Keys.ENTER)  # Enter assigns
    _wait(browser, lambda d: len(_cards(d)) == 2 - len(rest))
    assert sorted(p.name for p in (data / "Odd one").glob("*.jpg")) == sorted(i.split("/")[1] for i in rest)
    options = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#class-list option")]
    assert options == ["Bag", "Coat", "Odd one"]

    # a reload shows what is on disk
    browser.refresh()  # returns before the page's fetch of the listing: wait for it to be shown (its inbox path)
    _wait(browser, lambda d: d.find_element(By.ID, "inbox-path").text and len(_cards(d)) == len(inbox_ids(inbox)))
    if not inbox_ids(inbox):
        assert "inbox is empty" in browser.find_element(By.ID, "empty").text


def test_near_duplicates_are_one_card_assigned_in_one_click(still: tuple[Path, Path], browser) -> None:
    """A still scene's five frames (issue 27): one card marked ×5, counted 5, selected as 5 and moved as 5 with
    one click. A group of which only a part can move still goes from the page (the listing is read again)."""
    from selenium.webdriver.common.by import By

    inbox, data = still
    scenes = {g["name"]: [item["id"], *item["same"]] for g in box.list_inbox(inbox) for item in g["items"]}
    assert len(scenes) == 2 and all(len(ids) == 5 for ids in scenes.values())
    with _review(inbox, data, images=10) as url:
        browser.get(url)
        _wait(browser, lambda d: len(_cards(d)) == 2)
        assert [c.find_element(By.CSS_SELECTOR, ".same").text for c in _cards(browser)] == ["\u00d75", "\u00d75"]
        assert [c.text for c in browser.find_elements(By.CSS_SELECTOR, ".group .count")] == ["(5)", "(5)"]
        first = _cards(browser)[0]
        group = scenes[first.find_element(By.XPATH, "ancestor::section").get_attribute("data-group")]
        assert first.get_attribute("data-id") == group[0]
        first.click()
        assert browser.find_element(By.ID, "selected-count").text == "5 selected"
        browser.find_element(By.ID, "class-name").send_keys("Coat")
        browser.find_element(By.ID, "assign").click()
        _wait(browser, lambda d: len(_cards(d)) == 1)
        assert "5 image(s) moved to Coat" in browser.find_element(By.ID, "status").text
        assert sorted(p.name for p in (data / "Coat").glob("*.jpg")) == sorted(i.split("/")[1] for i in group)
        assert len(list((data / "Coat").glob("*.json"))) == 5
        rest = next(ids for ids in scenes.values() if ids != group)
        assert inbox_ids(inbox) == sorted(rest)

        box.discard(inbox, rest[1:2])  # one of the other group goes meanwhile (another review, a person's mv)
        _cards(browser)[0].click()
        assert browser.find_element(By.ID, "selected-count").text == "5 selected"
        browser.find_element(By.ID, "discard").click()
        _wait(browser, lambda d: d.find_elements(By.ID, "empty"))
        assert "4 image(s) discarded. 1 not moved" in browser.find_element(By.ID, "status").text
        assert inbox_ids(inbox) == [] and len(list((inbox / ".discarded").glob("*/*.jpg"))) == 5


def test_a_refused_class_name_moves_nothing_and_says_why(review_cli: tuple[str, Path, Path], browser) -> None:
    from selenium.webdriver.common.by import By

    url, inbox, _ = review_cli
    browser.get(url)
    _wait(browser, lambda d: len(_cards(d)) == 6)
    _cards(browser)[2].click()
    browser.find_element(By.ID, "class-name").send_keys("../escape")
    browser.find_element(By.ID, "assign").click()
    _wait(browser, lambda d: "Nothing moved" in d.find_element(By.ID, "status").text)
    assert "letters, digits" in browser.find_element(By.ID, "status").text
    assert len(_cards(browser)) == 6 and len(inbox_ids(inbox)) == 6


# -- the server's refusals --------------------------------------------------------------------------------------


@pytest.fixture
def server(places: tuple[Path, Path]) -> Iterator[ReviewServer]:
    srv = ReviewServer(*places).start()
    try:
        yield srv
    finally:
        srv.close()


def _request(srv: ReviewServer, method: str, path: str, body: object = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    conn.request(method, path, body=data, headers=hdrs)
    r = conn.getresponse()
    out = r.status, r.read(), dict(r.getheaders())
    conn.close()
    return out


def test_listens_on_loopback_only(server: ReviewServer) -> None:
    assert server.server_address[0] == "127.0.0.1"
    status, page, headers = _request(server, "GET", "/")
    assert status == 200 and b"<script>" in page and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert b"http://" not in page.replace(b"http://127", b"") and b"https://" not in page  # nothing from the network


def test_near_duplicates_are_listed_under_their_first(still: tuple[Path, Path], places: tuple[Path, Path]) -> None:
    """Each still scene is one item with its four other frames in `same`, within its label's folder; frames that
    are not alike (the other inbox: one picture mirrored, other scenes) are one item each."""
    srv = ReviewServer(*still).start()
    try:
        status, body, _ = _request(srv, "GET", "/api/inbox")
    finally:
        srv.close()
    doc = json.loads(body)
    assert status == 200 and [len(g["items"]) for g in doc["groups"]] == [1, 1]
    for g in doc["groups"]:
        item = g["items"][0]
        assert len(item["same"]) == 4 and all(i.startswith(g["name"] + "/") for i in [item["id"], *item["same"]])
        assert [item["id"], *item["same"]] == sorted([item["id"], *item["same"]])  # the first frame stands for it
    assert sorted(i for g in doc["groups"] for it in g["items"] for i in [it["id"], *it["same"]]) == inbox_ids(still[0])
    assert all(item["same"] == [] for g in box.list_inbox(places[0]) for item in g["items"])


def test_listing_and_images(server: ReviewServer, places: tuple[Path, Path]) -> None:
    inbox, _ = places
    status, body, _ = _request(server, "GET", "/api/inbox")
    doc = json.loads(body)
    assert status == 200 and doc["classes"] == ["Bag", "Coat"]
    ids = [item["id"] for g in doc["groups"] for item in g["items"]]
    assert sorted(ids) == inbox_ids(inbox)
    item = doc["groups"][0]["items"][0]
    assert item["sidecar"]["label"] == folder_name(item["sidecar"]["label"]) == doc["groups"][0]["name"]
    assert "scores" not in item["sidecar"] and item["sidecar"]["top_k"]
    status, jpeg, headers = _request(server, "GET", "/image/" + ids[0])
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and jpeg == (inbox / ids[0]).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/image/..%2F..%2Fetc%2Fpasswd",
        "/image/%2e%2e/%2e%2e/etc/passwd",
        "/image/../data/Bag/existing.jpg",
        "/image/Coat/..%2F..%2Fdata%2FBag%2Fexisting.jpg",
        "/image/.discarded/Coat/x.jpg",
        "/image//etc/passwd",
        "/image/.edge-collect-index",
        "/../../etc/passwd",
    ],
)
def test_no_file_outside_the_inbox_is_served(server: ReviewServer, path: str) -> None:
    status, body, _ = _request(server, "GET", path)
    assert status == 404 and b"root:" not in body and not body.startswith(b"\xff\xd8")


def test_symbolic_links_out_of_the_inbox_are_refused(server: ReviewServer, places: tuple[Path, Path],
                                                     tmp_path: Path) -> None:  # fmt: skip
    inbox, _ = places
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8 not for the page")
    group = next(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith("."))
    (group / "link.jpg").symlink_to(secret)
    (inbox / "linked_folder").symlink_to(tmp_path, target_is_directory=True)
    assert _request(server, "GET", f"/image/{group.name}/link.jpg")[0] == 404
    assert _request(server, "GET", "/image/linked_folder/secret.jpg")[0] == 404
    status, answer, _ = _request(server, "POST", "/api/assign", {"files": [f"{group.name}/link.jpg"], "class": "Bag"})
    assert status == 400 and b"leads out of the inbox" in answer and secret.read_bytes() == b"\xff\xd8 not for the page"
    assert "linked_folder" not in {g["name"] for g in json.loads(_request(server, "GET", "/api/inbox")[1])["groups"]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"files": ["../data/Bag/existing.jpg"], "class": "Bag"}, "not an inbox image"),
        ({"files": ["/etc/passwd"], "class": "Bag"}, "not in the inbox"),
        ({"files": [".discarded/Coat/x.jpg"], "class": "Bag"}, "not an inbox image"),
        ({"files": ["Coat/x.json"], "class": "Bag"}, "not an inbox image"),
        ({"files": [], "class": "Bag"}, "non-empty list"),
        ({"files": "Coat/x.jpg", "class": "Bag"}, "non-empty list"),
        ({"files": [3], "class": "Bag"}, "not an inbox image name"),
        ({"files": ["Coat/x.jpg"], "class": "../escape"}, "letters, digits"),
        ({"files": ["Coat/x.jpg"], "class": ".hidden"}, "letters, digits"),
        ({"files": ["Coat/x.jpg"], "class": "a/b"}, "letters, digits"),
        ({"files": ["Coat/x.jpg"], "class": "test"}, "split folders"),
        ({"files": ["Coat/x.jpg"], "class": None}, "letters, digits"),
    ],
)
def test_bad_requests_move_nothing(server: ReviewServer, places: tuple[Path, Path], body: dict, message: str) -> None:
    inbox, data = places
    real = inbox_ids(inbox)[0]
    body = {**body, "files": [real, *body["files"]] if isinstance(body["files"], list) and body["files"]
            else body["files"]}  # fmt: skip
    status, answer, _ = _request(server, "POST", "/api/assign", body)
    assert status == 400 and message in json.loads(answer)["error"]
    assert len(inbox_ids(inbox)) == 6 and (inbox / real).is_file()  # nothing moved
    assert sorted(p.name for p in data.rglob("*")) == ["Bag", "Coat", "existing.jpg", "existing.jpg"]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        ("GET", "/api/inbox", None, {"Host": "evil.example:80"}, 403),  # DNS rebinding
        ("POST", "/api/discard", {"files": ["x/y.jpg"]}, {"Origin": "http://evil.example"}, 403),
        ("POST", "/api/discard", b'{"files": ["x/y.jpg"]}', {"Content-Type": "text/plain"}, 415),  # a plain form
        ("POST", "/api/discard", b"not json", None, 400),
        ("POST", "/api/nothing", {"files": []}, None, 404),
        ("PUT", "/api/assign", b"{}", None, 405),
        ("DELETE", "/image/x/y.jpg", None, None, 405),
        ("OPTIONS", "/api/assign", None, {"Origin": "http://evil.example"}, 405),
    ],
)
def test_other_sites_and_methods_are_refused(server: ReviewServer, places: tuple[Path, Path], method: str, path: str,
                                             body: object, headers: dict | None, status: int) -> None:  # fmt: skip
    before = inbox_ids(places[0])
    assert _request(server, method, path, body, headers)[0] == status
    assert inbox_ids(places[0]) == before


# -- the moves, as the lead's end-to-end test makes them ---------------------------------------------------------


def test_assign_and_discard_functions(places: tuple[Path, Path]) -> None:
    inbox, data = places
    ids = inbox_ids(inbox)
    stem = Path(ids[0]).stem
    (data / "Bag" / f"{stem}.json").write_text("{}")  # a name already taken in the class: never overwritten
    done = box.assign(inbox, data, [ids[0], str(inbox / ids[1])], "Bag")  # an id or a path inside the inbox
    assert [f for f, _ in done.moved] == [ids[0], str(inbox / ids[1])] and done.failed == []
    assert done.moved[0][1] == data / "Bag" / f"{stem}-2.jpg" and (data / "Bag" / f"{stem}-2.json").is_file()
    assert (data / "Bag" / f"{stem}.json").read_text() == "{}"
    again = box.assign(inbox, data, [ids[0], ids[2]], "Bag")
    assert again.failed == [(ids[0], "not in the inbox any more (moved already?)")] and len(again.moved) == 1
    out = box.discard(inbox, [ids[3]])
    assert out.moved == [(ids[3], inbox.resolve() / ".discarded" / ids[3])]
    assert inbox_ids(inbox) == ids[4:]


def test_a_split_dataset_shares_the_images_by_content(tmp_path: Path) -> None:
    """train/ and test/ holding 3:1: 40 new images go about 3:1 too, each by its content (the same images into a
    dataset of the same shape land in the same splits), so the held-out images include the new scenes."""
    ids = [f"Bag/frame{i}.jpg" for i in range(40)]
    splits = []
    for n in (1, 2):
        inbox, data = tmp_path / f"inbox{n}", tmp_path / f"split{n}"
        for i in ids:
            (inbox / i).parent.mkdir(parents=True, exist_ok=True)
            (inbox / i).write_bytes(f"not decoded here {i}".encode())
        for part, count in (("train", 3), ("test", 1)):
            (data / part / "Bag").mkdir(parents=True)
            for k in range(count):
                (data / part / "Bag" / f"{k}.png").write_bytes(b"png")
        assert box.dataset_classes(data) == ["Bag"]
        done = box.assign(inbox, data, ids, "Shirt")
        assert all(dest.parent.name == "Shirt" for _, dest in done.moved) and not done.failed
        splits.append({i: dest.parent.parent.name for i, dest in done.moved})
    held_out = sum(split == "test" for split in splits[0].values())
    assert 4 <= held_out <= 18 and set(splits[0].values()) == {"train", "test"}, splits[0]  # 10 expected
    assert splits[0] == splits[1]


def test_a_move_across_file_systems(places: tuple[Path, Path]) -> None:
    """Copy, flush, rename into place, then delete: needs /dev/shm on another file system than the tests' tmp."""
    inbox, _ = places
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(inbox).st_dev or not os.access(shm, os.W_OK):
        pytest.skip("/dev/shm is not a separate writable file system here")
    data = Path(__import__("tempfile").mkdtemp(dir=shm))
    try:
        first = inbox_ids(inbox)[0]
        content = (inbox / first).read_bytes()
        mode = (inbox / first).stat().st_mode & 0o777
        done = box.assign(inbox, data, [first], "Coat")
        dest = done.moved[0][1]
        assert dest.read_bytes() == content and dest.stat().st_mode & 0o777 == mode == 0o600
        assert dest.with_suffix(".json").is_file() and not (inbox / first).exists()
        assert [p.name for p in (data / "Coat").iterdir() if p.name.startswith(".")] == []  # no .partial left
    finally:
        shutil.rmtree(data)


def test_dataset_inside_the_inbox_is_refused(places: tuple[Path, Path]) -> None:
    inbox, _ = places
    with pytest.raises(box.EdgeError, match="overlap"):
        box.assign(inbox, inbox / "data", inbox_ids(inbox)[:1], "Bag")


# -- the command line -------------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer.cli", "review", *args], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_bad_command_lines_are_one_line(places: tuple[Path, Path], tmp_path: Path) -> None:
    inbox, data = places
    (tmp_path / "file").write_text("x")
    cases = [
        ((str(tmp_path / "nope"), "--dataset", str(data)), "no such inbox folder"),
        ((str(inbox), "--dataset", str(tmp_path / "file")), "not a folder"),
        ((str(inbox), "--dataset", str(inbox / "sub")), "overlap"),
        ((str(inbox), "--dataset", str(data), "--port", "70000"), "out of range"),
    ]
    with ReviewServer(inbox, data) as busy:  # a port in use
        cases.append(((str(inbox), "--dataset", str(data), "--port", str(busy.port)), "cannot listen"))
        for args, message in cases:
            proc = _cli(*args)
            assert proc.returncode == 2, (args, proc.stderr)
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("edge-train: error: ") and message in lines[0], lines


def test_a_new_dataset_folder_is_created(places: tuple[Path, Path], tmp_path: Path) -> None:
    inbox, _ = places
    new = tmp_path / "fresh"
    proc = subprocess.Popen([sys.executable, "-m", "trainer.cli", "review", str(inbox), "--dataset", str(new)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert "open http://127.0.0.1:" in proc.stdout.readline()
        assert new.is_dir()
    finally:
        proc.terminate()
        proc.wait(10)
    assert np.isin(proc.returncode, (0, -15, 130))


SIMILAR = [("shirt", "Shirt"), ("Shirts", "Shirt"), ("Shrt", "Shirt"), ("coat", "Coat"), ("Shirt", None),
           ("Bag", None), ("Sandal", None)]  # fmt: skip


@pytest.mark.parametrize(("name", "like"), SIMILAR)
def test_similar_class_is_case_or_one_edit(name, like) -> None:
    from trainer.review.inbox import similar_class

    assert similar_class(name, ["Shirt", "T-shirt", "Coat"]) == like


@pytest.mark.parametrize(("body", "message"), [
    (b"[" * 100_000 + b"]" * 100_000, "not a JSON object"),  # deeper than Python's stack
    (json.dumps({"files": [f"Coat/{i}.jpg" for i in range(100_000)], "class": "Bag"}).encode(),
     "100000 files in one request (at most 10000); send them in parts"),
], ids=["100,000-deep JSON", "100,000 ids"])  # fmt: skip
def test_unbounded_work_is_refused_with_one_json_error(
    server: ReviewServer, places: tuple[Path, Path], body: bytes, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    inbox, _ = places
    caplog.set_level("INFO", logger="trainer")
    status, answer, _ = _request(server, "POST", "/api/assign", body)
    assert status == 400 and message in json.loads(answer)["error"], answer[:200]
    assert len(inbox_ids(inbox)) == 6
    assert len([r for r in caplog.records if r.name.startswith("trainer")]) <= 1  # one line per request at most


def test_a_request_of_many_ids_logs_one_line(
    server: ReviewServer, places: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    inbox, _ = places
    caplog.set_level("INFO", logger="trainer")
    status, answer, _ = _request(server, "POST", "/api/discard", {"files": inbox_ids(inbox)})
    assert status == 200 and len(json.loads(answer)["moved"]) == 6
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("trainer.review")]
    assert len(lines) == 1 and lines[0].startswith("discard: 6 file(s) moved, first "), lines
