"""Where the published conformance material lives (../shared/data beside the repo), and a skip helper."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared(relpath: str) -> Path:
    """Path of a published file under ../shared/data; skips the test with the reason when it is absent."""
    path = SHARED_DATA / relpath
    if not path.exists():
        pytest.skip(f"published test material not found: {path} (conformance data lives in ../shared/data)")
    return path
