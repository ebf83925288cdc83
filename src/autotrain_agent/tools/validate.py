"""The `validate_dataset` tool: resolve the base model, prepare the training data and check it fits the method."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..context import ExperimentContext
from ..errors import DatasetError
from ..recipes import BUILTIN_CODE_DATASET
from ..state import Stage

logger = logging.getLogger(__name__)


def validate_dataset(ctx: ExperimentContext) -> str:
    """Resolve the plan's model, prepare its dataset as a local JSONL file, and validate it for the method.

    Nothing is trained or paid for here. The stage completes only when the verdict is `ready`.

    Returns:
        A one-paragraph summary for the planner and the user.

    Raises:
        DatasetError: If the dataset is missing, unreadable or not ready for the method; the message lists the
            problems with their row numbers.
    """
    experiment = ctx.experiment
    plan = experiment.plan
    model = _resolve_model(ctx)
    if Stage.EXPORT in plan.stages:
        check_tokenizer_converts(ctx, model)
    rows_path, provenance = _prepare_rows(ctx)

    from datasets import load_dataset
    from transformers import AutoTokenizer

    from ..data.validation import validate_dataset as check_rows

    dataset = load_dataset("json", data_files=str(rows_path), split="train")
    tokenizer = AutoTokenizer.from_pretrained(model)
    result = check_rows(
        dataset,
        plan.method,
        tokenizer=tokenizer,
        max_length=plan.hyperparameters.max_length,
        column_mapping=plan.dataset.column_mapping or None,
    )
    experiment.validation = result.model_dump(mode="json")
    experiment.dataset_path = str(rows_path)
    experiment.dataset_provenance = provenance
    ctx.record("dataset_validated", verdict=result.verdict, rows=result.num_rows)
    if result.verdict != "ready":
        problems = "; ".join(f"{p.code} (rows {p.rows[:5]}): {p.message}" for p in result.problems[:5])
        raise DatasetError(
            f"Dataset {plan.dataset.reference!r} is {result.verdict} for {plan.method.upper()}: {problems}. "
            f"Fix the rows or pass a column mapping, then run the same command again."
        )

    ctx.complete_stage(Stage.VALIDATE)
    lengths = result.token_lengths or {}
    summary = (
        f"Dataset ready for {plan.method.upper()}: {result.num_rows} rows, format {result.detected_format}"
        + (f", tokens median {lengths.get('median')} / max {lengths.get('max')}" if lengths else "")
        + f". Model files at {model}."
    )
    ctx.echo(summary)
    return summary


def check_tokenizer_converts(ctx: ExperimentContext, model_dir: Path) -> Path:
    """Run llama.cpp's converter with `--vocab-only` on the base model, so an unsupported tokenizer fails in seconds.

    It also checks that the quantizer is available, so a missing tool is found before training. Only plans that
    export run it: the trained model's tokenizer is the base model's, so a tokenizer that llama.cpp
    cannot convert now would fail the export after the whole run.

    Raises:
        UnsupportedTokenizerError: If the converter does not know the tokenizer's pre-tokenizer; the message
            carries its `chkhsh`.
        ConversionError: If the converter or the quantizer is missing, or the converter fails for another reason.
    """
    from ..gguf_convert import check_quantizer_available, convert_hf_to_gguf

    version = check_quantizer_available()
    vocab_file = convert_hf_to_gguf(
        model_dir, ctx.folder / "export" / "vocab-preflight.gguf", cache_dir=ctx.settings.cache_dir, vocab_only=True
    )
    ctx.record("tokenizer_preflight_passed", gguf=str(vocab_file), llama_cpp_python=version)
    return vocab_file


def _resolve_model(ctx: ExperimentContext) -> Path:
    from ..model_source import resolve_model

    experiment = ctx.experiment
    if experiment.model_path and Path(experiment.model_path, "config.json").is_file():
        return Path(experiment.model_path)
    resolved = resolve_model(experiment.plan.base_model, cache_dir=ctx.settings.cache_dir)
    experiment.model_path = str(resolved.path)
    experiment.model_notes = [f"source: {resolved.source}", *resolved.notes]
    if resolved.num_parameters:
        experiment.model_notes.append(f"parameters: {resolved.num_parameters:,}")
    ctx.record("model_resolved", source=resolved.source, path=str(resolved.path))
    return resolved.path


def _prepare_rows(ctx: ExperimentContext) -> tuple[Path, dict]:
    """Return a local JSONL file of chat rows for the plan's dataset, and how it was made."""
    spec = ctx.experiment.plan.dataset
    if spec.reference == BUILTIN_CODE_DATASET:
        from ..data.code_functions import build_code_sft_dataset

        built = build_code_sft_dataset(
            cache_dir=ctx.settings.cache_dir, seed=ctx.experiment.plan.hyperparameters.seed, progress=ctx.settings.progress
        )
        return built.path / "train.jsonl", dict(built.provenance)

    from ..data.sources import load_dataset_rows, to_chat_messages

    dataset = load_dataset_rows(spec.reference, split=spec.split, config=spec.config, limit=spec.max_rows)
    if spec.column_mapping:
        dataset = dataset.rename_columns(spec.column_mapping)
    dataset = to_chat_messages(dataset)
    rows_path = ctx.folder / "data" / "train.jsonl"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    with open(rows_path, "w", encoding="utf-8") as out:
        for row in dataset:
            out.write(json.dumps({"messages": row["messages"]}, ensure_ascii=False) + "\n")
    provenance = {"reference": spec.reference, "config": spec.config, "split": spec.split, "rows": len(dataset)}
    return rows_path, provenance
