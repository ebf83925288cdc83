"""Plan a study: one member plan per pipeline stage or comparison candidate, each with its estimate.

Every member plan comes from `recipes.make_plan` with one override changed (the stage's method and dataset, or
the candidate), so members share the benchmark, its problems, the evaluation engine and the hyperparameters.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from .errors import ConfigError, DatasetError, ModelNotFoundError
from .loop import slugify
from .recipes import DEFAULT_MODEL, PlanOverrides, make_plan
from .state import Plan, Stage, with_export_stage
from .study import Study, StudyMember
from .study_goals import StudyRequest

logger = logging.getLogger(__name__)

# Small instruct models tried, in this order, when a comparison goal names no candidates. Only those that load
# here (a local copy, the Hugging Face cache, an installed package, or a reachable Hub) take part.
EMBEDDED_MODEL_CANDIDATES = (
    "HuggingFaceTB/SmolLM2-135M-Instruct",
    "HuggingFaceTB/SmolLM2-360M-Instruct",
    "Qwen/Qwen2.5-0.5B-Instruct",
)
MAX_ID_LENGTH = 80


def plan_study(goal: str, request: StudyRequest, overrides: PlanOverrides, *, datasets: list[str], hub_reachable: bool) -> Study:
    """Return the study for a pipeline or comparison request, with every member planned but nothing estimated.

    Args:
        goal: The goal as the user wrote it.
        request: How the goal was read (`study_goals.read_study_goal`).
        overrides: The flags shared by every member; the stage or candidate replaces one of them.
        datasets: Every `--dataset` value, in order; a pipeline's stages take them in turn.
        hub_reachable: Whether the Hub is reachable; decides default data and which embedded models can load.

    Raises:
        ConfigError: If a member cannot be planned, or a comparison has fewer than two candidates.
        ModelNotFoundError, DatasetError: If a member's model or dataset cannot be found.
    """
    if request.kind == "pipeline":
        return _plan_pipeline(goal, request, overrides, datasets=datasets, hub_reachable=hub_reachable)
    if request.kind == "comparison":
        return _plan_comparison(goal, request, overrides, hub_reachable=hub_reachable)
    raise ConfigError(f"The goal {goal!r} is one experiment, not a pipeline or a comparison; plan it with `make_plan`.")


def _plan_pipeline(goal: str, request: StudyRequest, overrides: PlanOverrides, *, datasets: list[str], hub_reachable: bool) -> Study:
    from .preflight import check_plan_inputs

    if overrides.backend != "local":
        # TODO: publish each stage's merged model to the Hub so that a Jobs machine can start the next stage from it.
        raise NotImplementedError(
            "Pipelines run on the local backend only: a later stage starts from a model folder on this machine, which "
            "a Hugging Face Jobs machine cannot read. Leave out `--backend hf-jobs`, or run each stage as its own experiment."
        )
    model = overrides.model or DEFAULT_MODEL
    study_id = _trim(f"{slugify(model.rstrip('/').split('/')[-1])}-{'-then-'.join(request.stage_methods)}")
    members: list[StudyMember] = []
    for index, method in enumerate(request.stage_methods):
        dataset = datasets[index] if index < len(datasets) else None
        try:
            plan = make_plan(goal, _member_overrides(overrides, method=method, dataset=dataset), hub_reachable=hub_reachable)
        except ConfigError as err:
            raise ConfigError(
                f"Stage {index + 1} ({method.upper()}) of the pipeline cannot be planned: {err} A pipeline takes one "
                f"`--dataset` per stage, in stage order."
            ) from err
        check_plan_inputs(plan, hub_reachable=hub_reachable)
        _restate_method_reason(plan, f"stage {index + 1} of the pipeline the goal names")
        label = f"stage {index + 1}: {method.upper()}"
        previous = members[-1].experiment_id if members else None
        if previous is not None:
            # The base of a later stage is the previous stage's best checkpoint, which that stage already scored.
            plan.stages = [stage for stage in plan.stages if stage != Stage.EVALUATE_BASE]
            plan.reasons.append(f"base model: the best checkpoint of {previous}, merged; its scores are this stage's base scores")
        if request.export and index == len(request.stage_methods) - 1:
            plan.stages = with_export_stage(plan.stages)
        members.append(StudyMember(experiment_id=f"{study_id}--{index + 1}-{method}", label=label, plan=plan, base_from=previous))
    return Study(id=study_id, kind="pipeline", goal=goal.strip(), members=members, reasons=list(request.reasons))


def _plan_comparison(goal: str, request: StudyRequest, overrides: PlanOverrides, *, hub_reachable: bool) -> Study:
    from .preflight import check_plan_inputs

    dimension = request.dimension or "model"
    if request.export:
        raise ConfigError(
            "A comparison does not export: exporting every candidate would convert models nobody keeps. Leave out the "
            "export, then export the winner with `autotrain-agent export EXPERIMENT`."
        )
    reasons = list(request.reasons)
    candidates = list(request.candidates)
    skipped: list[str] = []
    if not candidates:
        candidates, skipped = _available_models(hub_reachable=hub_reachable)
        reasons.append(f"candidates {', '.join(candidates) or 'none'} from the embedded list" + (f"; not loadable here: {', '.join(skipped)}" if skipped else ""))
    if len(candidates) < 2:
        raise ConfigError(
            f"A comparison needs at least two candidates, got {candidates!r}"
            + (f" ({', '.join(skipped)} cannot be loaded here)" if skipped else "")
            + f"; pass them with a repeated flag, e.g. `--{dimension} A --{dimension} B`."
        )
    if len(set(candidates)) != len(candidates):
        raise ConfigError(f"The candidates {candidates!r} repeat a value; pass each `--{dimension}` once.")

    names = [_short_name(candidate) for candidate in candidates]
    # Dataset and method comparisons name their shared model too, so the same comparison on two models gets two ids.
    shared_model = "" if dimension == "model" else slugify(_short_name(overrides.model or DEFAULT_MODEL)) + "-"
    study_id = _trim(f"compare-{dimension}s-{shared_model}{'-vs-'.join(slugify(name) for name in names)}")
    members = []
    for index, (candidate, name) in enumerate(zip(candidates, names, strict=True)):
        changes = {dimension: candidate, "method": candidate if dimension == "method" else overrides.method}
        plan = make_plan(goal, _member_overrides(overrides, **changes), hub_reachable=hub_reachable)
        check_plan_inputs(plan, hub_reachable=hub_reachable)
        if dimension == "method" and not request.candidates_from_flags:
            _restate_method_reason(plan, "a candidate that the goal names")
        members.append(StudyMember(experiment_id=f"{study_id}--{index + 1}-{slugify(name)[:30]}", label=name, plan=plan))
    reasons.append("every candidate is scored on the same benchmark problems with the same engine, so the scores compare")
    return Study(id=study_id, kind="comparison", goal=goal.strip(), dimension=dimension, members=members, reasons=reasons)


def _restate_method_reason(plan: Plan, source: str) -> None:
    """Replace the reason `make_plan` gives for a method passed as an override, which names `--method`."""
    plan.reasons = [f"method {plan.method.upper()}: {source}" if reason.startswith("method ") and reason.endswith("set with --method")
                    else reason for reason in plan.reasons]


def _member_overrides(overrides: PlanOverrides, *, method: str | None, **changes) -> PlanOverrides:
    """Return `overrides` with one member's changes; `--reward` reaches only GRPO members, since other methods reject it."""
    rewards = overrides.reward_functions if method is None or method == "grpo" else None
    return dataclasses.replace(overrides, method=method, reward_functions=rewards, **changes)


def _available_models(*, hub_reachable: bool) -> tuple[list[str], list[str]]:
    """Return the embedded candidates that can be loaded here, and those that cannot."""
    from .preflight import check_plan_inputs

    available, skipped = [], []
    for reference in EMBEDDED_MODEL_CANDIDATES:
        try:
            check_plan_inputs(Plan(goal="check", base_model=reference, dataset={"reference": "builtin:code-functions"}), hub_reachable=hub_reachable)
        except (ModelNotFoundError, DatasetError):
            skipped.append(reference)
            continue
        available.append(reference)
    return available, skipped


def _short_name(candidate: str) -> str:
    """Return the last path part of a model or dataset reference, without a file suffix; a method as it is."""
    name = candidate.rstrip("/").split("/")[-1]
    return Path(name).stem if "." in name and Path(candidate).is_file() else name


def _trim(study_id: str) -> str:
    return study_id[:MAX_ID_LENGTH].rstrip("-.")


def estimate_study(study: Study, *, cache_dir: Path, params_override: str | None = None, api=None) -> None:
    """Estimate each member's wall time, and on Hugging Face Jobs its flavor and cost, before anything runs.

    On the local backend the time comes from `estimate.estimate_minutes` and the cost is zero. On Jobs, the
    cheapest flavor that fits is chosen and the first training run is estimated on it, as the approval gate
    will estimate it again at submission.

    Raises:
        ConfigError: If a Jobs member trains by epochs over a dataset whose rows cannot be counted offline.
        HardwareError: If no flavor fits a member.
    """
    from .estimate import choose_job_hardware, estimate_job, estimate_minutes
    from .model_size import resolve_parameter_count

    for member in study.members:
        plan = member.plan
        if plan.backend == "local":
            try:
                num_parameters, _ = resolve_parameter_count(plan.base_model, params_override=params_override)
            except ConfigError:
                num_parameters = None
            member.estimated_minutes = plan.estimated_minutes = estimate_minutes(plan, num_parameters=num_parameters)
            member.estimated_cost_usd = 0.0
            continue
        flavor, _, _ = choose_job_hardware(plan, cache_dir=cache_dir, params_override=params_override, api=api)
        job = estimate_job(plan, flavor, num_parameters=plan.num_parameters, num_rows=_count_rows(plan))
        member.estimated_minutes = plan.estimated_minutes = job.minutes
        member.estimated_cost_usd = job.cost_usd


def _count_rows(plan: Plan) -> int:
    """Return the training rows of a local dataset; 0 when `max_steps` fixes the length and the rows do not matter."""
    if plan.hyperparameters.max_steps is not None:
        return 0
    from .data.sampling import read_validation_sample

    reference = plan.dataset.reference
    if Path(reference).expanduser().exists():
        sample = read_validation_sample(reference, split=plan.dataset.split, sample_size=1)
        if sample.num_rows is not None:
            return sample.num_rows
    raise ConfigError(
        f"Cannot estimate the cost of training on {reference!r} before validation: its rows cannot be counted offline. "
        f"Pass `--max-steps` so the cost does not depend on the row count."
    )
