"""`[deployment] state_file`: the pull agent's outcome published by a real daemon to a real mosquitto, retained on
`.../deployment` at start-up and again (with a `deployment` event) when the agent rewrites the file; a file that
is not the agent's is not published and the daemon runs on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edge.mqtt import contract
from tests.edge.service.test_daemon import T, config, wait_payload
from tests.support.mosquitto import Subscriber
from tests.support.payload_schemas import check_message

A, B = "a" * 40, "b" * 40


def state(result: str, desired: str | None, applied: str | None, error: str | None = None) -> dict:
    return {"desired_revision": desired, "applied_revision": applied, "result": result, "error": error,
            "time": "2026-12-07T03:04:05Z", "release": "0.1.0", "model": "demo_model.tflite"}  # fmt: skip


def write(path: Path, obj: object) -> None:
    tmp = path.with_name(".incoming")
    tmp.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    os.replace(tmp, path)


def test_the_last_pull_is_published_retained_and_as_an_event(
    mosquitto, subscriber_factory, daemon_factory, demo_model, fm_clip, tmp_path
) -> None:
    file = tmp_path / "deployment.json"
    write(file, state("applied", A, A))
    d = daemon_factory(config(tmp_path, mosquitto, demo_model, fm_clip, deployment={"state_file": str(file)}))
    sub = subscriber_factory(mosquitto, [f"{T}/#"])
    first = wait_payload(sub, f"{T}/deployment", lambda p: True, timeout=20)
    assert first == state("applied", A, A)
    write(file, "not json")  # not the agent's: logged, not published
    write(file, state("refused", B, A, "commit bbbb: no valid signature"))
    event = wait_payload(sub, f"{T}/event", lambda p: p["event"] == "deployment")
    assert event["result"] == "refused" and event["desired_revision"] == B and event["applied_revision"] == A
    assert wait_payload(sub, f"{T}/deployment", lambda p: p["result"] == "refused")["error"].startswith("commit bbbb")
    assert d.stop()[0] == 0
    later = Subscriber(mosquitto, [f"{T}/deployment"]).start()  # a dashboard that comes later: the retained state
    try:
        assert json.loads(later.wait_for(lambda ms: ms, 10)[0].payload)["result"] == "refused"
    finally:
        later.stop()
    for m in sub.received():
        check_message(m.topic, m.payload)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({**state("applied", A, A), "result": "great"}, "result: not one of"),
        ({**state("applied", A, A), "desired_revision": "main"}, "desired_revision: not a git commit id"),
        ({**state("applied", A, A), "time": "yesterday"}, "time: not an ISO 8601 UTC time"),
        ({**state("applied", A, A), "error": 3}, "error: not a string"),
    ],
)
def test_payload_fields_are_checked(bad, message) -> None:
    with pytest.raises(ValueError, match=message):
        contract.deployment_payload(bad)
