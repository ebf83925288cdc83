"""`autotrain-agent estimate`: the flavor, memory, time and cost of a Hugging Face Jobs run, without submitting."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from ..recipes import GPU_HYPERPARAMETERS, METHODS, describe_methods
from . import EXIT_OK

NAME = "estimate"


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Register the `estimate` subcommand."""
    estimate = subparsers.add_parser(
        NAME, parents=parents, help="estimate hardware, time and cost of a Jobs run", description="Estimate a Hugging Face Jobs run; submits nothing."
    )
    estimate.add_argument("--model", required=True, help="base model: Hub id or local folder")
    estimate.add_argument("--dataset", required=True, help="training data: Hub id or local JSONL file")
    estimate.add_argument("--method", default="sft", choices=METHODS, help=f"training method: {describe_methods()} (default sft)")
    estimate.add_argument("--rows", type=int, help="training rows, a positive number; counted from a local JSONL file when omitted")
    estimate.add_argument("--params", help="parameter count, e.g. 7B or 135M, when the model's size cannot be found")
    estimate.add_argument("--no-lora", action="store_true", help="full fine-tune instead of LoRA")
    estimate.add_argument("--epochs", type=float, default=1.0, help="epochs over the dataset (default 1)")
    default_length = GPU_HYPERPARAMETERS.max_length
    default_batch = GPU_HYPERPARAMETERS.per_device_train_batch_size
    estimate.add_argument("--max-length", type=int, default=default_length, help=f"tokens per sequence (default {default_length})")
    estimate.add_argument("--batch-size", type=int, default=default_batch, help=f"sequences per GPU per step (default {default_batch})")
    estimate.add_argument("--flavor", help="hardware flavor; default the cheapest that fits")
    estimate.add_argument("--refresh-prices", action="store_true", help="fetch prices with list_jobs_hardware even if cached")
    estimate.add_argument("--json", action="store_true", help="print the estimate as JSON")
    estimate.set_defaults(handler=estimate_command)


def estimate_command(args: argparse.Namespace) -> int:
    """Print the chosen flavor, memory estimate, time, cost and timeout of the run."""
    from ..config import default_cache_dir
    from ..estimate import ASSUMED_TOKENS_PER_SEQUENCE, plan_job
    from ..hub import is_hub_reachable
    from ..state import DatasetSpec, LoraSettings, Plan

    check_estimate_arguments(args)
    num_rows = args.rows if args.rows is not None else count_rows(args.dataset)
    plan = Plan(
        goal="estimate",
        base_model=args.model,
        dataset=DatasetSpec(reference=args.dataset),
        method=args.method,
        lora=None if args.no_lora else LoraSettings(),
        hyperparameters=GPU_HYPERPARAMETERS.model_copy(
            update={"num_train_epochs": args.epochs, "max_length": args.max_length, "per_device_train_batch_size": args.batch_size}
        ),
        backend="hf-jobs",
        hardware=args.flavor or "cpu",
    )
    api = None
    if is_hub_reachable():
        from huggingface_hub import HfApi

        api = HfApi()
    job, memory, table = plan_job(plan, num_rows=num_rows, cache_dir=default_cache_dir(), params_override=args.params, api=api, refresh_prices=args.refresh_prices)
    flavor = table.flavor(job.flavor)
    result = {
        "model": args.model,
        "num_parameters": plan.num_parameters,
        "parameter_source": plan.parameter_source,
        "dataset": args.dataset,
        "rows": num_rows,
        "assumed_tokens_per_row": ASSUMED_TOKENS_PER_SEQUENCE,
        "method": args.method,
        "lora": not args.no_lora,
        "flavor": job.flavor,
        "gpus": f"{flavor.gpu_count} x {flavor.gpu_model} {flavor.gpu_memory_gb:g} GB",
        "memory_gb_per_gpu": memory.total_gb,
        "usd_per_hour": job.usd_per_hour,
        "price_source": table.describe_source(),
        "tokens": job.tokens,
        "tokens_per_s": job.tokens_per_s,
        "estimated_minutes": job.minutes,
        "estimated_cost_usd": job.cost_usd,
        "timeout": job.timeout,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_estimate(result))
    return EXIT_OK


def check_estimate_arguments(args: argparse.Namespace) -> None:
    """Raise if a count or size flag is not positive.

    Raises:
        ConfigError: Naming the flag and the value received.
    """
    for flag, value in (("--rows", args.rows), ("--epochs", args.epochs), ("--max-length", args.max_length), ("--batch-size", args.batch_size)):
        if value is not None and not value > 0:
            raise ConfigError(f"`{flag}` must be a positive number, got {value:g}.")


def count_rows(dataset: str) -> int:
    """Return the non-empty lines of a local JSONL file.

    Raises:
        ConfigError: If `dataset` is not a local file; the message requests `--rows`.
    """
    path = Path(dataset)
    if not path.is_file():
        raise ConfigError(f"Cannot count the rows of {dataset!r} offline; pass `--rows`, e.g. `--rows 10000`.")
    with path.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def format_estimate(result: dict) -> str:
    """Return the estimate as aligned lines for a person."""
    from ..model_size import format_parameter_count

    lora = "LoRA" if result["lora"] else "full fine-tune"
    return "\n".join(
        [
            f"model:          {result['model']} ({format_parameter_count(result['num_parameters'])} parameters, from the {result['parameter_source']})",
            f"dataset:        {result['dataset']} ({result['rows']} rows, {result['assumed_tokens_per_row']} tokens per row assumed)",
            f"method:         {result['method'].upper()} with {lora}",
            f"flavor:         {result['flavor']} ({result['gpus']}) at ${result['usd_per_hour']:.2f}/h",
            f"memory:         {result['memory_gb_per_gpu']:g} GB per GPU (estimate)",
            f"time:           {result['estimated_minutes']:.0f} min for {result['tokens']:,} tokens at {result['tokens_per_s']:,.0f} tokens/s (estimate)",
            f"cost:           ${result['estimated_cost_usd']:.2f} (estimate)",
            f"timeout:        {result['timeout']}",
            f"prices:         {result['price_source']}",
        ]
    )
