"""Command line entry point: `autotrain-agent GOAL` runs an experiment; other subcommands live in `commands/`."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from .commands import COMMAND_MODULES, EXIT_FAILED, EXIT_USAGE
from .errors import AutotrainError

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status: 0 success, 1 failure, 2 invalid input."""
    argv = with_command(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser(json_errors="--json" in argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _configure_logging(args.verbose)
    as_json = bool(getattr(args, "json", False))
    try:
        return args.handler(args)
    except (AutotrainError, NotImplementedError) as err:
        usage = isinstance(err, (ValueError, LookupError, NotImplementedError))
        hint = f"check the arguments; `autotrain-agent {args.command} --help` lists them" if usage else "rerun with -v to see the log"
        _print_error(str(err), hint=hint, kind=type(err).__name__, as_json=as_json)
        return EXIT_USAGE if usage else EXIT_FAILED
    except OSError as err:
        # A folder that cannot be created or written (a read-only disk, a path under /proc) is the user's to fix.
        message = f"{err.strerror or err} for {err.filename!r}"
        _print_error(message, hint="choose a writable `--output-dir`", kind="OSError", as_json=as_json, text=f"{message}; choose a writable `--output-dir`.")
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: the state is saved; run the same command again to resume.", file=sys.stderr)
        return 130


def with_command(argv: list[str]) -> list[str]:
    """Return `argv` with its subcommand first: a goal or options without a subcommand mean `run`.

    Options written before the subcommand belong to it, so `-v status` reads as `status -v` and
    `--model M "goal"` as `run --model M "goal"`.
    """
    if not argv or argv[0] in ("-h", "--help") or argv[0] in COMMAND_MODULES:
        return argv
    if argv[0].startswith("-"):
        for index, token in enumerate(argv):
            if token in COMMAND_MODULES:
                return [token, *argv[:index], *argv[index + 1 :]]
    return ["run", *argv]


def _print_error(message: str, *, hint: str, kind: str, as_json: bool, text: str | None = None) -> None:
    """Print an error on stderr for a person, or as a JSON object on stdout when the command was given `--json`.

    A person reads `text` (default `message`), which already names the fix. JSON readers get the `hint` apart.
    """
    if as_json:
        print(json.dumps({"error": message, "type": kind, "hint": hint}))
    else:
        print(f"error: {text or message}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """An argument parser that prints its usage errors as JSON objects when `json_errors` is set."""

    def __init__(self, *args, json_errors: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.json_errors = json_errors

    def add_subparsers(self, **kwargs):
        # Subcommand parsers are created through `parser_class`, so they inherit the error format here.
        kwargs.setdefault("parser_class", lambda **options: _Parser(json_errors=self.json_errors, **options))
        return super().add_subparsers(**kwargs)

    def error(self, message: str):
        if not self.json_errors:
            super().error(message)
        _print_error(message, hint=f"`{self.prog} --help` lists the arguments", kind="UsageError", as_json=True)
        raise SystemExit(EXIT_USAGE)


def build_parser(*, json_errors: bool = False) -> argparse.ArgumentParser:
    """Return the parser with every subcommand of `COMMAND_MODULES` registered.

    Args:
        json_errors: Print usage errors as JSON objects on stdout, for commands given `--json`.
    """
    parser = _Parser(
        json_errors=json_errors,
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
