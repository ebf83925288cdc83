"""An MCP server over stdio that serves the experiment tools to Claude Code, Codex, Gemini CLI and other clients.

It serves the same smolagents tools the planner calls (`agent_tools.TOOL_CLASSES`), each with an extra
`experiment_id` argument, plus `create_experiment`, `inspect_experiment` and `list_experiments`. The guards live
inside the tools, so an MCP client meets the same validation and stage checks as the planner. Paid actions will
go through the approval gate inside the tools too, and the client's own confirmation prompt does not replace it.

Limitations:
    A call holds the experiment's lock until it returns, and `monitor_run` returns only when the job ends, which
    can outlast a client's request timeout. The job keeps running; call `monitor_run` again to pick it up.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from . import api
from .agent_tools import TOOL_CLASSES, _ExperimentTool
from .config import Settings
from .errors import AutotrainError
from .loop import open_saved_experiment
from .recipes import PlanOverrides

logger = logging.getLogger(__name__)

SERVER_NAME = "autotrain-agent"
INSTRUCTIONS = (
    "Fine-tuning experiments end to end. Call create_experiment with a goal, then call the tools in stage order: "
    "validate_dataset, estimate_experiment, evaluate_model (target 'base'), submit_run, monitor_run, evaluate_model "
    "(the run id), write_report. Every tool takes the experiment_id that create_experiment returns. An error names "
    "its cause and changed nothing. Paid actions need approval from the operator's approver, not from you."
)
_EXPERIMENT_ID = Annotated[str, Field(description="The id returned by create_experiment, e.g. 'smollm2-135m-instruct-code-functions-sft'.")]


def build_server(settings: Settings) -> Any:
    """Return an `mcp` server whose tools act on experiments under `settings.output_dir`.

    Raises:
        ImportError: If the `mcp` package is not installed (`pip install 'autotrain-agent[mcp]'`).
    """
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(name=SERVER_NAME, instructions=INSTRUCTIONS)
    server.add_tool(_create_tool(settings), name="create_experiment")
    server.add_tool(_inspect_tool(settings), name="inspect_experiment")
    server.add_tool(_list_tool(settings), name="list_experiments")
    for tool_class in TOOL_CLASSES:
        server.add_tool(_experiment_tool(tool_class, settings), name=tool_class.name, description=tool_class.description)
    return server


def serve_stdio(settings: Settings) -> None:
    """Serve the tools over stdin and stdout until the client disconnects."""
    build_server(settings).run("stdio")


def _reporting_errors(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a tool so that our errors reach the client with their message.

    The SDK keeps an unexpected exception's text on the server and sends only "Error executing tool"; a
    `ToolError` carries the cause, which the model needs to act on.
    """

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        from mcp.server.mcpserver.exceptions import ToolError

        try:
            return function(*args, **kwargs)
        except (AutotrainError, KeyError, NotImplementedError) as err:
            logger.info("tool %s failed: %s", function.__name__, err)
            raise ToolError(f"{type(err).__name__}: {err}") from err

    return call


def _experiment_tool(tool_class: type[_ExperimentTool], settings: Settings):
    """Return a function with `experiment_id` plus the tool's own inputs, for the MCP SDK to build its schema from."""

    @_reporting_errors
    def call_tool(experiment_id: str, **arguments: str) -> str:
        experiment, _ = api.inspect_experiment(experiment_id, settings=settings)
        ctx = open_saved_experiment(experiment, settings, echo=lambda line: logger.info("%s", line))
        with ctx.store.lock(experiment_id):
            return tool_class(ctx).forward(**arguments)

    parameters = [inspect.Parameter("experiment_id", inspect.Parameter.KEYWORD_ONLY, annotation=_EXPERIMENT_ID)]
    for name, spec in tool_class.inputs.items():
        annotation = Annotated[str, Field(description=spec["description"])]
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation))
    call_tool.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    call_tool.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters} | {"return": str}
    call_tool.__name__ = tool_class.name
    return call_tool


def _create_tool(settings: Settings):
    @_reporting_errors
    def create_experiment(
        goal: Annotated[str, Field(description="The goal in plain words, e.g. 'improve code solving with SFT'.")],
        model: Annotated[str | None, Field(description="Base model: Hub id or local folder. Omit for the default.")] = None,
        dataset: Annotated[str | None, Field(description="Training data: Hub id or local JSONL file. Omit to let the planner choose.")] = None,
        max_steps: Annotated[int | None, Field(description="Optimizer steps of the training run. Omit for the default.")] = None,
        eval_limit: Annotated[int | None, Field(description="HumanEval problems to score (first N); 0 scores all 164.")] = None,
    ) -> str:
        """Plan an experiment from a goal and save it without running anything; returns its id and plan.

        Creating an experiment that already exists returns the saved one unchanged.
        """
        overrides = PlanOverrides(model=model, dataset=dataset, max_steps=max_steps, eval_limit=eval_limit)
        experiment = api.create_experiment(goal, overrides=overrides, settings=settings)
        reasons = "\n".join(f"- {reason}" for reason in experiment.plan.reasons)
        return f"experiment_id: {experiment.id}\nPlan reasons:\n{reasons}"

    return create_experiment


def _inspect_tool(settings: Settings):
    @_reporting_errors
    def inspect_experiment(experiment_id: _EXPERIMENT_ID) -> str:
        """Return an experiment's state as JSON: terminal state, finished stages, scores, artifacts and report path."""
        _, result = api.inspect_experiment(experiment_id, settings=settings)
        return result.model_dump_json(indent=2)

    return inspect_experiment


def _list_tool(settings: Settings):
    @_reporting_errors
    def list_experiments() -> list[str]:
        """Return the ids of the saved experiments."""
        return api.list_experiments(settings=settings)

    return list_experiments
