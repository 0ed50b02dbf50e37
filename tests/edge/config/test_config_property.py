"""Property: for any config drawn from the schema (in range, out of range, wrong types, nan/inf, NUL, MQTT's
reserved characters ...), `check-config` either refuses it with one line naming the file, or `run` accepts the
same config: the real `Service.run()` starts model, publisher and camera with it and stops cleanly.
(`checked_config` is what `edge-daemon check-config` runs.)

Hypothesis draws the configs (https://hypothesis.readthedocs.io); the values come from the schema's own rules.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edge.cli.commands import checked_config
from edge.config.fields import table_list, toml_value
from edge.config.load import load_config
from edge.config.schema import Config, schema_fields
from edge.errors import EdgeError
from edge.service.daemon import Service
from tests.support.mosquitto import free_port

TEXT = st.one_of(
    st.sampled_from(["edge", "pi1", "a/b", "edge/#", "+", "$SYS", "", "x\x00y", "ümlaut", "a" * 70_000, " "]),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12),
)


def _number(f: dataclasses.Field, integer: bool) -> st.SearchStrategy:
    low, high = f.metadata.get("min", 0), f.metadata.get("max", 10)
    inside = st.integers(math.ceil(low), int(high)) if integer else st.floats(low, high)
    outside = st.sampled_from([low - 1, high + 1, 10**26, -(10**9)])
    special = st.sampled_from([math.nan, math.inf, -math.inf]) if not integer else st.nothing()
    return st.one_of(inside, inside, outside, special, st.sampled_from(["7", True]))


def _value(key: str, f: dataclasses.Field, tp: object) -> st.SearchStrategy:
    base = next((a for a in getattr(tp, "__args__", ()) if a is not type(None)), tp)
    if "choices" in f.metadata:
        return st.one_of(st.sampled_from(f.metadata["choices"]), st.sampled_from(["median", 3, -1]))
    if base is bool:
        return st.one_of(st.booleans(), st.just("yes"))
    if base in (int, float):
        return _number(f, base is int)
    if key.endswith(".box"):
        corner = st.sampled_from([0, 0.25, 0.5, 10, 700, math.nan])
        return st.one_of(st.lists(corner, min_size=4, max_size=4), st.just([0, 0, 1]), st.just("0,0,1,1"))
    if key == "camera.source":
        return st.sampled_from(["{clip}", "0", "/dev/video77", "rtsp://u:p@127.0.0.1:9/x", "missing.avi", "x\x00"])
    if key in ("mqtt.host",):
        return st.sampled_from(["127.0.0.1", "localhost"])
    if key == "model.device":
        return st.sampled_from(["auto", "cpu", "tpu", "edgetpu:usb:1", "CPU", "edgetpu:9999"])
    if f.metadata.get("path"):
        return st.sampled_from(["{model}", "missing.file", "{clip}"]) if key == "model.path" else st.just("nope")
    return TEXT


def _table(name: str, cls: type) -> st.SearchStrategy:
    fields = [(g, t) for g, t in schema_fields(cls) if not dataclasses.is_dataclass(t)]
    return st.fixed_dictionaries({}, optional={g.name: _value(f"{name}.{g.name}", g, t) for g, t in fields})


def _sections() -> st.SearchStrategy:
    tables = {}
    for f, tp in schema_fields(Config):
        if (item := table_list(tp)) is not None:  # [[regions]]: zero to two, names often valid and distinct
            named = st.builds(lambda t, n: {"name": n, **t}, _table(f.name, item), st.sampled_from(["a", "b", "a/"]))
            tables[f.name] = st.lists(st.one_of(named, _table(f.name, item)), max_size=2)
        else:
            tables[f.name] = _table(f.name, tp)
    return st.fixed_dictionaries({}, optional=tables)


def _write(path: Path, sections: dict, names: dict[str, str]) -> None:
    lines = []
    tables = [(f"[[{name}]]", t) for name, ts in sections.items() if isinstance(ts, list) for t in ts]
    for header, values in [(f"[{n}]", v) for n, v in sections.items() if isinstance(v, dict)] + tables:
        lines.append(header)
        for key, value in values.items():
            if isinstance(value, str):
                value = value.format(**names) if "{" in value and value[1:-1] in names else value
            text = toml_value(value)
            if isinstance(value, float) and not math.isfinite(value):
                text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
            elif isinstance(value, list):
                text = "[" + ", ".join("nan" if v != v else toml_value(v) for v in value) + "]"
            lines.append(f"{key} = {text}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])  # fmt: skip
@given(sections=_sections())
def test_check_config_refuses_in_one_line_or_run_accepts(sections, demo_model, fm_clip, tmp_path) -> None:
    sections.setdefault("model", {}).setdefault("path", "{model}")
    if sections.get("regions") == []:
        del sections["regions"]
    sections.setdefault("mqtt", {}).setdefault("port", free_port())  # nothing listens: run must not care
    sections["model"]["watch"] = False
    path = tmp_path / "drawn.toml"
    _write(path, sections, {"model": str(demo_model), "clip": str(fm_clip)})
    try:
        cfg = checked_config(str(path))  # what `edge-daemon check-config` does
    except EdgeError as e:
        message = str(e)
        assert "\n" not in message and message.startswith(f"{path}: "), message
        event(f"refused: {message[len(str(path)) + 2 :].split(':')[0]}")
        return
    event("accepted")
    service = Service(cfg)
    service.stop()  # run() starts everything, sees the stop at once, shuts down
    assert service.run() == 0


def test_the_property_sees_both_outcomes(demo_model, tmp_path) -> None:
    """Guard against a strategy that only ever draws refusals (or only accepted configs)."""
    good = tmp_path / "good.toml"
    good.write_text(f'[model]\npath = "{demo_model}"\nwatch = false\n[mqtt]\nport = {free_port()}\n')
    service = Service(load_config(good, environ={}))
    service.stop()
    assert service.run() == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[model]\npath = "{demo_model}"\n[smoothing]\nframes = nan\n')
    with pytest.raises(EdgeError):
        load_config(bad, environ={})
