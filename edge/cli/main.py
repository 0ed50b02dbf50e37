"""`edge-daemon`: the device's command line, as one explicit table of subcommands.

    edge-daemon run --config FILE           the service (what the systemd unit runs)
    edge-daemon check-config FILE           validate a config, print it with secrets redacted
    edge-daemon health --config FILE        is the daemon online and classifying, as its broker sees it?
    edge-daemon classify --model M IMAGE... classify image files with any .tflite classifier
    edge-daemon info --model M              describe a model
    edge-daemon demo                        broker + daemon + subscriber on the bundled model and clip
    edge-daemon forget --config FILE        remove a retired device from the broker and Home Assistant

Errors are one line, `edge-daemon: error: ...`; exit 2 for usage/config/input errors, 1 for runtime failures
(`edge.cli.shape`, the shape all three CLIs share).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from edge import __version__
from edge.cli import commands, demo, forget, health
from edge.cli.shape import Command, build_parser, run_main

PROG = "edge-daemon"
COMMANDS = (
    Command("run", "run the daemon: camera -> model -> MQTT", commands.add_run_args, commands.run),
    Command(
        "check-config", "validate a config file and print the effective configuration",
        commands.add_check_args, commands.check_config,
    ),
    Command("health", "is the daemon online and classifying? (exit 0 yes, 1 no)", health.add_arguments, health.run),
    Command("classify", "classify image files", commands.add_classify_args, commands.classify),
    Command("info", "describe a model", commands.add_info_args, commands.info),
    Command("demo", "run broker + daemon + subscriber on the bundled model and clip", demo.add_arguments, demo.run),
    Command(
        "forget", "remove this device's retained messages and Home Assistant entities from the broker",
        forget.add_arguments, forget.run,
    ),
)


def main(argv: Sequence[str] | None = None) -> int:
    """The `edge-daemon` console script."""
    parser = build_parser(PROG, "Classify camera frames and publish to MQTT.", COMMANDS, version=__version__,
                          log_env="EDGE_LOG_LEVEL")  # fmt: skip
    return run_main(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
