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


def test_goal_naming_ppo_lists_supported_methods():
    with pytest.raises(ConfigError, match="supported methods: sft, dpo, grpo"):
        make_plan("improve code solving with PPO")


def test_grpo_goal_plans_code_rewards():
    plan = make_plan("improve code solving with GRPO")

    assert plan.method == "grpo"
    assert plan.reward_functions == ["code_pass_fraction", "code_format"]
    assert plan.hyperparameters.num_generations == 4
    assert plan.hyperparameters.effective_batch_size % plan.hyperparameters.num_generations == 0
    assert plan.hyperparameters.max_completion_length == 192
    assert plan.hyperparameters.completion_only_loss is False


def test_dpo_goal_plans_beta_and_lora_rate(tmp_path):
    prefs = tmp_path / "prefs.jsonl"

    plan = make_plan("fine-tune with DPO on my preferences", PlanOverrides(dataset=str(prefs)))

    assert plan.method == "dpo"
    assert plan.hyperparameters.beta == 0.1
    assert plan.hyperparameters.learning_rate == 5e-5


def test_dpo_full_fine_tune_rate_by_size(tmp_path):
    overrides = PlanOverrides(dataset=str(tmp_path / "prefs.jsonl"), model="Qwen/Qwen3-14B", use_lora=False)

    plan = make_plan("improve code solving with DPO", overrides)

    assert plan.hyperparameters.learning_rate == 5e-7


def test_dpo_on_builtin_code_data_rejected():
    with pytest.raises(ConfigError, match="preference"):
        make_plan("improve code solving with DPO")


def test_method_flag_overrides_goal():
    plan = make_plan("improve code solving with SFT", PlanOverrides(method="grpo"))

    assert plan.method == "grpo"
    assert "set with --method" in plan.reasons[0]


def test_grpo_on_own_data_needs_reward(tmp_path):
    with pytest.raises(ConfigError, match="--reward"):
        make_plan("improve code solving with GRPO", PlanOverrides(dataset=str(tmp_path / "prompts.jsonl")))


def test_reward_flag_rejected_for_sft():
    with pytest.raises(ConfigError, match="GRPO only"):
        make_plan("improve code solving with SFT", PlanOverrides(reward_functions=["code_format"]))


def test_negative_max_steps_rejected():
    with pytest.raises(ConfigError, match="max-steps"):
        make_plan("improve code solving", PlanOverrides(max_steps=-1))


def test_eval_checkpoints_all_is_planned():
    plan = make_plan("improve code solving", PlanOverrides(eval_checkpoints="all"))

    assert plan.checkpoints_to_evaluate == "all"
    assert any("--eval-checkpoints all" in reason for reason in plan.reasons)


def test_grpo_on_jobs_rejected_by_planner():
    with pytest.raises(ConfigError, match="GRPO runs on the local backend only"):
        make_plan("improve code solving with GRPO", PlanOverrides(backend="hf-jobs", hub_repo="me/qwen-grpo"))


def test_grpo_on_jobs_rejected_before_approval():
    from types import SimpleNamespace

    from autotrain_agent.prelaunch import check_before_launch

    ctx = SimpleNamespace(experiment=SimpleNamespace(model_path=None), backend=SimpleNamespace(name="hf-jobs"))
    run = SimpleNamespace(config={"method": "grpo"})

    with pytest.raises(ConfigError, match="GRPO runs on the local backend only"):
        check_before_launch(ctx, run)
