"""Render a study's Markdown report from the study and its members' saved states.

A pipeline gets a table from the base model through each stage. A comparison gets one row per candidate and a
stated winner, or "no measurable difference" when the top two scores are within one standard error. Each
member's own report follows in full, under a heading of its own.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2

from ._resources import resource_dir
from .comparison import compare_scores
from .report import render_report, replace_report_text
from .state import Experiment, Score
from .study import Study

TEMPLATE_NAME = "study.md.j2"


def member_score(experiment: Experiment | None) -> Score | None:
    """Return the first benchmark score of the member's best checkpoint, or `None` before it is scored."""
    from .planner import is_result_run

    if experiment is None:
        return None
    for run in reversed(experiment.runs):
        if not is_result_run(run) or not run.checkpoints:
            continue
        best_path = run.best_checkpoint_path or run.checkpoints[-1].path
        scored = [checkpoint for checkpoint in run.checkpoints if checkpoint.path == best_path and checkpoint.scores]
        if scored:
            return scored[-1].scores[0]
    return None


def state_winner(study: Study, experiments: dict[str, Experiment | None]) -> str:
    """Return the comparison's verdict in one sentence: the winner, or no measurable difference.

    Candidates are ranked by their fine-tuned score. The top one wins only when it beats the runner-up by more
    than one standard error of the difference (`comparison.compare_scores`).
    """
    labels = {member.experiment_id: member.label for member in study.members}
    scored = [(labels[experiment_id], score) for experiment_id, experiment in experiments.items() if (score := member_score(experiment))]
    if not scored:
        return "No candidate has been scored yet."
    if len(scored) == 1:
        return f"Only {scored[0][0]} has been scored ({_format_score(scored[0][1])}); nothing to compare yet."
    scored.sort(key=lambda pair: pair[1].value, reverse=True)
    (top_label, top), (second_label, second) = scored[:2]
    delta, stderr, direction = compare_scores(second, top)
    difference = f"{delta:+.3f} {top.metric} over {second_label} (standard error {stderr:.3f})"
    if direction == "better":
        return f"Winner: {top_label}, {_format_score(top)}, {difference}: better by more than one standard error."
    if delta == 0:
        return f"No measurable difference: {top_label} and {second_label} tie at the top with {_format_score(top)}."
    return (
        f"No measurable difference: {top_label} scored highest ({_format_score(top)}), but {difference} is within "
        f"one standard error, so the candidates cannot be told apart on these problems."
    )


def render_study_report(study: Study, experiments: dict[str, Experiment | None]) -> str:
    """Return the study's report as Markdown."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(resource_dir("reports")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    minutes = study.estimated_minutes
    return environment.get_template(TEMPLATE_NAME).render(
        s=study,
        estimate=f"{minutes:.0f} min (estimate)" if minutes is not None else "unknown",
        members=[_member_row(member, experiments.get(member.experiment_id)) for member in study.members],
        pipeline_rows=_pipeline_rows(study, experiments) if study.kind == "pipeline" else [],
        comparison_rows=_comparison_rows(study, experiments) if study.kind == "comparison" else [],
        verdict=state_winner(study, experiments) if study.kind == "comparison" else "",
        problems=_problem_note(experiments),
        details=[_member_details(member, experiments.get(member.experiment_id)) for member in study.members],
    )


def write_study_report(study: Study, experiments: dict[str, Experiment | None], path: Path) -> Path:
    """Render the study's report and replace `path` atomically."""
    return replace_report_text(render_study_report(study, experiments), path)


def _format_score(score: Score) -> str:
    return f"{score.benchmark} {score.metric} {score.value:.3f} ± {score.stderr or 0:.3f} ({score.num_passed}/{score.num_samples})"


def _member_row(member, experiment: Experiment | None) -> dict[str, str]:
    plan = member.plan
    hp = plan.hyperparameters
    return {
        "experiment_id": member.experiment_id,
        "label": member.label,
        "method": plan.method.upper() + (" LoRA" if plan.lora else " full"),
        "model": f"best checkpoint of `{member.base_from}`" if member.base_from and experiment is None else f"`{plan.base_model}`",
        "dataset": f"`{plan.dataset.reference}`",
        "length": f"{hp.max_steps} steps" if hp.max_steps else f"{hp.num_train_epochs:g} epochs",
        "learning_rate": f"{hp.learning_rate:g}",
        "status": experiment.status.value if experiment else "not started",
        "minutes": f"{member.estimated_minutes:.0f} min" if member.estimated_minutes is not None else "unknown",
        "cost": f"${member.estimated_cost_usd:.2f}",
    }


def _status_text(experiment: Experiment | None) -> str:
    return experiment.status.value if experiment else "not started"


def _train_minutes(experiment: Experiment | None) -> str:
    minutes = [run.actual_minutes for run in experiment.runs if run.actual_minutes is not None] if experiment else []
    return f"{sum(minutes):.1f} min" if minutes else ""


def _cost(experiment: Experiment | None) -> str:
    return f"${experiment.spent_usd:.2f}" if experiment else ""


def _change(reference: Score | None, score: Score | None) -> str:
    if reference is None or score is None:
        return ""
    delta, stderr, direction = compare_scores(reference, score)
    return f"{delta:+.3f} (standard error {stderr:.3f}, {direction})"


def _pipeline_rows(study: Study, experiments: dict[str, Experiment | None]) -> list[dict[str, str]]:
    """Return the rows base -> stage 1 -> stage 2 ...: each model's score and its change from the one before."""
    first = experiments.get(study.members[0].experiment_id)
    base = first.baseline_scores[0] if first and first.baseline_scores else None
    rows = [{"model": f"Base model `{study.members[0].plan.base_model}`", "score": _format_score(base) if base else "not scored yet",
             "vs_previous": "", "vs_base": "", "minutes": "", "cost": ""}]
    previous = base
    for member in study.members:
        experiment = experiments.get(member.experiment_id)
        score = member_score(experiment)
        rows.append({
            "model": f"{member.label} (`{member.experiment_id}`)",
            "score": _format_score(score) if score else _status_text(experiment),
            "vs_previous": _change(previous, score),
            "vs_base": _change(base, score),
            "minutes": _train_minutes(experiment),
            "cost": _cost(experiment),
        })
        previous = score
    return rows


def _comparison_rows(study: Study, experiments: dict[str, Experiment | None]) -> list[dict[str, str]]:
    rows = []
    for member in study.members:
        experiment = experiments.get(member.experiment_id)
        base = experiment.baseline_scores[0] if experiment and experiment.baseline_scores else None
        score = member_score(experiment)
        rows.append({
            "label": member.label,
            "base": _format_score(base) if base else "",
            "score": _format_score(score) if score else "",
            "vs_base": _change(base, score),
            "minutes": _train_minutes(experiment),
            "cost": _cost(experiment),
            "status": experiment.status.value if experiment else "not started",
        })
    return rows


def _problem_note(experiments: dict[str, Experiment | None]) -> str:
    """Say which problems every score covers, or warn when the members were scored on different ones."""
    problem_sets = {tuple(score.task_ids) for experiment in experiments.values() if experiment
                    for score in [*experiment.baseline_scores, *filter(None, [member_score(experiment)])] if score.task_ids}
    if not problem_sets:
        return ""
    if len(problem_sets) > 1:
        return "**Warning:** the scores cover different problems, so they do not compare; rerun with the same `--eval-limit`."
    ids = next(iter(problem_sets))
    scope = f"{ids[0]} to {ids[-1]}" if len(ids) > 6 else ", ".join(ids)
    return f"Every score covers the same {len(ids)} problems: {scope}."


def _member_details(member, experiment: Experiment | None) -> dict[str, Any]:
    if experiment is None:
        return {"title": f"{member.label}: {member.experiment_id}", "status": "not started", "report": "Not started yet."}
    report = render_report(experiment)
    # The member report's own title repeats the heading above it; its sections move one level down under the member heading.
    body = report.split("\n", 1)[1] if report.startswith("# ") else report
    body = re.sub(r"^(#{1,4}) ", lambda match: "#" * (len(match.group(1)) + 1) + " ", body, flags=re.MULTILINE)
    return {"title": f"{member.label}: {member.experiment_id}", "status": experiment.status.value, "report": body.strip()}
