"""Render an experiment's Markdown report from its state, never from log text.

The layout follows the reports that users of this workflow know: Base Model & Dataset, one section per run with
Training Parameters, Run Status, Run Logs, Trackio Logs and Run Evaluations, and an Experiment Evaluations table
that puts the base model beside every run.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import jinja2

from ._resources import resource_dir
from .state import Checkpoint, Experiment, Run, Score

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "experiment.md.j2"


def render_report(experiment: Experiment, *, runs_root: Path | None = None) -> str:
    """Return the report of `experiment` as Markdown."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(resource_dir("reports")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    template = environment.get_template(TEMPLATE_NAME)
    return template.render(
        e=experiment,
        stages_done=", ".join(stage.value for stage in experiment.completed_stages) or "none",
        model_link=_hub_link(experiment.plan.base_model, kind="model"),
        dataset_link=_hub_link(experiment.plan.dataset.reference, kind="dataset"),
        provenance=_provenance_items(experiment.dataset_provenance),
        token_lengths=_format_lengths((experiment.validation or {}).get("token_lengths") or {}),
        benchmarks=", ".join(
            f"{b.name} ({'first ' + str(b.limit) if b.limit else 'all'} problems)" for b in experiment.plan.benchmarks
        ),
        estimate=f"{experiment.plan.estimated_minutes:.0f} min (estimate)" if experiment.plan.estimated_minutes else "unknown",
        runs=[_run_view(experiment, run) for run in experiment.runs],
        evaluations=_evaluation_rows(experiment),
        problems_scored=_problems_scored(experiment),
        harnesses=", ".join(f"`{name}`" for name in _harnesses(experiment)),
        below_base=_below_base(experiment),
    )


def write_report(experiment: Experiment, path: Path, *, runs_root: Path | None = None) -> Path:
    """Render the report and replace `path` atomically."""
    text = render_report(experiment, runs_root=runs_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".report.", suffix=".md", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as tmp:
        tmp.write(text)
    os.replace(tmp_name, path)
    return path


def _hub_link(reference: str, *, kind: str) -> str:
    if reference.startswith("builtin:"):
        return f"`{reference}` (built offline)"
    if Path(reference).exists() or reference.startswith((".", "/")):
        return f"`{reference}` (local)"
    prefix = "https://huggingface.co/" + ("datasets/" if kind == "dataset" else "")
    return f"[{reference}]({prefix}{reference})"


def _provenance_items(provenance: dict[str, Any]) -> list[tuple[str, str]]:
    items = []
    for key, value in provenance.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = f"{len(value)} entries" if len(value) > 8 else ", ".join(map(str, value))
        items.append((key, str(value)))
    return items


def _format_lengths(lengths: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in lengths.items())


def _run_view(experiment: Experiment, run: Run) -> dict[str, Any]:
    plan = experiment.plan
    hp = plan.hyperparameters
    lora = plan.lora
    when = (run.submitted_at or experiment.created_at).strftime("%Y-%m-%d %H:%M UTC")
    parameters = [
        ("Method", plan.method.upper()),
        ("Model", plan.base_model),
        ("Dataset", f"{plan.dataset.reference} (split `{plan.dataset.split}`)"),
        ("Max length", f"{hp.max_length} tokens"),
        ("Steps", str(hp.max_steps) if hp.max_steps else f"{hp.num_train_epochs:g} epochs"),
        ("Per-device batch", str(hp.per_device_train_batch_size)),
        ("Gradient accumulation", str(hp.gradient_accumulation_steps)),
        ("Effective batch", str(hp.effective_batch_size)),
        ("Learning rate", f"{hp.learning_rate:g} ({hp.lr_scheduler_type}, warmup {hp.warmup_ratio:g})"),
        ("LoRA", f"r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout}, targets={lora.target_modules}" if lora else "none (full fine-tune)"),
        ("Precision", "float32 (CPU)" if run.hardware == "cpu" else "bfloat16"),
        ("Hardware", f"{run.backend} / {run.hardware}"),
        ("Trackio", f"project `{run.trackio_project}`, run `{run.trackio_run}`"),
    ]
    status_lines = [f"- Status: **{run.status}**"]
    if run.job_id:
        status_lines.append(f"- Job: `{run.job_id}` on `{run.backend}`")
    if run.actual_minutes is not None:
        status_lines.append(f"- Wall time: {run.actual_minutes} min (estimate {run.estimated_minutes or 'n/a'} min)")
    if run.failure:
        status_lines.append(f"- Failure: {run.failure.kind}: {run.failure.message}")
    if run.checkpoints:
        status_lines.append(f"- Checkpoints: {', '.join(f'step {c.step}' for c in run.checkpoints)}; last at `{run.checkpoints[-1].path}`")
    scores: list[Score] = run.checkpoints[-1].scores if run.checkpoints else []
    return {
        "title": run.title,
        "when": when,
        "status": run.status,
        "parameters": parameters,
        "status_text": "\n".join(status_lines),
        "logs": f"`{run.log_path}`" if run.log_path else "No logs yet.",
        "trackio_project": run.trackio_project,
        "trackio_run": run.trackio_run,
        "metrics": list(run.metrics_summary.items()),
        "scores": scores,
    }


def _evaluation_rows(experiment: Experiment) -> list[dict[str, str]]:
    rows = []
    for score in experiment.baseline_scores:
        rows.append(_evaluation_row("Base model", score, experiment.model_path or experiment.plan.base_model))
    for run, checkpoint in _scored_checkpoints(experiment):
        title = run.title if checkpoint is run.checkpoints[-1] else f"{run.title}, step {checkpoint.step}"
        if run.best_checkpoint_path == checkpoint.path and len(run.checkpoints) > 1:
            title += " (best)"
        for score in checkpoint.scores:
            rows.append(_evaluation_row(title, score, checkpoint.path))
    return rows


def _scored_checkpoints(experiment: Experiment) -> list[tuple[Run, Checkpoint]]:
    return [(run, checkpoint) for run in experiment.runs for checkpoint in run.checkpoints if checkpoint.scores]


def _harnesses(experiment: Experiment) -> list[str]:
    scores = [*experiment.baseline_scores, *(s for _, c in _scored_checkpoints(experiment) for s in c.scores)]
    return list(dict.fromkeys(score.harness for score in scores if score.harness))


def _below_base(experiment: Experiment) -> list[str]:
    """Describe every fine-tuned score that is lower than the base model's on the same benchmark and metric."""
    base = {(score.benchmark, score.metric): score for score in experiment.baseline_scores}
    lines = []
    for run, checkpoint in _scored_checkpoints(experiment):
        for score in checkpoint.scores:
            reference = base.get((score.benchmark, score.metric))
            if reference is not None and score.value < reference.value:
                lines.append(
                    f"{run.title} at step {checkpoint.step}: {score.benchmark} {score.metric} {score.value:.3f} "
                    f"is below the base model's {reference.value:.3f}"
                )
    return lines


def _evaluation_row(title: str, score: Score, model_path: str) -> dict[str, str]:
    return {
        "title": title,
        "benchmark": f"{score.benchmark} {score.metric}",
        "score": f"{score.value:.3f} ± {score.stderr or 0:.3f} ({score.num_passed}/{score.num_samples})",
        "details": f"`{score.details_path}`" if score.details_path else "",
        "model": f"`{model_path}`",
    }


def _problems_scored(experiment: Experiment) -> str:
    scores = list(experiment.baseline_scores)
    for run in experiment.runs:
        for checkpoint in run.checkpoints[-1:]:
            scores.extend(checkpoint.scores)
    if not scores or not scores[0].task_ids:
        return ""
    ids = scores[0].task_ids
    if len(ids) > 6:
        return f"{len(ids)} HumanEval problems, {ids[0]} to {ids[-1]}"
    return ", ".join(ids)
