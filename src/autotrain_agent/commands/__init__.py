"""Subcommands of the `autotrain-agent` command line, one module each.

Each module defines `NAME`, `add_parser(subparsers, parents)`, which registers its parser and sets `handler`, and
a handler that takes the parsed arguments and returns the exit status.
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Order of the subcommands in `--help`. `run` is also the default when the first argument is a goal.
COMMAND_MODULES = (
    "run", "resume", "validate", "estimate", "evaluate", "status", "export", "publish", "serve", "mcp",
)
