"""The one exception type for expected failures: bad input, bad config, a model that cannot run.

Its message is a single line naming the file or field and what to do; the CLI prints it without a
traceback and exits non-zero. Anything else escaping is a bug.
"""


class EdgeError(Exception):
    """An expected failure with a one-line, user-facing message."""
