"""A study as data: an ordered list of member experiments planned, approved and reported together.

A pipeline study chains its members: each stage trains from the previous stage's best checkpoint. A comparison
study trains one member per candidate (model, dataset or method) and compares their scores on the same problems.
Each member is an ordinary `Experiment` in its own folder, driven by the same loop. The study only stores which
members exist, in which order, what was approved for them, and what it decided.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .state import ApprovalRecord, Decision, ExperimentStatus, Plan, utc_now
from .store import ExperimentStore

StudyKind = Literal["pipeline", "comparison"]
CandidateDimension = Literal["model", "dataset", "method"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StudyMember(_Model):
    """One experiment of a study, with the plan it runs and the estimate that was approved for it."""

    experiment_id: str
    """Id of the member experiment; names its folder under `training_runs/` and its own report."""
    label: str
    """Short name in tables, such as `stage 1: SFT` or the candidate's model name."""
    plan: Plan
    """The member's plan. A later pipeline stage's `base_model` is replaced by the previous stage's model once it exists."""
    base_from: str | None = None
    """Experiment id whose best checkpoint becomes this member's base model; `None` starts from `plan.base_model`."""
    estimated_minutes: float | None = None
    """Estimated wall time of the member, made before anything runs; `None` when the model size is unknown."""
    estimated_cost_usd: float = 0.0
    """Estimated cost of the member's first training run; zero on the local backend."""


class Study(_Model):
    """A pipeline or comparison of member experiments, with its approval and decisions."""

    id: str
    """Slug that names the study's folder under `training_runs/` and its report under `training_reports/`."""
    kind: StudyKind
    """`pipeline` chains the members; `comparison` runs them side by side and names a winner."""
    goal: str
    """The goal as the user wrote it."""
    dimension: CandidateDimension | None = None
    """The dimension that the candidates of a comparison differ in; `None` for a pipeline."""
    created_at: dt.datetime = Field(default_factory=utc_now)
    """Creation time."""
    updated_at: dt.datetime = Field(default_factory=utc_now)
    """Last save time."""
    members: list[StudyMember]
    """Member experiments in the order they run."""
    reasons: list[str] = Field(default_factory=list)
    """Reason for each study-level choice: how the goal was read and where the candidates came from."""
    status: ExperimentStatus = ExperimentStatus.ACTIVE
    """Overall status; `succeeded` only when every member succeeded."""
    failure: str | None = None
    """Reason the study stopped, when it did not succeed."""
    budget_usd: float | None = None
    """Most money all members together may spend; `None` sets no limit beyond the approval."""
    approve_under_usd: float | None = None
    """A study whose summed estimate is under this cost is approved without a person."""
    require_approval: bool = False
    """Ask for approval of the whole study on the free local backend too."""
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    """Every decision on the study-wide approval request, oldest first."""
    decisions: list[Decision] = Field(default_factory=list)
    """Study-level decisions: model hand-overs, carried-over scores, the winner."""

    @property
    def estimated_minutes(self) -> float | None:
        """Summed member estimates, or `None` when any member's is unknown."""
        minutes = [member.estimated_minutes for member in self.members]
        return None if any(value is None for value in minutes) else round(sum(minutes), 1)

    @property
    def estimated_cost_usd(self) -> float:
        """Summed estimated cost of the members' first runs."""
        return round(sum(member.estimated_cost_usd for member in self.members), 2)

    @property
    def is_approved(self) -> bool:
        """Whether the latest decision on the study-wide request approved it."""
        return bool(self.approvals) and self.approvals[-1].approved

    def member(self, experiment_id: str) -> StudyMember:
        """Return the member with that experiment id.

        Raises:
            KeyError: If no member has that id.
        """
        for member in self.members:
            if member.experiment_id == experiment_id:
                return member
        raise KeyError(f"study {self.id!r} has no member {experiment_id!r}; members: {[m.experiment_id for m in self.members]}")


class StudyStore(ExperimentStore):
    """Saves studies as `training_runs/<study id>/study.json`, with the experiments' journal and lock machinery.

    A study folder has no `state.json`, so listing experiments never lists a study.
    """

    snapshot_name = "study.json"
    record_type = Study
