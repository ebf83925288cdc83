"""Tokenize language-modelling rows and pad them into batches whose labels keep every real EOS trainable."""

from __future__ import annotations

import logging
import re
from typing import Any

import torch

from autotrain_agent.errors import DatasetError

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""Label value that the loss skips."""

_PAD_NAMES = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>", "<|padding|>")
_RESERVED_PATTERN = re.compile(r"reserved|unused|extra_id|spare", re.IGNORECASE)


def choose_pad_token(tokenizer) -> tuple[str, str]:
    """Choose the padding token for a tokenizer and say why.

    The tokenizer's own pad token wins. Otherwise a spare token of the vocabulary (a pad-named or reserved
    special token that is neither EOS nor BOS) is preferred over EOS. EOS is the last resort; it is safe with
    `pad_and_label_batch`, which finds padding through the attention mask, never by token id.

    Returns:
        The token text and a one-sentence reason.

    Raises:
        DatasetError: If the tokenizer has neither a pad token, a spare token nor an EOS token.
    """
    if tokenizer.pad_token is not None:
        return tokenizer.pad_token, "the tokenizer defines it"

    taken = {tokenizer.eos_token, tokenizer.bos_token}
    vocabulary = tokenizer.get_vocab()
    for name in _PAD_NAMES:
        if name in vocabulary and name not in taken:
            return name, "it is a spare padding token of the vocabulary"
    special_tokens = sorted(t for t in getattr(tokenizer, "all_special_tokens", []) if t not in taken)
    added_tokens = sorted(str(t) for t in getattr(tokenizer, "get_added_vocab", dict)() if t not in taken)
    for token in [*special_tokens, *added_tokens]:
        if _RESERVED_PATTERN.search(token):
            return token, "it is a spare reserved token"
    if tokenizer.eos_token is not None:
        return tokenizer.eos_token, (
            "the vocabulary has no spare token; every real EOS keeps its label because padding is found by "
            "attention mask"
        )
    raise DatasetError(
        f"Tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no pad, spare or EOS token; "
        "add a pad token with `tokenizer.add_special_tokens({'pad_token': '<pad>'})`."
    )


def tokenize_text_row(text: str, tokenizer, *, max_length: int | None = None) -> dict[str, list[int]]:
    """Tokenize one `text` row so that it ends in exactly one EOS, also after truncation.

    Raises:
        DatasetError: If the tokenizer has no EOS token.
    """
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise DatasetError(f"Tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no EOS token; set one.")

    input_ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    while input_ids and input_ids[-1] == eos_id:
        input_ids.pop()
    if max_length is not None:
        input_ids = input_ids[: max_length - 1]
    input_ids.append(eos_id)
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids)}


def pad_and_label_batch(features: list[dict[str, Any]], *, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch on the right and build labels from the attention mask.

    A position is masked from the loss when its attention mask is 0 or its feature's `completion_mask` is 0.
    Token ids are never compared with `pad_token_id`, so an EOS that doubles as the pad token keeps its label.

    Raises:
        DatasetError: If no label in the batch is trainable, because the loss would be a silent 0.0 or NaN.
    """
    max_len = max(len(feature["input_ids"]) for feature in features)
    input_ids = torch.full((len(features), max_len), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(features), max_len), dtype=torch.long)
    trainable = torch.zeros((len(features), max_len), dtype=torch.bool)
    for row, feature in enumerate(features):
        length = len(feature["input_ids"])
        input_ids[row, :length] = torch.tensor(feature["input_ids"])
        attention_mask[row, :length] = torch.tensor(feature.get("attention_mask", [1] * length))
        keep = feature.get("completion_mask", [1] * length)
        trainable[row, :length] = torch.tensor(keep, dtype=torch.bool)

    labels = input_ids.clone()
    labels[(attention_mask == 0) | ~trainable] = IGNORE_INDEX
    ensure_trainable_labels(labels)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def ensure_trainable_labels(labels: torch.Tensor) -> None:
    """Raise if every label of a batch is the ignore index.

    Raises:
        DatasetError: If no label is trainable.
    """
    if bool((labels == IGNORE_INDEX).all()):
        raise DatasetError(
            f"A batch of {labels.shape[0]} rows has no trainable label (every label is {IGNORE_INDEX}), "
            "so its loss would be 0.0 or NaN. Raise `max_length`, cut prompts from the left, or drop such rows."
        )
