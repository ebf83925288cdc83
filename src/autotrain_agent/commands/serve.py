"""`autotrain-agent serve EXPERIMENT`: start llama.cpp's OpenAI-compatible server on an exported GGUF file."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from ..config import Settings
from ..errors import ConfigError

NAME = "serve"


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Register the `serve` subcommand."""
    serve = subparsers.add_parser(
        NAME, parents=parents, help="serve an exported GGUF on 127.0.0.1", description="Start llama_cpp.server on 127.0.0.1."
    )
    serve.add_argument("experiment", help="experiment id, exported with `autotrain-agent export`")
    serve.add_argument("--quant", help="file type to serve, e.g. Q8_0 (default: the first quantized file)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port on 127.0.0.1 (default 8000)")
    serve.add_argument("--output-dir", type=Path, default=Path.cwd(), help="folder that contains training_runs/ (default: current folder)")
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    """Replace this process with `python -m llama_cpp.server` on the chosen file; it returns only on error."""
    from ..loop import load_saved_experiment

    command = server_command(load_saved_experiment(args.experiment, Settings(output_dir=args.output_dir.resolve())).experiment, quant=args.quant, port=args.port)
    if importlib.util.find_spec("uvicorn") is None:
        raise ConfigError("llama.cpp's server needs its extras; run `pip install 'llama-cpp-python[server]'` and try again.")
    print(f"Serving {command[command.index('--model') + 1]} at http://127.0.0.1:{args.port}/v1 (Ctrl-C stops it).")
    sys.stdout.flush()
    os.execv(command[0], command)
    return 1


def server_command(experiment, *, quant: str | None, port: int) -> list[str]:
    """Return the `llama_cpp.server` command for the experiment's exported file of type `quant`.

    Raises:
        ConfigError: If nothing was exported or no file has type `quant`.
    """
    if experiment.export is None or not experiment.export.files:
        raise ConfigError(f"Experiment {experiment.id!r} has no exported files; run `autotrain-agent export {experiment.id}` first.")
    files = experiment.export.files
    chosen = next((f for f in files if f.quant_type == quant.upper()), None) if quant else next((f for f in files if f.quant_type != "F16"), files[0])
    if chosen is None:
        raise ConfigError(f"`--quant` {quant!r} matches no exported file; choose one of {[f.quant_type for f in files]}.")
    return [sys.executable, "-m", "llama_cpp.server", "--model", chosen.path, "--host", "127.0.0.1", "--port", str(port)]
