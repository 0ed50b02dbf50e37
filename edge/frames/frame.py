"""A captured frame, as every consumer sees it: the frame flow, the HTTP tap, the collector.

The camera (`edge.sources.camera`) makes them; the consumers type against this protocol, so none of them depends
on where frames come from.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Frame(Protocol):
    """One captured frame: exactly one of `jpeg` (undecoded JPEG bytes) or `pixels` (a decoded BGR image)."""

    @property
    def seq(self) -> int:
        """The camera's frame number, from 1."""
        ...

    @property
    def captured_at(self) -> float:
        """When it was captured (monotonic seconds)."""
        ...

    @property
    def jpeg(self) -> np.ndarray | None: ...

    @property
    def pixels(self) -> np.ndarray | None: ...

    @property
    def image(self) -> np.ndarray | None:
        """The frame as a full-size BGR image (a JPEG frame decoded; None when it does not decode)."""
        ...
