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
from .backends.local import LocalBackend
from .config import Settings
from .context import ExperimentContext
from .errors import StateError
from .estimate import estimate_minutes
from .planner import RuleBasedPlanner, summarize
from .state import Experiment, ExperimentStatus, Plan, Score, Stage
from .store import ExperimentStore

logger = logging.getLogger(__name__)

TerminalState = Literal["succeeded", "failed", "stopped", "incomplete"]


class ExperimentResult(BaseModel):
    """What a finished (or interrupted) experiment produced."""

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
    """Why the experiment failed, if it did."""


def slugify(text: str) -> str:
    """Return a lowercase, filesystem-safe slug of `text`."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "x"


def experiment_id_for(plan: Plan) -> str:
    """Return `<model>-<dataset>-<method>` from the last path part of the model and dataset references."""
    model = plan.base_model.rstrip("/").split("/")[-1]
    dataset = plan.dataset.reference.removeprefix("builtin:").rstrip("/").split("/")[-1]
    dataset = Path(dataset).stem if "." in dataset else dataset
    return f"{slugify(model)}-{slugify(dataset)}-{plan.method}"


def open_experiment(plan: Plan, settings: Settings, *, backend=None, echo=print) -> tuple[ExperimentContext, bool]:
    """Return the context of the experiment for `plan`, resuming the saved one if it exists.

    A resumed experiment keeps its saved plan (so finished stages stay valid); a failed one becomes active again
    and continues from the stage that failed.

    Returns:
        The context and whether the experiment was resumed.
    """
    store = ExperimentStore(settings.runs_dir)
    experiment_id = experiment_id_for(plan)
    resumed = store.exists(experiment_id)
    if resumed:
        experiment = store.load(experiment_id)
    else:
        plan.estimated_minutes = estimate_minutes(plan)
        experiment = Experiment(id=experiment_id, goal=plan.goal, plan=plan)
    backend = backend or LocalBackend(store.folder(experiment_id) / "jobs")
    ctx = ExperimentContext(experiment=experiment, store=store, settings=settings, backend=backend, echo=echo)
    return ctx, resumed


def open_saved_experiment(experiment_id: str, settings: Settings, *, echo=print) -> ExperimentContext:
    """Return the context of a saved experiment, for commands that act on it after its run (export, publish).

    Raises:
        StateError: If no experiment with that id is saved under `settings.output_dir`.
    """
    store = ExperimentStore(settings.runs_dir)
    if not store.exists(experiment_id):
        known = ", ".join(store.list_ids()) or "none"
        raise StateError(f"No experiment {experiment_id!r} under {store.root}; known experiments: {known}. Check `--output-dir`.")
    backend = LocalBackend(store.folder(experiment_id) / "jobs")
    return ExperimentContext(experiment=store.load(experiment_id), store=store, settings=settings, backend=backend, echo=echo)


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


__all__ = ["ExperimentResult", "experiment_id_for", "open_experiment", "open_saved_experiment", "run_experiment", "result_of", "summarize"]
