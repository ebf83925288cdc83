"""Build the GRPO code prompt dataset: the builtin code SFT problems, with tests from their own doctests.

Each row is a conversational `prompt` (the SFT row's user instruction: signature and docstring summary), the
function's `entry_point`, and `tests`: programs that define `check(candidate)`, one per doctest example. A test is
kept only when the reference solution passes it in the evaluation sandbox, so every reward is verifiable. The
problems come from the same `algorithms` functions as the SFT data, with HumanEval overlaps already removed.
"""

from __future__ import annotations

import ast
import doctest
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autotrain_agent.data.code_functions import BuiltDataset, _write_atomically, build_code_sft_dataset
from autotrain_agent.errors import DatasetError

logger = logging.getLogger(__name__)

PROMPT_BUILDER_VERSION = 1
"""Bumped whenever the rows this module writes change, so cached folders from older builders are rebuilt."""

MAX_TESTS_PER_PROBLEM = 4
"""Doctest examples kept per problem; each one is a sandbox run per completion during training."""

# Names a test expression may use besides the entry point: builtins that doctests apply to a result.
_ALLOWED_NAMES = frozenset({"list", "tuple", "set", "sorted", "len", "round", "abs", "sum", "min", "max", "dict", "str",
                            "int", "float", "bool", "True", "False", "None"})
_VERIFY_WORKERS = 4


def build_code_prompt_dataset(*, cache_dir: Path, seed: int = 0, progress: bool = True) -> BuiltDataset:
    """Build the GRPO code prompt dataset from the code SFT dataset, or reuse the copy already built.

    Args:
        cache_dir: Root of the cache. The dataset goes to `cache_dir/datasets/code-prompts-<SFT folder name>/`.
        seed: Seed of the SFT dataset's row shuffle, which sets the row order here too.
        progress: Show a progress bar while the SFT dataset's doctests run.

    Raises:
        DatasetError: If no problem keeps a test that its reference solution passes.
    """
    sft = build_code_sft_dataset(cache_dir=cache_dir, seed=seed, progress=progress)
    target = Path(cache_dir) / "datasets" / f"code-prompts-v{PROMPT_BUILDER_VERSION}-{sft.path.name}"
    provenance_path = target / "provenance.json"
    if provenance_path.is_file():
        provenance = json.loads(provenance_path.read_text(encoding="utf-8"))
        if provenance.get("sft_sha256") == sft.provenance.get("sha256"):
            return BuiltDataset(path=target, num_rows=provenance["num_rows"], provenance=provenance)

    sft_rows = [json.loads(line) for line in (sft.path / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    with ThreadPoolExecutor(max_workers=_VERIFY_WORKERS) as pool:
        rows = [row for row in pool.map(_to_prompt_row, sft_rows) if row is not None]
    if not rows:
        raise DatasetError("No code problem kept a doctest that its reference solution passes in the sandbox.")
    provenance = {
        **sft.provenance,
        "prompt_builder_version": PROMPT_BUILDER_VERSION,
        "sft_sha256": sft.provenance.get("sha256"),
        "num_rows": len(rows),
        "num_tests": sum(len(row["tests"]) for row in rows),
        "test_rule": (
            f"up to {MAX_TESTS_PER_PROBLEM} doctest examples per function whose expression uses only the function "
            "and common builtins, each kept only if the reference solution passes it in the evaluation sandbox"
        ),
    }
    _write_atomically(target, rows, provenance)
    logger.info("Built %d code prompts with %d tests at %s", len(rows), provenance["num_tests"], target)
    return BuiltDataset(path=target, num_rows=provenance["num_rows"], provenance=provenance)


def doctest_checks(source: str, entry_point: str) -> list[str]:
    """Turn the doctest examples of `entry_point` in `source` into `check(candidate)` test programs.

    An example becomes a test only when it is a single expression over the entry point and common builtins and
    has an expected output. Each test compares the `repr` of the result with that output, as doctest does.
    """
    function = _find_function(source, entry_point)
    docstring = ast.get_docstring(function) if function else None
    if not docstring:
        return []
    checks = []
    for example in doctest.DocTestParser().get_examples(docstring):
        expected = example.want.strip()
        if expected and _is_checkable(example.source.strip(), entry_point):
            checks.append(f"def check(candidate):\n    assert repr({example.source.strip()}) == {expected!r}\n")
    return checks


def _to_prompt_row(sft_row: dict) -> dict | None:
    from autotrain_agent.evaluation.code_extraction import extract_code
    from autotrain_agent.evaluation.sandbox import run_tests
    from autotrain_agent.rewards.code import REWARD_LIMITS

    entry_point = sft_row["source"].rpartition(":")[2]
    user, assistant = sft_row["messages"][0], sft_row["messages"][-1]
    reference = extract_code(assistant["content"], entry_point=entry_point, prompt="", chat=True)
    passing = []
    for test in doctest_checks(reference, entry_point)[:MAX_TESTS_PER_PROBLEM]:
        result = run_tests(reference, entry_point=entry_point, tests=test, support_code="", limits=REWARD_LIMITS)
        if result.outcome == "passed":
            passing.append(test)
    if not passing:
        return None
    return {"prompt": [user], "entry_point": entry_point, "tests": passing, "source": sft_row["source"]}


def _find_function(source: str, entry_point: str) -> ast.FunctionDef | None:
    try:
        module = ast.parse(source)
    except SyntaxError:
        return None
    return next((node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == entry_point), None)


def _is_checkable(expression: str, entry_point: str) -> bool:
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return False
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    calls_entry_point = any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry_point
        for node in ast.walk(tree)
    )
    return calls_entry_point and names <= _ALLOWED_NAMES | {entry_point}
