"""The `device` setting parsed (pure): `auto`, `cpu`, `edgetpu`, `edgetpu:usb`, `edgetpu:pci`, `edgetpu[:usb|:pci]:N`.

The config layer checks it with `parse_device` (so `check-config` refuses what `run` would) and
`edge.inference.backends` uses the parsed `Device` to choose the interpreter's delegate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge.errors import EdgeError

_DEVICE = re.compile(r"^(auto|cpu|edgetpu)(?::(usb|pci))?(?::(\d{1,3}))?$")
DEVICE_FORMS = "auto, cpu, edgetpu, edgetpu:usb, edgetpu:pci or edgetpu[:usb|:pci]:N"


@dataclass(frozen=True)
class Device:
    """A parsed device setting. `selector` is what libedgetpu calls the device ("usb", "pci:0", ":1")."""

    kind: str  # auto | cpu | edgetpu
    selector: str | None = None


def parse_device(text: str) -> Device:
    """Parse a device setting (case-insensitive); EdgeError naming the accepted forms otherwise."""
    m = _DEVICE.match(text.strip().lower())
    if not m or (m.group(1) != "edgetpu" and (m.group(2) or m.group(3))):
        raise EdgeError(f"device {text!r}: expected {DEVICE_FORMS}")
    kind, bus, num = m.groups()
    if kind != "edgetpu" or not (bus or num):
        return Device(kind)
    return Device(kind, f"{bus or ''}:{num}" if num else bus)
