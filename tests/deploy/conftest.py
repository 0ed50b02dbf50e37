"""Fixtures of the deploy tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.wheelhouse import build_wheelhouse


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with this checkout's wheel and its dependencies' wheels (see tests/deploy/wheelhouse.py)."""
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
