"""`autotrain-agent export EXPERIMENT`: merge the best run and write verified GGUF files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import Settings
from . import EXIT_OK

NAME = "export"


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Register the `export` subcommand."""
    export = subparsers.add_parser(
        NAME, parents=parents, help="export a trained experiment to GGUF", description="Merge, convert, quantize and verify."
    )
    export.add_argument("experiment", help="experiment id, as `autotrain-agent status` lists it")
    export.add_argument("--quant", default="Q4_K_M", help="comma-separated llama.cpp file types, e.g. Q4_K_M,Q8_0 (default Q4_K_M)")
    export.add_argument("--run", help="run id to export (default: the latest succeeded run)")
    export.add_argument("--output-dir", type=Path, default=Path.cwd(), help="folder that contains training_runs/ (default: current folder)")
    export.set_defaults(handler=export_command)


def export_command(args: argparse.Namespace) -> int:
    """Export the experiment's run and print each file with its size, bits per weight and verification."""
    from ..loop import load_saved_experiment
    from ..tools.export import export_model

    quant_types = tuple(part.strip().upper() for part in args.quant.split(",") if part.strip())
    ctx = load_saved_experiment(args.experiment, Settings(output_dir=args.output_dir.resolve()))
    with ctx.store.lock(ctx.experiment.id):
        export_model(ctx, args.run, quant_types)
    for file in ctx.experiment.export.files:
        print(f"{file.path}\n  {file.quant_type}, {file.size_bytes / 1e6:.1f} MB, {file.bits_per_weight:.2f} bits/weight, "
              f"tensor types {file.tensor_types}, fallback tensors {file.fallback_tensors}, token probes "
              f"{'match' if file.probes_match else 'differ'}"
              + ("" if file.greedy_match is None else f", greedy vs transformers {'match' if file.greedy_match else 'differ'}"))
    files = ctx.experiment.export.files
    print(f"Run it: llama-server -m {next((f for f in files if f.quant_type != 'F16'), files[-1]).path}")
    return EXIT_OK
