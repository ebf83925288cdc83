"""The approval gate in `submit_run`: no caller gets a paid job submitted without an approval."""

import json

import pytest

from autotrain_agent.approval import ApprovalDecision, BudgetApprover, CallbackApprover
from autotrain_agent.backends.local import LocalBackend
from autotrain_agent.config import Settings
from autotrain_agent.context import ExperimentContext
from autotrain_agent.errors import ApprovalRejectedError
from autotrain_agent.gate import approve_submission, build_request
from autotrain_agent.loop import run_experiment
from autotrain_agent.recipes import PlanOverrides, make_plan
from autotrain_agent.state import Experiment, ExperimentStatus, Stage
from autotrain_agent.store import ExperimentStore
from autotrain_agent.tools.submit import _new_run, submit_run


class RecordingPaidBackend:
    """A paid backend that records submissions instead of running them."""

    name = "hf-jobs"
    is_free = False

    def __init__(self, existing_jobs=None):
        self.submitted = []
        self.existing_jobs = existing_jobs or {}

    def submit_job(self, *, run_id, script, config_path, workdir, env=None):
        self.submitted.append(json.loads(config_path.read_text()))
        return f"job-{len(self.submitted)}"

    def inspect_job(self, job_id):
        raise NotImplementedError

    def fetch_job_logs(self, job_id, *, tail_lines=None):
        return ""

    def cancel_job(self, job_id):
        pass

    def find_jobs(self, *, run_id):
        return self.existing_jobs.get(run_id, [])

    def job_url(self, job_id):
        return f"http://127.0.0.1/jobs/fake-user/{job_id}"


def make_ctx(tmp_path, *, backend=None, approver=None, budget_usd=None, rows=1000):
    dataset = tmp_path / "rows.jsonl"
    dataset.write_text("{}\n" * rows)
    plan = make_plan("improve code solving", PlanOverrides(model="Qwen/Qwen3-0.6B", backend="hf-jobs", hub_repo="me/out"))
    plan.num_parameters = 600_000_000
    plan.hardware = "a10g-large"
    experiment = Experiment(id="exp", goal=plan.goal, plan=plan, budget_usd=budget_usd, dataset_path=str(dataset))
    experiment.completed_stages += [Stage.PLAN, Stage.VALIDATE, Stage.EVALUATE_BASE]
    return ExperimentContext(
        experiment=experiment,
        store=ExperimentStore(tmp_path / "training_runs"),
        settings=Settings(output_dir=tmp_path, cache_dir=tmp_path / "cache"),
        backend=backend or RecordingPaidBackend(),
        echo=lambda line: None,
        approver=approver,
    )


def approve_all(request):
    return True


def test_no_approver_submits_nothing(tmp_path):
    ctx = make_ctx(tmp_path)

    with pytest.raises(ApprovalRejectedError, match="no approver"):
        submit_run(ctx)

    assert ctx.backend.submitted == []
    assert ctx.experiment.approvals[-1].approved is False
    assert ctx.experiment.approvals[-1].approver == "none"


def test_rejecting_callback_submits_nothing(tmp_path):
    ctx = make_ctx(tmp_path, approver=CallbackApprover(lambda request: False))

    with pytest.raises(ApprovalRejectedError):
        submit_run(ctx)

    assert ctx.backend.submitted == []
    assert ctx.experiment.latest_run.status == "pending"


def test_raising_callback_is_rejection(tmp_path):
    def broken(request):
        raise RuntimeError("approver crashed")

    ctx = make_ctx(tmp_path, approver=CallbackApprover(broken))

    with pytest.raises(ApprovalRejectedError, match="raised RuntimeError"):
        submit_run(ctx)

    assert ctx.backend.submitted == []


def test_approved_run_carries_flavor_and_timeout(tmp_path):
    ctx = make_ctx(tmp_path, approver=CallbackApprover(approve_all))

    submit_run(ctx)

    config = ctx.backend.submitted[0]
    record = ctx.experiment.approvals[-1]
    assert config["flavor"] == "a10g-large"
    assert config["timeout"].endswith("m")
    assert config["hub_repo"] == "me/out"
    assert record.approved and record.approver == "callback"
    assert record.request["usd_per_hour"] == 1.5
    assert ctx.experiment.committed_usd == record.request["estimated_cost_usd"]


def test_budget_counts_spent_money(tmp_path):
    ctx = make_ctx(tmp_path, approver=CallbackApprover(approve_all), budget_usd=0.5, rows=20000)
    submit_run(ctx)
    first = ctx.experiment.latest_run
    first.status = "failed"  # a policy rule resubmits after a failure
    ctx.experiment.spent_usd = 0.5 - first.estimated_cost_usd / 2

    with pytest.raises(ApprovalRejectedError, match="budget left"):
        submit_run(ctx)

    assert 0 < first.estimated_cost_usd <= 0.5
    assert len(ctx.backend.submitted) == 1
    assert ctx.experiment.approvals[-1].approver == "budget"


def test_budget_left_subtracts_committed(tmp_path):
    ctx = make_ctx(tmp_path, approver=CallbackApprover(approve_all), budget_usd=10.0)
    submit_run(ctx)
    ctx.experiment.spent_usd = 2.0

    request = build_request(ctx, ctx.experiment.latest_run)

    assert request.committed_usd == ctx.experiment.latest_run.estimated_cost_usd > 0
    assert request.budget_left_usd == round(10.0 - 2.0 - request.committed_usd, 2)


def test_policy_resubmission_asks_again(tmp_path):
    answers = []
    ctx = make_ctx(tmp_path, approver=CallbackApprover(lambda request: answers.append(request.run_id) or len(answers) == 1))
    submit_run(ctx)
    ctx.experiment.latest_run.status = "failed"

    with pytest.raises(ApprovalRejectedError):
        submit_run(ctx)

    assert answers == ["run-1", "run-2"]
    assert len(ctx.backend.submitted) == 1


def test_resumed_pending_run_reattaches_without_asking(tmp_path):
    backend = RecordingPaidBackend(existing_jobs={"run-1": ["job-9"]})
    ctx = make_ctx(tmp_path, backend=backend, approver=CallbackApprover(lambda request: pytest.fail("asked")))

    message = submit_run(ctx)

    assert "Re-attached" in message
    assert backend.submitted == []


def test_resumed_pending_run_not_found_needs_approval(tmp_path):
    ctx = make_ctx(tmp_path)
    with pytest.raises(ApprovalRejectedError):
        submit_run(ctx)

    with pytest.raises(ApprovalRejectedError):
        submit_run(ctx)  # the same pending run, as after a restart

    assert len(ctx.experiment.runs) == 1
    assert ctx.backend.submitted == []


def test_budget_approver_rejects_over_threshold(tmp_path):
    ctx = make_ctx(tmp_path, approver=BudgetApprover(0.01), rows=50000)

    with pytest.raises(ApprovalRejectedError, match="over --approve-under"):
        submit_run(ctx)

    assert ctx.backend.submitted == []


def test_edit_reestimates_then_approves(tmp_path):
    seen = []

    def edit_then_approve(request):
        seen.append((request.flavor, request.usd_per_hour))
        if len(seen) == 1:
            return ApprovalDecision(action="edit", reason="cheaper GPU", edits={"flavor": "l4x1"})
        return True

    ctx = make_ctx(tmp_path, approver=CallbackApprover(edit_then_approve))

    submit_run(ctx)

    assert seen == [("a10g-large", 1.5), ("l4x1", 0.8)]
    assert ctx.backend.submitted[0]["flavor"] == "l4x1"


def test_planner_path_submits_nothing_without_approval(tmp_path):
    ctx = make_ctx(tmp_path)

    run_experiment(ctx, max_steps=4)

    assert ctx.backend.submitted == []
    assert ctx.experiment.status == ExperimentStatus.NEEDS_APPROVAL
    assert "not approved" in ctx.experiment.failure


def test_local_backend_free_unless_required(tmp_path):
    ctx = make_ctx(tmp_path, backend=LocalBackend(tmp_path / "jobs"))
    run = _new_run(ctx)
    approve_submission(ctx, run)
    ctx.experiment.require_approval = True

    with pytest.raises(ApprovalRejectedError):
        approve_submission(ctx, run)

    assert len(ctx.experiment.approvals) == 1
    assert ctx.experiment.approvals[0].request["usd_per_hour"] == 0.0


def test_edit_with_unknown_flavor_asks_again(tmp_path):
    seen = []

    def bad_edit_then_approve(request):
        seen.append(request.flavor)
        if len(seen) == 1:
            return ApprovalDecision(action="edit", reason="typo", edits={"flavor": "a10g-hueg"})
        return True

    ctx = make_ctx(tmp_path, approver=CallbackApprover(bad_edit_then_approve))

    submit_run(ctx)

    assert seen == ["a10g-large", "a10g-large"]
    assert ctx.backend.submitted[0]["flavor"] == "a10g-large"


def test_agent_cannot_raise_its_own_budget(tmp_path):
    from autotrain_agent.testing import ScriptedModel

    ctx = make_ctx(tmp_path, approver=CallbackApprover(approve_all), budget_usd=0.01)
    model = ScriptedModel(
        [
            ("write_file", {"path": "training_runs/exp/budget.json", "content": '{"budget_usd": 1000}'}),
            ("set_budget", {"budget_usd": 1000}),
            ("submit_run", {}),  # costs more than the budget: only a raised budget would allow it
            ("final_answer", {"answer": "done"}),
        ]
    )

    result = run_experiment(ctx, model=model, max_steps=6)

    assert ctx.backend.submitted == []
    assert ctx.experiment.budget_usd == 0.01
    assert result.state == "needs_approval"
    assert "budget" in ctx.experiment.failure
    rejected = [d.action for d in ctx.experiment.decisions if d.by == "system"]
    assert "reject call write_file" in rejected
    assert "reject call set_budget" in rejected
    report = ctx.report_path.read_text()
    assert "reject call write_file" in report
    assert "reject call set_budget" in report
    assert not (tmp_path / "training_runs" / "exp" / "budget.json").exists()
