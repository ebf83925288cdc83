"""Plan proposals by an LLM: accepted only among the candidates, otherwise the rules choose and say why."""

import json

from autotrain_agent.llm_plan import plan_candidates, propose_plan
from autotrain_agent.recipes import BUILTIN_CODE_DATASET, DEFAULT_MODEL, PlanOverrides
from autotrain_agent.testing import ScriptedModel


def test_proposal_among_candidates_is_used_with_its_reasons():
    reply = {
        "model": {"value": DEFAULT_MODEL, "reason": "small enough for a CPU"},
        "dataset": {"value": BUILTIN_CODE_DATASET, "reason": "verified Python functions match the goal"},
    }

    plan = propose_plan("improve code solving with SFT", ScriptedModel([f"Here you go:\n{json.dumps(reply)}"]))

    assert plan.base_model == DEFAULT_MODEL
    assert f"LLM chose dataset {BUILTIN_CODE_DATASET}: verified Python functions match the goal" in plan.reasons


def test_value_outside_the_candidates_is_ignored():
    reply = {"model": {"value": "meta-llama/Llama-3.1-405B", "reason": "bigger is better"}}

    plan = propose_plan("improve code solving with SFT", ScriptedModel([json.dumps(reply)]))

    assert plan.base_model == DEFAULT_MODEL
    assert any("'meta-llama/Llama-3.1-405B', which is not" in reason for reason in plan.reasons)


def test_prose_reply_falls_back_to_the_rules():
    plan = propose_plan("improve code solving with SFT", ScriptedModel(["I recommend a big model."]))

    assert plan.base_model == DEFAULT_MODEL
    assert "the LLM's plan proposal held no JSON object; the rules chose" in plan.reasons


def test_fixed_choices_are_not_offered():
    candidates = plan_candidates(PlanOverrides(model="./mine", method="sft"), hub_reachable=False)

    assert set(candidates) == {"dataset", "benchmark"}


def test_method_candidates_fit_the_data(tmp_path):
    builtin = plan_candidates(PlanOverrides(), hub_reachable=False)["method"]
    own_data = plan_candidates(PlanOverrides(dataset=str(tmp_path / "rows.jsonl")), hub_reachable=False)["method"]

    # The builtin code set has tests but no preference pairs; a user's file may have pairs but no reward.
    assert set(builtin) == {"sft", "grpo"}
    assert set(own_data) == {"sft", "dpo"}
