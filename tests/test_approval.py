"""Approvers fail closed: only an explicit approval lets a submission through."""

import pytest

from autotrain_agent.approval import ApprovalRequest, BudgetApprover, CallbackApprover, ConsoleApprover

REQUEST = ApprovalRequest(
    experiment_id="exp",
    run_id="run-1",
    backend="hf-jobs",
    model="Qwen/Qwen3-0.6B",
    num_parameters=600_000_000,
    dataset="me/rows",
    num_rows=10_000,
    method="sft",
    lora=True,
    flavor="l4x1",
    usd_per_hour=0.8,
    price_source="bundled snapshot, 2026-12-04",
    estimated_minutes=10.0,
    estimated_cost_usd=0.13,
    timeout="15m",
    hub_repo="me/out",
    budget_usd=5.0,
    spent_usd=1.0,
    committed_usd=0.5,
)


def console(*answers, interactive=True):
    lines = list(answers)
    shown = []
    approver = ConsoleApprover(read_line=lambda timeout_s: lines.pop(0) if lines else None, write=shown.append, is_interactive=lambda: interactive)
    return approver, shown


def test_request_shows_every_number():
    text = REQUEST.describe()

    for expected in ("Qwen/Qwen3-0.6B (0.6B parameters)", "10000 rows", "SFT with LoRA", "l4x1 at $0.80/h", "10 min", "$0.13", "15m", "me/out", "$3.50 of $5.00"):
        assert expected in text


@pytest.mark.parametrize(
    ("answers", "action"),
    [
        (["y"], "approve"),
        (["yes\n"], "approve"),
        (["n"], "reject"),
        (["sure"], "reject"),  # anything but y or e rejects
        ([], "reject"),  # end of input or timeout
        (["e", "flavor=a10g-large max_length=1024"], "edit"),
        (["e", "token=abc"], "reject"),  # not an editable field
        (["e"], "reject"),  # no edits before end of input
    ],
)
def test_console_answers(answers, action):
    approver, _ = console(*answers)

    answer = approver.review(REQUEST)

    assert answer.action == action


def test_console_edit_returns_fields():
    approver, _ = console("e", "flavor=a10g-large hub_repo=me/other")

    answer = approver.review(REQUEST)

    assert answer.edits == {"flavor": "a10g-large", "hub_repo": "me/other"}


def test_console_without_terminal_rejects():
    approver, shown = console("y", interactive=False)

    answer = approver.review(REQUEST)

    assert answer.action == "reject"
    assert "no terminal" in answer.reason
    assert "Approval needed" in shown[0]


@pytest.mark.parametrize(
    ("threshold", "action"),
    [
        (1.0, "approve"),  # under the threshold and the budget left
        (0.1, "reject"),  # over the threshold
    ],
)
def test_budget_approver_threshold(threshold, action):
    assert BudgetApprover(threshold).review(REQUEST).action == action


def test_budget_approver_checks_budget_left():
    request = REQUEST.model_copy(update={"spent_usd": 4.9, "committed_usd": 0.0})

    answer = BudgetApprover(1.0).review(request)

    assert answer.action == "reject"
    assert "budget left" in answer.reason


@pytest.mark.parametrize(
    "result",
    [
        None,  # no answer
        "yes",  # not a bool or an answer
        1,  # truthy but not True
    ],
)
def test_callback_unexpected_result_rejects(result):
    assert CallbackApprover(lambda request: result).review(REQUEST).action == "reject"
