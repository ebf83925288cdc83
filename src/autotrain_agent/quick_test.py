"""The quick test run before a paid full run: a few steps on a sample of the rows, to catch script, data and
memory errors for cents, and to measure the training speed that the full run's estimate then uses.

It runs on this machine when the model is a local folder small enough to train a few steps on its CPU, and
otherwise on the cheapest paid flavor that fits, after its own approval. It runs once per experiment: a passed
quick test is reused for later runs, and a failed one is tried again, as a new job, on the next submission.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from ._resources import resource_dir
from .approval import ApprovalRequest
from .backends.base import is_terminal
from .context import ExperimentContext
from .errors import QuickTestFailedError
from .estimate import CPU_TRAIN_TOKENS_PER_S, REFERENCE_PARAMETERS, estimate_job, format_timeout, training_tokens
from .gate import approve_request, is_paid
from .hardware import choose_flavor, load_price_table
from .quick_test_measurement import QuickTestMeasurement
from .state import Run

logger = logging.getLogger(__name__)

DEFAULT_QUICK_TEST_SAMPLES = 100
MAX_QUICK_TEST_STEPS = 5
# A paid quick test's timeout covers the image pull and model download, which the step count does not predict.
MIN_PAID_TIMEOUT_MINUTES = 20.0
# A local quick test must finish in this many minutes by the CPU throughput model, or it goes to the paid backend.
MAX_LOCAL_MINUTES = 10.0
LOCAL_TIMEOUT_S = 30 * 60
QUICK_TEST_FOLDER = "quick-test"
RESULT_FILE = "result.json"
# `tools/train.py` logs this line, followed by the end-of-run metrics as JSON, when training ends.
SUMMARY_LOG_PREFIX = "Training summary (train_loss is the mean over the run): "


def run_quick_test(ctx: ExperimentContext, run: Run, *, local_backend=None) -> QuickTestMeasurement | None:
    """Run the quick test before `run` when it is due, and return the passed measurement to estimate with.

    Returns the stored measurement without a new job when a quick test passed before, and `None` when the
    plan has no quick test or the backend is free.

    Args:
        ctx: The experiment.
        run: The full run that waits for the quick test.
        local_backend: Backend for a quick test on this machine; default a `LocalBackend` in the experiment folder.

    Raises:
        ApprovalRejectedError: If a paid quick test is not approved; nothing was submitted.
        QuickTestFailedError: If the quick test job failed; the full run is not submitted.
    """
    if ctx.experiment.plan.quick_test_samples is None or not is_paid(ctx.backend):
        return None
    previous = load_measurement(ctx)
    if previous is not None and previous.succeeded:
        return previous

    attempt = previous.attempt + 1 if previous is not None else 1
    quick_test_id = f"{run.run_id}-quick-test" + (f"-{attempt}" if attempt > 1 else "")
    folder = ctx.folder / QUICK_TEST_FOLDER / quick_test_id
    config = _quick_test_config(ctx, run, quick_test_id=quick_test_id, folder=folder)
    runs_locally = _fits_locally(ctx, config)
    backend = _local_backend(ctx, local_backend) if runs_locally else ctx.backend
    # A job that a stopped agent started is re-attached before anything is approved, so it is never paid twice.
    job_id, config = _find_started_job(ctx, backend, config, folder=folder)
    if job_id is None:
        if runs_locally:
            ctx.decide(by="system", action=f"quick test {quick_test_id} on this machine", reason="the model is a local folder that trains a few steps on this CPU")
        else:
            _approve_paid_quick_test(ctx, config)
        job_id = _submit(ctx, backend, config, folder=folder)

    measurement, status = _follow(ctx, backend, job_id, config, run=run, attempt=attempt)
    _record(ctx, measurement)
    if not measurement.succeeded:
        raise QuickTestFailedError(
            f"The quick test of run {run.run_id} ({measurement.samples} samples, {measurement.steps} steps, job "
            f"{job_id} on {measurement.flavor}) ended {status.stage}: {status.message or 'no error line'}. The full run "
            f"was not submitted; fix the data or settings and run again, or pass `--no-quick-test`."
        )
    return measurement


def _follow(ctx: ExperimentContext, backend, job_id: str, config: dict, *, run: Run, attempt: int):
    """Wait for the quick test's job to end; return its measurement and final status."""
    started_s = time.monotonic()
    status = _wait_for_job(ctx, backend, job_id, timeout_s=_timeout_s(config))
    elapsed_minutes = (time.monotonic() - started_s) / 60
    measurement = QuickTestMeasurement(
        run_id=run.run_id,
        quick_test_id=config["run_id"],
        attempt=attempt,
        job_id=job_id,
        backend=backend.name,
        flavor=config.get("flavor") or "cpu",
        samples=config["samples"],
        steps=config["max_steps"],
        succeeded=status.stage == "succeeded",
        tokens_per_s=read_tokens_per_s(backend.fetch_job_logs(job_id)),
        message=status.message,
        cost_usd=round(elapsed_minutes / 60 * config.get("usd_per_hour", 0.0), 2),
    )
    return measurement, status


def load_measurement(ctx: ExperimentContext) -> QuickTestMeasurement | None:
    """Return the experiment's latest quick test measurement, or `None` before the first one ends."""
    path = ctx.folder / QUICK_TEST_FOLDER / RESULT_FILE
    try:
        return QuickTestMeasurement.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_tokens_per_s(logs: str) -> float | None:
    """Return the training throughput from the end-of-run summary line of `tools/train.py` in a job's logs."""
    for line in reversed(logs.splitlines()):
        index = line.find(SUMMARY_LOG_PREFIX)
        if index < 0:
            continue
        try:
            summary = json.loads(line[index + len(SUMMARY_LOG_PREFIX):])
        except ValueError:
            return None
        tokens, runtime_s = summary.get("tokens_seen"), summary.get("train_runtime")
        if isinstance(tokens, (int, float)) and isinstance(runtime_s, (int, float)) and tokens > 0 and runtime_s > 0:
            return round(tokens / runtime_s, 1)
        return None
    return None


def _quick_test_config(ctx: ExperimentContext, run: Run, *, quick_test_id: str, folder: Path) -> dict:
    """Return the full run's config cut down to the quick test: its sample rows, a few steps, one checkpoint."""
    experiment = ctx.experiment
    samples = experiment.plan.quick_test_samples
    rows_path = folder / "rows.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    written = _write_sample_rows(Path(experiment.dataset_path), rows_path, count=samples)
    effective_batch = run.config["per_device_train_batch_size"] * run.config["gradient_accumulation_steps"]
    steps = max(1, min(MAX_QUICK_TEST_STEPS, math.ceil(written / effective_batch)))
    # The quick test saves one checkpoint, so a save error shows here too. It pushes no checkpoint, because the
    # output repository receives only the full run's, but a Jobs backend uploads its rows beside the full run's.
    return {
        **run.config,
        "run_id": quick_test_id,
        "dataset_path": str(rows_path),
        "dataset_upload_repo": _dataset_repo(run.config.get("hub_repo") or experiment.plan.hub_repo),
        "output_dir": str(folder / "output"),
        "max_steps": steps,
        "save_steps": steps,
        "save_total_limit": 1,
        "logging_steps": 1,
        "hub_repo": None,
        "trackio_run_name": f"{run.config.get('trackio_run_name') or run.run_id}-quick-test",
        "samples": written,
    }


def _dataset_repo(hub_repo: str | None) -> str | None:
    return f"{hub_repo}-data" if hub_repo else None


def _write_sample_rows(source: Path, target: Path, *, count: int) -> int:
    """Copy the first `count` non-empty lines of the prepared JSONL file; return how many were written."""
    written = 0
    with open(source, encoding="utf-8") as rows, open(target, "w", encoding="utf-8") as out:
        for line in rows:
            if written >= count:
                break
            if line.strip():
                out.write(line if line.endswith("\n") else line + "\n")
                written += 1
    return written


def _local_backend(ctx: ExperimentContext, local_backend=None):
    if local_backend is not None:
        return local_backend
    from .backends.local import LocalBackend

    return LocalBackend(ctx.folder / QUICK_TEST_FOLDER / "jobs")


def _fits_locally(ctx: ExperimentContext, config: dict) -> bool:
    """Return whether the model is a local folder whose quick test takes under `MAX_LOCAL_MINUTES` on this CPU."""
    model_path = ctx.experiment.model_path
    params = ctx.experiment.plan.num_parameters
    if not model_path or not Path(model_path).is_dir() or not params:
        return False
    tokens = config["max_steps"] * config["per_device_train_batch_size"] * config["gradient_accumulation_steps"] * config["max_length"]
    minutes = tokens / (CPU_TRAIN_TOKENS_PER_S * REFERENCE_PARAMETERS / params) / 60
    return minutes <= MAX_LOCAL_MINUTES


def _approve_paid_quick_test(ctx: ExperimentContext, config: dict) -> None:
    """Choose the cheapest flavor that fits, estimate the quick test on it, ask for approval and set the config."""
    experiment = ctx.experiment
    plan = experiment.plan
    hp = plan.hyperparameters
    table = load_price_table(cache_dir=ctx.settings.cache_dir)
    flavor, _, reason = choose_flavor(
        table, plan.num_parameters, method=plan.method, use_lora=plan.lora is not None,
        max_length=hp.max_length, per_device_batch_size=hp.per_device_train_batch_size,
    )

    quick_plan = plan.model_copy(deep=True)
    quick_plan.hyperparameters.max_steps = config["max_steps"]
    estimate = estimate_job(quick_plan, flavor, num_parameters=plan.num_parameters, num_rows=config["samples"])
    timeout_minutes = max(estimate.minutes * 1.5, MIN_PAID_TIMEOUT_MINUTES)

    request = ApprovalRequest(
        experiment_id=experiment.id,
        run_id=config["run_id"],
        backend=ctx.backend.name,
        model=plan.base_model,
        num_parameters=plan.num_parameters,
        dataset=plan.dataset.reference,
        num_rows=config["samples"],
        method=plan.method,
        lora=plan.lora is not None,
        flavor=flavor.name,
        usd_per_hour=flavor.usd_per_hour,
        price_source=table.describe_source(),
        estimated_minutes=estimate.minutes,
        estimated_cost_usd=round(timeout_minutes / 60 * flavor.usd_per_hour, 2),
        timeout=format_timeout(timeout_minutes * 60),
        hub_repo=None,
        budget_usd=experiment.budget_usd,
        spent_usd=experiment.spent_usd,
        committed_usd=experiment.committed_usd,
        notes=[
            f"quick test before the full run: {config['samples']} samples, {config['max_steps']} steps on the "
            f"cheapest flavor that fits ({reason}); the cost shown is its whole timeout",
            f"{training_tokens(quick_plan, num_rows=config['samples'])} tokens to train",
        ],
    )

    approve_request(ctx, request)
    config.update(flavor=flavor.name, timeout=request.timeout, usd_per_hour=flavor.usd_per_hour)


def _find_started_job(ctx: ExperimentContext, backend, config: dict, *, folder: Path) -> tuple[str | None, dict]:
    """Return the job that a stopped agent started for this quick test, with the config it was submitted with.

    Returns `None` and `config` unchanged when the backend has no such job.
    """
    existing = backend.find_jobs(run_id=config["run_id"])
    if not existing:
        return None, config
    try:
        config = json.loads((folder / "run_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("%s: quick test %s has no readable saved config; its cost is not counted", ctx.experiment.id, config["run_id"])
    ctx.record("quick_test_reattached", run_id=config["run_id"], job_id=existing[-1])
    return existing[-1], config


def _submit(ctx: ExperimentContext, backend, config: dict, *, folder: Path) -> str:
    """Write the quick test's config and submit its job; return the job id."""
    quick_test_id = config["run_id"]
    config_path = folder / "run_config.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    job_id = backend.submit_job(run_id=quick_test_id, script=resource_dir("tools") / "train.py", config_path=config_path, workdir=folder)
    logger.info("%s: submitted quick test %s as %s job %s", ctx.experiment.id, quick_test_id, backend.name, job_id)
    ctx.record("quick_test_submitted", run_id=quick_test_id, job_id=job_id, backend=backend.name)
    ctx.echo(f"Quick test {quick_test_id}: {config['samples']} samples, {config['max_steps']} steps, {backend.name} job {job_id}.")
    return job_id


def _timeout_s(config: dict) -> float:
    timeout = config.get("timeout")
    return int(str(timeout).removesuffix("m")) * 60 if timeout else LOCAL_TIMEOUT_S


def _wait_for_job(ctx: ExperimentContext, backend, job_id: str, *, timeout_s: float):
    """Poll the job until its stage is terminal; a job still running after `timeout_s` is cancelled and failed."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = backend.inspect_job(job_id)
        if is_terminal(status.stage):
            return status
        if time.monotonic() > deadline:
            backend.cancel_job(job_id)
            return status.model_copy(update={"stage": "failed", "message": f"still {status.stage} after {timeout_s:.0f} s"})
        time.sleep(ctx.settings.poll_interval_s)


def _record(ctx: ExperimentContext, measurement: QuickTestMeasurement) -> None:
    """Store the measurement, count its cost as spent, and record a decision with its numbers."""
    folder = ctx.folder / QUICK_TEST_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RESULT_FILE).write_text(measurement.model_dump_json(indent=2), encoding="utf-8")
    ctx.experiment.spent_usd = round(ctx.experiment.spent_usd + measurement.cost_usd, 2)
    outcome = "passed" if measurement.succeeded else "failed"
    ctx.decide(
        by="system",
        action=f"quick test {measurement.quick_test_id} {outcome}",
        reason=measurement.describe(),
        **measurement.model_dump(exclude={"run_id", "quick_test_id"}),
    )
