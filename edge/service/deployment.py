"""The device's last pull, on MQTT: the pull agent's outcome file published retained on `.../deployment`.

In pull mode (`edge-deploy pull-setup`) the agent writes its outcome as one JSON object to `[deployment]
state_file` (atomically: a new file renamed over the old). The daemon publishes it (retained) at start-up and
after every broker reconnect, and when the file changes it publishes it again with a `deployment` event, so
`edge-deploy status --broker` shows every device's desired and applied revision without SSH. A file that is
not the agent's (too large, not JSON, a field of the wrong kind) is logged once per version and not published.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from edge.inference.model import file_signature
from edge.mqtt import contract

if TYPE_CHECKING:
    from edge.mqtt.publisher import Publisher

log = logging.getLogger(__name__)

MAX_STATE_BYTES = 64 * 1024
POLL_S = 2.0


class DeploymentReport:
    """Publishes the state file's outcome; `poll(now)` from the loop, `resend()` after a reconnect."""

    def __init__(self, path: str | None, publisher: Publisher) -> None:
        self.path, self.publisher = path, publisher
        self._signature = file_signature(path) if path else None
        self._payload = self._read() if path else None
        self._next = 0.0

    def start(self) -> None:
        """The outcome as it is now, retained (no event: nothing happened)."""
        self.resend()

    def resend(self) -> None:
        if self._payload is not None:
            self.publisher.publish_deployment(self._payload)

    def poll(self, now: float) -> None:
        """Every `POLL_S`: a changed file is published again, with a `deployment` event."""
        if not self.path or now < self._next:
            return
        self._next = now + POLL_S
        signature = file_signature(self.path)
        if signature == self._signature:
            return
        self._signature = signature
        payload = self._read()
        if payload is not None and payload != self._payload:
            self._payload = payload
            self.publisher.publish_deployment(payload)
            self.publisher.publish_event(contract.deployment_event(payload, timestamp=time.time()))
            log.info("deployment: %s (desired %s, applied %s)%s", payload["result"], payload["desired_revision"],
                     payload["applied_revision"], f": {payload['error']}" if payload["error"] else "")  # fmt: skip

    def _read(self) -> dict | None:
        assert self.path is not None
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_STATE_BYTES + 1)
            if len(data) > MAX_STATE_BYTES:
                raise ValueError(f"over {MAX_STATE_BYTES} bytes")
            state = json.loads(data)
            if not isinstance(state, dict):
                raise ValueError("not a JSON object")
            return contract.deployment_payload(state)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            log.error("[deployment] state_file %s: not the pull agent's outcome (%s); not published", self.path, e)
            return None
