"""Orchestration only: open or resume an experiment and let a planner drive the tools until a terminal status."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from smolagents.models import Model

from .agent_tools import build_tools
from .approval import Approver
from .backends.local import LocalBackend
from .config import Settings
from .context import ExperimentContext
from .errors import ConfigError, ExperimentNotFoundError
from .estimate import estimate_minutes
from .guarded_agent import DEFAULT_MAX_PARSE_RETRIES, DEFAULT_MAX_REPEATED_CALLS, GuardedAgent, StopReason
from .planner import FINAL_ANSWER, RuleBasedPlanner, format_call_arguments, summarize
from .state import Experiment, ExperimentStatus, Plan, Score, Stage
from .store import ExperimentStore
from .tools.report import write_report

logger = logging.getLogger(__name__)

TerminalState = Literal["succeeded", "stopped_by_policy", "needs_approval", "budget_exhausted", "failed"]


class ExperimentResult(BaseModel):
    """The outcome of an experiment when the loop stopped: one typed terminal state, never the planner's prose."""

    experiment_id: str
    """The experiment's id."""
    state: TerminalState
    """`budget_exhausted` when the step limit stopped the loop first; the experiment can then be resumed."""
    reason: str | None = None
    """The stop reason when the loop did not succeed, e.g. `step_limit`, `parse_failures_exhausted`, `repeated_calls`."""
    report_path: Path
    """The Markdown report."""
    completed_stages: list[Stage]
    """Stages finished so far, in order."""
    artifacts: dict[str, str]
    """Paths made so far by name: `dataset`, `base_model`, `<run-id>/output`, `<run-id>/checkpoint`, `report`."""
    best_checkpoint: str | None = None
    """Path of the scored checkpoint with the highest first score, if any run was scored."""
    baseline_scores: list[Score]
    """Scores of the base model."""
    run_scores: dict[str, list[Score]]
    """Scores of each run's final checkpoint, by run id."""
    steps: int = 0
    """Planner steps this call took."""
    parse_failures: int = 0
    """Planner replies without a usable tool call in this call."""
    failure: str | None = None
    """Reason the experiment failed, if it did."""


def slugify(text: str) -> str:
    """Return a lowercase, filesystem-safe slug of `text`."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "x"


def experiment_id_for(plan: Plan) -> str:
    """Return `<model>-<dataset>-<method>` from the last path part of the model and dataset references."""
    model = plan.base_model.rstrip("/").split("/")[-1]
    dataset = plan.dataset.reference.removeprefix("builtin:").rstrip("/").split("/")[-1]
    dataset = Path(dataset).stem if "." in dataset else dataset
    return f"{slugify(model)}-{slugify(dataset)}-{plan.method}"


def open_experiment(
    plan: Plan,
    settings: Settings,
    *,
    backend=None,
    approver: Approver | None = None,
    limits: ApprovalLimits | None = None,
    experiment_id: str | None = None,
    echo=print,
) -> tuple[ExperimentContext, bool]:
    """Return the context of the experiment for `plan`, resuming the saved one if it exists.

    A resumed experiment keeps its saved plan (so finished stages stay valid) and its saved budget and approval
    limits, which a rerun cannot raise; a failed one becomes active again and continues from the stage that failed.

    Args:
        plan: The plan of a new experiment; also names the experiment to resume.
        settings: Where files go.
        backend: Runs the jobs; default the plan's backend.
        approver: Answers the approval gate; `None` rejects every paid submission.
        limits: Budget and approval limits of a new experiment.
        experiment_id: The experiment's id; default `<model>-<dataset>-<method>` from the plan. Studies name their
            members themselves, because a later pipeline stage's model folder says nothing about the stage.
        echo: Writes one line for the user.

    Returns:
        The context and whether the experiment was resumed.
    """
    store = ExperimentStore(settings.runs_dir)
    experiment_id = experiment_id or experiment_id_for(plan)
    resumed = store.exists(experiment_id)
    limits = limits or ApprovalLimits()
    if resumed:
        experiment = store.load(experiment_id)
        changed = plan_differences(experiment.plan, plan)
        if changed:
            folder = store.folder(experiment_id)
            raise ConfigError(
                f"Experiment {experiment_id!r} already exists in {folder} with another plan ({'; '.join(changed)}). "
                f"Run `autotrain-agent resume {experiment_id}` to continue it as planned, or start a new experiment "
                f"with another `--output-dir` or after deleting {folder}."
            )
        if limits != ApprovalLimits.of(experiment):
            logger.warning("%s: keeping the saved budget and approval limits; the new flags are ignored.", experiment_id)
    else:
        if plan.backend == "local":
            plan.estimated_minutes = estimate_minutes(plan)
        experiment = Experiment(id=experiment_id, goal=plan.goal, plan=plan, **limits.model_dump())
    return open_saved_experiment(experiment, settings, backend=backend, approver=approver, echo=echo), resumed


# Plan fields that the planner fills in itself; a rerun may compute them differently without changing the plan.
_DERIVED_PLAN_FIELDS = frozenset({"reasons", "estimated_minutes", "stages", "num_parameters", "parameter_source"})


def plan_differences(saved: Plan, new: Plan) -> list[str]:
    """Return `field: saved -> new` for each choice in which `new` differs from the saved plan."""
    before = saved.model_dump(mode="json", exclude=set(_DERIVED_PLAN_FIELDS))
    after = new.model_dump(mode="json", exclude=set(_DERIVED_PLAN_FIELDS))
    changes = []
    for key in sorted(before.keys() | after.keys()):
        old, current = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(current, dict):
            changes += [
                f"{key}.{name}: {old.get(name)!r} -> {current.get(name)!r}"
                for name in sorted(old.keys() | current.keys())
                if old.get(name) != current.get(name)
            ]
        elif old != current:
            changes.append(f"{key}: {old!r} -> {current!r}")
    return changes


def open_saved_experiment(
    experiment: Experiment, settings: Settings, *, backend=None, approver: Approver | None = None, echo=print
) -> ExperimentContext:
    """Return the context of `experiment`, with the plan's default backend unless `backend` is given."""
    store = ExperimentStore(settings.runs_dir)
    backend = backend or _default_backend(experiment, store)
    return ExperimentContext(experiment=experiment, store=store, settings=settings, backend=backend, echo=echo, approver=approver)


def load_saved_experiment(experiment_id: str, settings: Settings, *, echo=print) -> ExperimentContext:
    """Return the context of a saved experiment, for commands that act on it after its run (export, publish).

    Raises:
        ExperimentNotFoundError: If no experiment with that id is saved under `settings.output_dir`.
    """
    store = ExperimentStore(settings.runs_dir)
    if not store.exists(experiment_id):
        known = ", ".join(store.list_ids()) or "none"
        raise ExperimentNotFoundError(f"No saved experiment {experiment_id!r} under {store.root}; known experiments: {known}. Check `--output-dir`.")
    return open_saved_experiment(store.load(experiment_id), settings, echo=echo)


class ApprovalLimits(BaseModel):
    """Budget and approval limits of a new experiment, stored in its state."""

    budget_usd: float | None = None
    """Most money the experiment may spend."""
    approve_under_usd: float | None = None
    """Submissions estimated under this cost are approved without a person."""
    require_approval: bool = False
    """Ask for approval on the free local backend too."""

    @classmethod
    def of(cls, experiment: Experiment) -> "ApprovalLimits":
        """Return the limits saved in `experiment`."""
        return cls(budget_usd=experiment.budget_usd, approve_under_usd=experiment.approve_under_usd, require_approval=experiment.require_approval)


def _default_backend(experiment: Experiment, store: ExperimentStore):
    if experiment.plan.backend == "hf-jobs":
        from .backends.hf_jobs import HfJobsBackend
        from .hardware import load_bundled_price_table

        gpu_counts = {flavor.name: flavor.gpu_count for flavor in load_bundled_price_table().flavors}
        return HfJobsBackend(experiment_id=experiment.id, gpu_counts=gpu_counts)
    return LocalBackend(store.folder(experiment.id) / "jobs")


def run_experiment(
    ctx: ExperimentContext,
    *,
    model: Model | None = None,
    max_steps: int = 40,
    max_parse_retries: int = DEFAULT_MAX_PARSE_RETRIES,
    max_repeated_calls: int = DEFAULT_MAX_REPEATED_CALLS,
    instructions: str | None = None,
) -> ExperimentResult:
    """Drive the experiment with `model` (the rule-based planner by default) until it ends or a guard stops it.

    The caller must hold the experiment's lock (see `ExperimentStore.lock`). A planner that exceeds `max_steps`
    leaves the experiment active (`budget_exhausted`, resumable); one that keeps replying without a tool call or
    repeats one call fails it. A final answer ends the loop but is not the result: the result is read from the state.
    """
    experiment = ctx.experiment
    if experiment.status in (ExperimentStatus.FAILED, ExperimentStatus.NEEDS_APPROVAL):
        logger.info("%s: resuming a failed experiment from stage %s", experiment.id, experiment.next_stage())
        experiment.status = ExperimentStatus.ACTIVE
        experiment.failure = None
    if Stage.PLAN not in experiment.completed_stages:
        ctx.complete_stage(Stage.PLAN)
    else:
        ctx.record("experiment_resumed")
    if experiment.status != ExperimentStatus.ACTIVE:
        return result_of(ctx)

    planner = model or RuleBasedPlanner(ctx)
    agent = GuardedAgent(
        tools=build_tools(ctx),
        model=planner,
        max_steps=max_steps,
        max_parse_retries=max_parse_retries,
        max_repeated_calls=max_repeated_calls,
        on_rejected_call=lambda tool, error: ctx.decide(by="system", action=f"reject call {tool}", reason=error[:300]),
        # The rule-based planner records its own decisions, with its rule as the reason, before each call.
        on_accepted_call=None if isinstance(planner, RuleBasedPlanner) else lambda tool, arguments, text: _record_llm_call(ctx, tool, arguments, text),
        instructions=instructions,
    )
    stop_reason = agent.run_until_stopped(f"Run the fine-tuning experiment {experiment.id}: {experiment.goal}")
    reason = _close_after_stop(ctx, stop_reason, detail=agent.planner_error)
    return result_of(ctx, reason=reason, steps=agent.steps_taken, parse_failures=agent.parse_failures)


def _record_llm_call(ctx: ExperimentContext, tool: str, arguments: Any, text: str) -> None:
    if tool == FINAL_ANSWER:
        return
    reason = " ".join(text.split())[:200] or "no reason given by the model"
    ctx.decide(by="planner", action=f"call {tool}({format_call_arguments(arguments)})", reason=reason)


def _close_after_stop(ctx: ExperimentContext, stop_reason: StopReason, *, detail: str | None = None) -> str | None:
    """Settle the experiment's status after the planner stopped, record why, and return the result's reason."""
    experiment = ctx.experiment
    if experiment.status != ExperimentStatus.ACTIVE:
        return "experiment_failed" if experiment.failure else None
    if stop_reason == "final_answer" and experiment.next_stage() in (None, Stage.REPORT):
        # Every planned stage is done; the report closes the experiment even if the planner skipped it.
        ctx.record("planner_stopped", reason=stop_reason)
        write_report(ctx)
        return None
    reason = "final_answer_before_done" if stop_reason == "final_answer" else stop_reason
    ctx.record("planner_stopped", reason=reason)
    if reason != "step_limit":
        next_stage = experiment.next_stage()
        stage = next_stage.value if next_stage else "report"
        ctx.fail(f"{reason}: the planner stopped before stage {stage} was done" + (f" ({detail})" if detail else ""))
    return reason


# The typed result of each status; studies report their own status the same way.
STATE_OF_STATUS: dict[ExperimentStatus, TerminalState] = {
    ExperimentStatus.SUCCEEDED: "succeeded",
    ExperimentStatus.FAILED: "failed",
    ExperimentStatus.STOPPED: "stopped_by_policy",
    ExperimentStatus.NEEDS_APPROVAL: "needs_approval",
    ExperimentStatus.ACTIVE: "budget_exhausted",
}


def result_of(ctx: ExperimentContext, *, reason: str | None = None, steps: int = 0, parse_failures: int = 0) -> ExperimentResult:
    """Return the typed result for the experiment's current state.

    An experiment that is still active is reported as `budget_exhausted`: only a limit leaves it active.
    """
    experiment = ctx.experiment
    return ExperimentResult(
        experiment_id=experiment.id,
        state=STATE_OF_STATUS[experiment.status],
        reason=reason,
        report_path=ctx.report_path,
        completed_stages=list(experiment.completed_stages),
        artifacts=artifacts_of(ctx),
        best_checkpoint=best_checkpoint_of(experiment),
        baseline_scores=experiment.baseline_scores,
        run_scores={run.run_id: run.checkpoints[-1].scores for run in experiment.runs if run.checkpoints},
        steps=steps,
        parse_failures=parse_failures,
        failure=experiment.failure,
    )


def artifacts_of(ctx: ExperimentContext) -> dict[str, str]:
    """Return the paths the experiment has made so far, by name."""
    experiment = ctx.experiment
    artifacts = {"base_model": experiment.model_path, "dataset": experiment.dataset_path}
    for run in experiment.runs:
        artifacts[f"{run.run_id}/output"] = run.output_dir
        if run.checkpoints:
            artifacts[f"{run.run_id}/checkpoint"] = run.checkpoints[-1].path
    if ctx.report_path.exists():
        artifacts["report"] = str(ctx.report_path)
    return {name: str(path) for name, path in artifacts.items() if path}


def best_checkpoint_of(experiment: Experiment) -> str | None:
    """Return the path of the scored final checkpoint with the highest first score, or `None`."""
    scored = [(run.checkpoints[-1].scores[0].value, run.checkpoints[-1].path) for run in experiment.runs if run.checkpoints and run.checkpoints[-1].scores]
    return str(max(scored)[1]) if scored else None


__all__ = [
    "ApprovalLimits",
    "ExperimentResult",
    "TerminalState",
    "artifacts_of",
    "best_checkpoint_of",
    "experiment_id_for",
    "open_experiment",
    "load_saved_experiment",
    "open_saved_experiment",
    "result_of",
    "run_experiment",
    "summarize",
]
