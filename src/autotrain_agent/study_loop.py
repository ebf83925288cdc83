"""Drive a study: approve it as a whole, then run each member experiment with the ordinary loop, in order.

The study has no run of its own. A member that succeeded is skipped on a rerun, and a member that stopped
half-way is resumed by the loop, which never submits a run twice. A pipeline stops at the first member that
does not succeed; a comparison runs every candidate and reports those that failed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel

from .approval import Approver
from .config import Settings
from .errors import ApprovalRejectedError, ConfigError, StateError
from .loop import STATE_OF_STATUS, ApprovalLimits, TerminalState, open_experiment, plan_differences, run_experiment
from .state import Decision, Experiment, ExperimentStatus, Score, Stage
from .store import ExperimentStore
from .study import Study, StudyMember, StudyStore
from .study_gate import StudyMemberApprover, approve_study

logger = logging.getLogger(__name__)

# When members end differently, the study takes the first status of this list that any member has.
_STATUS_PRECEDENCE = (ExperimentStatus.NEEDS_APPROVAL, ExperimentStatus.FAILED, ExperimentStatus.STOPPED, ExperimentStatus.ACTIVE)


class StudyResult(BaseModel):
    """The outcome of a study when the driver stopped, read from the saved states."""

    study_id: str
    """The study's id."""
    state: TerminalState
    """`succeeded` only when every member succeeded."""
    member_states: dict[str, TerminalState]
    """Each member's state by experiment id; members that never started are left out."""
    report_path: Path
    """The study's Markdown report."""
    failure: str | None = None
    """Reason the study did not succeed."""


def open_study(study: Study, settings: Settings) -> tuple[Study, bool]:
    """Return the saved study with `study`'s id if there is one, else save `study` as new.

    Raises:
        ConfigError: If a study with the same id is saved with other members or other member plans.
    """
    store = StudyStore(settings.runs_dir)
    if not store.exists(study.id):
        store.save(study, event="study_created", details={"members": [member.experiment_id for member in study.members]})
        return study, False
    saved = store.load(study.id)
    changed = study_differences(saved, study)
    if changed:
        raise ConfigError(
            f"Study {study.id!r} already exists in {store.folder(study.id)} with another plan ({'; '.join(changed)}). "
            f"Run `autotrain-agent resume {study.id}` to continue it as planned, or delete that folder to start over."
        )
    return saved, True


def study_differences(saved: Study, new: Study) -> list[str]:
    """Return how the members of `new` differ from the saved study's; a handed-over base model is not a change."""
    if [m.experiment_id for m in saved.members] != [m.experiment_id for m in new.members]:
        return [f"members: {[m.experiment_id for m in saved.members]} -> {[m.experiment_id for m in new.members]}"]
    changes = []
    for before, after in zip(saved.members, new.members, strict=True):
        planned = after.plan.model_copy(update={"base_model": before.plan.base_model}) if before.base_from else after.plan
        changes += [f"{before.experiment_id}: {change}" for change in plan_differences(before.plan, planned)]
    return changes


def load_study(study_id: str, settings: Settings) -> Study:
    """Return a saved study.

    Raises:
        StateError: If no study with that id is saved under `settings.output_dir`.
    """
    store = StudyStore(settings.runs_dir)
    if not store.exists(study_id):
        raise StateError(f"No saved study {study_id!r} under {store.root}; known studies: {', '.join(store.list_ids()) or 'none'}.")
    return store.load(study_id)


def run_study(
    study: Study,
    settings: Settings,
    *,
    approver: Approver | None = None,
    backend=None,
    echo=print,
    max_steps: int = 40,
    policy_files: list[str] | None = None,
) -> StudyResult:
    """Approve `study` as a whole, then run its members in order until each ends or a pipeline stage fails.

    Holds the study's lock throughout; each member takes its own experiment lock while it runs.

    Args:
        study: A study returned by `open_study`.
        settings: Where files go.
        approver: Decides the study-wide request, and any member request that the study approval does not cover.
        backend: Runs every member's jobs; default each plan's backend.
        echo: Writes one line for the user.
        max_steps: Planner steps per member and call.
        policy_files: User rule files for members that start now; a started member keeps its own.
    """
    studies = StudyStore(settings.runs_dir)
    experiments = ExperimentStore(settings.runs_dir)
    with studies.lock(study.id):
        if study.status != ExperimentStatus.SUCCEEDED:
            study.status, study.failure = ExperimentStatus.ACTIVE, None
        try:
            approve_study(study, approver=approver, is_paid=study.members[0].plan.backend != "local", record=lambda event: _save(study, settings, event))
        except ApprovalRejectedError as err:
            _settle(study, settings, status=ExperimentStatus.NEEDS_APPROVAL, failure=str(err))
            return result_of(study, settings)

        for index, member in enumerate(study.members, start=1):
            saved = experiments.load(member.experiment_id) if experiments.exists(member.experiment_id) else None
            if saved is not None and saved.status == ExperimentStatus.SUCCEEDED:
                logger.debug("%s: member %s succeeded before; skipped", study.id, member.experiment_id)
                continue
            echo(f"Study {study.id}: experiment {index} of {len(study.members)}, {member.label} ({member.experiment_id})")
            status = _run_member(study, member, settings, saved=saved, approver=approver, backend=backend, echo=echo,
                                 max_steps=max_steps, policy_files=policy_files or [])
            _save(study, settings, "member_finished", experiment_id=member.experiment_id, status=status.value)
            if study.kind == "pipeline" and status != ExperimentStatus.SUCCEEDED:
                break
        _settle(study, settings)
    return result_of(study, settings)


def _run_member(
    study: Study, member: StudyMember, settings: Settings, *, saved: Experiment | None, approver, backend, echo, max_steps: int, policy_files: list[str]
) -> ExperimentStatus:
    """Open (or resume) one member experiment and run it with the loop; return its status."""
    carried_scores: list[Score] = []
    carried_reason = f"the base model is the best checkpoint of {member.base_from}, scored there on the same problems"
    if member.base_from and saved is None:
        member.plan.base_model, carried_scores = hand_over_model(study, member, settings)
        _save(study, settings, "model_handed_over", experiment_id=member.experiment_id, base_model=member.plan.base_model)
    elif saved is None:
        carried_scores, source = shared_base_scores(study, member, settings)
        carried_reason = f"{source} scored the same base model on the same problems with the same engine"
    limits = ApprovalLimits.of(saved) if saved is not None else _member_limits(study, member, settings)
    member_approver = StudyMemberApprover(study, member.experiment_id, approver)
    ctx, resumed = open_experiment(
        member.plan.model_copy(deep=True), settings, backend=backend, approver=member_approver, limits=limits,
        experiment_id=member.experiment_id, echo=echo,
    )
    if not resumed:
        ctx.experiment.policy_files = list(policy_files)
    if carried_scores and not resumed:
        ctx.experiment.baseline_scores = carried_scores
        ctx.experiment.plan.stages = [stage for stage in ctx.experiment.plan.stages if stage != Stage.EVALUATE_BASE]
        ctx.experiment.decisions.append(Decision(
            by="system", action="carry over the base scores", reason=carried_reason,
            evidence={score.benchmark: score.value for score in carried_scores},
        ))
    with ctx.store.lock(ctx.experiment.id):
        run_experiment(ctx, max_steps=max_steps)
    return ctx.experiment.status


def shared_base_scores(study: Study, member: StudyMember, settings: Settings) -> tuple[list[Score], str | None]:
    """Return the base scores of an earlier member with the same base model, benchmarks and engine, and its id.

    Members of a dataset or method comparison share their base model, so it is scored once. Returns no scores
    when no earlier member has scored that base model.
    """
    store = ExperimentStore(settings.runs_dir)
    plan = member.plan
    for other in study.members[: study.members.index(member)]:
        if not store.exists(other.experiment_id):
            continue
        earlier = store.load(other.experiment_id)
        same_scoring = earlier.plan.benchmarks == plan.benchmarks and earlier.plan.eval_engine == plan.eval_engine
        if earlier.baseline_scores and earlier.plan.base_model == plan.base_model and same_scoring:
            return [score.model_copy() for score in earlier.baseline_scores], earlier.id
    return [], None


def hand_over_model(study: Study, member: StudyMember, settings: Settings) -> tuple[str, list[Score]]:
    """Return the model folder a later pipeline stage starts from, and that model's scores.

    The folder is the previous stage's best checkpoint: a LoRA adapter is merged into a copy of the base model it
    was trained on, under the study's folder, and a full checkpoint is used as it is. The merge is reused when
    the folder exists, so a rerun does not merge twice.

    Raises:
        StateError: If the previous stage did not succeed or has no scored checkpoint.
    """
    from .merge import is_adapter_folder, merge_adapter
    from .planner import is_result_run

    previous = ExperimentStore(settings.runs_dir).load(member.base_from)
    result_runs = [run for run in previous.runs if is_result_run(run) and run.checkpoints]
    if previous.status != ExperimentStatus.SUCCEEDED or not result_runs:
        raise StateError(f"Cannot start {member.experiment_id}: the previous stage {previous.id} is {previous.status.value} and has no model to start from.")
    run = result_runs[-1]
    best_path = run.best_checkpoint_path or run.checkpoints[-1].path
    best = next(checkpoint for checkpoint in run.checkpoints if checkpoint.path == best_path and checkpoint.scores)
    folder = Path(best_path)
    if is_adapter_folder(folder):
        folder = merge_adapter(Path(previous.model_path), folder, StudyStore(settings.runs_dir).folder(study.id) / "models" / previous.id)
    study.decisions.append(Decision(
        by="system", action=f"start {member.experiment_id} from {previous.id} {run.run_id} step {best.step}",
        reason="a pipeline stage trains from the previous stage's best checkpoint", evidence={"model": str(folder)},
    ))
    logger.info("%s: %s starts from %s", study.id, member.experiment_id, folder)
    # NOTE: with the transformers engine the previous stage scored the adapter applied by PEFT, not this merged
    # float32 copy; rounding can differ, so a carried-over greedy answer may rarely differ from a fresh one.
    return str(folder), [score.model_copy() for score in best.scores]


def _member_limits(study: Study, member: StudyMember, settings: Settings) -> ApprovalLimits:
    """Return a new member's limits: the study budget less what other members spent, committed or still need."""
    if study.budget_usd is None:
        return ApprovalLimits(require_approval=study.require_approval)
    store = ExperimentStore(settings.runs_dir)
    others = 0.0
    for other in study.members:
        if other is member:
            continue
        if store.exists(other.experiment_id):
            saved = store.load(other.experiment_id)
            others += saved.spent_usd + saved.committed_usd
        else:
            others += other.estimated_cost_usd
    return ApprovalLimits(budget_usd=max(round(study.budget_usd - others, 2), 0.0), require_approval=study.require_approval)


def member_experiments(study: Study, settings: Settings) -> dict[str, Experiment | None]:
    """Return each member's saved experiment by id, or `None` for a member that has not started."""
    store = ExperimentStore(settings.runs_dir)
    return {m.experiment_id: store.load(m.experiment_id) if store.exists(m.experiment_id) else None for m in study.members}


def _settle(study: Study, settings: Settings, *, status: ExperimentStatus | None = None, failure: str | None = None) -> None:
    """Set the study's status from its members' (or `status`), save, and rewrite the report."""
    if status is None:
        members = member_experiments(study, settings)
        statuses = [experiment.status if experiment else ExperimentStatus.ACTIVE for experiment in members.values()]
        status = next((s for s in _STATUS_PRECEDENCE if s in statuses), ExperimentStatus.SUCCEEDED)
        unfinished = [f"{experiment_id} is {experiment.status.value if experiment else 'not started'}"
                      for experiment_id, experiment in members.items() if experiment is None or experiment.status != ExperimentStatus.SUCCEEDED]
        failure = "; ".join(unfinished) or None
    study.status, study.failure = status, failure
    logger.info("%s: study %s", study.id, status.value)
    _save(study, settings, "study_settled", status=status.value)


def _save(study: Study, settings: Settings, event: str, **details) -> None:
    """Save the study with a journal event and rewrite its report from the saved states."""
    from .study_report import write_study_report

    StudyStore(settings.runs_dir).save(study, event=event, details=details)
    try:
        write_study_report(study, member_experiments(study, settings), study_report_path(study, settings))
    except OSError as err:
        logger.warning("%s: could not write the study report: %s", study.id, err)


def study_report_path(study: Study, settings: Settings) -> Path:
    """Return the study's Markdown report: `training_reports/<study id>.md`."""
    return settings.reports_dir / f"{study.id}.md"


def result_of(study: Study, settings: Settings) -> StudyResult:
    """Return the typed result for the study's current state."""
    members = member_experiments(study, settings)
    return StudyResult(
        study_id=study.id,
        state=STATE_OF_STATUS[study.status],
        member_states={experiment_id: STATE_OF_STATUS[experiment.status] for experiment_id, experiment in members.items() if experiment},
        report_path=study_report_path(study, settings),
        failure=study.failure,
    )
