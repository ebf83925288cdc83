"""The `monitor_run` tool: follow a job to its end, then store its status, metrics and checkpoints."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from ..context import ExperimentContext
from ..errors import BackendError
from ..state import Checkpoint, Failure, Stage, utc_now

logger = logging.getLogger(__name__)


def monitor_run(ctx: ExperimentContext, run_id: str) -> str:
    """Follow run `run_id` with a progress bar until its job ends, then record the outcome.

    A failed job is recorded and reported in the returned summary, not raised.

    Raises:
        BackendError: If the run was never submitted.
    """
    from ..monitor_metrics import follow_job

    experiment = ctx.experiment
    run = experiment.run(run_id)
    if run.job_id is None:
        raise BackendError(f"Run {run_id!r} has no job yet; call `submit_run` first.")
    if run.status in ("succeeded", "failed", "cancelled"):
        return f"Run {run_id} already ended: {run.status}."

    run.status = "running"
    ctx.record("run_monitoring", run_id=run_id)
    status = follow_job(
        ctx.backend,
        run.job_id,
        progress_path=Path(run.output_dir) / "progress.json",
        poll_interval_s=ctx.settings.poll_interval_s,
    )

    run.finished_at = utc_now()
    if run.submitted_at:
        run.actual_minutes = round((run.finished_at - run.submitted_at).total_seconds() / 60, 2)
    run.metrics_summary = _summarize_metrics(ctx, run)
    run.checkpoints = _find_checkpoints(Path(run.output_dir))
    if status.stage == "succeeded":
        run.status = "succeeded"
        ctx.record("run_succeeded", run_id=run_id)
        ctx.complete_stage(Stage.TRAIN, run_id=run_id)
        loss = run.metrics_summary.get("final_loss")
        summary = f"Run {run_id} succeeded in {run.actual_minutes} min; final loss {loss}."
    else:
        run.status = "cancelled" if status.stage == "cancelled" else "failed"
        kind = status.failure_kind if status.failure_kind in ("oom", "nan", "timeout", "crash", "killed") else "crash"
        if status.stage == "cancelled":
            kind = "cancelled"
        run.failure = Failure(kind=kind, message=status.message or "no error message")
        ctx.record("run_failed", run_id=run_id, kind=kind)
        tail = ctx.backend.fetch_job_logs(run.job_id, tail_lines=5)
        summary = f"Run {run_id} {run.status} ({kind}): {run.failure.message}. Last log lines:\n{tail}"
    ctx.echo(summary)
    return summary


def _summarize_metrics(ctx: ExperimentContext, run) -> dict[str, float]:
    """Return the run's final and minimum loss by step, from Trackio or, failing that, the job's own metrics file."""
    from ..monitor_metrics import read_trackio_metrics

    losses: list[tuple[int, float]] = []
    try:
        metrics = read_trackio_metrics(run.trackio_project, run.trackio_run)
        losses = metrics.get("train/loss") or metrics.get("loss") or []
    except Exception as err:  # noqa: BLE001 - the tracker is optional; monitoring must not break the run
        logger.warning("%s: Trackio metrics unreadable for %s: %s", ctx.experiment.id, run.run_id, err)
    if not losses:
        losses = _losses_from_metrics_file(Path(run.output_dir) / "metrics.jsonl")
        if losses:
            ctx.experiment.warnings.append(f"{run.run_id}: Trackio metrics were unavailable; losses come from metrics.jsonl")
    finite = [(step, value) for step, value in sorted(losses) if math.isfinite(value)]
    if not finite:
        return {}
    return {
        "final_loss": round(finite[-1][1], 4),
        "min_loss": round(min(value for _, value in finite), 4),
        "first_loss": round(finite[0][1], 4),
        "steps": float(finite[-1][0]),
    }


def _losses_from_metrics_file(path: Path) -> list[tuple[int, float]]:
    if not path.is_file():
        return []
    losses = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in record and "step" in record:
            losses.append((int(record["step"]), float(record["loss"])))
    return losses


def _find_checkpoints(output_dir: Path) -> list[Checkpoint]:
    """List `checkpoint-N` folders by step, then the `final` folder as the last checkpoint."""
    checkpoints = []
    for folder in sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])):
        checkpoints.append(Checkpoint(step=int(folder.name.split("-")[-1]), path=str(folder),
                                      eval_loss=_last_eval_loss(folder / "trainer_state.json")))
    final = output_dir / "final"
    if final.is_dir():
        summary_path = output_dir / "train_summary.json"
        step = checkpoints[-1].step if checkpoints else 0
        if summary_path.is_file():
            step = int(json.loads(summary_path.read_text(encoding="utf-8")).get("global_step", step))
        eval_loss = checkpoints[-1].eval_loss if checkpoints and checkpoints[-1].step == step else None
        checkpoints.append(Checkpoint(step=step, path=str(final), eval_loss=eval_loss))
    return checkpoints


def _last_eval_loss(trainer_state_path: Path) -> float | None:
    """Return the last `eval_loss` in a transformers `trainer_state.json`, or `None` when none was logged."""
    if not trainer_state_path.is_file():
        return None
    history = json.loads(trainer_state_path.read_text(encoding="utf-8")).get("log_history", [])
    losses = [entry["eval_loss"] for entry in history if "eval_loss" in entry]
    return float(losses[-1]) if losses else None
