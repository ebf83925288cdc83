"""Orchestration only: open or resume an experiment and let a planner drive the tools until a terminal status."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from smolagents import ToolCallingAgent
from smolagents.models import Model
from smolagents.monitoring import LogLevel

from .agent_tools import build_tools
from .approval import Approver
from .backends.local import LocalBackend
from .config import Settings
from .context import ExperimentContext
from .estimate import estimate_minutes
from .planner import RuleBasedPlanner, summarize
from .state import Experiment, ExperimentStatus, Plan, Score, Stage
from .store import ExperimentStore

logger = logging.getLogger(__name__)

TerminalState = Literal["succeeded", "failed", "stopped", "incomplete"]


class ExperimentResult(BaseModel):
    """Outcome of a finished or interrupted experiment."""

    experiment_id: str
    """The experiment's id."""
    state: TerminalState
    """`incomplete` when the step limit ended the loop before a terminal status."""
    report_path: Path
    """The Markdown report."""
    baseline_scores: list[Score]
    """Scores of the base model."""
    run_scores: dict[str, list[Score]]
    """Scores of each run's final checkpoint, by run id."""
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
        echo: Writes one line for the user.

    Returns:
        The context and whether the experiment was resumed.
    """
    store = ExperimentStore(settings.runs_dir)
    experiment_id = experiment_id_for(plan)
    resumed = store.exists(experiment_id)
    limits = limits or ApprovalLimits()
    if resumed:
        experiment = store.load(experiment_id)
        if limits != ApprovalLimits.of(experiment):
            logger.warning("%s: keeping the saved budget and approval limits; the new flags are ignored.", experiment_id)
    else:
        if plan.backend == "local":
            plan.estimated_minutes = estimate_minutes(plan)
        experiment = Experiment(id=experiment_id, goal=plan.goal, plan=plan, **limits.model_dump())
    backend = backend or _default_backend(experiment, store)
    ctx = ExperimentContext(experiment=experiment, store=store, settings=settings, backend=backend, echo=echo, approver=approver)
    return ctx, resumed


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


def run_experiment(ctx: ExperimentContext, *, model: Model | None = None, max_steps: int = 40) -> ExperimentResult:
    """Drive the experiment with `model` (the rule-based planner by default) until it ends or `max_steps` pass.

    The caller must hold the experiment's lock (see `ExperimentStore.lock`).
    """
    experiment = ctx.experiment
    if experiment.status == ExperimentStatus.FAILED:
        logger.info("%s: resuming a failed experiment from stage %s", experiment.id, experiment.next_stage())
        experiment.status = ExperimentStatus.ACTIVE
        experiment.failure = None
    if Stage.PLAN not in experiment.completed_stages:
        ctx.complete_stage(Stage.PLAN)
    else:
        ctx.record("experiment_resumed")

    if experiment.status == ExperimentStatus.ACTIVE:
        agent = ToolCallingAgent(
            tools=build_tools(ctx),
            model=model or RuleBasedPlanner(ctx),
            max_steps=max_steps,
            verbosity_level=LogLevel.OFF,
        )
        agent.run(f"Run the fine-tuning experiment {experiment.id}: {experiment.goal}")
    return result_of(ctx)


def result_of(ctx: ExperimentContext) -> ExperimentResult:
    """Return the typed result for the experiment's current state."""
    experiment = ctx.experiment
    state: TerminalState = "incomplete" if experiment.status == ExperimentStatus.ACTIVE else experiment.status.value  # type: ignore[assignment]
    return ExperimentResult(
        experiment_id=experiment.id,
        state=state,
        report_path=ctx.report_path,
        baseline_scores=experiment.baseline_scores,
        run_scores={run.run_id: run.checkpoints[-1].scores for run in experiment.runs if run.checkpoints},
        failure=experiment.failure,
    )


__all__ = ["ApprovalLimits", "ExperimentResult", "experiment_id_for", "open_experiment", "run_experiment", "result_of", "summarize"]
