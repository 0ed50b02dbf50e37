"""The one shape of the project's three command lines (`edge-daemon`, `edge-train`, `edge-deploy`).

Each CLI declares its subcommands as a table of `Command`s and calls `run_main()`, which parses, sets up
logging, runs the command and turns every expected failure into one line on stderr:

    prog: error: <what, naming the file or field, and the fix>

Exit status (the same for all three, printed by `--help`):
    0  success
    1  a runtime failure (`Failure`: the broker unreachable, a device not healthy, an image that failed ...)
    2  a usage or configuration error (argparse's own errors and `EdgeError`: bad flags, config, input files)
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from edge.errors import EdgeError, Failure

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_STATUS_HELP = (
    "exit status: 0 success; 1 runtime failure (one line on stderr); 2 usage or configuration error "
    "(one line on stderr naming the flag, file or field); 130 interrupted"
)
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Command:
    """One subcommand: its name and help, a function adding its arguments, and the function running it."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


class OneLineParser(argparse.ArgumentParser):
    """argparse with its usage errors as one line, like every other error: `prog: error: ...; see prog --help`."""

    def error(self, message: str) -> NoReturn:
        prog = self.prog.split(" ", 1)[0]  # subcommands too: `edge-daemon: error: ...`
        message = message.removeprefix("argument ")
        self.exit(EXIT_USAGE, f"{prog}: error: {message}; see {self.prog} --help\n")


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r:.40} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; use {low} to {high}")
        return value

    return parse


def finite_float(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number from `low` (excluded when `low_open`) to `high`; nan and inf refused."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r:.40} is not a number") from None
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            allowed = f"above {low:g} and up to {high:g}" if low_open else f"from {low:g} to {high:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range; use a number {allowed}")
        return value

    return parse


def build_parser(
    prog: str, description: str, commands: Sequence[Command], *, version: str | None = None, log_env: str | None = None
) -> argparse.ArgumentParser:
    """The parser of a CLI: `--log-level` (default from `log_env` when given, else INFO), `--version`, subcommands."""
    parser = OneLineParser(prog=prog, description=description, epilog=EXIT_STATUS_HELP)
    if version is not None:
        parser.add_argument("--version", action="version", version=f"{prog} {version}")
    default_level = os.environ.get(log_env, "INFO") if log_env else "INFO"
    source = f"{log_env}" if log_env and log_env in os.environ else "--log-level"
    parser.add_argument("--log-level", default=default_level, help=f"{', '.join(LOG_LEVELS)} (default INFO)")
    parser.set_defaults(log_level_source=source)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for c in commands:
        p = sub.add_parser(c.name, help=c.help, description=c.help, epilog=EXIT_STATUS_HELP)
        c.add_arguments(p)
        p.set_defaults(func=c.run)
    return parser


def log_level(text: str, source: str) -> int:
    """A logging level from its name (any case); EdgeError naming `source` otherwise."""
    name = str(text).strip().upper()
    if name not in LOG_LEVELS:
        raise EdgeError(f"{source}: {text!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return getattr(logging, name)


def _error(prog: str, message: object) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)


def _flush_stdout(prog: str) -> bool:
    """Flush stdout; on a full disk or closed pipe say so once and keep Python's exit from printing a traceback."""
    try:
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        ok = True  # the reader went away (`| head`): not an error
    except OSError as e:
        _error(prog, f"cannot write the output: {e.strerror or e}")
        ok = False
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return ok


def run_main(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Parse `argv`, set up logging, run the chosen command; returns the exit status (see the module docstring)."""
    prog = prog or parser.prog
    args = parser.parse_args(argv)  # usage errors: argparse prints `prog: error: ...` and exits 2
    try:
        level = log_level(args.log_level, getattr(args, "log_level_source", "--log-level"))
    except EdgeError as e:
        _error(prog, e)
        return EXIT_USAGE
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)
    try:
        code = int(args.func(args) or 0)
    except RecursionError:  # a pathological input (deeply nested data) that slipped past a parser's own check
        _error(prog, "the input is nested too deeply to process; check the file you gave")
        code = EXIT_USAGE
    except Failure as e:
        _error(prog, e)
        code = EXIT_FAILURE
    except EdgeError as e:
        _error(prog, e)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        code = EXIT_OK
    except OSError as e:
        if e.errno is None or not _is_stdout_error(e):
            raise
        code = EXIT_FAILURE
        _error(prog, f"cannot write the output: {e.strerror or e}")
    if not _flush_stdout(prog) and code == EXIT_OK:
        code = EXIT_FAILURE
    return code


def _is_stdout_error(e: OSError) -> bool:
    """True for the errors writing to a full or broken stdout raises (ENOSPC, EPIPE, EIO, EBADF)."""
    return e.errno in (errno.ENOSPC, errno.EPIPE, errno.EIO, errno.EBADF, errno.EDQUOT)
