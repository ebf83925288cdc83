"""End verdicts that act on a finished run's checkpoints: score a chosen one, score all and keep the best, export.

Each one changes what the evaluate and export stages do for the run, so the planner needs no new call for them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..state import Run, with_export_stage
from .rules import RESULT_ACTIONS

if TYPE_CHECKING:
    from ..context import ExperimentContext

logger = logging.getLogger(__name__)


def apply_result_action(ctx: ExperimentContext, run: Run) -> None:
    """Apply the run's end verdict when its action is one of `RESULT_ACTIONS`, once; change nothing otherwise.

    `export` adds the export stage to the plan, `pick_best_checkpoint` scores every saved checkpoint and keeps the
    best, and `evaluate_checkpoint` scores the checkpoint at the verdict's `step` beside the final one. The caller
    saves the state, so the verdict and its effect are stored together.
    """
    verdict = run.verdict
    if verdict is None or verdict.action not in RESULT_ACTIONS or verdict.applied:
        return
    plan = ctx.experiment.plan
    if verdict.action == "export":
        plan.stages = with_export_stage(plan.stages)
    elif verdict.action == "pick_best_checkpoint":
        plan.checkpoints_to_evaluate = "all"
    elif not any(checkpoint.step == verdict.parameters["step"] for checkpoint in run.checkpoints):
        steps = [checkpoint.step for checkpoint in run.checkpoints]
        message = f"{run.run_id}: rule {verdict.rule} asked to score the checkpoint at step {verdict.parameters['step']}, but the run saved steps {steps}; only the final one is scored."
        ctx.experiment.warnings.append(message)
        logger.warning("%s: %s", ctx.experiment.id, message)
    verdict.applied = True
    logger.info("%s: applied %s from rule %s to %s", ctx.experiment.id, verdict.action, verdict.rule, run.run_id)
