"""The built-in rule-based planner: a smolagents `Model` that reads the experiment state and calls the next tool.

It needs no LLM and no network, and the same state always gives the same call, so runs are reproducible. An LLM
planner can replace it; the guards inside the tools apply to both.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

from smolagents.models import ChatMessage, ChatMessageToolCall, ChatMessageToolCallFunction, MessageRole, Model

from .comparison import changes_from_base
from .context import ExperimentContext
from .state import TERMINAL_STATUSES, ExperimentStatus, Run, Stage

logger = logging.getLogger(__name__)

FINAL_ANSWER = "final_answer"


@dataclass(frozen=True)
class NextCall:
    """The tool to call next, its arguments, and why."""

    tool: str
    arguments: dict[str, Any]
    reason: str


def choose_next_call(ctx: ExperimentContext) -> NextCall:
    """Return the next tool call for the experiment's current state."""
    experiment = ctx.experiment
    if experiment.status in TERMINAL_STATUSES:
        return NextCall(FINAL_ANSWER, {"answer": summarize(ctx)}, f"the experiment is {experiment.status.value}")

    stage = experiment.next_stage()
    if stage is None:
        return NextCall("write_report", {}, "every stage is done; the report closes the experiment")
    if stage == Stage.PLAN:
        ctx.complete_stage(Stage.PLAN)
        return choose_next_call(ctx)
    if stage == Stage.VALIDATE:
        return NextCall("validate_dataset", {}, "nothing is trained before the dataset is validated for the method")
    if stage == Stage.EVALUATE_BASE:
        return NextCall("evaluate_model", {"target": "base"}, "the base model's score is the reference for every run")
    if stage == Stage.TRAIN:
        return _next_training_call(ctx)
    if stage == Stage.EVALUATE_RUN:
        run = next(r for r in reversed(experiment.runs) if is_result_run(r))
        return NextCall("evaluate_model", {"target": run.run_id}, f"{run.run_id} ended with a model and has not been scored")
    if stage == Stage.EXPORT:
        run = next(r for r in reversed(experiment.runs) if is_result_run(r))
        return NextCall("export_model", {"run_id": run.run_id}, f"{run.run_id} is evaluated and the plan exports it")
    return NextCall("write_report", {}, "the report is the last stage")


def _next_training_call(ctx: ExperimentContext) -> NextCall:
    experiment = ctx.experiment
    run = experiment.latest_run
    if run is None or run.status == "pending":
        return NextCall("submit_run", {}, "the dataset is valid and the base model is scored")
    if run.status in ("submitted", "running"):
        return NextCall("monitor_run", {"run_id": run.run_id}, f"{run.run_id} is {run.status}")

    verdict = run.verdict
    if verdict is not None and verdict.action in ("extend", "resubmit") and not verdict.applied:
        if len(experiment.runs) >= experiment.plan.max_runs:
            return _stop(ctx, f"rule {verdict.rule} asked to {verdict.action} {run.run_id}, but all {experiment.plan.max_runs} runs are used")
        changes = ", ".join(f"{key}={value}" for key, value in verdict.parameters.items())
        return NextCall("submit_run", {}, f"rule {verdict.rule} decided to {verdict.action} {run.run_id} ({changes})")
    # A run that ended with a model completes training. The monitor normally marks the stage, but an agent killed
    # between saving the run's outcome and marking the stage leaves the mark to this call after the restart.
    if is_result_run(run):
        ctx.complete_stage(Stage.TRAIN, run_id=run.run_id)
        return choose_next_call(ctx)
    if verdict is not None and verdict.action == "stop":
        reason = f"rule {verdict.rule} stopped {run.run_id} at step {verdict.step}"
        return _stop(ctx, f"{reason}: {verdict.description}" if verdict.description else reason)
    failure = run.failure.message if run.failure else run.status
    ctx.fail(f"{run.run_id} {run.status}: {failure}")
    return NextCall(FINAL_ANSWER, {"answer": summarize(ctx)}, f"{run.run_id} {run.status}")


def is_result_run(run: Run) -> bool:
    """Return whether a run ended with a model to evaluate: it succeeded with no follow-up run asked for, or a
    `stop` verdict with `evaluate: true` kept its last checkpoint."""
    verdict = run.verdict
    # NOTE: scoring the `checkpoint-N` folder of a run cancelled by such a stop has no end-to-end test yet.
    if run.status == "succeeded":
        return verdict is None or verdict.action not in ("extend", "resubmit")
    return bool(verdict and verdict.action == "stop" and verdict.parameters.get("evaluate") and run.checkpoints)


def _stop(ctx: ExperimentContext, reason: str) -> NextCall:
    experiment = ctx.experiment
    experiment.status = ExperimentStatus.STOPPED
    experiment.failure = reason
    logger.info("%s: experiment stopped: %s", experiment.id, reason)
    ctx.record("experiment_stopped", reason=reason)
    return NextCall(FINAL_ANSWER, {"answer": summarize(ctx)}, reason)


def summarize(ctx: ExperimentContext) -> str:
    """Return a short account of the experiment's outcome and scores."""
    experiment = ctx.experiment
    lines = [f"Experiment {experiment.id}: {experiment.status.value}."]
    if experiment.failure:
        lines.append(f"Reason: {experiment.failure}")
    for score in experiment.baseline_scores:
        lines.append(f"base: {score.benchmark} {score.metric} {score.value:.3f} ({score.num_passed}/{score.num_samples})")
    for run in experiment.runs:
        for score in run.checkpoints[-1].scores if run.checkpoints else []:
            lines.append(f"{run.run_id}: {score.benchmark} {score.metric} {score.value:.3f} ({score.num_passed}/{score.num_samples})")
    lines += changes_from_base(experiment)
    lines.append(f"Report: {ctx.report_path}")
    return "\n".join(lines)


class RuleBasedPlanner(Model):
    """A smolagents model whose every answer is one tool call chosen by `choose_next_call`.

    It ignores the chat messages it is given: the persisted state is the only input, so a resumed experiment
    continues exactly where it stopped.
    """

    def __init__(self, ctx: ExperimentContext):
        super().__init__(model_id="autotrain-agent/rule-based-planner")
        self.ctx = ctx
        self._call_ids = itertools.count(1)

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kwargs) -> ChatMessage:
        call = choose_next_call(self.ctx)
        if call.tool != FINAL_ANSWER:
            self.ctx.decide(by="planner", action=f"call {call.tool}({format_call_arguments(call.arguments)})", reason=call.reason)
        logger.debug("%s: planner calls %s: %s", self.ctx.experiment.id, call.tool, call.reason)
        tool_call = ChatMessageToolCall(
            id=f"call_{next(self._call_ids)}",
            type="function",
            function=ChatMessageToolCallFunction(name=call.tool, arguments=call.arguments),
        )
        return ChatMessage(role=MessageRole.ASSISTANT, content=call.reason, tool_calls=[tool_call])


def format_call_arguments(arguments: Any) -> str:
    """Return tool-call arguments as `key='value', ...` for a decision's action text."""
    if isinstance(arguments, dict):
        return ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    return repr(arguments)[:100]


def is_finished(ctx: ExperimentContext) -> bool:
    """Return whether the experiment reached a terminal status."""
    return ctx.experiment.status in TERMINAL_STATUSES or ctx.experiment.status != ExperimentStatus.ACTIVE
