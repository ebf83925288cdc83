"""Checks that `submit_run` makes on a run before the approval request and the submission."""

from __future__ import annotations

from .checkpoint_round_trip import check_model_folder_round_trip
from .context import ExperimentContext
from .errors import ConfigError
from .plan_lint import check_training_config, read_model_type
from .recipes import GRPO_ON_JOBS_MESSAGE
from .state import Run

ROUND_TRIP_FOLDER = "checkpoint-round-trip"


def check_before_launch(ctx: ExperimentContext, run: Run) -> None:
    """Lint the run's settings and save and reload the model through the checkpoint code path.

    Raises:
        ConfigError: If the plan linter flags the run's settings, or a GRPO run would go to a backend other than
            the local one.
        CheckpointSaveError: If the model cannot be saved and reloaded as a checkpoint.
    """
    experiment = ctx.experiment
    if run.config.get("method") == "grpo" and ctx.backend.name != "local":
        # A plan written by hand or by an LLM can skip `make_plan`, which rejects this combination first.
        raise ConfigError(GRPO_ON_JOBS_MESSAGE)
    model_path = experiment.model_path
    model_type = read_model_type(model_path) if model_path else None
    check_training_config({**run.config, "model_type": model_type})

    if model_path and check_model_folder_round_trip(model_path, ctx.folder / ROUND_TRIP_FOLDER, experiment_id=experiment.id):
        ctx.record("checkpoint_round_trip_passed", run_id=run.run_id, model_path=model_path)
