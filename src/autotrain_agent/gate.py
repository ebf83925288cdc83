"""The approval gate that `submit_run` passes before every submission: estimate, check the budget, ask, record.

Paid backends always pass it; the free local backend passes it only when the experiment requires approval. The
gate fails closed: without an approver, over the budget, or with any answer but an approval, nothing is submitted.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .approval import ApprovalDecision, ApprovalRequest
from .context import ExperimentContext
from .errors import ApprovalRejectedError, ConfigError
from .estimate import estimate_job
from .hardware import choose_flavor, load_price_table
from .model_size import resolve_parameter_count
from .quick_test_measurement import QuickTestMeasurement
from .state import ApprovalRecord, Run

logger = logging.getLogger(__name__)

# An `e` answer re-estimates and asks again; more rounds than this is a rejection, so a script cannot loop forever.
MAX_EDIT_ROUNDS = 5


def is_paid(backend) -> bool:
    """Return whether submitting to `backend` can cost money; only a backend that declares `is_free` is free."""
    return not getattr(backend, "is_free", False)


def approve_submission(ctx: ExperimentContext, run: Run, *, quick_test: QuickTestMeasurement | None = None) -> None:
    """Ask for approval of `run` and record the answer; return only when the submission may go ahead.

    On approval the run's config carries the approved flavor and timeout, and `run.estimated_cost_usd` counts as
    committed until the run ends. A `quick_test` that measured its speed on a GPU replaces the throughput model
    in the estimate, and its result is shown in the request.

    Raises:
        ApprovalRejectedError: If the budget is exceeded, no approver is set, or the approver does not approve.
    """
    experiment = ctx.experiment
    if not is_paid(ctx.backend) and not experiment.require_approval:
        return

    for _ in range(MAX_EDIT_ROUNDS):
        request = build_request(ctx, run, quick_test=quick_test)
        answer, approver = _review(ctx, request)
        if answer.action == "edit":
            try:
                _apply_edits(ctx, run, answer.edits)
            except ConfigError as err:
                ctx.echo(f"Edit not applied: {err}")
                continue
            ctx.decide(by="human", action=f"edit {run.run_id}", reason=answer.reason, **answer.edits)
            continue
        _record(ctx, request, answer, approver=approver)
        if answer.action != "approve":
            raise ApprovalRejectedError(f"Submission of run {run.run_id} was not approved: {answer.reason}. Nothing was submitted.")
        run.estimated_cost_usd = request.estimated_cost_usd
        run.hardware = request.flavor
        run.config.update(flavor=request.flavor, timeout=request.timeout, hub_repo=request.hub_repo, usd_per_hour=request.usd_per_hour)
        return
    _record(ctx, request, ApprovalDecision(action="reject", reason="too many edit rounds"), approver="system")
    raise ApprovalRejectedError(f"Submission of run {run.run_id} was edited {MAX_EDIT_ROUNDS} times without an approval; nothing was submitted.")


def approve_request(ctx: ExperimentContext, request: ApprovalRequest) -> None:
    """Ask for approval of a prepared `request` that cannot be edited, and record the answer.

    An `e` answer counts as a rejection, because nothing in the request is open to change.

    Raises:
        ApprovalRejectedError: If the budget is exceeded, no approver is set, or the approver does not approve.
    """
    answer, approver = _review(ctx, request)
    if answer.action == "edit":
        answer = ApprovalDecision(action="reject", reason="this request cannot be edited; answer y or n")
    _record(ctx, request, answer, approver=approver)
    if answer.action != "approve":
        raise ApprovalRejectedError(f"Submission of {request.run_id} was not approved: {answer.reason}. Nothing was submitted.")


def _review(ctx: ExperimentContext, request: ApprovalRequest) -> tuple[ApprovalDecision, str]:
    """Return the answer and who gave it: the budget check, the missing approver, or the approver itself."""
    left = request.budget_left_usd
    if left is not None and request.estimated_cost_usd > left:
        reason = f"estimated ${request.estimated_cost_usd:.2f} is over the ${left:.2f} budget left (spent plus committed counted)"
        return ApprovalDecision(action="reject", reason=reason), "budget"
    if ctx.approver is None:
        return ApprovalDecision(action="reject", reason="no approver is configured; pass --approve-under or run on a terminal"), "none"
    try:
        answer = ctx.approver.review(request)
    except Exception as err:  # noqa: BLE001 - the gate fails closed whatever an approver raises
        answer = ApprovalDecision(action="reject", reason=f"the approver raised {type(err).__name__}")
    if not isinstance(answer, ApprovalDecision):
        answer = ApprovalDecision(action="reject", reason=f"the approver returned {type(answer).__name__}, not an answer")
    return answer, ctx.approver.name


def _record(ctx: ExperimentContext, request: ApprovalRequest, answer: ApprovalDecision, *, approver: str) -> None:
    approved = answer.action == "approve"
    ctx.experiment.approvals.append(
        ApprovalRecord(
            run_id=request.run_id,
            approved=approved,
            approver=approver,
            reason=answer.reason,
            request=request.model_dump(mode="json"),
        )
    )
    logger.info("%s: run %s %s by %s: %s", request.experiment_id, request.run_id, "approved" if approved else "rejected", approver, answer.reason)
    ctx.record("approval", run_id=request.run_id, approved=approved, approver=approver)


def build_request(ctx: ExperimentContext, run: Run, *, quick_test: QuickTestMeasurement | None = None) -> ApprovalRequest:
    """Estimate `run` on the plan's flavor (or the cheapest that fits) and return the request to show."""
    experiment = ctx.experiment
    plan = experiment.plan
    num_rows = _count_rows(experiment)
    common = dict(
        experiment_id=experiment.id,
        run_id=run.run_id,
        backend=ctx.backend.name,
        model=plan.base_model,
        dataset=plan.dataset.reference,
        num_rows=num_rows,
        method=plan.method,
        lora=plan.lora is not None,
        hub_repo=plan.hub_repo,
        budget_usd=experiment.budget_usd,
        spent_usd=experiment.spent_usd,
        committed_usd=experiment.committed_usd,
        notes=[quick_test.describe()] if quick_test is not None else [],
    )
    if not is_paid(ctx.backend):
        return ApprovalRequest(
            **common,
            num_parameters=plan.num_parameters,
            flavor=plan.hardware,
            usd_per_hour=0.0,
            price_source="free local backend",
            estimated_minutes=plan.estimated_minutes or 0.0,
            estimated_cost_usd=0.0,
            timeout="none",
        )

    if plan.num_parameters is None:
        plan.num_parameters, plan.parameter_source = resolve_parameter_count(plan.base_model)
    table = load_price_table(cache_dir=ctx.settings.cache_dir)
    hp = plan.hyperparameters
    # "cpu" is the plan's default and means no flavor was chosen yet. Any other name must be a known flavor.
    if plan.hardware != "cpu":
        flavor = table.flavor(plan.hardware)
    else:
        flavor, _, reason = choose_flavor(
            table, plan.num_parameters, method=plan.method, use_lora=plan.lora is not None,
            max_length=hp.max_length, per_device_batch_size=hp.per_device_train_batch_size,
        )
        plan.hardware = flavor.name
        plan.reasons.append(reason)
    tokens_per_s = quick_test.tokens_per_s_on(flavor, table) if quick_test is not None else None
    estimate = estimate_job(plan, flavor, num_parameters=plan.num_parameters, num_rows=num_rows or 0, tokens_per_s=tokens_per_s)
    return ApprovalRequest(
        **common,
        num_parameters=plan.num_parameters,
        flavor=flavor.name,
        usd_per_hour=flavor.usd_per_hour,
        price_source=table.describe_source(),
        estimated_minutes=estimate.minutes,
        estimated_cost_usd=estimate.cost_usd,
        timeout=estimate.timeout,
    )


def _count_rows(experiment) -> int | None:
    rows = (experiment.validation or {}).get("num_rows")
    if rows is not None:
        return int(rows)
    if experiment.dataset_path and Path(experiment.dataset_path).is_file():
        with open(experiment.dataset_path, encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())
    return None


def _apply_edits(ctx: ExperimentContext, run: Run, edits: dict[str, str]) -> None:
    """Apply console edits to the plan and the pending run's config, so the next estimate sees them.

    Raises:
        ConfigError: If a value does not parse, is out of range, or names an unknown flavor.
    """
    plan = ctx.experiment.plan
    for field, value in edits.items():
        if field == "flavor":
            load_price_table(cache_dir=ctx.settings.cache_dir).flavor(value)
            plan.hardware = value
        elif field == "hub_repo":
            plan.hub_repo = value
        else:
            try:
                number = float(value) if field in ("learning_rate", "num_train_epochs") else int(value)
                setattr(plan.hyperparameters, field, number)
            except ValueError as err:  # pydantic's ValidationError is a ValueError too
                raise ConfigError(f"Invalid value for `{field}`: {value!r}.") from err
            run.config[field] = number
