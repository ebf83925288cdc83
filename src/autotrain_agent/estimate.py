"""Estimate an experiment's wall time on the local CPU before anything runs."""

from __future__ import annotations

from .recipes import parse_parameter_count
from .state import Plan

# Measured on a 2-core x86-64 CPU with torch 2.13 and OMP_NUM_THREADS=1: SmolLM2-135M with LoRA r=16 trained at
# about 190 real tokens/s, and llama.cpp generated a HumanEval answer in about 2.4 s per problem. Both are taken to
# scale inversely with the parameter count.
REFERENCE_PARAMETERS = 135_000_000
CPU_TRAIN_TOKENS_PER_S = 190.0
CPU_LLAMA_CPP_S_PER_PROBLEM = 2.4
CPU_TRANSFORMERS_S_PER_PROBLEM = 40.0
# NOTE: the mean sequence length is unknown until the dataset is validated; this guess fits the built-in
# code dataset (median about 250 tokens).
ASSUMED_TOKENS_PER_SEQUENCE = 250
SETUP_MINUTES = 1.5


def estimate_minutes(plan: Plan, *, num_parameters: int | None = None) -> float | None:
    """Return the estimated wall time of the whole experiment in minutes, or `None` for an unknown model size."""
    params = num_parameters or parse_parameter_count(plan.base_model)
    if params is None:
        return None
    scale = params / REFERENCE_PARAMETERS
    hp = plan.hyperparameters
    steps = hp.max_steps or 100
    tokens = steps * hp.effective_batch_size * min(hp.max_length, ASSUMED_TOKENS_PER_SEQUENCE)
    train_s = tokens / CPU_TRAIN_TOKENS_PER_S * scale
    per_problem_s = CPU_LLAMA_CPP_S_PER_PROBLEM if plan.eval_engine == "llama.cpp" else CPU_TRANSFORMERS_S_PER_PROBLEM
    problems = sum(b.limit or 164 for b in plan.benchmarks)
    eval_s = 2 * problems * per_problem_s * scale
    return round(SETUP_MINUTES + (train_s + eval_s) / 60, 1)
