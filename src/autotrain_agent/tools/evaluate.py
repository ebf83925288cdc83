"""The `evaluate_model` tool: score the base model or a run's final checkpoint on the plan's benchmarks."""

from __future__ import annotations

import logging
from pathlib import Path

from ..context import ExperimentContext
from ..errors import EvaluationError, StateError
from ..state import Score, Stage

logger = logging.getLogger(__name__)

BASE_TARGET = "base"


def evaluate_model(ctx: ExperimentContext, target: str) -> str:
    """Score `target` (`"base"` or a run id) on every benchmark of the plan, with the same problems and engine.

    A run is scored on its last checkpoint (the `final` folder). LoRA adapters are merged into a float32 copy of
    the base model first; with the llama.cpp engine both models are converted to F16 GGUF files, so the base and
    the fine-tuned model are prompted and decoded identically.

    Raises:
        StateError: If the base model is not resolved yet or the run has no checkpoint.
        EvaluationError: If the harness cannot be trusted on this machine (canonical solutions fail).
    """
    experiment = ctx.experiment
    if not experiment.model_path:
        raise StateError(f"Experiment {experiment.id!r} has no resolved base model; call `validate_dataset` first.")
    model_dir, label = _model_to_score(ctx, target)

    scores = [_score_benchmark(ctx, model_dir, label, benchmark) for benchmark in experiment.plan.benchmarks]
    if target == BASE_TARGET:
        experiment.baseline_scores = scores
        ctx.complete_stage(Stage.EVALUATE_BASE)
    else:
        experiment.run(target).checkpoints[-1].scores = scores
        ctx.complete_stage(Stage.EVALUATE_RUN, run_id=target)

    summary = "; ".join(f"{label} {s.benchmark} {s.metric} = {s.value:.3f} ({s.num_passed}/{s.num_samples})" for s in scores)
    ctx.echo(summary)
    return summary


def _model_to_score(ctx: ExperimentContext, target: str) -> tuple[Path, str]:
    """Return a full-weights Hugging Face folder for `target` and its label in the report."""
    base_dir = Path(ctx.experiment.model_path)
    if target == BASE_TARGET:
        return base_dir, "base"
    try:
        run = ctx.experiment.run(target)
    except KeyError as err:
        raise StateError(f"Unknown evaluation target {target!r}; use 'base' or one of the run ids.") from err
    if not run.checkpoints:
        raise StateError(f"Run {target!r} has no checkpoint to evaluate; its status is {run.status!r}.")
    checkpoint = Path(run.checkpoints[-1].path)

    from ..merge import is_adapter_folder, merge_adapter

    if is_adapter_folder(checkpoint):
        ctx.echo(f"Merging the LoRA adapter of {target} into the base model...")
        return merge_adapter(base_dir, checkpoint, Path(run.output_dir) / "merged"), target
    return checkpoint, target


def _score_benchmark(ctx: ExperimentContext, model_dir: Path, label: str, benchmark) -> Score:
    from ..evaluation.generation import stop_sequences_for
    from ..evaluation.humaneval import calibrate_harness, evaluate_humaneval, load_humaneval_problems

    problems = load_humaneval_problems(limit=benchmark.limit)
    calibration = calibrate_harness(problems)
    if calibration.canonical_pass_rate < 1.0:
        raise EvaluationError(f"The harness is unreliable here: canonical pass rate {calibration.canonical_pass_rate:.3f}.")
    generator, tokenizer = _load_generator(ctx, model_dir, label)
    chat = bool(getattr(tokenizer, "chat_template", None))
    details_path = ctx.folder / "evaluations" / f"{label}-{benchmark.name}.jsonl"
    details_path.parent.mkdir(parents=True, exist_ok=True)
    ctx.echo(f"Evaluating {label} on {len(problems)} {benchmark.name} problems with {generator.name}...")
    result = evaluate_humaneval(
        generator,
        problems,
        chat=chat,
        max_new_tokens=benchmark.max_new_tokens,
        stop=stop_sequences_for(tokenizer),
        calibration=calibration,
        details_path=details_path,
        progress=ctx.settings.progress,
    )
    return Score(
        benchmark=benchmark.name,
        metric=result.metric,
        value=result.value,
        num_samples=result.num_problems,
        num_passed=result.num_passed,
        stderr=result.stderr,
        engine=result.generator,
        details_path=str(details_path),
        task_ids=result.task_ids,
        duration_s=round(result.duration_s, 1),
    )


def _load_generator(ctx: ExperimentContext, model_dir: Path, label: str):
    from transformers import AutoTokenizer

    from ..evaluation.generation import LlamaCppGenerator, TransformersGenerator

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if ctx.experiment.plan.eval_engine == "transformers":
        return TransformersGenerator(model_dir), tokenizer

    from ..gguf_convert import convert_hf_to_gguf

    gguf_path = ctx.folder / "gguf" / f"{label}-f16.gguf"
    if not gguf_path.is_file():
        ctx.echo(f"Converting {label} to an F16 GGUF file for llama.cpp...")
        gguf_path.parent.mkdir(parents=True, exist_ok=True)
        convert_hf_to_gguf(model_dir, gguf_path, outtype="f16", cache_dir=ctx.settings.cache_dir)
    return LlamaCppGenerator(gguf_path, chat_template_dir=model_dir), tokenizer
