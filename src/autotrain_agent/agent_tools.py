"""The experiment's tool functions as smolagents tools, bound to one `ExperimentContext`.

Each tool's docstring and input descriptions are read by LLM planners. Every guard lives inside the plain tool
functions in `autotrain_agent.tools`, so an LLM, the rule-based planner and a Python caller meet the same checks.
"""

from __future__ import annotations

import logging

from smolagents import Tool

from .context import ExperimentContext
from .errors import ApprovalRejectedError, AutotrainError, BackendError, StateError
from .tools.estimate import estimate_experiment
from .tools.evaluate import evaluate_model
from .tools.export import export_model
from .tools.monitor import monitor_run
from .tools.report import write_report
from .tools.submit import submit_run
from .tools.validate import validate_dataset

logger = logging.getLogger(__name__)

# Errors the planner can act on (a wrong stage, a wrong run id); anything else an AutotrainError means the
# operator's input or environment is wrong, and the experiment stops.
RECOVERABLE_ERRORS = (StateError, BackendError, KeyError)


class _ExperimentTool(Tool):
    output_type = "string"

    def __init__(self, ctx: ExperimentContext):
        self.ctx = ctx
        super().__init__()

    def _call(self, function, *args) -> str:
        try:
            return function(self.ctx, *args)
        except RECOVERABLE_ERRORS:
            raise
        except ApprovalRejectedError as err:
            self.ctx.await_approval(str(err))
            raise
        except AutotrainError as err:
            self.ctx.fail(str(err))
            raise


class ValidateDatasetTool(_ExperimentTool):
    name = "validate_dataset"
    description = (
        "Resolve the plan's base model, prepare its dataset as local chat rows and validate them for the training "
        "method. Must succeed before any training run is submitted. Returns a summary with row and token counts."
    )
    inputs: dict = {}

    def forward(self) -> str:
        return self._call(validate_dataset)


class EstimateExperimentTool(_ExperimentTool):
    name = "estimate_experiment"
    description = (
        "Estimate the plan's wall time and cost before anything runs: training steps, both evaluations and setup. "
        "Changes nothing. Returns one paragraph with the minutes and the cost in USD."
    )
    inputs: dict = {}

    def forward(self) -> str:
        return self._call(estimate_experiment)


class EvaluateModelTool(_ExperimentTool):
    name = "evaluate_model"
    description = (
        "Score a model on the plan's benchmarks (HumanEval pass@1, code run in a sandbox). Evaluate 'base' before "
        "training and each run after it succeeds; both use the same problems and generation engine."
    )
    inputs = {"target": {"type": "string", "description": "'base' for the base model, or a run id such as 'run-1'."}}

    def forward(self, target: str) -> str:
        return self._call(evaluate_model, target)


class SubmitRunTool(_ExperimentTool):
    name = "submit_run"
    description = (
        "Submit the next training run of the plan to its backend. Never submits a run twice: an active run's id "
        "is returned instead. Returns the run id and job id."
    )
    inputs: dict = {}

    def forward(self) -> str:
        return self._call(submit_run)


class MonitorRunTool(_ExperimentTool):
    name = "monitor_run"
    description = (
        "Follow a submitted run until its job ends, then record status, loss metrics and checkpoints. Returns a "
        "summary with the final loss or the failure and the last log lines."
    )
    inputs = {"run_id": {"type": "string", "description": "The run id returned by submit_run, such as 'run-1'."}}

    def forward(self, run_id: str) -> str:
        return self._call(monitor_run, run_id)


class ExportModelTool(_ExperimentTool):
    name = "export_model"
    description = (
        "Merge a succeeded run's LoRA adapter into the base model and export GGUF files for llama.cpp: an F16 file "
        "and a Q4_K_M file, each loaded with llama.cpp and checked token for token against transformers. Call it "
        "after the run is evaluated when the plan has an export stage. Returns file sizes and bits per weight."
    )
    inputs = {"run_id": {"type": "string", "description": "The run to export, such as 'run-1'.", "nullable": True}}

    def forward(self, run_id: str | None = None) -> str:
        return self._call(export_model, run_id)


class WriteReportTool(_ExperimentTool):
    name = "write_report"
    description = "Write the experiment's Markdown report from its state and finish the experiment. Returns the report path."
    inputs: dict = {}

    def forward(self) -> str:
        return self._call(write_report)


TOOL_CLASSES: tuple[type[_ExperimentTool], ...] = (
    ValidateDatasetTool,
    EstimateExperimentTool,
    EvaluateModelTool,
    SubmitRunTool,
    MonitorRunTool,
    ExportModelTool,
    WriteReportTool,
)
"""Every experiment tool, in the order of the stages; the MCP server serves the same list."""


def build_tools(ctx: ExperimentContext) -> list[Tool]:
    """Return every experiment tool bound to `ctx`."""
    return [tool_class(ctx) for tool_class in TOOL_CLASSES]
