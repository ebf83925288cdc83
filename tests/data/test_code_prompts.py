"""GRPO code prompts keep only the doctests that the reference solution passes in the sandbox."""

from autotrain_agent.data.code_prompts import _to_prompt_row

REFERENCE = '''```python
def triple(x):
    """Triple x.

    >>> triple(2)
    6
    >>> triple(0)
    1
    """
    return 3 * x
```'''


def sft_row(answer):
    return {
        "messages": [{"role": "user", "content": "Write `triple(x)`."}, {"role": "assistant", "content": answer}],
        "source": "algorithms.math.triple:triple",
    }


def test_prompt_row_keeps_passing_doctests():
    row = _to_prompt_row(sft_row(REFERENCE))

    assert row["prompt"] == [{"role": "user", "content": "Write `triple(x)`."}]
    assert row["entry_point"] == "triple"
    # The second doctest is wrong (triple(0) is 0), so the reference fails it and it is dropped.
    assert row["tests"] == ["def check(candidate):\n    assert repr(triple(2)) == '6'\n"]


def test_row_without_passing_doctest_dropped():
    broken = REFERENCE.replace("return 3 * x", "return x")

    assert _to_prompt_row(sft_row(broken)) is None
