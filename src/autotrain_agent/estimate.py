"""Estimate an experiment's wall time on the local CPU before anything runs."""

from __future__ import annotations

from .recipes import parse_parameter_count
from .state import Plan

# Measured on a 2-core x86-64 CPU with torch 2.13: SmolLM2-135M with LoRA r=16, two threads and length-grouped
# batches trained at about 125 tokens/s (padding included), and llama.cpp solved and tested a HumanEval problem in
# about 2.8 s, sandboxed test included. Both are taken to scale inversely with the parameter count.
REFERENCE_PARAMETERS = 135_000_000
CPU_TRAIN_TOKENS_PER_S = 125.0
CPU_LLAMA_CPP_S_PER_PROBLEM = 2.8
CPU_TRANSFORMERS_S_PER_PROBLEM = 40.0
# NOTE: the mean sequence length is unknown until the dataset is validated; this guess fits the built-in
# code dataset (median 356 tokens with SmolLM2's tokenizer).
ASSUMED_TOKENS_PER_SEQUENCE = 370
# Model conversion, dataset build and harness calibration on a first run, plus merging and GGUF conversion.
SETUP_MINUTES = 2.0


def estimate_training_minutes(plan: Plan, *, num_parameters: int | None = None) -> float | None:
    """Return the estimated wall time of one training run in minutes, or `None` for an unknown model size."""
    params = num_parameters or parse_parameter_count(plan.base_model)
    if params is None:
        return None
    hp = plan.hyperparameters
    # NOTE: an epoch-based plan has no step count before the dataset is validated; 100 steps is a placeholder.
    steps = hp.max_steps or 100
    tokens = steps * hp.effective_batch_size * min(hp.max_length, ASSUMED_TOKENS_PER_SEQUENCE)
    return round(tokens / CPU_TRAIN_TOKENS_PER_S * params / REFERENCE_PARAMETERS / 60, 1)


def estimate_minutes(plan: Plan, *, num_parameters: int | None = None) -> float | None:
    """Return the estimated wall time of the whole experiment in minutes, or `None` for an unknown model size."""
    params = num_parameters or parse_parameter_count(plan.base_model)
    train_minutes = estimate_training_minutes(plan, num_parameters=params)
    if params is None or train_minutes is None:
        return None
    per_problem_s = CPU_LLAMA_CPP_S_PER_PROBLEM if plan.eval_engine == "llama.cpp" else CPU_TRANSFORMERS_S_PER_PROBLEM
    problems = sum(b.limit or 164 for b in plan.benchmarks)
    eval_minutes = 2 * problems * per_problem_s * params / REFERENCE_PARAMETERS / 60
    return round(SETUP_MINUTES + train_minutes + eval_minutes, 1)
