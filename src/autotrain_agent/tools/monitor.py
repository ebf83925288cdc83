"""The `monitor_run` tool: follow a job, apply policy rules to its live metrics, then store the outcome.

While the job runs, each poll reads only the metric rows logged since the last poll and evaluates the policy's
`running` rules. Once the job ends, the `end` rules evaluate the final metrics and the failure, if any. A verdict other than
`continue` is stored on the run and as a decision, so a restarted agent acts on it exactly once. A tracker that
cannot be read never ends the run: the watcher falls back to the job's own `metrics.jsonl` and records a warning.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from ..context import ExperimentContext
from ..errors import BackendError
from ..notify import notify
from ..policy import Observation, Policy, Verdict, classify_failure_phase, load_policy
from ..policy.result_actions import apply_result_action
from ..state import Checkpoint, Failure, PolicyVerdict, Run, Stage, utc_now

logger = logging.getLogger(__name__)

FOLLOW_UP_ACTIONS = ("extend", "resubmit")
"""Verdict actions after which the planner submits a new run instead of completing training."""


def monitor_run(ctx: ExperimentContext, run_id: str) -> str:
    """Follow run `run_id` until its job ends or a policy rule stops it, then record the outcome.

    A failed job is recorded and reported in the returned summary, not raised. A rule that stops, extends or
    resubmits while the job runs cancels the job first.

    Args:
        ctx: The experiment context.
        run_id: The run to follow, as returned by `submit_run`.

    Raises:
        BackendError: If the run was never submitted.
        PolicyError: If a user rule file is invalid.
    """
    from ..monitor_metrics import follow_job

    experiment = ctx.experiment
    run = experiment.run(run_id)
    if run.job_id is None:
        raise BackendError(f"Run {run_id!r} has no job yet; call `submit_run` first.")
    if run.status in ("succeeded", "failed", "cancelled"):
        return f"Run {run_id} already ended: {run.status}."

    watcher = RunWatcher(ctx, run, load_policy([Path(p) for p in experiment.policy_files]))
    run.status = "running"
    ctx.record("run_monitoring", run_id=run_id)
    if run.verdict is None:
        status = follow_job(
            ctx.backend,
            run.job_id,
            progress_path=Path(run.output_dir) / "progress.json",
            poll_interval_s=ctx.settings.poll_interval_s,
            on_poll=watcher.poll,
        )
    # A verdict saved while the job ran (possibly by an agent that was killed right after) ends the job here.
    if run.verdict is not None and run.verdict.phase == "running":
        ctx.backend.cancel_job(run.job_id)
    status = ctx.backend.inspect_job(run.job_id)

    run.finished_at = utc_now()
    if run.submitted_at:
        run.actual_minutes = round((run.finished_at - run.submitted_at).total_seconds() / 60, 2)
    _record_cost(ctx, run)
    run.checkpoints = _find_checkpoints(Path(run.output_dir))
    watcher.read_metrics()
    watcher.check_completeness()
    _set_job_outcome(run, status)
    run.metrics_summary = _summarize_losses(watcher.observation_series("loss"))
    # The end verdict and the job's outcome are saved together, so a restarted agent never loads one without the other.
    if run.verdict is None:
        watcher.evaluate(phase="end", job_state=run.status)
    apply_result_action(ctx, run)
    ctx.record(f"run_{run.status}", run_id=run.run_id, kind=run.failure.kind if run.failure else None)
    return _finish(ctx, run)


class RunWatcher:
    """Holds one run's metric series as they arrive and turns policy verdicts into stored decisions."""

    def __init__(self, ctx: ExperimentContext, run: Run, policy: Policy):
        from ..monitor_metrics import MetricsCursor

        self.ctx = ctx
        self.run = run
        self.policy = policy
        self.cursor = MetricsCursor(run.trackio_project, run.trackio_run)
        self.series: dict[str, list[tuple[int, float]]] = {}
        """Trackio points by metric, sorted by step."""
        self.local_series: dict[str, list[tuple[int, float]]] = {}
        """Points from the job's own `metrics.jsonl`, by metric, sorted by step."""
        self.local_offset = 0
        self.finite_series: dict = {}
        """Running extremes of each series, carried from poll to poll (see `Observation.finite_series`)."""
        self.tracker_failed = False
        self.progress: dict = {}

    def poll(self, status, progress: dict | None) -> bool:
        """Read new metrics, evaluate the `running` rules, and return whether to stop following the job."""
        if self.run.verdict is not None:
            return True
        self.progress = progress or self.progress
        self.read_metrics()
        verdict = self.evaluate(phase="running", job_state="running")
        return verdict is not None

    def read_metrics(self) -> None:
        """Add the rows logged since the last read, from Trackio and from the job's local `metrics.jsonl`."""
        self._read_local_copy()
        if self.tracker_failed:
            return
        try:
            new_points = self.cursor.read_new()
        except Exception as err:  # noqa: BLE001 - any tracker error degrades monitoring, never the run
            self.tracker_failed = True
            self._degrade(f"Trackio could not be read ({type(err).__name__}: {err}); rules use the job's metrics.jsonl")
            return
        for name, points in new_points.items():
            _merge_points(self.series.setdefault(name, []), points)

    def observation_series(self, metric: str) -> list[tuple[int, float]]:
        """Return the points of `metric` from Trackio, or from the local copy when Trackio has none."""
        return _points_of(self.series, metric) or _points_of(self.local_series, metric)

    def check_completeness(self) -> None:
        """Compare the loss points stored in Trackio with those the job logged locally, and record any gap."""
        tracked = len(_points_of(self.series, "loss"))
        logged = len(_points_of(self.local_series, "loss"))
        if logged and tracked < logged and not self.tracker_failed:
            self._degrade(f"Trackio holds {tracked} of the {logged} loss points the job logged; rules used the local copy")

    def evaluate(self, *, phase: str, job_state: str) -> Verdict | None:
        """Evaluate the policy on the current series; store and return a verdict other than `continue`."""
        observation = self._observe(phase=phase, job_state=job_state)
        verdict = self.policy.evaluate(observation, times_fired=_times_fired(self.ctx))
        if verdict is None or verdict.action.type == "continue":
            return None
        self.run.verdict = PolicyVerdict(
            rule=verdict.rule,
            action=verdict.action.type,
            parameters=verdict.action.parameters,
            step=verdict.step,
            phase=phase,  # type: ignore[arg-type]
            evidence=_json_safe(verdict.evidence),
            description=verdict.description,
        )
        logger.info("%s: rule %s decided %s for %s at step %d", self.ctx.experiment.id, verdict.rule, verdict.action.type, self.run.run_id, verdict.step)
        self.ctx.decide(
            by="policy",
            action=f"{verdict.action.type} {self.run.run_id}" + _format_parameters(verdict.action.parameters),
            reason=f"rule {verdict.rule} at step {verdict.step}: {verdict.description or 'its conditions held'}",
            rule=verdict.rule,
            run_id=self.run.run_id,
            step=verdict.step,
            seen=_json_safe(verdict.evidence),
        )
        return verdict

    def _observe(self, *, phase: str, job_state: str) -> Observation:
        metrics = {**self.local_series, **{name: points for name, points in self.series.items() if points}}
        steps = [points[-1][0] for points in metrics.values() if points]
        config = self.run.config
        failure = self.run.failure
        return Observation(
            metrics=metrics,
            phase=phase,  # type: ignore[arg-type]
            step=max([*steps, int(self.progress.get("step") or 0)]),
            max_steps=self.progress.get("max_steps") or config.get("max_steps"),
            epoch=self.progress.get("epoch"),
            job_state=job_state,
            failure_kind=failure.kind if failure else None,
            failure_phase=classify_failure_phase(failure.message) if failure and failure.kind == "oom" else None,
            method=config.get("method", "sft"),
            per_device_train_batch_size=int(config.get("per_device_train_batch_size", 1)),
            gradient_checkpointing=bool(config.get("gradient_checkpointing", False)),
            budget_left_minutes=_budget_left_minutes(self.ctx, self.run),
            runs_left=self.ctx.experiment.plan.max_runs - len(self.ctx.experiment.runs),
            finite_series=self.finite_series,
        )

    def _read_local_copy(self) -> None:
        path = Path(self.run.output_dir) / "metrics.jsonl"
        try:
            with open(path, "rb") as metrics_file:
                metrics_file.seek(self.local_offset)
                chunk = metrics_file.read()
        except OSError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.local_offset += len(complete)
        new_points: dict[str, list[tuple[int, float]]] = {}
        for line in complete.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                continue
            for name, value in record.items():
                if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    new_points.setdefault(name, []).append((record["step"], float(value)))
        for name, points in new_points.items():
            _merge_points(self.local_series.setdefault(name, []), sorted(dict(points).items()))

    def _degrade(self, message: str) -> None:
        experiment = self.ctx.experiment
        logger.warning("%s: %s: %s", experiment.id, self.run.run_id, message)
        experiment.metrics_degraded = True
        experiment.warnings.append(f"{self.run.run_id}: metrics degraded: {message}")
        self.ctx.record("metrics_degraded", run_id=self.run.run_id)


def _points_of(source: dict[str, list[tuple[int, float]]], metric: str) -> list[tuple[int, float]]:
    for name in (metric, f"train/{metric}"):
        if source.get(name):
            return source[name]
    return []


def _merge_points(series: list[tuple[int, float]], new_points: list[tuple[int, float]]) -> None:
    """Add step-sorted `new_points` to the step-sorted `series`; a step logged again keeps its later value.

    New points usually come after the last known step and are appended, so a poll costs no more on a long run.
    """
    if not new_points:
        return
    if not series or new_points[0][0] > series[-1][0]:
        series.extend(new_points)
        return
    merged = dict(series)
    merged.update(new_points)
    series[:] = sorted(merged.items())


def _set_job_outcome(run: Run, status) -> None:
    if status.stage == "succeeded":
        run.status = "succeeded"
        return
    run.status = "cancelled" if status.stage == "cancelled" else "failed"
    kind = status.failure_kind if status.failure_kind in ("oom", "nan", "timeout", "crash", "killed") else "crash"
    if status.stage == "cancelled":
        kind = "cancelled"
    message = status.message or "no error message"
    if run.verdict is not None:
        message = f"stopped by rule {run.verdict.rule} at step {run.verdict.step}"
    run.failure = Failure(kind=kind, message=message)


def _finish(ctx: ExperimentContext, run: Run) -> str:
    """Complete the training stage unless a verdict requests a follow-up run, and return the tool's summary."""
    verdict = run.verdict
    follow_up = verdict is not None and verdict.action in FOLLOW_UP_ACTIONS
    keeps_result = verdict is not None and verdict.action == "stop" and verdict.parameters.get("evaluate") and run.checkpoints
    if (run.status == "succeeded" and not follow_up) or keeps_result:
        ctx.complete_stage(Stage.TRAIN, run_id=run.run_id)

    loss = run.metrics_summary.get("final_loss")
    summary = f"Run {run.run_id} {run.status} after {run.actual_minutes} min; final loss {loss}."
    if run.failure is not None and verdict is None:
        tail = ctx.backend.fetch_job_logs(run.job_id, tail_lines=5)
        summary = f"Run {run.run_id} {run.status} ({run.failure.kind}): {run.failure.message}." + (f" Last log lines:\n{tail}" if tail else "")
    if verdict is not None:
        if run.failure is not None:
            summary = f"Run {run.run_id} {run.status} after {run.actual_minutes} min."
        summary += f" Rule {verdict.rule} decided {verdict.action} at step {verdict.step}."
        if verdict.description:
            summary += f" {verdict.description}"
        if verdict.action == "stop":
            notify(ctx, "policy_stop", summary)
    elif run.status != "succeeded":
        notify(ctx, "run_failed", summary)
    ctx.echo(summary)
    return summary


def _record_cost(ctx: ExperimentContext, run) -> None:
    """Move a paid run's cost from committed to spent: wall time since submission times the approved price.

    Time spent scheduling is counted too, so the spent amount errs high and the budget stays safe.
    """
    price = run.config.get("usd_per_hour")
    if not price or run.actual_minutes is None:
        return
    run.cost_usd = round(run.actual_minutes / 60 * price, 2)
    ctx.experiment.spent_usd = round(ctx.experiment.spent_usd + run.cost_usd, 2)


def _times_fired(ctx: ExperimentContext) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in ctx.experiment.runs:
        if run.verdict is not None:
            counts[run.verdict.rule] = counts.get(run.verdict.rule, 0) + 1
    return counts


def _budget_left_minutes(ctx: ExperimentContext, current: Run) -> float | None:
    budget = ctx.experiment.plan.budget_minutes
    if budget is None:
        return None
    spent = sum(run.actual_minutes or 0.0 for run in ctx.experiment.runs if run is not current)
    if current.submitted_at is not None:
        spent += (utc_now() - current.submitted_at).total_seconds() / 60
    return budget - spent


def _format_parameters(parameters: dict) -> str:
    return f" ({', '.join(f'{key}={value}' for key, value in parameters.items())})" if parameters else ""


def _json_safe(values: dict) -> dict:
    """Replace NaN and infinities by strings, so the state stays valid JSON."""
    return {key: (str(value) if isinstance(value, float) and not math.isfinite(value) else value) for key, value in values.items()}


def _summarize_losses(losses: list[tuple[int, float]]) -> dict[str, float]:
    """Return the final, minimum and first finite loss by step, and the last step."""
    finite = [(step, value) for step, value in losses if math.isfinite(value)]
    if not finite:
        return {}
    return {
        "final_loss": round(finite[-1][1], 4),
        "min_loss": round(min(value for _, value in finite), 4),
        "first_loss": round(finite[0][1], 4),
        "steps": float(finite[-1][0]),
    }


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
