"""Command line entry point: `autotrain-agent GOAL` runs an experiment; other subcommands live in `commands/`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .commands import COMMAND_MODULES, EXIT_FAILED, EXIT_USAGE
from .errors import AutotrainError

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status: 0 success, 1 failure, 2 invalid input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMAND_MODULES and not argv[0].startswith("-"):
        argv.insert(0, "run")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _configure_logging(args.verbose)
    try:
        return args.handler(args)
    except (AutotrainError, NotImplementedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, (ValueError, LookupError, NotImplementedError)) else EXIT_FAILED
    except OSError as err:
        # A folder that cannot be created or written (a read-only disk, a path under /proc) is the user's to fix.
        print(f"error: {err.strerror or err} for {err.filename!r}; choose a writable `--output-dir`.", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: the state is saved; run the same command again to resume.", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand of `COMMAND_MODULES` registered."""
    parser = argparse.ArgumentParser(
        prog="autotrain-agent",
        description="Plan, train, evaluate and report a fine-tuning experiment from a goal in plain words.",
        epilog='Example: autotrain-agent "improve code solving with SFT"   (same as: autotrain-agent run "...")',
    )
    parser.set_defaults(verbose=0)
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    subparsers = parser.add_subparsers(dest="command")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.commands.{name}").add_parser(subparsers, [verbosity])
    return parser


def _configure_logging(verbosity: int) -> None:
    levels = {0: logging.WARNING, 1: logging.INFO}
    level = levels.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


if __name__ == "__main__":
    raise SystemExit(main())
