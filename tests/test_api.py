"""The Python API driven by scripted planners: every run ends in one typed terminal state, read from the state."""

import pytest

from autotrain_agent import api
from autotrain_agent.config import Settings
from autotrain_agent.errors import StateError
from autotrain_agent.recipes import PlanOverrides, make_plan
from autotrain_agent.state import Stage
from autotrain_agent.testing import ScriptedModel, build_tiny_chat_model, write_code_rows

TERMINAL_STATES = {"succeeded", "stopped_by_policy", "needs_approval", "budget_exhausted", "failed"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_chat_model(tmp_path_factory.mktemp("model") / "tiny-model")


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return Settings(output_dir=tmp_path / "work", cache_dir=tmp_path / "cache", progress=False, poll_interval_s=0.05)


def _plan(tiny_model, tmp_path, stages=None):
    rows = write_code_rows(tmp_path / "rows.jsonl", count=8)
    overrides = PlanOverrides(model=str(tiny_model), dataset=str(rows), max_steps=2, eval_limit=1, eval_engine="transformers")
    plan = make_plan("improve code solving with SFT", overrides)
    plan.hyperparameters.max_length = 128
    if stages is not None:
        plan.stages = stages
    return plan


def test_prose_replies_are_retried_until_a_tool_call(tiny_model, tmp_path, settings):
    plan = _plan(tiny_model, tmp_path, stages=[Stage.PLAN, Stage.REPORT])
    model = ScriptedModel(["I think we should train.", "Let me explain my plan first.", ("final_answer", {"answer": "done"})])

    result = api.run_experiment(plan, settings=settings, model=model)

    assert result.state == "succeeded"
    assert result.steps == 3
    assert result.parse_failures == 2


def test_endless_prose_fails_after_the_retry_limit(tiny_model, tmp_path, settings):
    plan = _plan(tiny_model, tmp_path, stages=[Stage.PLAN, Stage.REPORT])
    model = ScriptedModel(["I would rather talk about the weather."])

    result = api.run_experiment(plan, settings=settings, model=model, max_steps=20)

    assert result.state == "failed"
    assert result.reason == "parse_failures_exhausted"
    # Three retries: the first reply and three more are fed back as parsing errors.
    assert result.parse_failures == 4
    assert model.calls == 4
    assert "parse_failures_exhausted" in result.failure


def test_step_cap_ends_as_budget_exhausted_with_artifacts(tiny_model, tmp_path, settings):
    plan = _plan(tiny_model, tmp_path)
    model = ScriptedModel([("validate_dataset", {})] + [("monitor_run", {"run_id": f"run-{n}"}) for n in range(9, 20)])

    result = api.run_experiment(plan, settings=settings, model=model, max_steps=5)

    assert result.state == "budget_exhausted"
    assert result.reason == "step_limit"
    assert result.steps == 5
    assert result.completed_stages == [Stage.PLAN, Stage.VALIDATE]
    assert set(result.artifacts) >= {"base_model", "dataset", "report"}
    assert model.calls == 5
    assert "final answer" not in result.report_path.read_text().lower()


def test_final_answer_at_step_one_stops(tiny_model, tmp_path, settings):
    plan = _plan(tiny_model, tmp_path, stages=[Stage.PLAN, Stage.REPORT])
    model = ScriptedModel([("final_answer", {"answer": "nothing left to do"})])

    result = api.run_experiment(plan, settings=settings, model=model, max_steps=5)

    assert result.state == "succeeded"
    assert result.steps == 1
    assert model.calls == 1
    assert result.completed_stages == [Stage.PLAN, Stage.REPORT]


def test_final_answer_before_the_stages_are_done_fails(tiny_model, tmp_path, settings):
    plan = _plan(tiny_model, tmp_path)
    model = ScriptedModel([("final_answer", {"answer": "Training finished, loss 0.01, pass@1 0.9."})])

    result = api.run_experiment(plan, settings=settings, model=model)

    assert result.state == "failed"
    assert result.reason == "final_answer_before_done"
    assert result.run_scores == {}


def test_repeated_identical_calls_end_the_run(tiny_model, tmp_path, settings):
    plan = _plan(tiny_model, tmp_path)
    model = ScriptedModel([("monitor_run", {"run_id": "run-7"})])

    result = api.run_experiment(plan, settings=settings, model=model, max_steps=20)

    assert result.state == "failed"
    assert result.reason == "repeated_calls"
    assert model.calls == 3


def test_budget_raising_attempts_are_rejected_and_reported(tiny_model, tmp_path, settings):
    plan = _plan(tiny_model, tmp_path, stages=[Stage.PLAN, Stage.REPORT])
    model = ScriptedModel(
        [
            ("write_file", {"path": "training_runs/budget.json", "content": '{"max_cost_usd": 1000}'}),
            ("set_budget", {"max_cost_usd": 1000, "max_minutes": 600}),
            ("final_answer", {"answer": "done"}),
        ]
    )

    result = api.run_experiment(plan, settings=settings, model=model)

    experiment, _ = api.inspect_experiment(result.experiment_id, settings=settings)
    rejected = [d.action for d in experiment.decisions if d.by == "system"]
    assert rejected == ["reject call write_file", "reject call set_budget"]
    report = result.report_path.read_text()
    assert "reject call write_file" in report
    assert "reject call set_budget" in report
    assert not (settings.runs_dir / "budget.json").exists()


@pytest.mark.parametrize(
    "arguments",
    [
        {"run_id": "run-1"},  # a dict, as OpenAI-style clients parse it
        '{"run_id": "run-1"}',  # a JSON string, as the raw API sends it
        '"{\\"run_id\\": \\"run-1\\"}"',  # double-encoded by a server that re-serializes
        {"arguments": {"run_id": "run-1"}},  # wrapped in an `arguments` key
        '```json\n{"run_id": "run-1"}\n```',  # fenced by a chatty model
    ],
)
def test_tool_arguments_in_provider_shapes_reach_the_tool(tiny_model, tmp_path, settings, arguments):
    plan = _plan(tiny_model, tmp_path, stages=[Stage.PLAN, Stage.REPORT])
    model = ScriptedModel([("monitor_run", arguments), ("final_answer", {"answer": "done"})])

    api.run_experiment(plan, settings=settings, model=model)

    observation = model.last_messages_text
    assert "KeyError" in observation
    assert "has no run" in observation


def test_inspect_unknown_experiment_names_the_known_ones(settings):
    with pytest.raises(StateError, match="No experiment 'nope'"):
        api.inspect_experiment("nope", settings=settings)


def test_results_are_always_a_terminal_state(tiny_model, tmp_path, settings):
    plan = _plan(tiny_model, tmp_path, stages=[Stage.PLAN, Stage.REPORT])

    result = api.run_experiment(plan, settings=settings, model=ScriptedModel(["prose"]), max_steps=2)

    assert result.state in TERMINAL_STATES


class _BrokenServerModel(ScriptedModel):
    def generate(self, messages, **kwargs):
        raise ConnectionError("HTTP 500 from http://127.0.0.1:9/v1")


def test_model_server_error_fails_run(tiny_model, tmp_path, settings):
    plan = _plan(tiny_model, tmp_path)

    result = api.run_experiment(plan, settings=settings, model=_BrokenServerModel(["unused"]))

    assert result.state == "failed"
    assert result.reason == "planner_error"
    assert "HTTP 500" in result.failure


def test_llm_tool_calls_are_recorded_as_planner_decisions(tiny_model, tmp_path, settings):
    plan = _plan(tiny_model, tmp_path, stages=[Stage.PLAN, Stage.VALIDATE, Stage.REPORT])
    model = ScriptedModel([("validate_dataset", {}), ("write_report", {}), ("final_answer", {"answer": "done"})])

    result = api.run_experiment(plan, settings=settings, model=model)

    experiment, _ = api.inspect_experiment(result.experiment_id, settings=settings)
    actions = [d.action for d in experiment.decisions if d.by == "planner"]
    assert result.state == "succeeded"
    assert actions == ["call validate_dataset()", "call write_report()"]


def test_resume_after_step_limit_skips_finished_stages(tiny_model, tmp_path, settings):
    plan = _plan(tiny_model, tmp_path, stages=[Stage.PLAN, Stage.VALIDATE, Stage.REPORT])
    first = ScriptedModel([("validate_dataset", {}), ("monitor_run", {"run_id": "run-8"}), ("monitor_run", {"run_id": "run-9"})])
    stopped = api.run_experiment(plan, settings=settings, model=first, max_steps=3)
    second = ScriptedModel([("write_report", {}), ("final_answer", {"answer": "done"})])

    resumed = api.resume_experiment(stopped.experiment_id, settings=settings, model=second)

    assert stopped.state == "budget_exhausted"
    assert resumed.state == "succeeded"
    assert resumed.completed_stages == [Stage.PLAN, Stage.VALIDATE, Stage.REPORT]
    assert second.calls == 2


def test_inspect_of_a_created_experiment_is_active(tiny_model, tmp_path, settings):
    plan = _plan(tiny_model, tmp_path)
    experiment = api.create_experiment(plan, settings=settings)

    _, result = api.inspect_experiment(experiment.id, settings=settings)

    assert result.state == "budget_exhausted"
    assert result.reason == "active"
    assert result.completed_stages == []
