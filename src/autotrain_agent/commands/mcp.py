"""`autotrain-agent mcp`: serve the experiment tools to an MCP client over stdio."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import EXIT_OK

NAME = "mcp"


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Register the `mcp` subcommand."""
    mcp = subparsers.add_parser(
        NAME,
        parents=parents,
        help="serve the tools to an MCP client over stdio",
        description="Serve the experiment tools over stdio with the Model Context Protocol (needs the `mcp` extra).",
    )
    mcp.add_argument("--output-dir", type=Path, default=Path.cwd(), help="folder for training_runs/ and training_reports/ (default: current folder)")
    mcp.set_defaults(handler=mcp_command)


def mcp_command(args: argparse.Namespace) -> int:
    """Serve until the client closes stdin; stdout carries only protocol messages."""
    from ..config import Settings
    from ..errors import ConfigError

    try:
        from ..mcp_server import serve_stdio
        import mcp  # noqa: F401
    except ImportError as err:
        raise ConfigError("`autotrain-agent mcp` needs the `mcp` package; install it with `pip install 'autotrain-agent[mcp]'`.") from err
    serve_stdio(Settings(output_dir=args.output_dir.resolve(), progress=False))
    return EXIT_OK
