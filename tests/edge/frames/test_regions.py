"""Regions of interest: `[[regions]]` in the config (one-line errors) and the boxes in pixels (tables)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.config.docs import to_toml
from edge.config.load import config_from_dict
from edge.errors import EdgeError
from edge.frames.regions import crop, fits, pixel_box


@pytest.mark.parametrize(
    ("box", "size", "pixels"),
    [
        ((0, 0, 1, 1), (640, 480), (0, 0, 640, 480)),
        ((0.5, 0, 0.5, 1), (640, 480), (320, 0, 640, 480)),
        ((0.25, 0.25, 0.5, 0.5), (100, 80), (25, 20, 75, 60)),
        ((10, 20, 30, 40), (640, 480), (10, 20, 40, 60)),
        ((600, 400, 100, 100), (640, 480), (600, 400, 640, 480)),  # clipped to the frame
        ((0.999, 0.999, 0.001, 0.001), (10, 10), (9, 9, 10, 10)),  # at least one pixel
    ],
)
def test_pixel_box(box, size, pixels) -> None:
    assert pixel_box(box, *size) == pixels


def test_crop_is_the_box_and_fits() -> None:
    frame = np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)
    assert crop(frame, (0.5, 0, 0.5, 1)).shape == (48, 32, 3)
    assert (crop(frame, (8, 4, 16, 8)) == frame[4:12, 8:24]).all()
    assert fits((0.5, 0.5, 0.5, 0.5), 10, 10) and fits((0, 0, 640, 480), 640, 480)
    assert not fits((0, 0, 641, 480), 640, 480)


def _load(tmp_path: Path, model: str, regions: list[dict], camera: dict | None = None):
    return config_from_dict({"model": {"path": model}, "camera": camera or {}, "regions": regions},
                            base=tmp_path, environ={})  # fmt: skip


@pytest.mark.parametrize(
    ("regions", "camera", "expected"),
    [
        ([{"name": "door"}], {}, "regions.door.box: required"),
        ([{"box": [0, 0, 1, 1]}], {}, "regions.1.name: required"),
        ([{"name": "a/b", "box": [0, 0, 1, 1]}], {}, "regions.a/b.name: 'a/b' may only contain letters"),
        ([{"name": "x", "box": [0, 0, 1]}], {}, "regions.x.box: expected a list of 4 numbers"),
        ([{"name": "x", "box": [0, 0, 1, "1"]}], {}, "regions.x.box[3]: expected a number"),
        ([{"name": "x", "box": [0, 0, 1, 1]}, {"name": "x", "box": [0, 0, 1, 1]}], {}, "regions.x: two regions"),
        ([{"name": "x", "box": [0.5, 0, 0.6, 1]}], {}, "regions.x.box: [0.5, 0.0, 0.6, 1.0] is not inside"),
        ([{"name": "x", "box": [0, 0, 0, 1]}], {}, "is not inside the frame; fractions need w, h > 0"),
        ([{"name": "x", "box": [0, 0, 320, 240]}], {}, "regions.x.box: pixels need the frame size"),
        ([{"name": "x", "box": [400, 0, 320, 240]}], {"width": 640, "height": 480},
         "regions.x.box: [400, 0, 320, 240] is not inside the 640x480 frame"),
        ([{"name": "x", "box": [0, 0, 1.5, 100]}], {"width": 640, "height": 480}, "mixes fractions and pixels"),
        ([{"name": "x", "box": [0, 0, 1, 1], "threshold": 2}], {}, "regions.x.threshold: 2 is too large"),
        ([{"name": "x", "box": [0, 0, 1, 1], "mode": "median"}], {}, "regions.x.mode: 'median' is not one of"),
        ([{"name": "x", "box": [0, 0, 1, 1], "model": "none.tflite"}], {}, "regions.x.model: cannot read file"),
        ([{"name": "x", "box": [0, 0, 1, 1], "colour": 1}], {}, "regions.x.colour: unknown key"),
        ({"name": "x"}, {}, "regions: expected [[regions]] tables"),
    ],
)  # fmt: skip
def test_bad_regions_are_one_line(regions, camera, expected, demo_model, tmp_path) -> None:
    with pytest.raises(EdgeError) as e:
        _load(tmp_path, str(demo_model), regions, camera)
    assert expected in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_regions_load_and_print(demo_model, tmp_path) -> None:
    cfg = _load(tmp_path, str(demo_model), [{"name": "left", "box": [0, 0, 0.5, 1]},
                                           {"name": "right", "box": [320, 0, 320, 480], "threshold": 0.4,
                                            "model": str(demo_model), "min_dwell_s": 0}],
                {"width": 640, "height": 480})  # fmt: skip
    left, right = cfg.regions
    assert (left.name, left.box, left.model, left.threshold) == ("left", (0.0, 0.0, 0.5, 1.0), None, None)
    assert (right.box, right.threshold, right.min_dwell_s, right.model) == ((320.0, 0.0, 320.0, 480.0), 0.4, 0.0,
                                                                            str(demo_model))  # fmt: skip
    text = to_toml(cfg)
    assert text.count("[[regions]]") == 2 and 'name = "right"' in text and "box = [320.0, 0.0, 320.0, 480.0]" in text


def test_regions_cannot_come_from_the_environment(demo_model, tmp_path) -> None:
    refused = r"EDGE_REGIONS__NAME: lists and \[\[regions\]\] tables cannot be set from the env"
    with pytest.raises(EdgeError, match=refused):
        config_from_dict({"model": {"path": str(demo_model)}}, environ={"EDGE_REGIONS__NAME": "x"})
