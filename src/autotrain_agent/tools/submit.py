"""The `submit_run` tool: write a run's job config and start it on the plan's backend, exactly once."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .._resources import resource_dir
from ..context import ExperimentContext
from ..errors import JobMismatchError, StateError
from ..estimate import busy_machine_warning, estimate_training_minutes
from ..gate import approve_submission
from ..prelaunch import check_before_launch
from ..quick_test import run_quick_test
from ..state import Failure, Run, Stage, utc_now

logger = logging.getLogger(__name__)

ACTIVE_RUN_STATUSES = ("submitted", "running")


def submit_run(ctx: ExperimentContext) -> str:
    """Start the next training run of the experiment and return its run id in a summary.

    A run that is already submitted or running is never submitted again: its id is returned instead. A run that
    was saved as pending (the agent stopped between saving and submitting) is first looked up on the backend by its
    run id, and re-attached if the backend has it. Every new submission to a paid backend (and to the local one
    when the experiment requires approval) first passes the approval gate, for every caller. Before that, the run's
    settings are linted and the model is saved and reloaded as a checkpoint, so a save error blocks the launch. A
    paid run whose plan has a quick test waits for it to pass, and its estimate uses the measured speed.

    Raises:
        StateError: If the dataset has not been validated yet.
        ConfigError: If the plan linter flags the run's settings; nothing was submitted.
        CheckpointSaveError: If the model cannot be saved and reloaded as a checkpoint; nothing was submitted.
        QuickTestFailedError: If the quick test failed; the full run was not submitted.
        ApprovalRejectedError: If the gate did not approve; nothing was submitted.
    """
    experiment = ctx.experiment
    if Stage.VALIDATE not in experiment.completed_stages or not experiment.dataset_path:
        raise StateError(f"Cannot submit experiment {experiment.id!r} before its dataset is validated; call `validate_dataset` first.")
    latest = experiment.latest_run
    if latest is not None and latest.status in ACTIVE_RUN_STATUSES:
        return f"Run {latest.run_id} is already {latest.status} as job {latest.job_id}; call `monitor_run`."

    run = latest if latest is not None and latest.status == "pending" else _new_run(ctx)
    existing_jobs = ctx.backend.find_jobs(run_id=run.run_id)
    if existing_jobs:
        run.job_id = existing_jobs[-1]
        run.status = "submitted"
        ctx.record("run_reattached", run_id=run.run_id, job_id=run.job_id)
        return f"Re-attached run {run.run_id} to its job {run.job_id}."

    check_before_launch(ctx, run)
    if run.config.get("method") == "grpo":
        _dry_run_reward_functions(ctx, run)
    quick_test = run_quick_test(ctx, run)
    approve_submission(ctx, run, quick_test=quick_test)
    config_path = Path(run.output_dir) / "run_config.json"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(run.config, indent=2), encoding="utf-8")
    try:
        job_id = ctx.backend.submit_job(
            run_id=run.run_id,
            script=resource_dir("tools") / "train.py",
            config_path=config_path,
            workdir=Path(run.output_dir),
        )
    except JobMismatchError as err:
        # The backend cancelled the job, so the run ends here; leaving it pending would re-attach to that job.
        run.status = "cancelled"
        run.failure = Failure(kind="cancelled", message=str(err))
        ctx.record("run_cancelled", run_id=run.run_id, reason=str(err))
        raise
    run.job_id = job_id
    run.job_url = getattr(ctx.backend, "job_url", lambda _job_id: None)(job_id)
    run.status = "submitted"
    run.submitted_at = utc_now()
    run.log_path = str(Path(run.output_dir) / "train.log")
    logger.info("%s: submitted run %s as %s job %s", experiment.id, run.run_id, ctx.backend.name, job_id)
    ctx.record("run_submitted", run_id=run.run_id, job_id=job_id, backend=ctx.backend.name)
    where = f"job page {run.job_url}" if run.job_url else f"logs in {run.log_path}"
    message = f"Submitted run {run.run_id} as {ctx.backend.name} job {job_id}; {where}."
    ctx.echo(message)
    if ctx.backend.name == "local" and (warning := busy_machine_warning()):
        ctx.echo(warning)
    ctx.echo(f"Trackio dashboard: trackio show --project {run.trackio_project}")
    return message


def trackio_run_name(ctx: ExperimentContext, run_id: str) -> str:
    """Return the Trackio run name of `run_id`: the run id plus the experiment's creation time.

    Trackio keeps one database per project in a folder shared by every working folder, and the project is the
    experiment id, so two experiments with the same id in different `--output-dir`s would otherwise write to one
    run and read each other's metrics.
    """
    return f"{run_id}-{ctx.experiment.created_at:%Y%m%d-%H%M%S}"


def _training_threads() -> int:
    """Return `OMP_NUM_THREADS` when set, else every core: a 135M model trained 1.4x faster on 2 threads than 1."""
    requested = os.environ.get("OMP_NUM_THREADS", "")
    return int(requested) if requested.isdigit() and int(requested) > 0 else os.cpu_count() or 1


def _new_run(ctx: ExperimentContext) -> Run:
    """Create, store and return a pending run built from the plan, or from a policy verdict on the latest run."""
    experiment = ctx.experiment
    previous = experiment.latest_run
    verdict = previous.verdict if previous is not None else None
    if verdict is not None and verdict.action in ("extend", "resubmit") and not verdict.applied:
        return _follow_up_run(ctx, previous)
    plan = experiment.plan
    number = len(experiment.runs) + 1
    run_id = f"run-{number}"
    output_dir = ctx.folder / run_id
    hp = plan.hyperparameters
    config = {
        "run_id": run_id,
        "model_path": experiment.model_path,
        "base_model": plan.base_model,
        "dataset_path": experiment.dataset_path,
        "output_dir": str(output_dir),
        "method": plan.method,
        "max_steps": hp.max_steps,
        "num_train_epochs": hp.num_train_epochs,
        "per_device_train_batch_size": hp.per_device_train_batch_size,
        "gradient_accumulation_steps": hp.gradient_accumulation_steps,
        "learning_rate": hp.learning_rate,
        "lr_scheduler_type": hp.lr_scheduler_type,
        "warmup_ratio": hp.warmup_ratio,
        "max_length": hp.max_length,
        "lora": plan.lora.model_dump() if plan.lora else None,
        "logging_steps": hp.logging_steps,
        "save_steps": hp.save_steps,
        "save_total_limit": 3,
        "seed": hp.seed,
        "trackio_project": experiment.id,
        "trackio_run_name": trackio_run_name(ctx, run_id),
        "assistant_only_loss": False,
        "completion_only_loss": hp.completion_only_loss,
        "gradient_checkpointing": False,
        "train_sampling_strategy": "group_by_length" if hp.group_by_length else "random",
        "num_threads": _training_threads(),
        "hub_repo": plan.hub_repo,
        **_method_settings(plan),
    }
    run = Run(
        run_id=run_id,
        title=f"{plan.method.upper()} {'LoRA ' if plan.lora else ''}run {number}",
        config=config,
        backend=ctx.backend.name,
        hardware=plan.hardware,
        output_dir=str(output_dir),
        trackio_project=experiment.id,
        trackio_run=config["trackio_run_name"],
        estimated_minutes=estimate_training_minutes(plan),
    )
    experiment.runs.append(run)
    ctx.record("run_created", run_id=run_id)
    return run


def _dry_run_reward_functions(ctx: ExperimentContext, run: Run) -> None:
    """Call every reward function once as TRL will, so a broken one fails here and not inside the job.

    Raises:
        RewardFunctionError: If a function fails; nothing is submitted.
    """
    from ..rewards.dry_run import dry_run_for_run

    results = dry_run_for_run(run.config)
    adaptations = {result.name: result.adaptations for result in results if result.adaptations}
    ctx.record("reward_dry_run_passed", run_id=run.run_id, functions=[result.name for result in results],
               adaptations=adaptations)
    for name, notes in adaptations.items():
        # A decision, not only a journal event, so the report shows that the function received changed arguments.
        ctx.decide(by="system", action=f"adapt reward function {name}", reason="; ".join(notes), run_id=run.run_id)
        ctx.echo(f"Reward function {name} adapted: {'; '.join(notes)}.")


def _method_settings(plan) -> dict:
    """Return the run config keys that only DPO and GRPO read."""
    hp = plan.hyperparameters
    if plan.method == "dpo":
        return {"beta": hp.beta}
    if plan.method == "grpo":
        return {
            "beta": hp.beta,
            "num_generations": hp.num_generations,
            "max_completion_length": hp.max_completion_length,
            "temperature": hp.temperature,
            "reward_functions": list(plan.reward_functions),
            "adapt_reward_functions": plan.adapt_reward_functions,
        }
    return {}


def _follow_up_run(ctx: ExperimentContext, previous: Run) -> Run:
    """Create the run that a policy verdict asks for: a retry with changes, or a new schedule from the weights.

    The new run and the verdict's `applied` flag are saved together, so a restarted agent neither skips the
    follow-up nor creates it twice.

    Raises:
        StateError: If an extension finds no final checkpoint, or would train 0 steps.
    """
    from ..policy import Action, extension_config, resubmission_config

    experiment = ctx.experiment
    verdict = previous.verdict
    action = Action(verdict.action, verdict.parameters)
    number = len(experiment.runs) + 1
    run_id = f"run-{number}"
    output_dir = ctx.folder / run_id
    if verdict.action == "extend":
        final = next((c for c in reversed(previous.checkpoints) if Path(c.path).name == "final"), None)
        if final is None:
            raise StateError(f"Cannot extend {previous.run_id!r}: it has no final checkpoint to start from.")
        config, changes = extension_config(previous.config, Path(final.path), action)
    else:
        config, changes = resubmission_config(previous.config, action)
    config.update(run_id=run_id, output_dir=str(output_dir), trackio_run_name=trackio_run_name(ctx, run_id))
    run = Run(
        run_id=run_id,
        title=f"{previous.title.split(' run ')[0]} run {number} ({verdict.action} by rule {verdict.rule})",
        parent_run_id=previous.run_id,
        config=config,
        changes=changes,
        backend=ctx.backend.name,
        hardware=previous.hardware,
        output_dir=str(output_dir),
        trackio_project=previous.trackio_project,
        trackio_run=config["trackio_run_name"],
        estimated_minutes=previous.estimated_minutes,
    )
    experiment.runs.append(run)
    verdict.applied = True
    ctx.record("run_created", run_id=run_id, parent_run_id=previous.run_id, rule=verdict.rule)
    return run
