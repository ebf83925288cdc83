"""`autotrain-agent validate DATASET --method M`: check a dataset for a training method before anything is spent."""

from __future__ import annotations

import argparse
import json
import sys

from ..recipes import METHODS as TRAINING_METHODS
from ..recipes import describe_methods
from . import EXIT_FAILED, EXIT_OK, EXIT_USAGE

NAME = "validate"
# KTO data can be checked, though no plan trains with KTO.
METHODS = (*TRAINING_METHODS, "kto")
DEFAULT_SAMPLE_SIZE = 1000
SHOWN_PROBLEMS = 20
"""Problems printed in the human output; `--json` lists every one."""


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Register the `validate` subcommand."""
    validate = subparsers.add_parser(
        NAME, parents=parents, help="check a dataset for a training method",
        description="Check that a dataset fits a training method, on a sample, before anything is trained. "
        "Exit status: 0 ready, 1 not ready, 2 invalid input.",
    )
    validate.add_argument("dataset", help="Hub dataset id or local JSONL/JSON/CSV/Parquet/Arrow file or folder")
    validate.add_argument("--method", required=True, help=f"training method: {describe_methods()}; kto data can be checked too")
    validate.add_argument("--model", help="model whose tokenizer measures token lengths and renders chat rows: Hub id or local folder")
    validate.add_argument("--max-length", type=int, help="sequence length of training, in tokens (needs --model)")
    validate.add_argument("--map", dest="mapping", help="column renames applied first, source=target pairs: good=chosen,bad=rejected")
    validate.add_argument("--split", default="train", help="split to check (default train)")
    validate.add_argument("--config", help="Hub dataset configuration name")
    validate.add_argument("--sample-size", type=int, default=DEFAULT_SAMPLE_SIZE, help=f"rows checked from the start of the split (default {DEFAULT_SAMPLE_SIZE})")
    validate.add_argument("--chat-template", help="chat template for a tokenizer that ships none: a name (chatml) or Jinja text")
    validate.add_argument("--json", action="store_true", help="print the result as one JSON document")
    validate.set_defaults(handler=validate_command)


def validate_command(args: argparse.Namespace) -> int:
    """Validate the dataset, print the verdict, and return 0 when it is ready, 1 when not, 2 for invalid input."""
    from ..data.sampling import read_validation_sample
    from ..data.validation import validate_dataset

    error = _check_flags(args)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    mapping = parse_column_mapping(args.mapping)
    _check_hub_reachable(args.dataset)
    tokenizer = _load_tokenizer(args.model) if args.model else None

    sample = read_validation_sample(args.dataset, split=args.split, config=args.config, sample_size=args.sample_size)
    result = validate_dataset(
        sample,
        args.method,
        tokenizer=tokenizer,
        max_length=args.max_length,
        column_mapping=mapping or None,
        sample_size=args.sample_size,
        chat_template=args.chat_template,
    )

    document = {"dataset": args.dataset, "split": args.split, "config": args.config, **result.model_dump(mode="json")}
    print(json.dumps(document, indent=2) if args.json else format_result(args.dataset, result))
    return EXIT_OK if result.verdict == "ready" else EXIT_FAILED


def _check_flags(args: argparse.Namespace) -> str | None:
    if args.method not in METHODS:
        return f"Unknown method {args.method!r}; choose one of {', '.join(METHODS)}."
    if args.sample_size < 1:
        return f"`--sample-size` must be a positive integer, got {args.sample_size}."
    if args.max_length is not None and args.max_length < 2:
        return f"`--max-length` must be at least 2 tokens, got {args.max_length}."
    if args.max_length is not None and not args.model:
        return "`--max-length` needs `--model`, whose tokenizer measures the token lengths."
    return None


def _check_hub_reachable(reference: str) -> None:
    """Raise at once when a Hub id is given and the Hub is unreachable, where `huggingface_hub` 2.4 would retry for
    about 25 s."""
    from pathlib import Path

    from ..errors import DatasetError
    from ..hub import is_hub_reachable

    if Path(reference).expanduser().exists():
        return
    from ..data.sources import looks_like_path

    if looks_like_path(reference):
        return
    if not is_hub_reachable():
        raise DatasetError(
            f"{reference!r} looks like a Hub dataset id, but the Hugging Face Hub is unreachable; pass a local "
            "JSONL, JSON, CSV, Parquet or Arrow file or folder instead."
        )


def parse_column_mapping(text: str | None) -> dict[str, str]:
    """Parse `source=target,source=target` into a column mapping.

    Raises:
        ConfigError: If a pair has no `=`, a name is empty, or a source or target appears twice.
    """
    from ..errors import ConfigError

    if not text:
        return {}
    mapping: dict[str, str] = {}
    for pair in text.split(","):
        source, separator, target = (part.strip() for part in pair.partition("="))
        if not separator or not source or not target:
            raise ConfigError(f"Invalid `--map` pair {pair!r}; write source=target pairs separated by commas.")
        if source in mapping or target in mapping.values():
            raise ConfigError(f"`--map` names {source!r} or {target!r} twice in {text!r}; map each column once.")
        mapping[source] = target
    return mapping


def _load_tokenizer(reference: str):
    from transformers import AutoTokenizer

    from ..config import default_cache_dir
    from ..model_source import resolve_model

    resolved = resolve_model(reference, cache_dir=default_cache_dir())
    return AutoTokenizer.from_pretrained(resolved.path)


def format_result(dataset: str, result) -> str:
    """Return the validation result as text for a person: verdict, format, counts, lengths, problems, changes."""
    lines = [f"{dataset}: {_verdict_line(result)}"]
    fits = ", ".join(m.upper() for m in result.fitting_methods) or "no method"
    lines.append(f"  format:    {result.detected_format} (fits {fits})")
    lines.append(f"  rows:      {_count_line(result)}")
    if result.token_lengths:
        lengths = result.token_lengths
        over = f", {lengths['over_max_length']} over max_length" if "over_max_length" in lengths else ""
        lines.append(
            f"  tokens:    min {lengths['min']}, median {lengths['median']}, p95 {lengths['p95']}, "
            f"max {lengths['max']} over {lengths['count']} kept rows{over}"
        )
    for conversion in result.conversions:
        lines.append(f"  changed:   {conversion}")
    if result.problems:
        lines.append("  problems (rows counted from 1):")
        for problem in result.problems[:SHOWN_PROBLEMS]:
            lines.append(f"    {problem.severity} {problem.code}: {problem.message}")
        if len(result.problems) > SHOWN_PROBLEMS:
            lines.append(f"    ... {len(result.problems) - SHOWN_PROBLEMS} more; `--json` lists every problem")
    return "\n".join(lines)


def _verdict_line(result) -> str:
    method = result.method.upper()
    if result.verdict == "ready":
        return f"ready for {method}"
    if result.verdict == "needs_mapping":
        pairs = ",".join(f"{source}={target}" for source, target in result.suggested_mapping.items())
        return f"needs mapping for {method}: pass --map {pairs}"
    reasons = "; ".join(p.code for p in result.problems if p.severity == "error") or "see problems"
    return f"incompatible with {method} ({reasons})"


def _count_line(result) -> str:
    checked = f"checked the first {result.num_checked}"
    if result.num_rows is None:
        return f"unknown total ({result.count_source}); {checked}, {result.num_rejected} rejected"
    sampled = "all of them" if result.num_checked >= result.num_rows else f"a sample of {result.num_checked}"
    return (
        f"{result.num_rows:,} (exact, from {result.count_source}); checked {sampled}, "
        f"{result.num_rejected} rejected"
    )
