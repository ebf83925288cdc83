"""Turn a goal written in plain words into an explicit plan, with the reason for each choice.

The catalog is deliberately small and predictable: a keyword picks the domain (data and benchmark) and the
method; everything else comes from defaults sized for the chosen model and backend. Flags override any choice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import get_args

from .errors import ConfigError
from .state import BenchmarkSpec, DatasetSpec, Hyperparameters, LoraSettings, Method, Plan

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
BUILTIN_CODE_DATASET = "builtin:code-functions"
HUB_CODE_DATASET = "open-r1/codeforces-cots"

# HumanEval problems scored by default on a CPU: the first 40 by task number. A fixed prefix keeps the base and
# fine-tuned scores comparable across runs and machines; `--eval-limit 0` scores all 164.
DEFAULT_CPU_EVAL_LIMIT = 40
HUMANEVAL_PROBLEMS = 164


@dataclass(frozen=True)
class Domain:
    """A family of goals that share a dataset and a benchmark."""

    name: str
    keywords: tuple[str, ...]
    offline_dataset: str
    hub_dataset: str
    benchmark: str


DOMAINS = (
    Domain(
        name="code",
        keywords=("code", "coding", "program", "python", "humaneval", "software"),
        offline_dataset=BUILTIN_CODE_DATASET,
        hub_dataset=HUB_CODE_DATASET,
        benchmark="humaneval",
    ),
)

METHOD_KEYWORDS: dict[Method, tuple[str, ...]] = {
    "sft": ("sft", "supervised", "instruction tuning", "fine-tune", "finetune"),
    "dpo": ("dpo", "preference"),
    "grpo": ("grpo", "reinforcement", " rl ", "reward"),
}
METHODS: tuple[Method, ...] = get_args(Method)
SUPPORTED_METHODS: tuple[Method, ...] = ("sft", "dpo", "grpo")
"""Methods that the training job trains; any of `METHODS` left out can be validated and estimated only."""
# Methods users ask for by name that TRL offers but this version does not train; naming one is an error, not SFT.
UNSUPPORTED_METHOD_NAMES = ("ppo", "kto", "orpo", "simpo", "rloo", "cpo", "ipo", "reinforce")
CODE_REWARD_FUNCTIONS = ["code_pass_fraction", "code_format"]
GRPO_ON_JOBS_MESSAGE = (
    "GRPO runs on the local backend only: its reward functions and the sandbox that runs the generated code come "
    "from the autotrain_agent package, which a Hugging Face Jobs machine does not install, so the job would fail "
    "after it started. Leave out `--backend hf-jobs`, or train with SFT or DPO on Jobs."
)
# Defaults on Hugging Face Jobs: one epoch over the dataset, effective batch 16, sequences up to 2048 tokens.
GPU_HYPERPARAMETERS = Hyperparameters(
    max_steps=None, per_device_train_batch_size=4, gradient_accumulation_steps=4, max_length=2048, save_steps=100
)


@dataclass(frozen=True)
class PlanOverrides:
    """Choices the user fixed with flags; `None` leaves the choice to the planner."""

    model: str | None = None
    dataset: str | None = None
    dataset_config: str | None = None
    column_mapping: dict[str, str] | None = None
    method: str | None = None
    benchmark: str | None = None
    max_steps: int | None = None
    eval_limit: int | None = None
    eval_engine: str | None = None
    eval_checkpoints: str | None = None
    use_lora: bool = True
    backend: str = "local"
    hub_repo: str | None = None
    reward_functions: list[str] | None = None
    adapt_reward_functions: bool = False


def parse_parameter_count(model_reference: str) -> int | None:
    """Read a parameter count from a model name such as `Qwen3-0.6B`, `Llama-2-7b-hf` or `SmolLM2-135M`.

    Only a number directly followed by `B` or `M` and then a separator or the end counts, so the `2` of
    `Llama-2-7b` is a version, not a size. Returns `None` when the name carries no size.
    """
    name = model_reference.rstrip("/").split("/")[-1]
    matches = re.findall(r"(?<![\d.])(\d+(?:\.\d+)?)([bBmM])(?![a-zA-Z0-9])", name)
    if not matches:
        return None
    number, unit = matches[-1]
    scale = 1e9 if unit.lower() == "b" else 1e6
    return int(float(number) * scale)


def detect_method(goal: str) -> tuple[Method, str]:
    """Return the method a goal asks for and the reason; SFT when it names none.

    A method named outright (`DPO`, `GRPO`, `SFT`) wins over descriptive words, so "fine-tune with DPO" plans DPO.

    Raises:
        ConfigError: If the goal names a method this version does not train, such as PPO.
    """
    text = f" {goal.lower()} "
    for method in SUPPORTED_METHODS:
        if re.search(rf"\b{method}\b", text):
            return method, f"method {method.upper()}: the goal says {method!r}"
    for name in UNSUPPORTED_METHOD_NAMES:
        if re.search(rf"\b{name}\b", text):
            raise ConfigError(
                f"The goal asks for {name.upper()}, which this version does not train; supported methods: "
                f"{', '.join(SUPPORTED_METHODS)}. Reword the goal or pass `--method`."
            )
    for method, keywords in METHOD_KEYWORDS.items():
        for keyword in keywords:
            if keyword in text:
                return method, f"method {method.upper()}: the goal says {keyword.strip()!r}"
    return "sft", "method SFT: the goal names no method, and supervised fine-tuning is the safe default"


def detect_domain(goal: str) -> Domain | None:
    """Return the catalog domain whose keywords appear in the goal, if any."""
    text = goal.lower()
    for domain in DOMAINS:
        if any(keyword in text for keyword in domain.keywords):
            return domain
    return None


def make_plan(goal: str, overrides: PlanOverrides | None = None, *, hub_reachable: bool = False) -> Plan:
    """Build a plan from a goal and the user's overrides.

    Args:
        goal: The goal in plain words, e.g. "improve code solving with SFT".
        overrides: Choices fixed by flags.
        hub_reachable: Whether the Hugging Face Hub answered; picks Hub or offline default data.

    Raises:
        ConfigError: If the goal is empty, names no known domain and no dataset was given, or asks for a method
            this version cannot train.
    """
    overrides = overrides or PlanOverrides()
    if not goal or not goal.strip():
        raise ConfigError('The goal is empty; describe it in words, e.g. `autotrain-agent "improve code solving with SFT"`.')
    reasons: list[str] = []

    method, method_reason = _choose_method(goal, overrides.method)
    reasons.append(method_reason)
    dataset_spec, benchmark_name = _choose_data(goal, overrides, hub_reachable, reasons)

    model = overrides.model or DEFAULT_MODEL
    if overrides.model:
        reasons.append(f"model {model}: set with --model")
    else:
        reasons.append(f"model {model}: small instruct model (135M, Apache-2.0) that trains on a CPU in minutes")

    if overrides.backend not in ("local", "hf-jobs"):
        raise ConfigError(f"`--backend` must be 'local' or 'hf-jobs', got {overrides.backend!r}.")
    paid = overrides.backend == "hf-jobs"
    if paid and not overrides.hub_repo:
        raise ConfigError("`--backend hf-jobs` needs `--hub-repo USER/NAME`: a Jobs machine's disk is gone when the job ends, so checkpoints are pushed there.")
    if paid and method == "grpo":
        raise ConfigError(GRPO_ON_JOBS_MESSAGE)
    hyperparameters = GPU_HYPERPARAMETERS.model_copy() if paid else Hyperparameters()
    num_parameters = parse_parameter_count(model)
    apply_method_defaults(hyperparameters, method, num_parameters=num_parameters, use_lora=overrides.use_lora, paid=paid)
    if overrides.max_steps is not None:
        if overrides.max_steps <= 0:
            raise ConfigError(f"`--max-steps` must be a positive integer, got {overrides.max_steps!r}.")
        hyperparameters.max_steps = overrides.max_steps
        hyperparameters.save_steps = min(hyperparameters.save_steps, overrides.max_steps)
    length = f"{hyperparameters.max_steps} steps" if hyperparameters.max_steps else f"{hyperparameters.num_train_epochs:g} epoch"
    target = "sized for one GPU on Hugging Face Jobs" if paid else "sized to finish in minutes on a CPU"
    reasons.append(
        f"LoRA r=16 on all linear layers, lr {hyperparameters.learning_rate:g}, effective batch "
        f"{hyperparameters.effective_batch_size}, {length}: {target}"
        if overrides.use_lora
        else "full fine-tune: LoRA disabled with --no-lora"
    )
    method_reason = describe_method_settings(method, hyperparameters)
    if method_reason:
        reasons.append(method_reason)
    reward_functions = _choose_reward_functions(method, dataset_spec, overrides, reasons)
    if method == "dpo" and dataset_spec.reference == BUILTIN_CODE_DATASET:
        raise ConfigError(
            "DPO needs preference data (`prompt`, `chosen`, `rejected`), and the builtin code dataset has none; "
            "pass `--dataset` with a preference JSONL file."
        )

    benchmark = _choose_benchmark(benchmark_name, overrides, reasons)
    engine = overrides.eval_engine or "llama.cpp"
    if engine not in ("llama.cpp", "transformers"):
        raise ConfigError(f"`--eval-engine` must be 'llama.cpp' or 'transformers', got {engine!r}.")
    reasons.append(
        "evaluation with llama.cpp on F16 GGUF copies: about 10x faster than transformers `generate` on a CPU"
        if engine == "llama.cpp"
        else "evaluation with transformers `generate`"
    )

    checkpoints_to_evaluate = overrides.eval_checkpoints or "final"
    if checkpoints_to_evaluate not in ("final", "all"):
        raise ConfigError(f"`--eval-checkpoints` must be 'final' or 'all', got {checkpoints_to_evaluate!r}.")
    if checkpoints_to_evaluate == "all":
        reasons.append("every saved checkpoint is scored and the best one kept: set with --eval-checkpoints all")

    return Plan(
        goal=goal.strip(),
        base_model=model,
        dataset=dataset_spec,
        method=method,
        lora=LoraSettings() if overrides.use_lora else None,
        hyperparameters=hyperparameters,
        benchmarks=[benchmark],
        eval_engine=engine,
        backend=overrides.backend,  # type: ignore[arg-type]
        hub_repo=overrides.hub_repo,
        checkpoints_to_evaluate=checkpoints_to_evaluate,
        reasons=reasons,
        reward_functions=reward_functions,
        adapt_reward_functions=overrides.adapt_reward_functions,
    )


def describe_methods() -> str:
    """Return the training methods for help texts, such as `sft (dpo and grpo are planned)`."""
    planned = [method for method in METHODS if method not in SUPPORTED_METHODS]
    supported = ", ".join(SUPPORTED_METHODS)
    if not planned:
        return supported
    verb = "is" if len(planned) == 1 else "are"
    return f"{supported} ({' and '.join(planned)} {verb} planned)"


def _choose_method(goal: str, override: str | None) -> tuple[Method, str]:
    if override is not None:
        method = override.lower()
        if method not in SUPPORTED_METHODS:
            raise ConfigError(f"Unknown method {override!r} in `--method`; supported methods: {', '.join(SUPPORTED_METHODS)}.")
        return method, f"method {method.upper()}: set with --method"  # type: ignore[return-value]
    return detect_method(goal)


def apply_method_defaults(
    hyperparameters: Hyperparameters, method: Method, *, num_parameters: int | None, use_lora: bool, paid: bool
) -> None:
    """Set the hyperparameters that DPO and GRPO need in place of the SFT defaults; SFT is left unchanged.

    DPO: beta 0.1 (TRL's default) and a learning rate from `preference_learning_rate`. GRPO on a CPU: four
    completions per prompt, one prompt per optimizer step and 12 steps, so that a 135M model finishes in minutes.
    GRPO on a GPU: eight completions per prompt. Both learn from whole answers, so the SFT-only `completion_only_loss` is off.
    """
    if method == "sft":
        return
    hyperparameters.learning_rate = preference_learning_rate(method, num_parameters, use_lora=use_lora)
    hyperparameters.completion_only_loss = False
    if method == "dpo":
        hyperparameters.beta = 0.1
        return
    hyperparameters.beta = 0.0
    hyperparameters.temperature = 0.8
    hyperparameters.warmup_ratio = 0.0
    if paid:
        hyperparameters.num_generations = 8
        hyperparameters.per_device_train_batch_size = 8
        hyperparameters.gradient_accumulation_steps = 2
        hyperparameters.max_completion_length = 512
        return
    # Sampling 4 x 192 tokens from SmolLM2-135M with transformers took about 20 CPU-seconds on a 2-core x86-64 CPU
    # (one thread), and every sampled answer to the builtin prompts reached 192 tokens, so sampling bounds the run.
    hyperparameters.num_generations = 4
    hyperparameters.per_device_train_batch_size = 4
    hyperparameters.gradient_accumulation_steps = 1
    hyperparameters.max_completion_length = 192
    hyperparameters.max_steps = 12
    hyperparameters.save_steps = 12


def preference_learning_rate(method: Method, num_parameters: int | None, *, use_lora: bool) -> float:
    """Return the default DPO or GRPO learning rate for a model of `num_parameters` (unknown counts as small).

    Full-model rates are of the scale of TRL 1.16's `DPOConfig` and `GRPOConfig` default (1e-6): higher for models
    under 1B parameters and lower above 10B. LoRA trains a small subspace and gets ten times the full-model rate.
    NOTE: these rates are starting points chosen by scale, not tuned on this product's benchmarks.
    """
    if num_parameters is None or num_parameters < 1_000_000_000:
        full_rate = 5e-6 if method == "dpo" else 2e-6
    elif num_parameters < 10_000_000_000:
        full_rate = 1e-6
    else:
        full_rate = 5e-7
    return round(full_rate * 10, 12) if use_lora else full_rate


def describe_method_settings(method: Method, hyperparameters: Hyperparameters) -> str | None:
    """Return the plan's reason line for the method-specific hyperparameters, or `None` for SFT."""
    hp = hyperparameters
    if method == "dpo":
        return f"DPO beta {hp.beta:g}; the reference model is the base model (the adapter disabled under LoRA)"
    if method == "grpo":
        return (
            f"GRPO: {hp.num_generations} completions per prompt of up to {hp.max_completion_length} tokens at "
            f"temperature {hp.temperature:g}, KL weight beta {hp.beta:g} (no reference model)"
        )
    return None


def _choose_reward_functions(method: Method, dataset: DatasetSpec, overrides: PlanOverrides, reasons: list[str]) -> list[str]:
    if method != "grpo":
        if overrides.reward_functions:
            raise ConfigError(f"`--reward` applies to GRPO only, but the plan trains with {method.upper()}.")
        return []
    if overrides.reward_functions:
        reasons.append(f"reward functions {', '.join(overrides.reward_functions)}: set with --reward")
        return list(overrides.reward_functions)
    if dataset.reference != BUILTIN_CODE_DATASET:
        raise ConfigError(
            f"GRPO on {dataset.reference!r} needs reward functions: pass `--reward module:function` or "
            f"`--reward file.py:function` (builtin code rewards: {', '.join(CODE_REWARD_FUNCTIONS)})."
        )
    reasons.append(
        "rewards: the fraction of the problem's doctests that the answer's code passes in the evaluation sandbox, "
        "plus a format reward for a fenced Python block that defines the function"
    )
    return list(CODE_REWARD_FUNCTIONS)


def _choose_data(goal: str, overrides: PlanOverrides, hub_reachable: bool, reasons: list[str]) -> tuple[DatasetSpec, str]:
    domain = detect_domain(goal)
    if overrides.dataset:
        reasons.append(f"dataset {overrides.dataset}: set with --dataset")
        spec = DatasetSpec(reference=overrides.dataset, config=overrides.dataset_config,
                           column_mapping=overrides.column_mapping or {})
        return spec, overrides.benchmark or (domain.benchmark if domain else "humaneval")
    if domain is None:
        raise ConfigError(
            f"The goal {goal!r} names no domain this planner knows (known: code); pass `--dataset` with a Hub id "
            f"or a local JSONL file."
        )
    if hub_reachable:
        reasons.append(f"dataset {domain.hub_dataset}: the Hub is reachable and it is the catalog's {domain.name} set")
        return DatasetSpec(reference=domain.hub_dataset), domain.benchmark
    reasons.append(
        f"dataset {domain.offline_dataset}: the Hub is unreachable, so functions with passing doctests from the "
        f"installed `algorithms` package (MIT) are used, with HumanEval overlaps removed"
    )
    return DatasetSpec(reference=domain.offline_dataset), domain.benchmark


def _choose_benchmark(name: str, overrides: PlanOverrides, reasons: list[str]) -> BenchmarkSpec:
    from .evaluation.benchmarks import resolve_benchmark

    name = resolve_benchmark(overrides.benchmark or name).name
    limit: int | None = DEFAULT_CPU_EVAL_LIMIT
    if overrides.eval_limit is not None:
        if overrides.eval_limit < 0:
            raise ConfigError(f"`--eval-limit` must be 0 (all problems) or a positive count, got {overrides.eval_limit!r}.")
        if overrides.eval_limit > HUMANEVAL_PROBLEMS:
            raise ConfigError(
                f"`--eval-limit` must be at most {HUMANEVAL_PROBLEMS} (HumanEval's size), got {overrides.eval_limit!r}; "
                f"pass 0 to score all problems."
            )
        limit = overrides.eval_limit or None
    scope = f"the first {limit} of 164 problems" if limit else "all 164 problems"
    reasons.append(f"benchmark HumanEval pass@1 (greedy) on {scope}, for the base and the fine-tuned model")
    return BenchmarkSpec(name=name, limit=limit)
