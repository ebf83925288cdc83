"""Validate a dataset for a training method before anything is spent, and prepare the rows training receives."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import datasets
from pydantic import BaseModel, Field, PrivateAttr

from autotrain_agent.data.chat_format import (
    KNOWN_ROLES,
    UnknownRoleError,
    is_message_list,
    is_sharegpt_turns,
    resolve_chat_template,
    sharegpt_to_messages,
)
from autotrain_agent.errors import DatasetError

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

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "messages": ("conversation", "dialog", "dialogue", "chat"),
    "prompt": ("question", "instruction", "query", "problem", "input"),
    "completion": ("answer", "response", "output", "solution", "generation"),
    "chosen": ("chosen_response", "preferred", "positive"),
    "rejected": ("rejected_response", "dispreferred", "negative"),
    "text": ("content", "document", "body"),
}
"""Column names that commonly stand for each TRL column, offered as a suggested mapping."""


class Problem(BaseModel):
    """One finding of validation, with the rows it concerns."""

    code: str
    """Stable identifier such as `empty_content` or `unknown_role`."""
    message: str
    """What is wrong, on which value, and what to do."""
    rows: list[int] = Field(default_factory=list)
    """Row numbers, counted from 0, that show the problem. Empty for dataset-wide findings."""
    severity: Literal["error", "warning", "info"] = "error"
    """`error` rejects the rows named (or the dataset), `warning` keeps them, `info` records a choice made."""


class ValidationResult(BaseModel):
    """Outcome of validating a dataset for one training method."""

    verdict: Verdict
    """`ready` to train, `needs_mapping` (rename columns as suggested), or `incompatible`."""
    method: Method
    """Training method the dataset was validated for."""
    detected_format: str
    """TRL dataset format: conversational, prompt_completion, language_modeling, preference,
    unpaired_preference, prompt_only or unknown."""
    num_rows: int
    """Rows in the dataset, not only in the validated sample."""
    num_checked: int = 0
    """Rows that validation inspected (the sample)."""
    num_rejected: int = 0
    """Checked rows dropped because of an error."""
    num_normalized: int = 0
    """Checked rows that were kept after a harmless fix, such as dropping an empty `tool_calls` list."""
    problems: list[Problem] = Field(default_factory=list)
    """Every error, warning and recorded choice, in the order found."""
    suggested_mapping: dict[str, str] = Field(default_factory=dict)
    """Column renames (source name to TRL name) that would make the dataset fit the method."""
    applied_mapping: dict[str, Any] = Field(default_factory=dict)
    """Conversions validation applied itself, such as ShareGPT roles to TRL roles; store it in the plan."""
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


class _RowReport:
    """Collects per-row findings so they can be grouped into one `Problem` per code."""

    def __init__(self) -> None:
        self.findings: dict[tuple[str, str], list[int]] = {}
        self.messages: dict[tuple[str, str], str] = {}

    def add(self, code: str, index: int, message: str, severity: str = "error") -> None:
        key = (code, severity)
        self.findings.setdefault(key, []).append(index)
        self.messages.setdefault(key, message)

    def to_problems(self) -> list[Problem]:
        problems = []
        for (code, severity), rows in self.findings.items():
            message = self.messages[(code, severity)]
            if len(rows) > 1:
                message = f"{message} ({len(rows)} rows: {_format_rows(rows)})"
            problems.append(Problem(code=code, message=message, rows=rows, severity=severity))
        return problems


def validate_dataset(
    dataset: datasets.Dataset | Sequence[Mapping[str, Any]],
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
) -> ValidationResult:
    """Check that a dataset fits a training method and prepare its rows, before any job is submitted.

    Checks, in order: columns per method (TRL formats), then each sampled row (message roles and content types,
    ShareGPT turns, alternation, an assistant turn for SFT, empty or whitespace-only values, tool calls and their
    schema, implicit DPO prompts), then, when a tokenizer is given, the chat template, the padding token, the
    assistant-token mask and token lengths against `max_length`. Row errors drop only those rows. The verdict is
    `incompatible` when a dataset-wide error occurs or no row is left. Nothing is raised for bad data; call
    `raise_if_incompatible` to stop on it.

    Args:
        dataset: Dataset or in-memory list of row dicts. A list may mix value types that Arrow cannot hold.
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

    Raises:
        DatasetError: If `method`, `sample_size`, `max_length` or `chat_template` is invalid (input errors, not
            data errors).
    """
    _check_arguments(method, sample_size=sample_size, max_length=max_length, truncation=truncation)
    rows, num_rows = _sample_rows(dataset, sample_size)
    rows = [_rename(row, column_mapping or {}) for row in rows]
    columns = set(rows[0]) if rows else set()
    detected_format = detect_format(columns)
    result = ValidationResult(
        verdict="ready", method=method, detected_format=detected_format, num_rows=num_rows, num_checked=len(rows)
    )
    if not rows:
        return _incompatible(result, "empty_dataset", "The dataset has no rows; pass a dataset with data.")
    if detected_format not in ACCEPTED_FORMATS[method]:
        return _reject_format(result, columns)

    prepared, report = _check_rows(rows, method, detected_format, result)
    result.problems.extend(report.to_problems())
    result.num_rejected = len(rows) - len(prepared)
    result.num_normalized = len(report.findings.get(("normalized", "info"), []))
    if tokenizer is not None and prepared:
        from autotrain_agent.data.token_checks import check_with_tokenizer

        prepared = check_with_tokenizer(
            prepared,
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
    if result.verdict != "incompatible" and not prepared:
        _incompatible(result, "no_rows_left", f"No row of the {len(rows)} checked is left to train on.")
    logger.debug("Validated %d rows for %s: %s", len(rows), method, result.verdict)
    return result


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


def _sample_rows(dataset, sample_size: int | None) -> tuple[list[dict], int]:
    num_rows = len(dataset)
    count = num_rows if sample_size is None else min(sample_size, num_rows)
    if isinstance(dataset, datasets.Dataset):
        return [dict(row) for row in dataset.select(range(count))], num_rows
    return [dict(row) for row in list(dataset)[:count]], num_rows


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


def _check_rows(
    rows: list[dict], method: str, detected_format: str, result: ValidationResult
) -> tuple[list[dict], _RowReport]:
    report = _RowReport()
    prepared = []
    for index, row in enumerate(rows):
        if detected_format == "conversational":
            checked = _check_conversation_row(row, index, report, result, method=method)
        elif detected_format == "preference":
            checked = _check_preference_row(row, index, report)
        else:
            checked = _check_text_fields(row, index, report, detected_format)
        if checked is not None:
            prepared.append(checked)
    return prepared, report


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_text_fields(row: dict, index: int, report: _RowReport, detected_format: str) -> dict | None:
    fields = {
        "language_modeling": ["text"],
        "prompt_completion": ["prompt", "completion"],
        "prompt_only": ["prompt"],
        "unpaired_preference": ["prompt", "completion"],
    }[detected_format]
    for field in fields:
        value = row.get(field)
        if is_message_list(value):
            if not _check_messages(value, index, report, field=field, row=row, need_assistant=False):
                return None
        elif not isinstance(value, str) and value is not None:
            report.add("wrong_type", index, f"Row {index}: `{field}` must be a string or a message list, "
                       f"got {type(value).__name__}.")
            return None
        elif _is_blank(value):
            report.add("empty_content", index, f"Row {index}: `{field}` is empty or only whitespace.")
            return None
    if detected_format == "unpaired_preference" and not isinstance(row.get("label"), bool):
        report.add("wrong_type", index, f"Row {index}: `label` must be true or false, got {row.get('label')!r}.")
        return None
    return row


def _check_conversation_row(
    row: dict, index: int, report: _RowReport, result: ValidationResult, *, method: str
) -> dict | None:
    row = dict(row)
    if "messages" not in row:
        turns = row.pop("conversations")
        if not is_sharegpt_turns(turns) and not is_message_list(turns):
            report.add("broken_row", index, f"Row {index}: `conversations` is not a list of turns.")
            return None
        try:
            row["messages"] = sharegpt_to_messages(turns) if is_sharegpt_turns(turns) else turns
        except UnknownRoleError as err:
            report.add("unknown_role", index, f"Row {index}: unknown role {err.role!r} in "
                       f"`conversations[{err.turn_index}].from`; map it to user, assistant or system, or drop the row.")
            return None
        if is_sharegpt_turns(turns):
            result.applied_mapping = {"conversations": "messages", "from": "role", "value": "content",
                                      "roles": {"human": "user", "gpt": "assistant", "assistant": "assistant",
                                                "system": "system"}}
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        report.add("broken_row", index, f"Row {index}: `messages` must be a non-empty list of messages.")
        return None
    messages = [dict(message) if isinstance(message, Mapping) else message for message in messages]
    row["messages"] = messages
    if not _check_messages(messages, index, report, field="messages", row=row, need_assistant=method == "sft"):
        return None
    return row


def _check_messages(
    messages: list, index: int, report: _RowReport, *, field: str, row: dict, need_assistant: bool
) -> bool:
    normalized = False
    for turn, message in enumerate(messages):
        where = f"`{field}[{turn}]`"
        if not isinstance(message, dict) or "role" not in message:
            report.add("broken_row", index, f"Row {index}: {where} is not a dict with a `role`.")
            return False
        role = message["role"]
        if role not in KNOWN_ROLES:
            report.add("unknown_role", index, f"Row {index}: {where} has unknown role {role!r}; use one of "
                       f"{sorted(KNOWN_ROLES)}.")
            return False
        tool_calls = message.get("tool_calls")
        if tool_calls is not None and not tool_calls:
            del message["tool_calls"]
            normalized = True
            tool_calls = None
        content = message.get("content")
        if tool_calls:
            if not row.get("tools"):
                report.add("missing_tool_schema", index, f"Row {index}: {where}.tool_calls calls a tool but the "
                           "row's `tools` schema is missing; add the tool schemas to `tools`.")
                return False
        elif content is None:
            report.add("null_content", index, f"Row {index}: {where}.content is null and the turn has no "
                       "tool calls; give it text or tool calls.")
            return False
        if content is not None and not isinstance(content, (str, list)):
            report.add("wrong_type", index, f"Row {index}: {where}.content must be a string or a list of parts, "
                       f"got {type(content).__name__}.")
            return False
        if not tool_calls and _is_blank(content if isinstance(content, str) else "x"):
            report.add("empty_content", index, f"Row {index}: {where}.content is empty or only whitespace.")
            return False

    _warn_on_turn_order(messages, index, report, field=field)
    if need_assistant and not any(m["role"] == "assistant" for m in messages):
        report.add("no_assistant_turn", index, f"Row {index}: `{field}` has no assistant turn to train on.")
        return False
    if normalized:
        report.add("normalized", index, f"Row {index}: dropped an empty `tool_calls` list.", severity="info")
    return True


def _warn_on_turn_order(messages: list[dict], index: int, report: _RowReport, *, field: str) -> None:
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        report.add("misplaced_system", index, f"Row {index}: `{field}` has a system message after the first "
                   "turn; many chat templates reject it.", severity="warning")
    dialogue = [role for role in roles if role in ("user", "assistant")]
    if any(a == b for a, b in zip(dialogue, dialogue[1:])):
        report.add("roles_not_alternating", index, f"Row {index}: user and assistant turns in `{field}` do not "
                   "alternate; strict templates raise on this.", severity="warning")


def _check_preference_row(row: dict, index: int, report: _RowReport) -> dict | None:
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if _is_blank(chosen) or _is_blank(rejected) or chosen == [] or rejected == []:
        report.add("empty_content", index, f"Row {index}: `chosen` or `rejected` is empty.")
        return None
    if chosen == rejected:
        report.add("identical_completions", index, f"Row {index}: `chosen` equals `rejected`, so the pair "
                   "teaches nothing; drop or fix the row.")
        return None
    if "prompt" in row and row["prompt"] is not None:
        return row

    if is_message_list(chosen) and is_message_list(rejected):
        return _split_implicit_prompt(row, index, report)
    report.add("ambiguous_prompt", index, f"Row {index}: `chosen` and `rejected` are plain text with no `prompt`, "
               "so the prompt cannot be told from shared words; the row trains with an empty prompt. Add a "
               "`prompt` column to fix it.", severity="warning")
    return {**row, "prompt": ""}


def _split_implicit_prompt(row: dict, index: int, report: _RowReport) -> dict | None:
    """Move the turns that `chosen` and `rejected` share into an explicit `prompt`, split at a turn boundary."""
    chosen, rejected = row["chosen"], row["rejected"]
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0 or shared == len(chosen) or shared == len(rejected):
        report.add("ambiguous_prompt", index, f"Row {index}: `chosen` and `rejected` share no whole leading turn "
                   "or one contains the other; add an explicit `prompt`.")
        return None
    return {**row, "prompt": chosen[:shared], "chosen": chosen[shared:], "rejected": rejected[shared:]}


def _format_rows(rows: list[int], shown: int = 10) -> str:
    text = ", ".join(str(row) for row in rows[:shown])
    return text + (", ..." if len(rows) > shown else "")


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
