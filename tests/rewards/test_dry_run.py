"""The pre-launch dry run calls reward functions with the shapes and keywords TRL 1.16 passes."""

import pytest

from autotrain_agent.errors import RewardFunctionError
from autotrain_agent.rewards.dry_run import dry_run_reward_functions, dry_run_on_rows

PROMPTS = [[{"role": "user", "content": "What is 2 + 2?"}]]
COMPLETIONS = [[{"role": "assistant", "content": "4"}]]
COMPLETION_IDS = [[1, 2]]
COLUMNS = {"answer": ["4"]}


def reward(prompts, completions):
    return [1.0 if completion.strip() == "4" else 0.0 for completion in completions]


def test_fixed_signature_fails_naming_function():
    with pytest.raises(RewardFunctionError, match="'reward'") as raised:
        dry_run_reward_functions(
            [reward], prompts=PROMPTS, completions=COMPLETIONS, completion_ids=COMPLETION_IDS, columns=COLUMNS
        )

    assert "unexpected keyword argument 'completion_ids'" in str(raised.value)


def test_message_list_where_string_expected_fails():
    def reward_with_kwargs(prompts, completions, **kwargs):
        return [1.0 if completion.strip() == "4" else 0.0 for completion in completions]

    with pytest.raises(RewardFunctionError, match="'reward_with_kwargs' raised AttributeError") as raised:
        dry_run_reward_functions(
            [reward_with_kwargs], prompts=PROMPTS, completions=COMPLETIONS, completion_ids=COMPLETION_IDS, columns=COLUMNS
        )

    assert "'list' object has no attribute 'strip'" in str(raised.value)


def test_adaptation_passes_text_and_drops_keywords():
    results = dry_run_reward_functions(
        [reward], prompts=PROMPTS, completions=COMPLETIONS, completion_ids=COMPLETION_IDS, columns=COLUMNS, adapt=True
    )

    assert results[0].rewards == [1.0]
    assert "passed the message text of conversational `completions`" in results[0].adaptations
    dropped = next(note for note in results[0].adaptations if note.startswith("dropped keywords"))
    assert "completion_ids" in dropped
    assert "answer" in dropped


def test_wrong_count_fails_in_dry_run():
    def one_value(prompts, completions, **kwargs):
        return [1.0]

    rows = [{"prompt": PROMPTS[0], "answer": "4"}] * 3

    with pytest.raises(RewardFunctionError, match="'one_value'.*3 expected, 1 received"):
        dry_run_on_rows([one_value], rows)


def test_rows_dry_run_passes_columns_and_message_lists():
    seen = {}

    def record(prompts, completions, completion_ids, answer, **kwargs):
        seen.update(completions=completions, answer=answer, keys=set(kwargs))
        return [0.0] * len(completions)

    rows = [{"prompt": PROMPTS[0], "answer": "4"}] * 2

    results = dry_run_on_rows([record], rows)

    assert results[0].rewards == [0.0, 0.0]
    assert seen["answer"] == ["4", "4"]
    assert isinstance(seen["completions"][0], list)
    assert {"trainer_state", "log_extra", "log_metric"} <= seen["keys"]


def test_plan_preflight_rejects_missing_reward(tmp_path):
    from autotrain_agent.preflight import check_plan_inputs
    from autotrain_agent.recipes import PlanOverrides, make_plan

    plan = make_plan("improve code solving with GRPO", PlanOverrides(reward_functions=[f"{tmp_path}/none.py:reward"]))

    with pytest.raises(RewardFunctionError, match="does not exist"):
        check_plan_inputs(plan, hub_reachable=False)
