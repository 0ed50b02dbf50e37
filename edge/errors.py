"""The two exception types for expected failures; anything else escaping is a bug.

Their message is a single line naming the file or field and what to do; every CLI prints it as
`prog: error: <message>` without a traceback (`edge.cli.shape`):
- `EdgeError`: bad input, a bad config or flag, a model that cannot run: exit status 2;
- `Failure`: the input was fine but the work failed at run time (a broker unreachable, a device
  unhealthy, an image that failed to classify): exit status 1;
- `InferenceFailed`: the interpreter itself failed on a valid input (a `Failure`): a command classifying many
  images stops at it instead of going on to the next image.
"""


class EdgeError(Exception):
    """An expected failure with a one-line, user-facing message (usage, input or configuration: exit 2)."""


class Failure(EdgeError):
    """An expected runtime failure with a one-line message (exit 1)."""


class InferenceFailed(Failure):
    """The interpreter's invoke() failed (exit 1): the model or its device, not the image, is at fault."""
