"""Prove that a fine-tuned model differs from its base model before its score is reported.

A LoRA adapter that was never trained (every B matrix still zero), or one that a loader silently ignored, leaves
the model equal to its base model, and its score would be reported as the fine-tuned score. Comparing next-token
logits on a few probe prompts catches both: an applied adapter with trained weights moves them, an ignored or
zero one leaves them bit for bit the same on a CPU in float32.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from autotrain_agent.errors import AdapterNotAppliedError, ConfigError

logger = logging.getLogger(__name__)

PROBE_PROMPTS = (
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Write a Python function that reverses a string.",
    "The capital of France is",
)
# Largest absolute logit difference below which two models count as the same. Float32 on a CPU gives exactly 0
# for an unchanged model; a few LoRA training steps at lr 2e-4 moved the tiny test model's logits by about 1e-3.
MIN_LOGIT_DISTANCE = 1e-5


def measure_logit_distance(
    base_dir: Path,
    *,
    model_dir: Path | None = None,
    adapter_dir: Path | None = None,
    prompts: Sequence[str] = PROBE_PROMPTS,
) -> float:
    """Return the largest absolute difference between the base model's logits and the evaluated model's.

    The evaluated model is the full-weights folder `model_dir` (such as a merged adapter), or the base model with
    the PEFT adapter in `adapter_dir` applied. Both run in float32 on the CPU over every position of each prompt.

    Raises:
        ConfigError: If not exactly one of `model_dir` and `adapter_dir` is given.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (model_dir is None) == (adapter_dir is None):
        raise ConfigError("Pass exactly one of `model_dir` (full weights) and `adapter_dir` (a PEFT adapter).")

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    encoded = [tokenizer(prompt, return_tensors="pt")["input_ids"] for prompt in prompts]
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    base_logits = _logits(base, encoded)
    if adapter_dir is not None:
        from ..merge import load_adapter

        evaluated = load_adapter(base, adapter_dir).eval()
    else:
        del base
        evaluated = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    evaluated_logits = _logits(evaluated, encoded)

    return max(float((left - right).abs().max()) for left, right in zip(base_logits, evaluated_logits))


def check_model_differs_from_base(
    base_dir: Path, *, model_dir: Path | None = None, adapter_dir: Path | None = None
) -> float:
    """Raise unless the evaluated model's logits differ from the base model's on the probe prompts.

    Args:
        base_dir: The base model folder.
        model_dir: Full weights of the evaluated model, such as a merged adapter.
        adapter_dir: A PEFT adapter evaluated on top of `base_dir`.

    Returns:
        The largest absolute logit difference measured.

    Raises:
        AdapterNotAppliedError: If the difference is below `MIN_LOGIT_DISTANCE`, so no score is reported.
    """
    evaluated = adapter_dir if adapter_dir is not None else model_dir
    distance = measure_logit_distance(base_dir, model_dir=model_dir, adapter_dir=adapter_dir)
    logger.debug("logit distance of %s from %s: %g", evaluated, base_dir, distance)
    if distance < MIN_LOGIT_DISTANCE:
        raise AdapterNotAppliedError(
            f"The model {str(evaluated)!r} gives the same logits as its base model {str(base_dir)!r} on "
            f"{len(PROBE_PROMPTS)} probe prompts (largest difference {distance:.2g}, needed at least "
            f"{MIN_LOGIT_DISTANCE:g}): the adapter changes nothing, for example because its LoRA B matrices are "
            "still zero or it was not applied. No score is reported; check that training updated the adapter."
        )
    return distance


def _logits(model, encoded) -> list:
    import torch

    with torch.inference_mode():
        return [model(input_ids=input_ids).logits[0].clone() for input_ids in encoded]
