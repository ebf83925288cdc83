"""The `evaluate_model` tool: score the base model or a run's checkpoints, then pick the run's best checkpoint."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..context import ExperimentContext
from ..errors import AdapterNotAppliedError, StateError
from ..state import Checkpoint, Run, Score, Stage

logger = logging.getLogger(__name__)

BASE_TARGET = "base"


def evaluate_model(ctx: ExperimentContext, target: str) -> str:
    """Score `target` (`"base"` or a run id) on every benchmark of the plan, with the same problems and engine.

    A run is scored on its final checkpoint, or on every saved checkpoint when the plan's
    `checkpoints_to_evaluate` is `all`. The best scored checkpoint is then recorded as a decision. LoRA adapters are merged into
    a float32 copy of the base model for llama.cpp, or applied with PEFT for transformers, and every fine-tuned
    model must change the base model's logits on probe prompts before it is scored.

    Raises:
        StateError: If the base model is not resolved yet or the run has no checkpoint.
        EvaluationError: If the harness cannot be trusted on this machine (canonical solutions fail), or a
            checkpoint gives the base model's logits.
    """
    experiment = ctx.experiment
    if not experiment.model_path:
        raise StateError(f"Experiment {experiment.id!r} has no resolved base model; call `validate_dataset` first.")
    if target == BASE_TARGET:
        experiment.baseline_scores = _score_folder(ctx, Path(experiment.model_path), "base", is_base=True)
        ctx.complete_stage(Stage.EVALUATE_BASE)
        return _summarize("base", experiment.baseline_scores, ctx)

    run = _run_to_score(ctx, target)
    for checkpoint in _checkpoints_to_score(ctx, run):
        label = target if checkpoint is run.checkpoints[-1] else f"{target}-step-{checkpoint.step}"
        try:
            checkpoint.scores = _score_folder(ctx, Path(checkpoint.path), label, is_base=False, run=run)
        except AdapterNotAppliedError as err:
            tied_steps = _steps_with_tied_rewards(run)
            if not tied_steps:
                raise
            raise AdapterNotAppliedError(
                f"{err} GRPO got no gradient: at each of its {len(tied_steps)} logged steps, every completion of each prompt got "
                f"the same total reward (`frac_reward_zero_std` = 1). Use rewards that tell this model's completions "
                f"apart, a longer `max_completion_length`, or more steps."
            ) from err
        ctx.record("checkpoint_scored", run_id=target, step=checkpoint.step)
    _select_best_checkpoint(ctx, run)
    ctx.complete_stage(Stage.EVALUATE_RUN, run_id=target)
    return _summarize(target, run.checkpoints[-1].scores, ctx)


def _steps_with_tied_rewards(run: Run) -> list[int]:
    """Return the logged steps of a GRPO run if every group's rewards tied at each of them, else an empty list."""
    metrics_path = Path(run.output_dir) / "metrics.jsonl"
    if run.config.get("method") != "grpo" or not metrics_path.is_file():
        return []
    rows = [json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    logged = [row for row in rows if "frac_reward_zero_std" in row]
    if not logged or any(row["frac_reward_zero_std"] < 1.0 for row in logged):
        return []
    return [row["step"] for row in logged]


def _run_to_score(ctx: ExperimentContext, target: str) -> Run:
    try:
        run = ctx.experiment.run(target)
    except KeyError as err:
        raise StateError(f"Unknown evaluation target {target!r}; use 'base' or one of the run ids.") from err
    if not run.checkpoints:
        raise StateError(f"Run {target!r} has no checkpoint to evaluate; its status is {run.status!r}.")
    return run


def _checkpoints_to_score(ctx: ExperimentContext, run: Run) -> list[Checkpoint]:
    """Return the final checkpoint, plus with `all` every earlier one saved at a different step, oldest first.

    An `evaluate_checkpoint` verdict adds the checkpoint at its step to the final one.
    """
    final = run.checkpoints[-1]
    verdict = run.verdict
    if verdict is not None and verdict.action == "evaluate_checkpoint" and ctx.experiment.plan.checkpoints_to_evaluate == "final":
        chosen = [c for c in run.checkpoints[:-1] if c.step == verdict.parameters.get("step") and c.step != final.step]
        return [*chosen[-1:], final]
    if ctx.experiment.plan.checkpoints_to_evaluate == "final":
        return [final]
    earlier = [checkpoint for checkpoint in run.checkpoints[:-1] if checkpoint.step != final.step]
    return [*earlier, final]


def _score_folder(ctx: ExperimentContext, folder: Path, label: str, *, is_base: bool, run: Run | None = None) -> list[Score]:
    from ..evaluation.benchmarks import resolve_benchmark
    from ..evaluation.scoring import ModelUnderTest, prepare_adapter, score_from_result, score_humaneval
    from ..merge import is_adapter_folder

    plan = ctx.experiment.plan
    base_dir = Path(ctx.experiment.model_path)
    if is_base:
        model = ModelUnderTest(label=label, model_dir=folder)
    elif is_adapter_folder(folder):
        ctx.echo(f"Preparing the LoRA adapter of {label} ({plan.eval_engine})...")
        merged_dir = Path(run.output_dir) / ("merged" if label == run.run_id else f"merged-{label}")
        model = prepare_adapter(folder, base_dir, engine=plan.eval_engine, merged_dir=merged_dir, label=label)
    else:
        model = ModelUnderTest(label=label, model_dir=folder, base_dir=base_dir)

    scores = []
    # NOTE: two benchmarks of the same name (humaneval with two limits) write the same details file; the last wins.
    for benchmark in plan.benchmarks:
        implementation = resolve_benchmark(benchmark.name)
        result = score_humaneval(
            model,
            engine=plan.eval_engine,
            limit=benchmark.limit,
            output_dir=ctx.folder / "evaluations",
            cache_dir=ctx.settings.cache_dir,
            max_new_tokens=benchmark.max_new_tokens,
            progress=ctx.settings.progress,
            echo=ctx.echo,
        )
        score = score_from_result(result, details_path=ctx.folder / "evaluations" / f"{label}-humaneval.jsonl")
        score.harness = implementation.harness
        scores.append(score)
    return scores


def _select_best_checkpoint(ctx: ExperimentContext, run: Run) -> None:
    """Record the scored checkpoint with the highest primary-benchmark score as the run's best, with a decision.

    The primary benchmark is the plan's benchmark marked `primary`, else its first. Ties go to the lower
    evaluation loss when both checkpoints have one, else to the later step.
    """
    primary = ctx.experiment.plan.primary_benchmark_index()
    scored = [checkpoint for checkpoint in run.checkpoints if len(checkpoint.scores) > primary]

    def rank(index_and_checkpoint: tuple[int, Checkpoint]) -> tuple[float, float, int]:
        index, checkpoint = index_and_checkpoint
        loss = checkpoint.eval_loss if checkpoint.eval_loss is not None else float("inf")
        return (checkpoint.scores[primary].value, -loss, index)

    if not scored:
        return
    _, best = max(enumerate(scored), key=rank)
    run.best_checkpoint_path = best.path
    best_score = best.scores[primary]
    evidence = {f"step {checkpoint.step}" + (" (final)" if checkpoint is run.checkpoints[-1] else ""):
                checkpoint.scores[primary].value for checkpoint in scored}
    ties = [checkpoint for checkpoint in scored if checkpoint.scores[primary].value == best_score.value]
    reason = (
        f"highest {best_score.benchmark} {best_score.metric} ({best_score.value:.3f}), the primary benchmark, of "
        f"{len(scored)} scored checkpoint(s)"
    )
    if len(ties) > 1:
        reason += "; tied, so the lower evaluation loss or else the later step won"
    ctx.decide(by="system", action=f"select {run.run_id} checkpoint at step {best.step}", reason=reason,
               run_id=run.run_id, path=best.path, scores=evidence, primary_benchmark=primary)


def _summarize(label: str, scores: list[Score], ctx: ExperimentContext) -> str:
    summary = "; ".join(
        f"{label} {s.benchmark} {s.metric} = {s.value:.3f} ({s.num_passed}/{s.num_samples})" for s in scores
    )
    ctx.echo(summary)
    return summary
