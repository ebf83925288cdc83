"""Estimate an experiment's wall time on the local CPU, and a training job's time and cost on Hugging Face Jobs."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .errors import ConfigError, HardwareError
from .hardware import Flavor, MemoryEstimate, PriceTable
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
# Sampling with transformers `generate`, 4 sequences in a batch, one thread: SmolLM2-135M produced 256 tokens in
# 6.5 CPU-seconds. NOTE: measured with a load average near 10, so wall time was about 2.5x longer than CPU time.
CPU_GENERATION_TOKENS_PER_S = 35.0
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
    seconds = tokens / CPU_TRAIN_TOKENS_PER_S
    if plan.method == "grpo" and hp.max_completion_length:
        # Each step first samples its completions; the group is generated as one batch, at most this long.
        seconds += steps * hp.effective_batch_size * hp.max_completion_length / CPU_GENERATION_TOKENS_PER_S
    return round(seconds * params / REFERENCE_PARAMETERS / 60, 1)


def busy_machine_warning() -> str | None:
    """Return a warning when other work loads this machine's CPUs, which local time estimates assume are idle.

    The one-minute load average above the number of cores means that runnable processes wait for a CPU. On a
    2-core machine, SFT on the default model took 79 min at load average 10 to 16 where it took 6 min on an idle one.
    """
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    if load <= cores:
        return None
    return (
        f"Other work loads this machine (load average {load:.1f} on {cores} cores); local time estimates assume "
        "idle CPUs, so training and evaluation will take longer than estimated."
    )


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


# Peak dense bf16 tensor throughput per GPU in TFLOP/s, from NVIDIA's data sheets (without sparsity).
GPU_PEAK_BF16_TFLOPS = {"L4": 121.0, "A10G": 70.0, "L40S": 362.0, "A100": 312.0, "H200": 989.0}
# NOTE: model FLOP utilization is assumed, not measured on these GPUs; 0.35 is typical for TRL fine-tunes of
# 0.5B-8B models with gradient checkpointing. Calibrate it with a quick test's measured tokens per second.
ASSUMED_MFU = 0.35
# Data-parallel efficiency of each GPU beyond the first.
MULTI_GPU_EFFICIENCY = 0.9
# Image pull, dependency install and model download before the first step, plus the final upload.
JOB_SETUP_MINUTES = 6.0
# The job's timeout is the estimate times this margin, so a slower-than-estimated job still finishes.
TIMEOUT_MARGIN = 1.5


class JobEstimate(BaseModel):
    """Time, cost and timeout of one training job on one hardware flavor."""

    flavor: str
    """Hardware flavor."""
    usd_per_hour: float
    """Price of the flavor."""
    num_parameters: int
    """Parameter count of the model."""
    tokens: int
    """Tokens to process: sequences times mean tokens per sequence, over all epochs or steps."""
    tokens_per_s: float
    """Estimated training throughput of the whole machine."""
    minutes: float
    """Estimated wall time, setup included."""
    cost_usd: float
    """`minutes` times the price."""
    timeout: str
    """The job's timeout: the estimate times the safety margin, in whole minutes, e.g. `90m`."""


def format_timeout(seconds: float) -> str:
    """Return a job timeout as whole minutes, rounded up, e.g. 5400 s -> `90m`; never a decimal such as `1.5h`.

    Raises:
        ConfigError: If `seconds` is not positive.
    """
    if not seconds > 0:
        raise ConfigError(f"A job timeout must be a positive number of seconds, got {seconds!r}.")
    return f"{math.ceil(round(seconds, 6) / 60)}m"


def training_tokens(plan: Plan, *, num_rows: int, tokens_per_row: int = ASSUMED_TOKENS_PER_SEQUENCE) -> int:
    """Return the tokens one training run processes: `max_steps` x effective batch, or rows x epochs."""
    hp = plan.hyperparameters
    per_sequence = min(hp.max_length, tokens_per_row)
    if hp.max_steps is not None:
        return hp.max_steps * hp.effective_batch_size * per_sequence
    return int(num_rows * hp.num_train_epochs * per_sequence)


def estimate_job(plan: Plan, flavor: Flavor, *, num_parameters: int, num_rows: int, tokens_per_s: float | None = None) -> JobEstimate:
    """Estimate the wall time, cost and timeout of the plan's training job on `flavor`.

    Throughput is the GPUs' peak bf16 FLOP/s times `ASSUMED_MFU`, divided by the training FLOPs per token:
    6 x parameters for a full fine-tune, 4 x parameters with LoRA (no weight gradients for the frozen model).
    A measured `tokens_per_s`, from a quick test on the same flavor, replaces the model.

    Raises:
        HardwareError: If `flavor` has no GPU whose throughput is known and no `tokens_per_s` is given.
    """
    tokens = training_tokens(plan, num_rows=num_rows)
    if tokens_per_s is None:
        peak_tflops = GPU_PEAK_BF16_TFLOPS.get(flavor.gpu_model or "")
        if peak_tflops is None:
            raise HardwareError(f"No throughput model for flavor {flavor.name!r}; choose one of the GPUs {sorted(GPU_PEAK_BF16_TFLOPS)}.")
        flops_per_token = (4 if plan.lora else 6) * num_parameters
        gpus = 1 + (flavor.gpu_count - 1) * MULTI_GPU_EFFICIENCY
        tokens_per_s = peak_tflops * 1e12 * ASSUMED_MFU * gpus / flops_per_token
    minutes = JOB_SETUP_MINUTES + tokens / tokens_per_s / 60
    return JobEstimate(
        flavor=flavor.name,
        usd_per_hour=flavor.usd_per_hour,
        num_parameters=num_parameters,
        tokens=tokens,
        tokens_per_s=round(tokens_per_s, 1),
        minutes=round(minutes, 1),
        cost_usd=round(minutes / 60 * flavor.usd_per_hour, 2),
        timeout=format_timeout(minutes * 60 * TIMEOUT_MARGIN),
    )


def flavor_tokens_per_s_ratio(target: Flavor, measured: Flavor) -> float | None:
    """Return how much faster `target` trains than `measured`, by peak bf16 FLOP/s; `None` if either is unknown.

    A quick test's throughput on `measured` times this ratio estimates the throughput on `target`, which keeps
    the utilization that the quick test measured.
    """
    if target.name == measured.name:
        return 1.0
    peaks = [GPU_PEAK_BF16_TFLOPS.get(flavor.gpu_model or "") for flavor in (target, measured)]
    if None in peaks or not target.gpu_count or not measured.gpu_count:
        return None
    target_gpus = 1 + (target.gpu_count - 1) * MULTI_GPU_EFFICIENCY
    measured_gpus = 1 + (measured.gpu_count - 1) * MULTI_GPU_EFFICIENCY
    return peaks[0] * target_gpus / (peaks[1] * measured_gpus)


def choose_job_hardware(
    plan: Plan, *, cache_dir: Path, params_override: str | None = None, api: Any | None = None, refresh_prices: bool = False
) -> tuple[Flavor, MemoryEstimate, PriceTable]:
    """Size the plan for Hugging Face Jobs: resolve the model size and choose the cheapest flavor that fits.

    Sets `plan.num_parameters`, `plan.parameter_source` and `plan.hardware` (unless a flavor was already chosen),
    and appends the reasons. `api` (an `HfApi`) is used for Hub metadata and fresh prices when given.

    Raises:
        ConfigError: If the model size is unknown (pass `--params`).
        HardwareError: If no flavor fits, or the chosen flavor is unknown.
    """
    from .hardware import choose_flavor, estimate_memory_gb, load_price_table
    from .model_size import format_parameter_count, resolve_parameter_count

    plan.num_parameters, plan.parameter_source = resolve_parameter_count(plan.base_model, params_override=params_override, api=api)
    plan.reasons.append(f"{format_parameter_count(plan.num_parameters)} parameters, from the {plan.parameter_source}")
    table = load_price_table(cache_dir=cache_dir, api=api, refresh=refresh_prices)
    hp = plan.hyperparameters
    sizing = dict(method=plan.method, use_lora=plan.lora is not None, max_length=hp.max_length, per_device_batch_size=hp.per_device_train_batch_size)
    if plan.hardware == "cpu":
        flavor, memory, reason = choose_flavor(table, plan.num_parameters, **sizing)
        plan.hardware = flavor.name
        plan.reasons.append(reason)
    else:
        flavor = table.flavor(plan.hardware)
        memory = estimate_memory_gb(plan.num_parameters, gpu_count=flavor.gpu_count, **sizing)
    return flavor, memory, table


def plan_job(plan: Plan, *, num_rows: int, cache_dir: Path, params_override: str | None = None, api: Any | None = None, refresh_prices: bool = False):
    """Choose the hardware as `choose_job_hardware` does, then estimate the job on it.

    Returns:
        The job estimate, the memory estimate and the price table.
    """
    flavor, memory, table = choose_job_hardware(plan, cache_dir=cache_dir, params_override=params_override, api=api, refresh_prices=refresh_prices)
    estimate = estimate_job(plan, flavor, num_parameters=plan.num_parameters, num_rows=num_rows)
    return estimate, memory, table
