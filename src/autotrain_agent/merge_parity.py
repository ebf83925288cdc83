"""Measure how closely a merged model reproduces the adapter on the base it was trained on, and pick a merge.

Merging is lossy when the merge base differs from the training base (a 4-bit training base is rounded; the merge
base is not). Parity is measured on probe prompts as token agreement (argmax equality per position) and mean KL
divergence from the reference (adapter on its training base) to the candidate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .errors import ConversionError

logger = logging.getLogger(__name__)

PARITY_PROMPTS = (
    "def fibonacci(n):\n    ",
    "Write a function that reverses a string.",
    "The quick brown fox jumps over the lazy dog. 12345",
)
DEFAULT_MAX_KL = 1e-3


@dataclass(frozen=True)
class MergeParity:
    """Parity of one merged candidate with the reference model."""

    token_agreement: float
    """Fraction of positions where both models' most likely next token is the same."""
    kl_divergence: float
    """Mean KL(reference || candidate) over positions, in nats."""


@dataclass(frozen=True)
class MergeChoice:
    """The merged candidate kept, and the parity of every candidate."""

    chosen: str
    """Name of the kept candidate, e.g. the base it was merged onto."""
    parity: dict[str, MergeParity]
    """Parity by candidate name."""


def measure_parity(reference, candidate, input_ids_batch) -> MergeParity:
    """Compare next-token distributions of `candidate` with `reference` on each tokenized prompt."""
    import torch

    agreements, divergences = [], []
    with torch.no_grad():
        for input_ids in input_ids_batch:
            expected = torch.log_softmax(reference(input_ids=input_ids).logits.float(), dim=-1)
            actual = torch.log_softmax(candidate(input_ids=input_ids).logits.float(), dim=-1)
            agreements.append((expected.argmax(-1) == actual.argmax(-1)).float().mean().item())
            divergences.append((expected.exp() * (expected - actual)).sum(-1).mean().item())
    return MergeParity(
        token_agreement=round(sum(agreements) / len(agreements), 4),
        kl_divergence=float(f"{max(sum(divergences) / len(divergences), 0.0):.3g}"),
    )


def choose_merge(reference, candidates: dict, tokenizer, *, max_kl: float = DEFAULT_MAX_KL) -> MergeChoice:
    """Keep the candidate with the lowest KL divergence from `reference`, if it is within `max_kl`.

    Args:
        reference: The adapter on its training base, unmerged.
        candidates: Merged models by name (for example `clean base`, `training base`).
        tokenizer: Tokenizes `PARITY_PROMPTS`.
        max_kl: The largest mean KL divergence, in nats, that still counts as parity.

    Raises:
        ConversionError: If no candidate is within `max_kl`; the message lists every candidate's numbers.
    """
    input_ids_batch = [tokenizer(prompt, return_tensors="pt")["input_ids"] for prompt in PARITY_PROMPTS]
    parity = {name: measure_parity(reference, model, input_ids_batch) for name, model in candidates.items()}
    chosen = min(parity, key=lambda name: parity[name].kl_divergence)
    logger.debug("merge parity: %s", parity)
    if parity[chosen].kl_divergence > max_kl:
        details = "; ".join(f"{name}: KL {p.kl_divergence:.3g}, agreement {p.token_agreement:.3f}" for name, p in parity.items())
        raise ConversionError(
            f"No merged model reaches parity with the adapter on its training base (max KL {max_kl:g}): {details}. "
            "Merge onto the exact base the adapter was trained on."
        )
    return MergeChoice(chosen=chosen, parity=parity)
