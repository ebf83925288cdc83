"""Validation steps that need the model's tokenizer: chat template, padding, assistant mask, token lengths."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from autotrain_agent.data.chat_format import is_message_list, resolve_chat_template
from autotrain_agent.data.collation import choose_pad_token
from autotrain_agent.data.row_checks import Problem
from autotrain_agent.errors import DatasetError

logger = logging.getLogger(__name__)

_GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")


def build_assistant_mask(
    tokenizer, messages: list[dict], *, chat_template: str | None = None, tools: list | None = None,
    prefix_rendering: bool = True,
) -> tuple[list[int], list[int]]:
    """Render a conversation and mark the tokens of assistant replies and their end-of-turn tokens.

    The template's `{% generation %}` markers are used when present. Otherwise, with `prefix_rendering`, the
    tokens that each assistant turn adds are taken: the conversation up to turn i is rendered with the generation
    prompt, then up to turn i+1, and the difference (less trailing whitespace tokens) is the reply. This only
    works when each rendering is a prefix of the next; otherwise the mask stays empty.

    Returns:
        The token ids of the whole conversation and a 0/1 mask of the same length.
    """
    has_markers = bool(_GENERATION_MARKER.search(chat_template or tokenizer.chat_template or ""))
    rendered = tokenizer.apply_chat_template(
        messages, chat_template=chat_template, tools=tools, tokenize=True, return_dict=True,
        return_assistant_tokens_mask=has_markers,
    )
    input_ids = list(rendered["input_ids"])
    mask = list(rendered.get("assistant_masks") or [0] * len(input_ids))
    if any(mask) or not prefix_rendering:
        return input_ids, mask

    mask = [0] * len(input_ids)
    for turn, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = _render_ids(tokenizer, messages[:turn], chat_template, tools, add_generation_prompt=True)
        upto = _render_ids(tokenizer, messages[: turn + 1], chat_template, tools, add_generation_prompt=False)
        if upto[: len(prefix)] != prefix or input_ids[: len(upto)] != upto:
            logger.debug("Prefix rendering is not stable at turn %d; leaving the assistant mask empty", turn)
            return input_ids, [0] * len(input_ids)
        end = len(upto)
        while end > len(prefix) and not tokenizer.decode([upto[end - 1]]).strip():
            end -= 1
        mask[len(prefix) : end] = [1] * (end - len(prefix))
    return input_ids, mask


def _render_ids(tokenizer, messages, chat_template, tools, *, add_generation_prompt: bool) -> list[int]:
    if not messages:
        return []
    rendered = tokenizer.apply_chat_template(
        messages, chat_template=chat_template, tools=tools, tokenize=True,
        add_generation_prompt=add_generation_prompt, return_dict=True,
    )
    return list(rendered["input_ids"])


def check_with_tokenizer(
    rows: list[dict], row_numbers: list[int], result, *, tokenizer, max_length: int | None,
    chat_template: str | None, assistant_only_loss: bool, completion_only_loss: bool, truncation: str,
    prefix_rendering: bool,
) -> tuple[list[dict], list[int]]:
    """Run the tokenizer-dependent checks on prepared rows, record findings in `result`, return the kept rows.

    `row_numbers` contains each row's number in the dataset, counted from 1. The kept rows' numbers are returned
    with them.
    """
    from autotrain_agent.data.validation import summarize_lengths

    template = _choose_template(rows, result, tokenizer=tokenizer, chat_template=chat_template)
    if result.verdict == "incompatible":
        return rows, row_numbers
    _choose_padding(result, tokenizer)
    rows, row_numbers = _render_all(rows, row_numbers, result, tokenizer=tokenizer, template=template)

    measured = []
    for index, row in enumerate(rows):
        measured.append(_measure_row(row, tokenizer=tokenizer, template=template, assistant_only_loss=assistant_only_loss,
                                     completion_only_loss=completion_only_loss, prefix_rendering=prefix_rendering))
    if assistant_only_loss and rows and "messages" in rows[0] and not any(measured[0]["trainable"]):
        name = getattr(tokenizer, "name_or_path", "") or "in-memory tokenizer"
        result.verdict = "incompatible"
        result.problems.append(Problem(code="empty_assistant_mask", rows=row_numbers[:1], message=(
            f"The assistant mask is empty for row {row_numbers[0]} with the chat template of {name!r}: the template has no "
            "`{% generation %}` markers and prefix rendering did not find the replies. Choose a template with "
            "generation markers (for example `--chat-template chatml`) or turn off `assistant_only_loss`."
        )))
        return rows, row_numbers

    if max_length is not None:
        rows, row_numbers, measured = _apply_truncation(rows, row_numbers, measured, result, tokenizer=tokenizer,
                                                        max_length=max_length, truncation=truncation)
    if measured:
        lengths = [len(m["input_ids"]) for m in measured]
        result.token_lengths = summarize_lengths(lengths, max_length=max_length)
        if max_length is not None:
            _report_truncated_rows(lengths, row_numbers, result, max_length=max_length)
    return rows, row_numbers


def _report_truncated_rows(lengths: list[int], row_numbers: list[int], result, *, max_length: int) -> None:
    """Add a warning that counts the rows training will truncate to `max_length`; they stay in the dataset."""
    over = [number for number, length in zip(row_numbers, lengths) if length > max_length]
    if not over:
        return
    # The validation result carries this as a warning for the user; the log keeps the count without repeating it.
    logger.info("%d of %d rows are longer than max_length=%d tokens and will be truncated", len(over), len(lengths), max_length)
    result.problems.append(Problem(code="over_max_length", rows=over, severity="warning", message=(
        f"{len(over)} of {len(lengths)} rows are longer than max_length={max_length} tokens (the longest has "
        f"{max(lengths)}); training truncates them and loses their ends. Raise `max_length` or shorten those rows."
    )))


def _choose_template(rows, result, *, tokenizer, chat_template: str | None) -> str | None:
    if chat_template is not None:
        try:
            template = resolve_chat_template(chat_template)
        except ValueError as err:
            raise DatasetError(str(err)) from err
    else:
        template = getattr(tokenizer, "chat_template", None)
    needs_template = any(is_message_list(v) for row in rows for v in row.values())
    if needs_template and not template:
        name = getattr(tokenizer, "name_or_path", "") or "in-memory tokenizer"
        result.verdict = "incompatible"
        result.problems.append(Problem(code="missing_chat_template", message=(
            f"Tokenizer {name!r} has no chat template, and rows with messages need one to render. Choose a "
            "template, for example `--chat-template chatml` (`chat_template='chatml'` in Python)."
        )))
        return None
    result.chat_template = template if needs_template or chat_template is not None else None
    return template


def _choose_padding(result, tokenizer) -> None:
    token, reason = choose_pad_token(tokenizer)
    result.pad_token = token
    if tokenizer.pad_token is None:
        result.problems.append(Problem(
            code="pad_token_chosen", severity="info",
            message=f"The tokenizer has no pad token, so padding uses {token!r} because {reason}.",
        ))


def _render_all(rows, row_numbers, result, *, tokenizer, template) -> tuple[list[dict], list[int]]:
    """Drop rows that the chat template cannot render, such as roles a strict template rejects."""
    kept, kept_numbers = [], []
    failed: list[int] = []
    first_error = ""
    for number, row in zip(row_numbers, rows):
        messages = row.get("messages")
        if messages is not None:
            try:
                tokenizer.apply_chat_template(messages, chat_template=template, tools=row.get("tools"),
                                              tokenize=False)
            except Exception as err:  # noqa: BLE001 - Jinja templates raise any type via raise_exception
                failed.append(number)
                first_error = first_error or f"{type(err).__name__}: {err}"
                continue
        kept.append(row)
        kept_numbers.append(number)
    if failed:
        result.num_rejected += len(failed)
        result.problems.append(Problem(code="template_failed", rows=failed, message=(
            f"The chat template failed to render {len(failed)} prepared rows ({first_error}); fix those rows "
            "or choose another template."
        )))
    return kept, kept_numbers


def _measure_row(row, *, tokenizer, template, assistant_only_loss, completion_only_loss, prefix_rendering) -> dict:
    if "messages" in row and not assistant_only_loss:
        input_ids = _render_ids(tokenizer, row["messages"], template, row.get("tools"), add_generation_prompt=False)
        return {"input_ids": input_ids, "trainable": [1] * len(input_ids)}
    if "messages" in row:
        input_ids, mask = build_assistant_mask(tokenizer, row["messages"], chat_template=template,
                                               tools=row.get("tools"), prefix_rendering=prefix_rendering)
        return {"input_ids": input_ids, "trainable": mask}
    if "text" in row:
        input_ids = list(tokenizer(row["text"])["input_ids"])
        return {"input_ids": input_ids, "trainable": [1] * len(input_ids)}

    prompt_ids = _encode_part(tokenizer, row["prompt"], template, add_generation_prompt=True)
    completion = row.get("completion") or row.get("chosen")
    if completion is None:
        # A prompt-only (GRPO) row trains on generated tokens, so the whole prompt counts as usable input.
        return {"input_ids": prompt_ids, "trainable": [1] * len(prompt_ids), "prompt_ids": prompt_ids}
    completion_ids = _encode_part(tokenizer, completion, template, add_generation_prompt=False)
    trainable = ([0] * len(prompt_ids) if completion_only_loss else [1] * len(prompt_ids)) + [1] * len(completion_ids)
    return {"input_ids": prompt_ids + completion_ids, "trainable": trainable, "prompt_ids": prompt_ids}


def _encode_part(tokenizer, value, template, *, add_generation_prompt: bool) -> list[int]:
    if is_message_list(value):
        rendered = tokenizer.apply_chat_template(value, chat_template=template, tokenize=True,
                                                 add_generation_prompt=add_generation_prompt, return_dict=True)
        return list(rendered["input_ids"])
    encoded = tokenizer(value, add_special_tokens=False)
    return list(encoded["input_ids"] if isinstance(encoded, Mapping) else encoded)


def _apply_truncation(rows, row_numbers, measured, result, *, tokenizer, max_length: int, truncation: str):
    starved = {number for number, m in zip(row_numbers, measured) if not any(m["trainable"][:max_length])}
    if not starved:
        return rows, row_numbers, measured

    kept_rows, kept_numbers, kept_measured, cut = [], [], [], 0
    for number, row, measure in zip(row_numbers, rows, measured):
        if number not in starved:
            kept_rows.append(row)
            kept_numbers.append(number)
            kept_measured.append(measure)
        elif truncation == "cut_prompt_left" and isinstance(row.get("prompt"), str) and "prompt_ids" in measure:
            completion_length = len(measure["input_ids"]) - len(measure["prompt_ids"])
            keep = max_length - completion_length
            if keep < 1:
                continue
            prompt = tokenizer.decode(measure["prompt_ids"][-keep:])
            kept_rows.append({**row, "prompt": prompt})
            kept_numbers.append(number)
            kept_measured.append({"input_ids": measure["prompt_ids"][-keep:] + [0] * completion_length})
            cut += 1
    action = (f"cut the prompts of {cut} of them from the left (truncation='cut_prompt_left')" if truncation ==
              "cut_prompt_left" else "dropped them (truncation='drop')")
    dropped = len(starved) - cut
    result.num_rejected += dropped
    result.problems.append(Problem(code="no_trainable_tokens", rows=sorted(starved), severity="warning", message=(
        f"{len(starved)} of {len(rows)} rows would keep no trainable token after truncation to "
        f"max_length={max_length}; {action}. Raise `max_length` or shorten the prompts."
    )))
    if cut:
        result.conversions.append(f"Cut the prompts of {cut} rows from the left to fit max_length={max_length}.")
    return kept_rows, kept_numbers, kept_measured
