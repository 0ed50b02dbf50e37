"""When to reload the model: its file changed and then stayed the same for one more poll (pure: time passed in).

A model replaced atomically (`mv new.tflite model.tflite`) is reloaded at the next poll but one; a copy in
progress keeps changing and is not read half-written. The caller reads the file's signature (mtime, size,
inode; None when missing) when `due()` says so.
"""

from __future__ import annotations

from typing import Any

Signature = tuple[Any, ...] | None  # e.g. (mtime ns, size, inode); None when the file is missing


class ModelFileWatcher:
    """Polls a model file's signature every `interval_s` and says when a change has settled.

    Args:
        interval_s: seconds between polls.
        signature: the signature of the file the running model was loaded from.
        now: monotonic time of that load.
    """

    def __init__(self, interval_s: float, signature: Signature, now: float) -> None:
        self.interval_s = interval_s
        self._watched, self._pending = signature, None
        self._next = now + interval_s

    def due(self, now: float) -> bool:
        """True when a poll is due (the caller then reads the signature and calls `changed`)."""
        return now >= self._next

    def changed(self, signature: Signature, now: float) -> bool:
        """Record one poll's signature; True when the file changed and then held still since the last poll."""
        self._next = now + self.interval_s
        if signature is None or signature == self._watched:
            self._pending = None
            return False
        if signature == self._pending:  # settled: a copy in progress would still be changing
            self._watched, self._pending = signature, None
            return True
        self._pending = signature
        return False

    def reloaded(self, signature: Signature) -> None:
        """The model was reloaded by other means (SIGHUP): watch from this version on."""
        self._watched, self._pending = signature, None
