"""Verifiable code rewards: run each completion's code against its problem's tests in the evaluation sandbox.

Both functions follow TRL 1.16's reward protocol: keyword arguments only, completions as strings or as lists of
message dicts, and the dataset's `tests` and `entry_point` columns as lists with one value per completion.
"""

from __future__ import annotations

import ast
import logging
import re

from autotrain_agent.evaluation.code_extraction import extract_code
from autotrain_agent.evaluation.sandbox import SandboxLimits, run_tests
from autotrain_agent.rewards.adapter import message_text

logger = logging.getLogger(__name__)

# Training runs one sandboxed program per test and completion, so each gets less time than a benchmark program.
# The builtin problems' reference solutions pass all their 434 tests in about 4 s in total.
REWARD_LIMITS = SandboxLimits(timeout_s=5.0, cpu_time_s=5)
_PYTHON_FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL)


def code_pass_fraction(completions: list, *, tests: list[list[str]], entry_point: list[str], **kwargs) -> list[float]:
    """Score each completion by the fraction of its problem's tests that its code passes in the sandbox.

    The code is extracted as for HumanEval chat completions (the fenced block that defines the entry point, else the
    first Python block, else the raw text). Each test runs in its own sandboxed pair of processes, so one failing
    assert does not hide the others. Code that does not parse or never defines the entry point scores 0.0 without
    running.

    Args:
        completions: Generated completions, strings or lists of message dicts.
        tests: Per completion, the problem's tests, each a program that defines `check(candidate)`.
        entry_point: Per completion, the name of the function under test.
        **kwargs: Other keywords TRL passes; ignored.

    Returns:
        One value in [0, 1] per completion.
    """
    return [
        _pass_fraction(str(message_text(completion)), problem_tests, name)
        for completion, problem_tests, name in zip(completions, tests, entry_point, strict=True)
    ]


def code_format(completions: list, *, entry_point: list[str], **kwargs) -> list[float]:
    """Score each completion's form: 1.0 for a fenced Python block that parses and defines the entry point.

    An unfenced completion that parses and defines the entry point scores 0.5, and one that only starts the
    definition (`def name(`, for example cut off by the length limit) scores 0.25; anything else scores 0.0.
    The partial credit keeps rewards within a group apart when no completion passes a test yet, because a group
    whose rewards all tie gives GRPO no gradient.

    Args:
        completions: Generated completions, strings or lists of message dicts.
        entry_point: Per completion, the name of the function to define.
        **kwargs: Other keywords TRL passes; ignored.
    """
    scores = []
    for completion, name in zip(completions, entry_point, strict=True):
        text = str(message_text(completion))
        fenced = _PYTHON_FENCE.findall(text)
        if any(_defines(block, name) for block in fenced):
            scores.append(1.0)
        elif _defines(text, name):
            scores.append(0.5)
        elif re.search(rf"\bdef\s+{re.escape(name)}\s*\(", text):
            scores.append(0.25)
        else:
            scores.append(0.0)
    return scores


def _pass_fraction(completion: str, problem_tests: list[str], entry_point: str) -> float:
    if not problem_tests:
        return 0.0
    code = extract_code(completion, entry_point=entry_point, prompt="", chat=True)
    if not _defines(code, entry_point):
        return 0.0
    passed = 0
    for test in problem_tests:
        result = run_tests(code, entry_point=entry_point, tests=test, support_code="", limits=REWARD_LIMITS)
        passed += result.outcome == "passed"
        if result.outcome == "error":
            logger.warning("The sandbox failed on a reward test of %s: %s", entry_point, result.detail)
    return passed / len(problem_tests)


def _defines(code: str, entry_point: str) -> bool:
    """Return whether `code` parses and defines `entry_point` at the top level."""
    try:
        module = ast.parse(code)
    except SyntaxError:
        return False
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point for node in module.body
    )
