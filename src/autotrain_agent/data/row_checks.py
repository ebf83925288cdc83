"""Row-level checks of a sample: types, roles, content, tool calls, preference pairs; rejected rows by number."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field

from autotrain_agent.data.chat_format import (
    KNOWN_ROLES,
    UnknownRoleError,
    is_message_list,
    is_sharegpt_turns,
    sharegpt_to_messages,
)

logger = logging.getLogger(__name__)

class Problem(BaseModel):
    """One finding of validation, with the rows it concerns."""

    code: str
    """Stable identifier such as `empty_content` or `unknown_role`."""
    message: str
    """What is wrong, on which value, and what to do."""
    rows: list[int] = Field(default_factory=list)
    """Row numbers that show the problem, counted from 1 (row 1 is the first row of the split, which is line 1 of
    a JSONL file without blank lines). Empty for dataset-wide findings."""
    severity: Literal["error", "warning", "info"] = "error"
    """`error` rejects the rows named (or the dataset), `warning` keeps them, `info` records a choice made."""


class RowReport:
    """Per-row findings, grouped into one `Problem` per code, and the conversions applied to kept rows."""

    def __init__(self) -> None:
        self.findings: dict[tuple[str, str], list[int]] = {}
        self.messages: dict[tuple[str, str], str] = {}
        self.sharegpt_rows = 0
        """Rows converted from ShareGPT `from`/`value` turns to `role`/`content` messages."""
        self.explicit_prompt_rows = 0
        """Preference rows whose shared leading turns were moved into an explicit `prompt`."""

    def add(self, code: str, index: int, message: str, severity: str = "error") -> None:
        key = (code, severity)
        rows = self.findings.setdefault(key, [])
        if index not in rows:
            rows.append(index)
        self.messages.setdefault(key, message)

    def to_problems(self) -> list[Problem]:
        problems = []
        for (code, severity), rows in self.findings.items():
            message = self.messages[(code, severity)]
            if len(rows) > 1:
                message = f"{message} ({len(rows)} rows: {format_rows(rows)})"
            problems.append(Problem(code=code, message=message, rows=rows, severity=severity))
        return problems


def check_rows(
    rows: list[dict], row_numbers: list[int], *, method: str, detected_format: str
) -> tuple[list[dict], list[int], RowReport]:
    """Check each row for its format and convert it; return the kept rows, their row numbers and the findings.

    Rows that hold a column with a different value type than most rows are rejected first, because Arrow cannot
    store them in one column and would fail on the whole file.
    """
    report = RowReport()
    mixed = _find_mixed_types(rows, row_numbers, report)
    prepared, kept_numbers = [], []
    for number, row in zip(row_numbers, rows):
        if number in mixed:
            continue
        if detected_format == "conversational":
            checked = _check_conversation_row(row, number, report, method=method)
        elif detected_format == "preference":
            checked = _check_preference_row(row, number, report)
        else:
            checked = _check_text_fields(row, number, report, detected_format)
        if checked is not None:
            prepared.append(checked)
            kept_numbers.append(number)
    return prepared, kept_numbers, report


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _find_mixed_types(rows: list[dict], row_numbers: list[int], report: RowReport) -> set[int]:
    """Report rows whose column value type differs from the type most rows hold; return their row numbers."""
    types_by_column: dict[str, dict[int, str]] = {}
    for number, row in zip(row_numbers, rows):
        for column, value in row.items():
            if value is not None:
                types_by_column.setdefault(column, {})[number] = _type_name(value)
    mixed: set[int] = set()
    for column, types in types_by_column.items():
        counts = Counter(types.values())
        if len(counts) < 2:
            continue
        usual, _ = counts.most_common(1)[0]
        for number, name in types.items():
            if name == usual or number in mixed:
                continue
            if {name, usual} == {"string", "list"}:
                # Standard and conversational rows in one dataset: each row is valid on its own, so it is kept.
                # NOTE: the training file then mixes both kinds, and loading it as JSON with `datasets` fails.
                report.add("mixed_formats", number, f"Row {number}: `{column}` is a {name} while most rows hold a "
                           f"{usual}; TRL and Arrow need one kind per column, so make the rows agree before "
                           "training.", severity="warning")
                continue
            mixed.add(number)
            report.add("mixed_types", number, f"Row {number}: `{column}` is a {name} while most rows hold a "
                       f"{usual}; Arrow cannot store both in one column. Convert or drop the row.")
    return mixed


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_text_fields(row: dict, index: int, report: RowReport, detected_format: str) -> dict | None:
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


def _check_conversation_row(row: dict, index: int, report: RowReport, *, method: str) -> dict | None:
    row = dict(row)
    if "messages" not in row:
        if "conversations" not in row:
            report.add(
                "broken_row", index,
                f"Row {index}: has neither `messages` nor `conversations` while most rows are conversations.",
            )
            return None
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
        report.sharegpt_rows += is_sharegpt_turns(turns)
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
    messages: list, index: int, report: RowReport, *, field: str, row: dict, need_assistant: bool
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


def _warn_on_turn_order(messages: list[dict], index: int, report: RowReport, *, field: str) -> None:
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        report.add("misplaced_system", index, f"Row {index}: `{field}` has a system message after the first "
                   "turn; many chat templates reject it.", severity="warning")
    dialogue = [role for role in roles if role in ("user", "assistant")]
    if any(a == b for a, b in zip(dialogue, dialogue[1:])):
        report.add("roles_not_alternating", index, f"Row {index}: user and assistant turns in `{field}` do not "
                   "alternate; strict templates raise on this.", severity="warning")


def _check_preference_row(row: dict, index: int, report: RowReport) -> dict | None:
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if _is_blank(chosen) or _is_blank(rejected) or chosen == [] or rejected == []:
        report.add("empty_content", index, f"Row {index}: `chosen` or `rejected` is empty.")
        return None
    if chosen == rejected:
        report.add("identical_completions", index, f"Row {index}: `chosen` equals `rejected`, so the pair "
                   "teaches nothing; drop or fix the row.")
        return None
    for field in ("prompt", "chosen", "rejected"):
        value = row.get(field)
        if is_message_list(value) and not _check_messages(value, index, report, field=field, row=row,
                                                          need_assistant=False):
            return None
    if "prompt" in row and row["prompt"] is not None:
        return row

    if is_message_list(chosen) and is_message_list(rejected):
        return _split_implicit_prompt(row, index, report)
    report.add("ambiguous_prompt", index, f"Row {index}: `chosen` and `rejected` are plain text with no `prompt`, "
               "so the prompt cannot be told from shared words; the row trains with an empty prompt. Add a "
               "`prompt` column to fix it.", severity="warning")
    return {**row, "prompt": ""}


def _split_implicit_prompt(row: dict, index: int, report: RowReport) -> dict | None:
    """Move the turns that `chosen` and `rejected` share into an explicit `prompt`, split at a turn boundary."""
    chosen, rejected = row["chosen"], row["rejected"]
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0 or shared == len(chosen) or shared == len(rejected):
        report.add("ambiguous_prompt", index, f"Row {index}: `chosen` and `rejected` share no whole leading turn "
                   "or one contains the other; add an explicit `prompt`.")
        return None
    report.explicit_prompt_rows += 1
    return {**row, "prompt": chosen[:shared], "chosen": chosen[shared:], "rejected": rejected[shared:]}


def format_rows(rows: list[int], shown: int = 10) -> str:
    text = ", ".join(str(row) for row in rows[:shown])
    return text + (", ..." if len(rows) > shown else "")

