"""The overlay's words are the payload's: the score with one decimal, never rounded up to 100 % (issue 27)."""

from __future__ import annotations

import pytest

from edge.http.overlay import verdict

CASES = [(0.996, "Coat 99.6%"), (0.9999, "Coat 99.9%"), (1.0, "Coat 100.0%"), (0.54, "Coat 54.0%"), (0.0, "Coat 0.0%"),
         (0.1234, "Coat 12.3%")]  # fmt: skip


@pytest.mark.parametrize(("score", "text"), CASES)
def test_the_score_is_cut_not_rounded_up(score, text) -> None:
    assert verdict("Coat", score) == text


def test_no_label() -> None:
    assert verdict(None, 0.0) == "no class above threshold"
