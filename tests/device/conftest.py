"""The device lab's one fixture: the shared lab (images, broker, keys), or a skip naming what the host lacks."""

from __future__ import annotations

import pytest

from tests.device.host import missing_capability
from tests.device.lab import Lab, shared_lab


@pytest.fixture(scope="module")
def lab() -> Lab:
    why = missing_capability()
    if why:
        pytest.skip(why)
    return shared_lab()
