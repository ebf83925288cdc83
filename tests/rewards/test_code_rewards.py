"""Code rewards run completions against tests in the evaluation sandbox; the prompt set comes from doctests."""


import pytest

from autotrain_agent.data.code_prompts import doctest_checks
from autotrain_agent.errors import RewardFunctionError
from autotrain_agent.rewards.code import code_format, code_pass_fraction
from autotrain_agent.rewards.registry import load_reward_function, load_reward_functions

TESTS = [
    "def check(candidate):\n    assert candidate(2, 3) == 5\n",
    "def check(candidate):\n    assert add(0, 0) == 0\n",
    "def check(candidate):\n    assert candidate(-1, 1) == 0\n",
]
CORRECT = [{"role": "assistant", "content": "Here:\n```python\ndef add(a, b):\n    return a + b\n```"}]
WRONG = "def add(a, b):\n    return a * b\n"
PROSE = "I would add them."


def test_pass_fraction_counts_each_test():
    rewards = code_pass_fraction([CORRECT, WRONG, PROSE], tests=[TESTS] * 3, entry_point=["add"] * 3)

    assert rewards == [1.0, pytest.approx(1 / 3), 0.0]


def test_pass_fraction_zero_for_infinite_loop():
    looping = "```python\ndef add(a, b):\n    while True:\n        pass\n```"

    rewards = code_pass_fraction([looping], tests=[TESTS[:1]], entry_point=["add"])

    assert rewards == [0.0]


def test_format_reward_prefers_fenced_definition():
    truncated = "```python\ndef add(a, b):\n    return (a +"

    rewards = code_format([CORRECT, WRONG, truncated, PROSE], entry_point=["add"] * 4)

    assert rewards == [1.0, 0.5, 0.25, 0.0]


def test_doctest_checks_keep_pure_expressions():
    source = '''def double(x):
    """Double x.

    >>> double(2)
    4
    >>> items = [1]
    >>> double(len(items))
    2
    >>> print(double(3))
    6
    """
    return 2 * x
'''

    checks = doctest_checks(source, "double")

    # `items` comes from an earlier statement and `print` writes instead of returning: both are skipped.
    assert checks == ["def check(candidate):\n    assert repr(double(2)) == '4'\n"]


def test_registry_loads_builtin_and_file(tmp_path):
    reward_file = tmp_path / "my_rewards.py"
    reward_file.write_text("def constant(completions, **kwargs):\n    return [0.5] * len(completions)\n")

    adapters = load_reward_functions(["code_format", f"{reward_file}:constant"])

    assert [adapter.name for adapter in adapters] == ["code_format", "constant"]
    assert adapters[1](prompts=["p"], completions=["c"]) == [0.5]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_separator", "Invalid reward function"),  # neither builtin nor module:function
        ("autotrain_agent.missing_module:f", "Cannot import module"),  # module not found
        ("autotrain_agent.rewards.code:missing", "defines no callable 'missing'"),  # function not found
        ("/nonexistent/rewards.py:f", "does not exist"),  # file not found
    ],
)
def test_registry_rejects_bad_specs(spec, message):
    with pytest.raises(RewardFunctionError, match=message):
        load_reward_function(spec)
