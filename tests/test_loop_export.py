"""A plan with an export stage runs to the end in the loop: the agent can call the export tool."""

import json

import pytest

from autotrain_agent.config import Settings
from autotrain_agent.loop import open_experiment, run_experiment
from autotrain_agent.recipes import PlanOverrides, make_plan
from autotrain_agent.state import Stage, with_export_stage

pytestmark = pytest.mark.slow


def test_loop_exports_after_evaluation(tiny_llama_dir, converter_cache, tmp_path):
    rows = tmp_path / "rows.jsonl"
    with open(rows, "w") as out:
        for index in range(8):
            messages = [
                {"role": "user", "content": f"Write a Python function `add{index}(a, b)` that returns a + b."},
                {"role": "assistant", "content": f"```python\ndef add{index}(a, b):\n    return a + b\n```"},
            ]
            out.write(json.dumps({"messages": messages}) + "\n")
    overrides = PlanOverrides(model=str(tiny_llama_dir), dataset=str(rows), max_steps=2, eval_limit=1, eval_engine="transformers")
    plan = make_plan("improve code solving with SFT", overrides)
    plan.benchmarks[0].max_new_tokens = 8
    plan.hyperparameters.max_length = 128
    plan.stages = with_export_stage(plan.stages)
    settings = Settings(output_dir=tmp_path / "work", cache_dir=converter_cache, progress=False, poll_interval_s=0.2)

    ctx, _ = open_experiment(plan, settings, echo=lambda line: None)
    with ctx.store.lock(ctx.experiment.id):
        result = run_experiment(ctx)

    assert result.state == "succeeded", result.failure
    assert Stage.EXPORT in ctx.experiment.completed_stages
    export = ctx.experiment.export
    assert [file.quant_type for file in export.files] == ["F16", "Q4_K_M"]
    assert all(file.probes_match for file in export.files)
    assert "## Export" in result.report_path.read_text()
