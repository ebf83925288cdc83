"""Code extraction from realistic chat and completion-style answers."""

import pytest

from autotrain_agent.evaluation.code_extraction import extract_code

PROMPT = (
    "from typing import List\n\n\n"
    "def double_all(numbers: List[int]) -> List[int]:\n"
    '    """Return every number doubled.\n    >>> double_all([1, 2])\n    [2, 4]\n    """\n'
)
FUNCTION = "def double_all(numbers):\n    return [2 * number for number in numbers]\n"


def _namespace(program: str) -> dict:
    namespace: dict = {}
    exec(compile(program, "program.py", "exec"), namespace)
    return namespace


def test_prose_around_fence_keeps_only_code():
    answer = f"Sure! Here is the solution:\n\n```python\n{FUNCTION}```\n\nThis doubles each element."

    program = extract_code(answer, entry_point="double_all", prompt=PROMPT, chat=True)

    assert "Sure" not in program
    assert "This doubles" not in program
    assert _namespace(program)["double_all"]([1, 3]) == [2, 6]


def test_repeated_signature_keeps_prompt_imports():
    answer = "```python\ndef double_all(numbers: List[int]) -> List[int]:\n    return [n * 2 for n in numbers]\n```"

    program = extract_code(answer, entry_point="double_all", prompt=PROMPT, chat=True)

    assert program.startswith("from typing import List")
    assert _namespace(program)["double_all"]([2]) == [4]


def test_main_block_and_example_calls_are_removed():
    answer = (
        f"```python\n{FUNCTION}\nresult = double_all([1])\nprint(result)\nassert double_all([]) == []\n"
        'if __name__ == "__main__":\n    print(double_all([5]))\n```'
    )

    program = extract_code(answer, entry_point="double_all", prompt=PROMPT, chat=True)

    assert "__main__" not in program
    assert "print(" not in program
    assert "result =" not in program
    assert "assert double_all" not in program


def test_im_end_residue_is_cut():
    answer = f"```python\n{FUNCTION}```<|im_end|>\n<|im_start|>user\nthanks"

    program = extract_code(answer, entry_point="double_all", prompt=PROMPT, chat=True)

    assert "im_" not in program
    assert "thanks" not in program


def test_block_defining_entry_point_wins():
    answer = f"Usage:\n```python\nprint(double_all([1]))\n```\nCode:\n```python\n{FUNCTION}```"

    program = extract_code(answer, entry_point="double_all", prompt=PROMPT, chat=True)

    assert _namespace(program)["double_all"]([1]) == [2]


def test_unfenced_answer_with_prose_is_parsed():
    answer = f"Here you go.\n{FUNCTION}\nHope this helps!</s>"

    program = extract_code(answer, entry_point="double_all", prompt=PROMPT, chat=True)

    assert "Hope" not in program
    assert _namespace(program)["double_all"]([4]) == [8]


@pytest.mark.parametrize("body", [
    # Indented like a continuation of the prompt.
    "    return [2 * n for n in numbers]\n",
    # Written at column 0, as chat models often do.
    "return [2 * n for n in numbers]\n",
])
def test_body_only_answer_is_appended_to_prompt(body):
    program = extract_code(f"```python\n{body}```", entry_point="double_all", prompt=PROMPT, chat=True)

    assert program.startswith(PROMPT)
    assert _namespace(program)["double_all"]([1]) == [2]


def test_completion_style_cuts_at_stops():
    completion = "    return [2 * n for n in numbers]\n\n\ndef unrelated():\n    pass\n\nprint(double_all([1]))\n"

    program = extract_code(completion, entry_point="double_all", prompt=PROMPT, chat=False)

    assert program == PROMPT + "    return [2 * n for n in numbers]\n"


def test_broken_code_is_returned_unrepaired():
    answer = "```python\ndef double_all(numbers):\n    return [2 * n for n in\n```"

    program = extract_code(answer, entry_point="double_all", prompt=PROMPT, chat=True)

    with pytest.raises(SyntaxError):
        compile(program, "program.py", "exec")
