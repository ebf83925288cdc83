"""The approval gate's parts: the request an approver sees, its decision, and the built-in approvers.

Every approver fails closed: no answer, no terminal, end of input, a timeout, an exception or an answer that is
not understood are all rejections with the reason stated. The gate itself lives in `tools/submit.py`, so every
caller of `submit_run` meets it.
"""

from __future__ import annotations

import logging
import select
import sys
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)

# Plan values that the console's `e` answer may change; the gate applies them and estimates again.
EDITABLE_FIELDS = ("flavor", "hub_repo", "learning_rate", "max_steps", "num_train_epochs", "per_device_train_batch_size", "max_length")


class ApprovalRequest(BaseModel):
    """What a paid (or explicitly guarded) submission will do and cost, as shown to the approver."""

    experiment_id: str
    """The experiment."""
    run_id: str
    """The run waiting for submission."""
    backend: str
    """Backend name, e.g. `hf-jobs`."""
    model: str
    """Base model reference."""
    num_parameters: int | None
    """Parameter count of the base model."""
    dataset: str
    """Dataset reference."""
    num_rows: int | None
    """Training rows."""
    method: str
    """Training method."""
    lora: bool
    """Whether LoRA adapters are trained instead of all weights."""
    flavor: str
    """Hardware flavor."""
    usd_per_hour: float
    """Price of the flavor."""
    price_source: str
    """Where the price came from and when."""
    estimated_minutes: float
    """Estimated wall time of the job."""
    estimated_cost_usd: float
    """Estimated cost of the job."""
    timeout: str
    """The job's timeout in whole minutes, e.g. `90m`."""
    hub_repo: str | None
    """Repository that receives the checkpoints."""
    budget_usd: float | None
    """The experiment's budget; `None` for no limit."""
    spent_usd: float
    """Spent by finished runs."""
    committed_usd: float
    """Approved for runs still in flight."""
    notes: list[str] = Field(default_factory=list)
    """Context for the approver, one line each: what a quick test run checks, or what it measured."""

    @property
    def budget_left_usd(self) -> float | None:
        """Budget minus spent and committed money, or `None` without a budget."""
        if self.budget_usd is None:
            return None
        return round(self.budget_usd - self.spent_usd - self.committed_usd, 2)

    def describe(self) -> str:
        """Return the request as lines for a person."""
        from .model_size import format_parameter_count

        params = f"{format_parameter_count(self.num_parameters)} parameters" if self.num_parameters else "size unknown"
        rows = f"{self.num_rows} rows" if self.num_rows is not None else "rows unknown"
        budget = "no budget set" if self.budget_usd is None else f"${self.budget_left_usd:.2f} of ${self.budget_usd:.2f}"
        return "\n".join(
            [
                f"Approval needed to submit run {self.run_id} of {self.experiment_id} on {self.backend}",
                f"  model:          {self.model} ({params})",
                f"  dataset:        {self.dataset} ({rows})",
                f"  method:         {self.method.upper()} {'with LoRA' if self.lora else 'full fine-tune'}",
                f"  hardware:       {self.flavor} at ${self.usd_per_hour:.2f}/h ({self.price_source})",
                f"  estimated time: {self.estimated_minutes:.0f} min (estimate)",
                f"  estimated cost: ${self.estimated_cost_usd:.2f} (estimate)",
                f"  timeout:        {self.timeout}",
                f"  output repo:    {self.hub_repo or 'none'}",
                f"  budget left:    {budget}",
                *(f"  note:           {note}" for note in self.notes),
            ]
        )


class ApprovalDecision(BaseModel):
    """An approver's decision: approve, reject, or edit the plan and ask again."""

    action: Literal["approve", "reject", "edit"]
    """What to do with the request."""
    reason: str
    """Why, in one sentence."""
    edits: dict[str, str] = Field(default_factory=dict)
    """For `edit`: plan values to change, keyed by a name in `EDITABLE_FIELDS`."""


@runtime_checkable
class Approver(Protocol):
    """Something that answers approval requests."""

    name: str
    """Recorded with every answer, e.g. `console` or `budget`."""

    def review(self, request: ApprovalRequest) -> ApprovalDecision:
        """Answer `request`. Implementations must not raise for a missing answer; they reject instead."""
        ...


class ConsoleApprover:
    """Asks a person on the terminal: `y` approves, `e` edits, anything else rejects.

    Without a terminal on stdin, at end of input or after `timeout_s` without an answer, the request is rejected.
    """

    name = "console"

    def __init__(
        self,
        *,
        timeout_s: float = 300.0,
        read_line: Callable[[float], str | None] | None = None,
        write: Callable[[str], None] = print,
        is_interactive: Callable[[], bool] | None = None,
    ):
        self.timeout_s = timeout_s
        self._read_line = read_line or _read_stdin_line
        self._write = write
        self._is_interactive = is_interactive or (lambda: sys.stdin is not None and sys.stdin.isatty())

    def review(self, request: ApprovalRequest) -> ApprovalDecision:
        """Show the request and read one answer; `e` reads `field=value` edits on the next line."""
        self._write(request.describe())
        if not self._is_interactive():
            return ApprovalDecision(action="reject", reason="no terminal to ask on; pass --approve-under or run interactively")
        self._write("Submit? [y] yes, [e] edit flavor, output repo or a hyperparameter, anything else: no")
        answer = self._read_line(self.timeout_s)
        if answer is None:
            return ApprovalDecision(action="reject", reason=f"no answer within {self.timeout_s:g} s or end of input")
        answer = answer.strip().lower()
        if answer in ("y", "yes"):
            return ApprovalDecision(action="approve", reason="approved on the console")
        if answer in ("e", "edit"):
            return self._read_edits()
        return ApprovalDecision(action="reject", reason=f"rejected on the console (answer {answer[:20]!r})")

    def _read_edits(self) -> ApprovalDecision:
        self._write(f"Enter changes as field=value separated by spaces; fields: {', '.join(EDITABLE_FIELDS)}")
        line = self._read_line(self.timeout_s)
        if line is None:
            return ApprovalDecision(action="reject", reason="no edits entered before the timeout or end of input")
        edits = {}
        for item in line.split():
            field, _, value = item.partition("=")
            if field not in EDITABLE_FIELDS or not value:
                return ApprovalDecision(action="reject", reason=f"cannot edit {item!r}; editable fields: {', '.join(EDITABLE_FIELDS)}")
            edits[field] = value
        if not edits:
            return ApprovalDecision(action="reject", reason="the edit answer changed nothing")
        return ApprovalDecision(action="edit", reason="edited on the console", edits=edits)


def _read_stdin_line(timeout_s: float) -> str | None:
    """Return one line from stdin, or `None` at end of input or after `timeout_s` seconds."""
    ready, _, _ = select.select([sys.stdin], [], [], timeout_s)
    if not ready:
        return None
    line = sys.stdin.readline()
    return line if line else None


class BudgetApprover:
    """Approves unattended submissions estimated under `approve_under_usd` that fit the budget left."""

    name = "budget"

    def __init__(self, approve_under_usd: float):
        self.approve_under_usd = approve_under_usd

    def review(self, request: ApprovalRequest) -> ApprovalDecision:
        """Approve when the estimate is under the threshold and inside the budget left, else reject."""
        cost = request.estimated_cost_usd
        if cost > self.approve_under_usd:
            return ApprovalDecision(action="reject", reason=f"estimated ${cost:.2f} is over --approve-under ${self.approve_under_usd:.2f}")
        left = request.budget_left_usd
        if left is not None and cost > left:
            return ApprovalDecision(action="reject", reason=f"estimated ${cost:.2f} is over the ${left:.2f} budget left")
        return ApprovalDecision(action="approve", reason=f"estimated ${cost:.2f} is under --approve-under ${self.approve_under_usd:.2f}")


class CallbackApprover:
    """Delegates to a function, for programs that embed autotrain-agent.

    The callback returns an `ApprovalDecision` or a bool. An exception or any other return value is a rejection.
    """

    name = "callback"

    def __init__(self, callback: Callable[[ApprovalRequest], ApprovalDecision | bool]):
        self.callback = callback

    def review(self, request: ApprovalRequest) -> ApprovalDecision:
        """Call the callback and turn its result into an answer, rejecting on anything unexpected."""
        try:
            result = self.callback(request)
        except Exception as err:  # noqa: BLE001 - the gate fails closed whatever the callback raises
            return ApprovalDecision(action="reject", reason=f"the approval callback raised {type(err).__name__}")
        if isinstance(result, ApprovalDecision):
            return result
        if result is True:
            return ApprovalDecision(action="approve", reason="approved by the callback")
        return ApprovalDecision(action="reject", reason=f"the approval callback returned {result!r}")


__all__ = [
    "EDITABLE_FIELDS",
    "ApprovalDecision",
    "ApprovalRequest",
    "Approver",
    "BudgetApprover",
    "CallbackApprover",
    "ConsoleApprover",
]
