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
from .approval import ApprovalRequest
from .comparison import changes_from_base
from .state import ApprovalRecord, Checkpoint, Experiment, Run, Score

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
        validation_notes=_validation_notes(experiment.validation or {}),
        benchmarks=_benchmark_list(experiment),
        estimate=f"{experiment.plan.estimated_minutes:.0f} min (estimate)" if experiment.plan.estimated_minutes else "unknown",
        runs=[_run_view(experiment, run) for run in experiment.runs],
        changes_from_base=changes_from_base(experiment),
        evaluations=_evaluation_rows(experiment),
        problems_scored=_problems_scored(experiment),
        approvals=[_approval_row(record) for record in experiment.approvals],
        export=_export_view(experiment),
        harnesses=", ".join(f"`{name}`" for name in _harnesses(experiment)),
        below_base=_below_base(experiment),
    )


def write_report(experiment: Experiment, path: Path, *, runs_root: Path | None = None) -> Path:
    """Render the report and replace `path` atomically."""
    return replace_report_text(render_report(experiment, runs_root=runs_root), path)


def replace_report_text(text: str, path: Path) -> Path:
    """Write `text` to a temporary file beside `path` and rename it over `path`, so a reader never sees half a report."""
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
    """Flatten provenance for the report; long lists and nested tables are shown as counts."""
    items = []
    for key, value in provenance.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {_short(v)}" for k, v in value.items())
        else:
            value = _short(value)
        items.append((key, str(value)))
    return items


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return f"{len(value)} entries" if value else "none"
    if isinstance(value, list):
        return f"{len(value)} entries" if len(value) > 8 else ", ".join(map(str, value)) or "none"
    return str(value)


def _format_lengths(lengths: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in lengths.items())


def _validation_notes(validation: dict[str, Any]) -> list[str]:
    """Describe what validation kept, changed and found, from the stored result."""
    if not validation:
        return []
    checked = validation.get("num_checked", 0)
    rejected = validation.get("num_rejected", 0)
    notes = [f"rows kept: {checked - rejected} of {checked} checked ({rejected} dropped)"]
    notes.extend(f"changed: {conversion}" for conversion in validation.get("conversions", []))
    for problem in validation.get("problems", []):
        rows = problem.get("rows") or []
        where = f" ({len(rows)} rows)" if rows else ""
        notes.append(f"{problem['severity']} `{problem['code']}`{where}: {problem['message']}")
    if validation.get("suggested_mapping"):
        pairs = ",".join(f"{source}={target}" for source, target in validation["suggested_mapping"].items())
        notes.append(f"suggested mapping: `--map {pairs}`")
    return notes


def _method_parameters(plan) -> list[tuple[str, str]]:
    """Return the report rows of the hyperparameters that only DPO or GRPO use."""
    hp = plan.hyperparameters
    if plan.method == "dpo":
        return [("DPO beta", f"{hp.beta:g}"), ("Reference model", "the base model (TRL; the adapter disabled under LoRA)")]
    if plan.method == "grpo":
        rewards = ", ".join(f"`{name}`" for name in plan.reward_functions)
        adapted = " (adapted: message text, unknown keywords dropped)" if plan.adapt_reward_functions else ""
        return [
            ("Generations per prompt", str(hp.num_generations)),
            ("Max completion length", f"{hp.max_completion_length} tokens"),
            ("Temperature", f"{hp.temperature:g}"),
            ("KL beta", f"{hp.beta:g}"),
            ("Reward functions", rewards + adapted),
        ]
    return []


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
        *_method_parameters(plan),
        ("Precision", "float32 (CPU)" if run.hardware == "cpu" else "bfloat16"),
        ("Hardware", f"{run.backend} / {run.hardware}"),
        ("Trackio", f"project `{run.trackio_project}`, run `{run.trackio_run}`"),
    ]
    status_lines = [f"- Status: **{run.status}**"]
    if run.job_id:
        job = f"[`{run.job_id}`]({run.job_url})" if run.job_url else f"`{run.job_id}`"
        status_lines.append(f"- Job: {job} on `{run.backend}`")
    if run.estimated_cost_usd:
        status_lines.append(f"- Approved cost: ${run.estimated_cost_usd:.2f} (estimate); spent ${run.cost_usd:.2f}")
    if run.actual_minutes is not None:
        estimate = f"{run.estimated_minutes} min" if run.estimated_minutes is not None else "none"
        status_lines.append(f"- Wall time: {run.actual_minutes} min (estimate {estimate})")
    if run.failure:
        status_lines.append(f"- Failure: {run.failure.kind}: {run.failure.message}")
    if run.checkpoints:
        steps = [f"step {c.step}" for c in run.checkpoints[:-1]] + [f"final (step {run.checkpoints[-1].step})"]
        status_lines.append(f"- Checkpoints: {', '.join(steps)}; final at `{run.checkpoints[-1].path}`")
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


def _approval_row(record: ApprovalRecord) -> dict[str, str]:
    request = record.request
    left = ApprovalRequest.model_validate(request).budget_left_usd
    return {
        "at": record.at.strftime("%Y-%m-%d %H:%M:%S"),
        "run_id": record.run_id,
        "answer": "approved" if record.approved else "rejected",
        "approver": record.approver,
        "flavor": request.get("flavor", ""),
        "price": f"${request.get('usd_per_hour', 0):.2f}/h",
        "minutes": f"{request.get('estimated_minutes', 0):.0f} min",
        "cost": f"${request.get('estimated_cost_usd', 0):.2f}",
        "timeout": request.get("timeout", ""),
        "budget_left": "no budget" if left is None else f"${left:.2f}",
        "price_source": request.get("price_source", ""),
        "reason": record.reason.replace("|", "/"),
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


def _benchmark_list(experiment: Experiment) -> str:
    primary = experiment.plan.primary_benchmark_index()
    return ", ".join(
        f"{b.name} ({'first ' + str(b.limit) if b.limit else 'all'} problems"
        + ("; primary: picks the best checkpoint" if index == primary and len(experiment.plan.benchmarks) > 1 else "")
        + ")"
        for index, b in enumerate(experiment.plan.benchmarks)
    )


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


def _export_view(experiment: Experiment) -> dict[str, Any] | None:
    export = experiment.export
    if export is None:
        return None
    rows = []
    for file in export.files:
        verification = "token probes match" if file.probes_match else "token probes differ"
        if file.greedy_match is not None:
            verification += ", greedy tokens " + ("match transformers" if file.greedy_match else "differ from transformers")
        rows.append({
            "name": Path(file.path).name,
            "quant_type": file.quant_type,
            "size": f"{file.size_bytes / 1e6:.1f} MB",
            "bits_per_weight": f"{file.bits_per_weight:.2f}",
            "tensor_types": ", ".join(f"{name} {count}" for name, count in file.tensor_types.items()),
            "fallback": "n/a" if file.fallback_tensors is None else str(file.fallback_tensors),
            "verification": verification,
        })
    quantized = next((f for f in export.files if f.quant_type != "F16"), export.files[-1]) if export.files else None
    commands = [f"llama-server -m {quantized.path}"] if quantized else []
    if quantized and "gguf" in export.published:
        commands.append(f"llama-server -hf {export.published['gguf']}:{quantized.quant_type}")
    parity = [
        f"{name}: token agreement {values['token_agreement']:.3f}, KL {values['kl_divergence']:.3g}"
        for name, values in export.merge_parity.items()
    ]
    return {
        "run_id": export.run_id,
        "checkpoint": export.checkpoint_path,
        "merged_dir": export.merged_dir,
        "merge_base": export.merge_base,
        "parity": parity,
        "files": rows,
        "commands": commands,
        "published": export.published,
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
