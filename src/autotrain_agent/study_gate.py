"""Approve a study as a whole before any member runs, and let each member's first run use that approval.

The summed estimate of all members must fit the budget, and one decision covers them all. Each member still
passes the ordinary gate at submission; `StudyMemberApprover` approves a member's first run there when its fresh
estimate is within the approved one, and hands every other request (policy retries, extensions, a higher estimate)
to the approver the user configured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn

from .approval import ApprovalDecision, ApprovalRequest, Approver
from .errors import ApprovalRejectedError
from .state import ApprovalRecord
from .study import Study

logger = logging.getLogger(__name__)

# A member's estimate at submission may exceed the approved one by this fraction (or $0.01) and still count as
# approved: validation drops rows and sizes the run more exactly than the estimate made before anything ran.
APPROVED_ESTIMATE_MARGIN = 0.10
STUDY_RUN_ID = "all members"


class StudyApprovalRequest(ApprovalRequest):
    """The request for a whole study: summed time and cost, with one line per member."""

    member_lines: list[str]
    """One line per member: label, model, dataset, method, flavor, estimated time and cost."""

    def describe(self) -> str:
        """Return the request as lines for a person."""
        budget = "no budget set" if self.budget_usd is None else f"${self.budget_left_usd:.2f} of ${self.budget_usd:.2f}"
        return "\n".join(
            [
                f"Approval needed to run study {self.experiment_id} ({len(self.member_lines)} experiments) on {self.backend}",
                *(f"  - {line}" for line in self.member_lines),
                f"  estimated time: {self.estimated_minutes:.0f} min in total (estimate)",
                f"  estimated cost: ${self.estimated_cost_usd:.2f} in total (estimate)",
                f"  budget left:    {budget}",
            ]
        )


def build_study_request(study: Study) -> StudyApprovalRequest:
    """Return the study-wide request, with the summed estimates of its members."""
    plans = [member.plan for member in study.members]
    lines = []
    for member in study.members:
        plan = member.plan
        minutes = f"{member.estimated_minutes:.0f} min" if member.estimated_minutes is not None else "time unknown"
        base = f"the best checkpoint of {member.base_from}" if member.base_from else plan.base_model
        lines.append(
            f"{member.label}: {plan.method.upper()} of {base} on {plan.dataset.reference}, {plan.hardware}, "
            f"{minutes}, ${member.estimated_cost_usd:.2f} (estimate)"
        )
    flavors = list(dict.fromkeys(plan.hardware for plan in plans))
    return StudyApprovalRequest(
        experiment_id=study.id,
        run_id=STUDY_RUN_ID,
        backend=plans[0].backend,
        model=", ".join(dict.fromkeys(plan.base_model for plan in plans)),
        num_parameters=plans[0].num_parameters,
        dataset=", ".join(dict.fromkeys(plan.dataset.reference for plan in plans)),
        num_rows=None,
        method=" then ".join(plan.method for plan in plans) if study.kind == "pipeline" else ", ".join(dict.fromkeys(p.method for p in plans)),
        lora=all(plan.lora is not None for plan in plans),
        flavor=", ".join(flavors),
        usd_per_hour=0.0,
        price_source="per member, see the lines above",
        estimated_minutes=study.estimated_minutes or 0.0,
        estimated_cost_usd=study.estimated_cost_usd,
        timeout="per member",
        hub_repo=plans[0].hub_repo,
        budget_usd=study.budget_usd,
        spent_usd=0.0,
        committed_usd=0.0,
        member_lines=lines,
    )


def approve_study(study: Study, *, approver: Approver | None, is_paid: bool, record: Callable[[str], None]) -> None:
    """Check the summed estimate against the budget and ask for one approval of the whole study.

    A study approved before (the latest decision approved it) is not asked again. A free study that does not
    require approval needs no decision, but its summed cost must still fit the budget. Every answer is appended to
    `study.approvals` and saved through `record` before this function returns or raises.

    Raises:
        ApprovalRejectedError: If the summed estimate is over the budget, no approver is set for a paid study,
            or the approver does not approve. Nothing has run.
    """
    if study.is_approved:
        return
    request = build_study_request(study)
    left = request.budget_left_usd
    if left is not None and request.estimated_cost_usd > left:
        reason = f"the summed estimate ${request.estimated_cost_usd:.2f} of {len(study.members)} experiments is over the ${left:.2f} budget"
        _reject(study, request, reason, approver="budget", record=record)
    if not is_paid and not study.require_approval:
        return
    if approver is None:
        _reject(study, request, "no approver is configured; pass --approve-under or run on a terminal", approver="none", record=record)
    try:
        decision = approver.review(request)
    except Exception as err:  # noqa: BLE001 - the gate fails closed whatever an approver raises
        decision = ApprovalDecision(action="reject", reason=f"the approver raised {type(err).__name__}")
    if not isinstance(decision, ApprovalDecision) or decision.action == "edit":
        # NOTE: editing a study's plan at this prompt is not supported; a person changes the flags and reruns.
        decision = ApprovalDecision(action="reject", reason="a study is approved or rejected as a whole; edits are not applied")
    if decision.action != "approve":
        _reject(study, request, decision.reason, approver=approver.name, record=record)
    _store_answer(study, request, approved=True, reason=decision.reason, approver=approver.name, record=record)


def _reject(study: Study, request: StudyApprovalRequest, reason: str, *, approver: str, record: Callable[[str], None]) -> NoReturn:
    _store_answer(study, request, approved=False, reason=reason, approver=approver, record=record)
    raise ApprovalRejectedError(f"Study {study.id} was not approved: {reason}. No experiment of it was started.")


def _store_answer(study: Study, request: StudyApprovalRequest, *, approved: bool, reason: str, approver: str, record: Callable[[str], None]) -> None:
    study.approvals.append(
        ApprovalRecord(run_id=STUDY_RUN_ID, approved=approved, approver=approver, reason=reason, request=request.model_dump(mode="json"))
    )
    logger.info("%s: study %s by %s: %s", study.id, "approved" if approved else "rejected", approver, reason)
    record("study_approval")


class StudyMemberApprover:
    """Approves a member's first run within the study's approved estimate, and passes any other request to `fallback`."""

    name = "study"

    def __init__(self, study: Study, experiment_id: str, fallback: Approver | None):
        self.study = study
        self.member = study.member(experiment_id)
        self.fallback = fallback

    def review(self, request: ApprovalRequest) -> ApprovalDecision:
        """Approve `run-1` when the study is approved and the estimate is within the member's approved one."""
        approved_usd = self.member.estimated_cost_usd
        limit_usd = approved_usd + max(0.01, approved_usd * APPROVED_ESTIMATE_MARGIN)
        if self.study.is_approved and request.run_id == "run-1" and request.estimated_cost_usd <= limit_usd:
            return ApprovalDecision(action="approve", reason=f"within the ${approved_usd:.2f} approved for it with study {self.study.id}")
        if self.fallback is None:
            return ApprovalDecision(action="reject", reason=f"not covered by the approval of study {self.study.id}, and no approver is configured")
        return self.fallback.review(request)
