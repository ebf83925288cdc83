"""Validate a dataset for a training method before anything is spent, and prepare the rows training receives."""

from __future__ import annotations

import logging
import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from autotrain_agent.data.chat_format import SHAREGPT_ROLES, resolve_chat_template
from autotrain_agent.data.row_checks import Problem, RowReport, check_rows
from autotrain_agent.data.sampling import DatasetSample
from autotrain_agent.errors import DatasetError

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

Method = Literal["sft", "dpo", "grpo", "kto"]
Verdict = Literal["ready", "needs_mapping", "incompatible"]
Truncation = Literal["drop", "cut_prompt_left"]

ACCEPTED_FORMATS: dict[str, tuple[str, ...]] = {
    "sft": ("conversational", "prompt_completion", "language_modeling"),
    "dpo": ("preference",),
    "kto": ("unpaired_preference",),
    "grpo": ("prompt_only", "prompt_completion"),
}
"""Dataset formats that TRL 1.16's trainer for each method accepts."""

TRAINING_COLUMNS: dict[str, tuple[str, ...]] = {
    "conversational": ("messages", "tools"),
    "prompt_completion": ("prompt", "completion", "tools"),
    "language_modeling": ("text",),
    "preference": ("prompt", "chosen", "rejected", "tools"),
    "unpaired_preference": ("prompt", "completion", "label", "tools"),
}
"""Columns that the training file keeps per format. Prompt-only (GRPO) rows keep every column, because TRL passes
the extra columns to the reward functions."""

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "messages": ("conversation", "dialog", "dialogue", "chat"),
    "prompt": ("question", "instruction", "query", "problem", "input"),
    "completion": ("answer", "response", "output", "solution", "generation"),
    "chosen": ("chosen_response", "preferred", "positive"),
    "rejected": ("rejected_response", "dispreferred", "negative"),
    "text": ("content", "document", "body"),
}
"""Column names that commonly stand for each TRL column, offered as a suggested mapping."""


class ValidationResult(BaseModel):
    """Outcome of validating a dataset for one training method."""

    verdict: Verdict
    """`ready` to train, `needs_mapping` (rename columns as suggested), or `incompatible`."""
    method: Method
    """Training method the dataset was validated for."""
    detected_format: str
    """TRL dataset format: conversational, prompt_completion, language_modeling, preference,
    unpaired_preference, prompt_only or unknown."""
    num_rows: int | None
    """Rows in the dataset, not only in the validated sample; `None` when the source stores no count."""
    count_source: str = "dataset length"
    """Origin of `num_rows`, such as `Parquet metadata`, `line count` or `Hub metadata`."""
    num_checked: int = 0
    """Rows that validation inspected: the first rows of the split, up to the sample size."""
    num_rejected: int = 0
    """Checked rows dropped because of an error or because they keep no trainable token."""
    num_normalized: int = 0
    """Checked rows that were kept after a harmless fix, such as dropping an empty `tool_calls` list."""
    problems: list[Problem] = Field(default_factory=list)
    """Every error, warning and recorded choice, in the order found."""
    suggested_mapping: dict[str, str] = Field(default_factory=dict)
    """Column renames (source name to TRL name) that would make the dataset fit the method."""
    applied_mapping: dict[str, Any] = Field(default_factory=dict)
    """Column renames applied (source name to TRL name, from `column_mapping` and ShareGPT conversion) and, under
    `roles`, ShareGPT role renames; store it in the plan."""
    conversions: list[str] = Field(default_factory=list)
    """Every change made to the rows training receives, one sentence each, with row counts."""
    fitting_methods: list[str] = Field(default_factory=list)
    """Methods whose TRL trainer accepts the detected format as it is."""
    token_lengths: dict | None = None
    """Token counts per kept row (min, median, p95, max, over_max_length), when a tokenizer is given."""
    chat_template: str | None = None
    """Exact chat template text that rendered the rows; training, evaluation and export must reuse it."""
    pad_token: str | None = None
    """Padding token to use, chosen by `choose_pad_token` when the tokenizer defines none."""
    _prepared_rows: list[dict] = PrivateAttr(default_factory=list)

    @property
    def prepared_rows(self) -> list[dict]:
        """Checked rows as training must receive them: converted, normalised, with rejected rows dropped."""
        return self._prepared_rows

    def raise_if_incompatible(self) -> None:
        """Raise when the verdict is `incompatible`, with every error message.

        Raises:
            DatasetError: If the verdict is `incompatible`.
        """
        if self.verdict == "incompatible":
            errors = "; ".join(p.message for p in self.problems if p.severity == "error")
            raise DatasetError(f"Dataset is incompatible with {self.method}: {errors}")


def validate_dataset(
    dataset: datasets.Dataset | DatasetSample | Sequence[Mapping[str, Any]],
    method: Method,
    *,
    tokenizer=None,
    max_length: int | None = None,
    column_mapping: dict[str, str] | None = None,
    sample_size: int | None = 1000,
    chat_template: str | None = None,
    assistant_only_loss: bool = False,
    completion_only_loss: bool = True,
    truncation: Truncation = "drop",
    prefix_rendering: bool = True,
    max_dropped_fraction: float = 0.5,
) -> ValidationResult:
    """Check that a dataset fits a training method and prepare its rows, before any job is submitted.

    Checks, in order: columns per method (TRL formats), then each sampled row (message roles and content types,
    ShareGPT turns, alternation, an assistant turn for SFT, empty or whitespace-only values, tool calls and their
    schema, implicit DPO prompts), then, when a tokenizer is given, the chat template, the padding token, the
    assistant-token mask and token lengths against `max_length`. Row errors drop only those rows. The verdict is
    `incompatible` when a dataset-wide error occurs, no row is left, or more than `max_dropped_fraction` of the
    checked rows were dropped (so much broken data usually means a wrong format or mapping). Nothing is raised for bad data; call
    `raise_if_incompatible` to stop on it. Problems name rows by number, counted from 1.

    Args:
        dataset: Dataset, sample read by `read_validation_sample`, or in-memory list of row dicts. A list may mix
            value types that Arrow cannot hold.
        method: Training method: `sft`, `dpo`, `grpo` or `kto`.
        tokenizer: Tokenizer of the model to train. Without it the token checks are skipped.
        max_length: Sequence length of training, in tokens.
        column_mapping: Renames applied first, from source column to TRL column (`{"question": "prompt"}`).
        sample_size: Rows checked from the start of the dataset. `None` checks every row.
        chat_template: Template name (`chatml`) or Jinja text, for tokenizers that ship none or to replace theirs.
        assistant_only_loss: Train on assistant tokens only, as TRL's `assistant_only_loss`.
        completion_only_loss: Train on completion tokens only for prompt/completion rows.
        truncation: What to do with rows that keep no trainable token within `max_length`: `drop` them, or
            `cut_prompt_left` to remove prompt tokens from the start.
        prefix_rendering: Build the assistant mask by rendering growing conversation prefixes when the template
            has no `{% generation %}` markers.
        max_dropped_fraction: Largest fraction of checked rows that may be dropped before the verdict becomes
            `incompatible`.

    Raises:
        DatasetError: If `method`, `sample_size`, `max_length` or `chat_template` is invalid (input errors, not
            data errors).
    """
    _check_arguments(method, sample_size=sample_size, max_length=max_length, truncation=truncation)
    sample = _sample_rows(dataset, sample_size)
    rows = [_rename(row, column_mapping or {}) for row in sample.rows]
    columns = _columns_of(rows)
    detected_format = detect_format(columns)
    result = ValidationResult(
        verdict="ready", method=method, detected_format=detected_format, num_rows=sample.num_rows,
        count_source=sample.count_source, num_checked=len(rows), fitting_methods=methods_for_format(detected_format),
    )
    if not rows:
        return _incompatible(result, "empty_dataset", "The dataset has no rows; pass a dataset with data.")
    if detected_format not in ACCEPTED_FORMATS[method]:
        return _reject_format(result, columns)

    prepared, numbers, report = check_rows(rows, list(range(1, len(rows) + 1)), method=method,
                                           detected_format=detected_format)
    result.problems.extend(report.to_problems())
    result.num_rejected = len(rows) - len(prepared)
    result.num_normalized = len(report.findings.get(("normalized", "info"), []))
    if tokenizer is not None and prepared:
        from autotrain_agent.data.token_checks import check_with_tokenizer

        prepared, numbers = check_with_tokenizer(
            prepared,
            numbers,
            result,
            tokenizer=tokenizer,
            max_length=max_length,
            chat_template=chat_template,
            assistant_only_loss=assistant_only_loss,
            completion_only_loss=completion_only_loss,
            truncation=truncation,
            prefix_rendering=prefix_rendering,
        )
    elif chat_template is not None:
        result.chat_template = _resolve_template(chat_template)

    result._prepared_rows = prepared
    _record_conversions(result, report, column_mapping or {})
    dropped = len(rows) - len(prepared)
    if result.verdict != "incompatible" and not prepared:
        _incompatible(result, "no_rows_left", f"No row of the {len(rows)} checked is left to train on.")
    elif result.verdict != "incompatible" and dropped > max_dropped_fraction * len(rows):
        _incompatible(
            result,
            "too_many_rows_dropped",
            f"{dropped} of {len(rows)} checked rows were dropped, more than {max_dropped_fraction:.0%}; fix the rows "
            f"or the column mapping listed in the problems before training.",
        )
    logger.debug("Validated %d rows for %s: %s", len(rows), method, result.verdict)
    return result


def methods_for_format(detected_format: str) -> list[str]:
    """Return the methods whose trainer accepts `detected_format` without conversion."""
    return [method for method, formats in ACCEPTED_FORMATS.items() if detected_format in formats]


def to_training_row(row: dict, detected_format: str) -> dict:
    """Keep the columns that training reads for `detected_format`, so that extra columns cannot change how TRL
    reads the row (a stray `prompt` next to `messages` would make TRL treat it as prompt/completion)."""
    kept = TRAINING_COLUMNS.get(detected_format)
    if kept is None:
        return dict(row)
    return {column: row[column] for column in kept if column in row}


def detect_format(columns: set[str]) -> str:
    """Name the TRL dataset format that a set of column names describes, or `unknown`."""
    if {"chosen", "rejected"} <= columns:
        return "preference"
    if {"prompt", "completion", "label"} <= columns:
        return "unpaired_preference"
    if {"prompt", "completion"} <= columns:
        return "prompt_completion"
    if "messages" in columns or "conversations" in columns:
        return "conversational"
    if "text" in columns:
        return "language_modeling"
    if "prompt" in columns:
        return "prompt_only"
    return "unknown"


def _check_arguments(method: str, *, sample_size: int | None, max_length: int | None, truncation: str) -> None:
    if method not in ACCEPTED_FORMATS:
        raise DatasetError(f"Unknown `method` {method!r}; choose one of {sorted(ACCEPTED_FORMATS)}.")
    if sample_size is not None and sample_size < 1:
        raise DatasetError(f"`sample_size` must be a positive integer or None, got {sample_size!r}.")
    if max_length is not None and max_length < 2:
        raise DatasetError(f"`max_length` must be at least 2 tokens, got {max_length!r}.")
    if truncation not in ("drop", "cut_prompt_left"):
        raise DatasetError(f"Unknown `truncation` {truncation!r}; choose 'drop' or 'cut_prompt_left'.")


def _resolve_template(choice: str) -> str:
    try:
        return resolve_chat_template(choice)
    except ValueError as err:
        raise DatasetError(str(err)) from err


def _sample_rows(dataset, sample_size: int | None) -> DatasetSample:
    if isinstance(dataset, DatasetSample):
        rows = dataset.rows if sample_size is None else dataset.rows[:sample_size]
        return DatasetSample(rows=[dict(row) for row in rows], num_rows=dataset.num_rows,
                             count_source=dataset.count_source)
    num_rows = len(dataset)
    count = num_rows if sample_size is None else min(sample_size, num_rows)
    # A `datasets.Dataset` exists only once `datasets` is imported, and importing it takes 1 to 2 s.
    loaded = sys.modules.get("datasets")
    if loaded is not None and isinstance(dataset, loaded.Dataset):
        rows = [dict(row) for row in dataset.select(range(count))]
    else:
        rows = [dict(row) for row in list(dataset)[:count]]
    return DatasetSample(rows=rows, num_rows=num_rows, count_source="dataset length")


def _columns_of(rows: list[dict]) -> set[str]:
    """Return the columns that the first row fills; Arrow gives every row every column, with None when absent."""
    if not rows:
        return set()
    return {column for column, value in rows[0].items() if value is not None} or set(rows[0])


def _rename(row: dict, mapping: dict[str, str]) -> dict:
    return {mapping.get(key, key): value for key, value in row.items()}


def _incompatible(result: ValidationResult, code: str, message: str) -> ValidationResult:
    result.verdict = "incompatible"
    result.problems.append(Problem(code=code, message=message))
    return result


def _reject_format(result: ValidationResult, columns: set[str]) -> ValidationResult:
    accepted = ", ".join(ACCEPTED_FORMATS[result.method])
    suggested = _suggest_mapping(columns, result.method)
    result.suggested_mapping = suggested
    if suggested:
        result.verdict = "needs_mapping"
        renames = ", ".join(f"{source!r} -> {target!r}" for source, target in suggested.items())
        message = (
            f"Columns {sorted(columns)} form format {result.detected_format!r}, but {result.method} needs one of: "
            f"{accepted}. Rename columns with `column_mapping`: {renames}."
        )
        result.problems.append(Problem(code="needs_mapping", message=message))
        return result
    hint = " For KTO, unpair preference rows first with `trl.data_utils.unpair_preference_dataset`." * (
        result.method == "kto" and result.detected_format == "preference"
    )
    message = (
        f"Columns {sorted(columns)} form format {result.detected_format!r}, which {result.method} cannot train "
        f"on; it needs one of: {accepted}.{hint}"
    )
    return _incompatible(result, "incompatible_format", message)


def _suggest_mapping(columns: set[str], method: str) -> dict[str, str]:
    for accepted in ACCEPTED_FORMATS[method]:
        needed = {
            "conversational": ["messages"],
            "prompt_completion": ["prompt", "completion"],
            "language_modeling": ["text"],
            "preference": ["chosen", "rejected"],
            "unpaired_preference": ["prompt", "completion", "label"],
            "prompt_only": ["prompt"],
        }[accepted]
        mapping = {}
        for target in needed:
            if target in columns:
                continue
            source = next((alias for alias in COLUMN_ALIASES.get(target, ()) if alias in columns), None)
            if source is None or source in mapping:
                break
            mapping[source] = target
        else:
            if mapping:
                return mapping
    return {}


def _record_conversions(result: ValidationResult, report: RowReport, column_mapping: dict[str, str]) -> None:
    """Describe in `result` every change made to the rows training receives."""
    if column_mapping:
        result.applied_mapping.update(column_mapping)
        renames = ", ".join(f"{source!r} -> {target!r}" for source, target in column_mapping.items())
        result.conversions.append(f"Renamed columns: {renames}.")
    if report.sharegpt_rows:
        roles = {alias: role for alias, role in SHAREGPT_ROLES.items() if alias != role}
        result.applied_mapping.update({"conversations": "messages", "from": "role", "value": "content",
                                       "roles": roles})
        shown = ", ".join(f"{alias} -> {role}" for alias, role in roles.items())
        result.conversions.append(f"Converted {_count_rows(report.sharegpt_rows)} of ShareGPT `conversations` "
                                  f"(`from`/`value`) to `messages` (`role`/`content`), with roles {shown}.")
    if report.explicit_prompt_rows:
        result.conversions.append(f"Moved the shared leading turns of `chosen` and `rejected` into an explicit "
                                  f"`prompt` in {_count_rows(report.explicit_prompt_rows)}.")
    empty_prompts = report.findings.get(("ambiguous_prompt", "warning"), [])
    if empty_prompts:
        result.conversions.append(f"Gave {_count_rows(len(empty_prompts))} of plain-text preferences an empty "
                                  "`prompt`.")
    if result.num_normalized:
        result.conversions.append(f"Dropped empty `tool_calls` lists in {_count_rows(result.num_normalized)}.")
    if result.num_rejected:
        codes = sorted({p.code for p in result.problems if p.rows and p.severity == "error"}
                       | {p.code for p in result.problems if p.code == "no_trainable_tokens"})
        result.conversions.append(f"Dropped {result.num_rejected} of {result.num_checked} checked rows "
                                  f"({', '.join(codes)}).")


def _count_rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def summarize_lengths(lengths: list[int], *, max_length: int | None) -> dict:
    """Return min, median, p95 and max of token lengths, and how many exceed `max_length`."""
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p95": p95,
        "max": ordered[-1],
        "count": len(ordered),
        "over_max_length": sum(length > max_length for length in ordered) if max_length else 0,
    }
