"""A smolagents `ToolCallingAgent` that survives bad planner output and always stops for a named reason.

Real models reply with prose instead of a tool call, send arguments as JSON strings or nested objects, and repeat
the same call forever. This agent feeds each unparsable reply back as a parsing error a bounded number of times,
accepts arguments in the shapes providers send, stops on repeated identical calls, and never asks the model for a
closing answer when the step limit is reached (smolagents does by default, which turns log text into an answer).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any, Literal

from smolagents import ToolCallingAgent
from smolagents.memory import ActionStep
from smolagents.models import Model
from smolagents.monitoring import LogLevel
from smolagents.tools import Tool
from smolagents.utils import AgentError, AgentGenerationError, AgentParsingError, AgentToolCallError, AgentToolExecutionError

logger = logging.getLogger(__name__)

StopReason = Literal["final_answer", "parse_failures_exhausted", "repeated_calls", "step_limit", "planner_error"]

DEFAULT_MAX_PARSE_RETRIES = 3
DEFAULT_MAX_REPEATED_CALLS = 3

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def normalize_arguments(raw: Any) -> dict[str, Any]:
    """Return tool-call arguments as a dict, whatever shape the provider sent them in.

    Accepted shapes: a dict; `None` or an empty string (no arguments); a JSON object as a string, optionally in a
    Markdown code fence; a JSON string that itself contains a JSON object (double-encoded); and any of these wrapped in
    a single `{"arguments": ...}` or `{"parameters": ...}` key.

    Raises:
        ValueError: If the arguments are not an object in any of these shapes. smolagents turns it into a tool-call
            error that goes back to the model.
    """
    value = raw
    for _ in range(3):
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            text = value.strip()
            fenced = _FENCE.match(text)
            try:
                value = json.loads(fenced.group(1) if fenced else text)
            except json.JSONDecodeError as err:
                raise ValueError(f"Tool arguments must be a JSON object, got {raw!r}.") from err
            continue
        if isinstance(value, dict) and len(value) == 1:
            (key, inner), = value.items()
            if key in ("arguments", "parameters") and isinstance(inner, (dict, str)):
                value = inner
                continue
        break
    if not isinstance(value, dict):
        raise ValueError(f"Tool arguments must be a JSON object, got {raw!r}.")
    return value


class GuardedAgent(ToolCallingAgent):
    """A `ToolCallingAgent` whose run always ends with `stop_reason` set.

    Args:
        tools: The tools the planner may call.
        model: The planner: any smolagents `Model`.
        max_steps: Steps before the run stops with `step_limit`.
        max_parse_retries: Replies in a row without a usable tool call that are fed back as parsing errors; the
            next one stops the run with `parse_failures_exhausted`.
        max_repeated_calls: Identical tool calls (same tool, same arguments) in a row that stop the run with
            `repeated_calls`.
        on_rejected_call: Called with the tool name and the error for each call the agent rejects (an unknown
            tool, bad arguments), so the caller can record it.
        on_accepted_call: Called with the tool name, its arguments and the model's text beside the call for each
            call that ran without error.
        instructions: Text added to smolagents' system prompt.
    """

    def __init__(
        self,
        *,
        tools: list[Tool],
        model: Model,
        max_steps: int,
        max_parse_retries: int = DEFAULT_MAX_PARSE_RETRIES,
        max_repeated_calls: int = DEFAULT_MAX_REPEATED_CALLS,
        on_rejected_call: Callable[[str, str], None] | None = None,
        on_accepted_call: Callable[[str, Any, str], None] | None = None,
        instructions: str | None = None,
    ):
        super().__init__(
            tools=tools,
            model=model,
            max_steps=max_steps,
            verbosity_level=LogLevel.OFF,
            step_callbacks=[self._check_step],
            instructions=instructions,
        )
        self.max_parse_retries = max_parse_retries
        self.max_repeated_calls = max_repeated_calls
        self.on_rejected_call = on_rejected_call
        self.on_accepted_call = on_accepted_call
        self.stop_reason: StopReason | None = None
        """Why the last run ended; `None` only while it runs."""
        self.parse_failures = 0
        """Replies without a usable tool call in the last run."""
        self.steps_taken = 0
        """Action steps of the last run."""
        self.planner_error: str | None = None
        """Why the model could not answer (a server error, a timeout), when `stop_reason` is `planner_error`."""
        self._consecutive_parse_failures = 0
        self._last_call: str | None = None
        self._repeats = 0

    def run_until_stopped(self, task: str) -> StopReason:
        """Run the agent on `task` and return why it stopped; the model's answer text is discarded."""
        self.stop_reason = None
        self.parse_failures = self.steps_taken = self._consecutive_parse_failures = self._repeats = 0
        self._last_call = None
        self.planner_error = None
        try:
            self.run(task)
        except AgentGenerationError as err:
            # The model or its server failed (HTTP 500, timeout); the experiment state is intact and resumable.
            self.planner_error = str(err)[:500]
            self.stop_reason = "planner_error"
        except AgentError:
            # `interrupt_switch` raises "Agent interrupted." before the next step; any other agent error is ours.
            if self.stop_reason is None:
                raise
        if self.stop_reason is None:
            self.stop_reason = "final_answer"
        return self.stop_reason

    def execute_tool_call(self, tool_name: str, arguments: dict[str, str] | str) -> Any:
        """Run one tool call after normalizing its arguments (see `normalize_arguments`)."""
        try:
            normalized = normalize_arguments(arguments)
        except ValueError as err:
            raise AgentToolCallError(str(err), self.logger) from err
        return super().execute_tool_call(tool_name, normalized)

    def _handle_max_steps_reached(self, task: str) -> None:
        # smolagents would ask the model for a closing answer built from the memory; a typed stop replaces it.
        if self.stop_reason is None:
            self.stop_reason = "step_limit"
        return None

    def _check_step(self, step: ActionStep, agent: Any = None) -> None:
        if not isinstance(step, ActionStep):
            return
        self.steps_taken += 1
        if isinstance(step.error, AgentParsingError):
            self._count_parse_failure()
            return
        self._consecutive_parse_failures = 0
        calls = _requested_calls(step)
        if isinstance(step.error, (AgentToolCallError, AgentToolExecutionError)) and self.on_rejected_call:
            self.on_rejected_call(calls[0][0] if calls else "?", str(step.error))
        elif step.error is None and self.on_accepted_call:
            for name, arguments in calls:
                self.on_accepted_call(name, arguments, step.model_output or "")
        self._count_repeats(calls)

    def _count_parse_failure(self) -> None:
        self.parse_failures += 1
        self._consecutive_parse_failures += 1
        logger.debug("planner reply %d had no usable tool call", self.parse_failures)
        if self._consecutive_parse_failures > self.max_parse_retries:
            self._stop("parse_failures_exhausted")

    def _count_repeats(self, calls: list[tuple[str, Any]]) -> None:
        signature = json.dumps(calls, sort_keys=True, default=str)
        self._repeats = self._repeats + 1 if signature == self._last_call else 1
        self._last_call = signature
        if calls and self._repeats >= self.max_repeated_calls:
            self._stop("repeated_calls")

    def _stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.interrupt_switch = True


def _requested_calls(step: ActionStep) -> list[tuple[str, Any]]:
    # `step.tool_calls` stays empty when a call raises, so read the calls from the model's message instead.
    message = step.model_output_message
    return [(call.function.name, call.function.arguments) for call in (message.tool_calls if message else None) or []]
