"""The reward adapter: one finite value or None per completion, never a broadcast single value."""

import math

import pytest

from autotrain_agent.errors import RewardFunctionError
from autotrain_agent.rewards.adapter import RewardAdapter

THREE_COMPLETIONS = ["a", "b", "c"]
THREE_PROMPTS = ["p1", "p2", "p3"]


def one_value_list(completions, **kwargs):
    return [1.0]


def bare_float(completions, **kwargs):
    return 1.0


def with_nan(completions, **kwargs):
    return [1.0, math.nan, 0.0]


FINITE_REWARDS = [1.0, 0.5, 0.0]


def three_finite(completions, **kwargs):
    return FINITE_REWARDS


def with_none(completions, **kwargs):
    return [1.0, None, 0.0]


def test_one_value_list_rejected_with_counts():
    adapter = RewardAdapter(one_value_list)

    with pytest.raises(RewardFunctionError, match="3 expected, 1 received") as raised:
        adapter(prompts=THREE_PROMPTS, completions=THREE_COMPLETIONS)

    assert "'one_value_list'" in str(raised.value)


def test_bare_float_never_broadcast():
    adapter = RewardAdapter(bare_float)

    with pytest.raises(RewardFunctionError, match="never broadcast") as raised:
        adapter(prompts=THREE_PROMPTS, completions=THREE_COMPLETIONS)

    assert "'bare_float'" in str(raised.value)
    assert "3 values expected" in str(raised.value)


def test_nan_rejected_with_index():
    adapter = RewardAdapter(with_nan)

    with pytest.raises(RewardFunctionError, match="non-finite value nan at index 1") as raised:
        adapter(prompts=THREE_PROMPTS, completions=THREE_COMPLETIONS)

    assert "'with_nan'" in str(raised.value)


def test_three_finite_values_pass_unchanged():
    adapter = RewardAdapter(three_finite)

    rewards = adapter(prompts=THREE_PROMPTS, completions=THREE_COMPLETIONS)

    assert rewards is FINITE_REWARDS
    assert rewards == [1.0, 0.5, 0.0]


def test_none_stays_allowed():
    adapter = RewardAdapter(with_none)

    rewards = adapter(prompts=THREE_PROMPTS, completions=THREE_COMPLETIONS)

    assert rewards == [1.0, None, 0.0]


def test_adapter_keeps_function_name_for_trl_metrics():
    adapter = RewardAdapter(three_finite)

    assert adapter.__name__ == "three_finite"
