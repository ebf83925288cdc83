"""Embedding: a whole tiny experiment driven by another program's own smolagents agent through our tools."""

import pytest
from smolagents import ToolCallingAgent
from smolagents.monitoring import LogLevel

from autotrain_agent import api
from autotrain_agent.config import Settings
from autotrain_agent.recipes import PlanOverrides
from autotrain_agent.testing import ScriptedModel, build_tiny_chat_model, write_code_rows

pytestmark = pytest.mark.slow


def test_outer_smolagents_agent_runs_a_whole_experiment(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_dir = build_tiny_chat_model(tmp_path / "tiny-model")
    rows = write_code_rows(tmp_path / "rows.jsonl")
    settings = Settings(output_dir=tmp_path / "work", cache_dir=tmp_path / "cache", progress=False, poll_interval_s=0.2)
    overrides = PlanOverrides(model=str(model_dir), dataset=str(rows), max_steps=3, eval_limit=2, eval_engine="transformers")
    experiment = api.create_experiment("improve code solving with SFT", overrides=overrides, settings=settings)
    script = ScriptedModel(
        [
            ("validate_dataset", {}),
            ("estimate_experiment", {}),
            ("evaluate_model", {"target": "base"}),
            ("submit_run", {}),
            ("monitor_run", {"run_id": "run-1"}),
            ("evaluate_model", {"target": "run-1"}),
            ("write_report", {}),
            ("final_answer", {"answer": "done"}),
        ]
    )

    with api.experiment_tools(experiment.id, settings=settings, echo=lambda line: None) as tools:
        ToolCallingAgent(tools=tools, model=script, max_steps=10, verbosity_level=LogLevel.OFF).run("Run the experiment.")
    _, result = api.inspect_experiment(experiment.id, settings=settings)

    assert result.state == "succeeded", result.failure
    assert result.completed_stages == experiment.plan.stages
    assert result.best_checkpoint == result.artifacts["run-1/checkpoint"]
    assert result.run_scores["run-1"][0].task_ids == result.baseline_scores[0].task_ids
    assert result.report_path.is_file()
    assert script.calls == 8

