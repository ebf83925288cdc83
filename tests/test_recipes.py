"""Goal-to-plan recipes: method and domain detection, overrides, and parameter counts from names."""

import pytest

from autotrain_agent.errors import ConfigError
from autotrain_agent.recipes import BUILTIN_CODE_DATASET, HUB_CODE_DATASET, PlanOverrides, make_plan, parse_parameter_count


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("meta-llama/Llama-2-7b-hf", 7_000_000_000),  # the 2 is a version, not a size
        ("Qwen/Qwen3-0.6B", 600_000_000),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", 135_000_000),
        ("Qwen/Qwen2.5-1.5B-Instruct", 1_500_000_000),
        ("gpt2", None),  # no size in the name
    ],
)
def test_parameter_count_from_name(name, expected):
    assert parse_parameter_count(name) == expected


def test_code_goal_offline_uses_builtin_data():
    plan = make_plan("improve code solving with SFT")

    assert plan.method == "sft"
    assert plan.dataset.reference == BUILTIN_CODE_DATASET
    assert plan.benchmarks[0].name == "humaneval"
    assert plan.benchmarks[0].limit == 40
    assert any("algorithms" in reason for reason in plan.reasons)


def test_code_goal_online_uses_hub_data():
    plan = make_plan("improve code solving with SFT", hub_reachable=True)

    assert plan.dataset.reference == HUB_CODE_DATASET


def test_overrides_replace_choices():
    overrides = PlanOverrides(model="./tiny", dataset="./rows.jsonl", max_steps=4, eval_limit=0, eval_engine="transformers")

    plan = make_plan("improve code solving", overrides)

    assert plan.base_model == "./tiny"
    assert plan.dataset.reference == "./rows.jsonl"
    assert plan.hyperparameters.max_steps == 4
    assert plan.hyperparameters.save_steps == 4
    assert plan.benchmarks[0].limit is None
    assert plan.eval_engine == "transformers"


def test_empty_goal_rejected():
    with pytest.raises(ConfigError, match="goal is empty"):
        make_plan("   ")


def test_unknown_domain_asks_for_dataset():
    with pytest.raises(ConfigError, match="--dataset"):
        make_plan("make it better")


def test_unknown_method_rejected():
    with pytest.raises(ConfigError, match="'ppo'"):
        make_plan("improve code solving", PlanOverrides(method="ppo"))


def test_unsupported_method_names_alternative():
    with pytest.raises(NotImplementedError, match="--method sft"):
        make_plan("improve code solving with DPO")


def test_negative_max_steps_rejected():
    with pytest.raises(ConfigError, match="max-steps"):
        make_plan("improve code solving", PlanOverrides(max_steps=-1))


def test_eval_checkpoints_all_is_planned():
    plan = make_plan("improve code solving", PlanOverrides(eval_checkpoints="all"))

    assert plan.checkpoints_to_evaluate == "all"
    assert any("--eval-checkpoints all" in reason for reason in plan.reasons)
