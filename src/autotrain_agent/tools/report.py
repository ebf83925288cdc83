"""The `write_report` tool: render the report and close a finished experiment."""

from __future__ import annotations

from ..context import ExperimentContext
from ..state import ExperimentStatus, Stage


def write_report(ctx: ExperimentContext) -> str:
    """Rewrite the experiment's report; when every other stage is done, mark the experiment succeeded.

    Returns:
        The report's path.
    """
    experiment = ctx.experiment
    others_done = all(stage in experiment.completed_stages for stage in experiment.plan.stages if stage != Stage.REPORT)
    if others_done and experiment.status == ExperimentStatus.ACTIVE:
        experiment.status = ExperimentStatus.SUCCEEDED
        ctx.complete_stage(Stage.REPORT)
    else:
        ctx.record("report_written")
    return str(ctx.report_path)
