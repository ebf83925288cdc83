"""The `validate_dataset` tool: resolve the base model, prepare the training data and check it fits the method."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..context import ExperimentContext
from ..errors import DatasetError
from ..recipes import BUILTIN_CODE_DATASET
from ..state import Stage

if TYPE_CHECKING:
    from ..data.sampling import DatasetSample

logger = logging.getLogger(__name__)

_ALL_ROWS = 10**12
"""Row limit that reads every row of any real dataset."""


def validate_dataset(ctx: ExperimentContext) -> str:
    """Resolve the plan's model, validate every row of its dataset for the method, and write the prepared rows.

    Nothing is trained or paid for here. The file that training reads holds the prepared rows: the plan's column
    mapping applied, ShareGPT turns converted, implicit preference prompts made explicit, rejected rows dropped,
    and only the columns the method's trainer reads. The result and the conversions are stored in the
    experiment; the stage completes only when the verdict is `ready`.

    Returns:
        A one-paragraph summary for the planner and the user.

    Raises:
        DatasetError: If the dataset is missing, unreadable or not ready for the method; the message lists the
            problems with their row numbers (counted from 1).
    """
    experiment = ctx.experiment
    plan = experiment.plan
    model = _resolve_model(ctx)
    if Stage.EXPORT in plan.stages:
        check_tokenizer_converts(ctx, model)
    rows, provenance = _read_rows(ctx)

    from transformers import AutoTokenizer

    from ..data.validation import validate_dataset as check_rows

    tokenizer = AutoTokenizer.from_pretrained(model)
    result = check_rows(
        rows,
        plan.method,
        tokenizer=tokenizer,
        max_length=plan.hyperparameters.max_length,
        column_mapping=plan.dataset.column_mapping or None,
        sample_size=None,
    )
    experiment.validation = result.model_dump(mode="json")
    experiment.dataset_provenance = provenance
    if result.verdict != "ready":
        ctx.record("dataset_validated", verdict=result.verdict, rows=result.num_rows)
        raise DatasetError(f"Dataset {plan.dataset.reference!r} is {result.verdict} for {plan.method.upper()}: "
                           f"{_describe_problems(result)}. Fix the rows or pass a column mapping (`--map`), then "
                           "run the same command again.")

    rows_path = write_training_rows(result, ctx.folder / "data" / "train.jsonl")
    experiment.dataset_path = str(rows_path)
    ctx.record("dataset_validated", verdict=result.verdict, rows=result.num_rows,
               kept=len(result.prepared_rows), dropped=result.num_rejected)
    ctx.complete_stage(Stage.VALIDATE)
    lengths = result.token_lengths or {}
    truncated = lengths.get("over_max_length") or 0
    if truncated:
        experiment.warnings.append(
            f"{truncated} of {lengths['count']} rows are longer than max_length={plan.hyperparameters.max_length} "
            f"tokens and are truncated in training."
        )
    summary = (
        f"Dataset ready for {plan.method.upper()}: {len(result.prepared_rows)} of {result.num_checked} rows kept, "
        f"format {result.detected_format}"
        + (f", tokens median {lengths.get('median')} / max {lengths.get('max')}" if lengths else "")
        + (f", {truncated} rows over max_length={plan.hyperparameters.max_length} tokens truncated (warning)" if truncated else "")
        + "".join(f". {conversion}" for conversion in result.conversions)
        + f". Model files at {model}."
    )
    ctx.echo(summary)
    return summary


def write_training_rows(result, path: Path) -> Path:
    """Write the prepared rows of a validation result as JSONL, with the columns the method's trainer reads."""
    from ..data.validation import to_training_row

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(to_training_row(row, result.detected_format), ensure_ascii=False) + "\n"
                       for row in result.prepared_rows)
    return path


def _describe_problems(result) -> str:
    errors = [p for p in result.problems if p.severity == "error"] or result.problems
    shown = "; ".join(f"{p.code} (rows {p.rows[:5]}): {p.message}" if p.rows else f"{p.code}: {p.message}"
                      for p in errors[:5])
    if result.suggested_mapping:
        pairs = ",".join(f"{source}={target}" for source, target in result.suggested_mapping.items())
        shown += f"; suggested mapping: --map {pairs}"
    return shown


def check_tokenizer_converts(ctx: ExperimentContext, model_dir: Path) -> Path:
    """Run llama.cpp's converter with `--vocab-only` on the base model, so an unsupported tokenizer fails in seconds.

    It also checks that the quantizer is available, so a missing tool is found before training. With
    `$AUTOTRAIN_LLAMA_CPP_DIR` set, the converter and quantizer of that folder must both answer `--help` first. Only plans that
    export run it: the trained model's tokenizer is the base model's, so a tokenizer that llama.cpp
    cannot convert now would fail the export after the whole run.

    Raises:
        UnsupportedTokenizerError: If the converter does not know the tokenizer's pre-tokenizer; the message
            carries its `chkhsh`.
        ConversionError: If the converter or the quantizer is missing, or the converter fails for another reason.
    """
    from ..gguf_convert import check_quantizer_available, convert_hf_to_gguf
    from ..llama_cpp_tools import resolve_configured_llama_cpp_tools

    tools = resolve_configured_llama_cpp_tools()
    if tools is not None:
        ctx.record("llama_cpp_tools_resolved", converter=str(tools.converter), quantizer=str(tools.quantizer),
                   llama_cpp_python=tools.llama_cpp_python_version)
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


def _read_rows(ctx: ExperimentContext) -> tuple[DatasetSample, dict]:
    """Read every row of the plan's dataset (up to `max_rows`) as plain Python values, and how it was made."""
    from ..data.sampling import read_validation_sample

    spec = ctx.experiment.plan.dataset
    limit = spec.max_rows or _ALL_ROWS
    if spec.reference == BUILTIN_CODE_DATASET:
        from ..data.code_functions import build_code_sft_dataset
        from ..data.code_prompts import build_code_prompt_dataset

        # GRPO learns from prompts with tests; the other methods from the reference solutions.
        build = build_code_prompt_dataset if ctx.experiment.plan.method == "grpo" else build_code_sft_dataset
        built = build(
            cache_dir=ctx.settings.cache_dir, seed=ctx.experiment.plan.hyperparameters.seed, progress=ctx.settings.progress
        )
        return read_validation_sample(str(built.path / "train.jsonl"), sample_size=limit), dict(built.provenance)

    # NOTE: a Hub dataset is streamed row by row here, which is slower than a download for large sets.
    rows = read_validation_sample(spec.reference, split=spec.split, config=spec.config, sample_size=limit)
    provenance = {"reference": spec.reference, "config": spec.config, "split": spec.split, "rows": rows.num_rows}
    return rows, provenance
