"""The Python API for programs that embed autotrain-agent: create, run, resume and inspect experiments.

Every function ends in a typed `ExperimentResult`; a program never parses logs or the planner's prose. The
experiment state lives under `settings.output_dir/training_runs/<id>/`, so a run started here can be resumed from the
CLI and the other way round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from smolagents import Tool
from smolagents.models import Model

from . import loop
from .agent_tools import build_tools
from .backends.base import JobBackend
from .config import Settings
from .context import ExperimentContext
from .errors import StateError
from .hub import is_hub_reachable
from .loop import ExperimentResult
from .preflight import check_plan_inputs
from .llm_plan import propose_plan
from .prompts import render_prompt
from .recipes import PlanOverrides, make_plan
from .state import Experiment, ExperimentStatus, Plan, Stage
from .store import ExperimentStore

logger = logging.getLogger(__name__)


def create_experiment(
    goal: str | Plan,
    *,
    overrides: PlanOverrides | None = None,
    settings: Settings | None = None,
) -> Experiment:
    """Plan an experiment from a goal (or take a ready plan), check its inputs exist, and save it without running.

    Creating an experiment that already exists returns the saved one unchanged.

    Args:
        goal: The goal in plain words, e.g. "improve code solving with SFT", or a `Plan`.
        overrides: Choices to fix instead of leaving them to the planner; ignored when `goal` is a `Plan`.
        settings: Where files go; defaults to the current folder.

    Raises:
        ConfigError: If the goal cannot be planned.
        ModelNotFoundError: If the model cannot be found.
        DatasetError: If the dataset cannot be found.
    """
    ctx = _open(goal, overrides=overrides, settings=settings or Settings(), backend=None, echo=None)
    with ctx.store.lock(ctx.experiment.id):
        ctx.record("experiment_created")
    return ctx.experiment


def run_experiment(
    goal: str | Plan,
    *,
    overrides: PlanOverrides | None = None,
    settings: Settings | None = None,
    model: Model | None = None,
    approver: Any | None = None,
    backend: JobBackend | None = None,
    max_steps: int = 40,
    echo: Callable[[str], None] | None = None,
) -> ExperimentResult:
    """Plan (or resume) the experiment for `goal` and run it until it reaches a terminal state.

    Args:
        goal: The goal in plain words, or a `Plan`. A goal that maps to a saved experiment resumes it.
        overrides: Choices to fix instead of leaving them to the planner; ignored when `goal` is a `Plan`.
        settings: Where files go; defaults to the current folder.
        model: The planner: any smolagents `Model` (see `autotrain_agent.llm.build_llm`). `None` uses the
            rule-based planner. An LLM planner first proposes the open choices of a goal's plan
            (`prompts/propose_plan.md`), then drives the tools under `prompts/planner.md`.
        approver: Decides on paid actions. Passed to the tools' approval gate; see `ExperimentContext.approver`.
        backend: Backend that runs the jobs; defaults to the plan's backend (local unless `hf-jobs` is planned).
        max_steps: Planner steps before the run stops as `budget_exhausted`.
        echo: Receives progress lines for a person; defaults to the `autotrain_agent.api` logger at INFO.

    Returns:
        The result: `succeeded`, `stopped_by_policy`, `needs_approval`, `budget_exhausted` or `failed`, with the
        report path, artifacts, scores and best checkpoint.

    Raises:
        ConfigError, ModelNotFoundError, DatasetError: If the inputs cannot be planned or found; nothing is run.
        ExperimentLockedError: If another process is running the same experiment.
    """
    ctx = _open(goal, overrides=overrides, settings=settings or Settings(), backend=backend, echo=echo, model=model)
    return _drive(ctx, model=model, approver=approver, max_steps=max_steps)


def resume_experiment(
    experiment_id: str,
    *,
    settings: Settings | None = None,
    model: Model | None = None,
    approver: Any | None = None,
    backend: JobBackend | None = None,
    max_steps: int = 40,
    echo: Callable[[str], None] | None = None,
) -> ExperimentResult:
    """Continue a saved experiment from its first unfinished stage; finished stages are not redone.

    Takes the same arguments as `run_experiment`, with the saved experiment's id instead of a goal.

    Raises:
        StateError: If no experiment has that id.
        ExperimentLockedError: If another process is running it.
    """
    settings = settings or Settings()
    experiment = _load(experiment_id, settings)
    ctx = loop.open_saved_experiment(experiment, settings, backend=backend, echo=echo or _log_line)
    return _drive(ctx, model=model, approver=approver, max_steps=max_steps)


def inspect_experiment(experiment_id: str, *, settings: Settings | None = None) -> tuple[Experiment, ExperimentResult]:
    """Return a saved experiment's full state and its result so far, without running or locking anything.

    An experiment that is still active shows as `budget_exhausted`, with reason `step_limit` when a step limit
    stopped it, or `active` when it was never run to a stop or is running elsewhere now.

    Raises:
        StateError: If no experiment has that id.
    """
    settings = settings or Settings()
    experiment = _load(experiment_id, settings)
    ctx = loop.open_saved_experiment(experiment, settings, echo=_log_line)
    return experiment, loop.result_of(ctx, reason=_last_stop_reason(ctx))


@contextmanager
def experiment_tools(
    experiment_id: str,
    *,
    settings: Settings | None = None,
    approver: Any | None = None,
    backend: JobBackend | None = None,
    echo: Callable[[str], None] | None = None,
) -> Iterator[list[Tool]]:
    """Lock a saved experiment and yield its tools as smolagents `Tool`s, for an agent of the caller's own.

    The tools carry the same guards as the planner's, and their docstrings give the model a complete schema. The
    lock is held until the `with` block ends, so no other process drives the experiment meanwhile.

    Example:
        >>> with experiment_tools(experiment.id) as tools:
        ...     ToolCallingAgent(tools=tools, model=my_model).run("Run the experiment to the report.")

    Raises:
        StateError: If no experiment has that id.
        ExperimentLockedError: If another process holds its lock.
    """
    settings = settings or Settings()
    experiment = _load(experiment_id, settings)
    ctx = loop.open_saved_experiment(experiment, settings, backend=backend, echo=echo or _log_line)
    ctx.approver = approver
    with ctx.store.lock(experiment_id):
        if Stage.PLAN not in experiment.completed_stages:
            ctx.complete_stage(Stage.PLAN)
        yield build_tools(ctx)


def list_experiments(*, settings: Settings | None = None) -> list[str]:
    """Return the ids of the saved experiments under `settings.output_dir`."""
    settings = settings or Settings()
    return ExperimentStore(settings.runs_dir).list_ids()


def _open(goal: str | Plan, *, overrides, settings: Settings, backend, echo, model: Model | None = None) -> ExperimentContext:
    hub_reachable = is_hub_reachable()
    if isinstance(goal, Plan):
        plan = goal
    elif model is not None:
        plan = propose_plan(goal, model, overrides=overrides, hub_reachable=hub_reachable)
    else:
        plan = make_plan(goal, overrides, hub_reachable=hub_reachable)
    check_plan_inputs(plan, hub_reachable=hub_reachable)
    ctx, _ = loop.open_experiment(plan, settings, backend=backend, echo=echo or _log_line)
    return ctx


def _last_stop_reason(ctx: ExperimentContext) -> str | None:
    journal = ctx.store.read_journal(ctx.experiment.id)
    events = [entry for entry in journal if entry["event"] in ("planner_stopped", "experiment_resumed", "experiment_created")]
    if ctx.experiment.status == ExperimentStatus.SUCCEEDED:
        return None
    if events and events[-1]["event"] == "planner_stopped":
        return events[-1].get("reason")
    return "active" if ctx.experiment.status == ExperimentStatus.ACTIVE else None


def _load(experiment_id: str, settings: Settings) -> Experiment:
    store = ExperimentStore(settings.runs_dir)
    if not store.exists(experiment_id):
        raise StateError(
            f"No experiment {experiment_id!r} under {settings.runs_dir}; known: {store.list_ids()}. "
            "Check `output_dir`, or start it with `run_experiment`."
        )
    return store.load(experiment_id)


def _drive(ctx: ExperimentContext, *, model: Model | None, approver: Any | None, max_steps: int) -> ExperimentResult:
    ctx.approver = approver
    instructions = None
    if model is not None:
        instructions = render_prompt("planner", experiment_id=ctx.experiment.id, goal=ctx.experiment.goal)
    with ctx.store.lock(ctx.experiment.id):
        return loop.run_experiment(ctx, model=model, max_steps=max_steps, instructions=instructions)


def _log_line(line: str) -> None:
    logger.info("%s", line)


__all__ = [
    "ExperimentResult",
    "create_experiment",
    "experiment_tools",
    "inspect_experiment",
    "list_experiments",
    "resume_experiment",
    "run_experiment",
]
