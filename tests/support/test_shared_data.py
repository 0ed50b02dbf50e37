"""The published material is looked for where the README says: ../shared/data beside the checkout.

A wrong path makes every conformance test skip as "not found" on a machine that has the data, so this checks
the path itself, whether or not the data is present.
"""

from pathlib import Path

from tests.support.shared_data import SHARED_DATA


def test_shared_data_is_beside_the_checkout():
    repo = Path(__file__).resolve().parents[2]
    assert (repo / "pyproject.toml").is_file()
    assert repo.parent / "shared" / "data" == SHARED_DATA
