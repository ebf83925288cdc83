"""Test doubles for the HumanEval harness: a canned generator, hostile problem sets and process scans."""

from collections.abc import Sequence
from pathlib import Path

from autotrain_agent.evaluation.humaneval import (
    Calibration,
    HumanEvalProblem,
    HumanEvalResult,
    evaluate_humaneval,
    load_humaneval_problems,
)

class CannedGenerator:
    """Text generator that returns a fixed completion per prompt."""

    name = "canned"

    def __init__(self, completions_by_prompt: dict[str, str]):
        self.completions_by_prompt = completions_by_prompt

    def complete(self, prompts: Sequence, *, max_new_tokens: int, stop: Sequence[str], sampling=None) -> list[str]:
        return [self.completions_by_prompt[prompt if isinstance(prompt, str) else prompt[-1]["content"]]
                for prompt in prompts]


def run_problem_set(completions: list[str], *, timeout_s: float = 5.0, details_path: Path | None = None,
                    problems: list[HumanEvalProblem] | None = None) -> HumanEvalResult:
    """Score completion-style answers for HumanEval/0, 1 and 2 (or `problems`) through the real harness."""
    problems = problems or load_humaneval_problems(limit=len(completions))
    generator = CannedGenerator({problem.prompt: completion for problem, completion in zip(problems, completions)})
    calibration = Calibration(timeouts_s={problem.task_id: timeout_s for problem in problems},
                              canonical_pass_rate=1.0, duration_s=0.0)
    return evaluate_humaneval(generator, problems, chat=False, calibration=calibration, details_path=details_path,
                              progress=False)


def with_hostile_middle(hostile: str) -> list[str]:
    """Return answers for the first three problems: canonical, `hostile`, canonical."""
    first, second, third = load_humaneval_problems(limit=3)
    return [first.canonical_solution, hostile, third.canonical_solution]


def sandbox_processes() -> list[int]:
    """Return the pids of processes running under a sandbox uid."""
    from autotrain_agent.evaluation.sandbox import _SANDBOX_UID_BASE, _SANDBOX_UID_SPAN

    pids = []
    for entry in Path("/proc").iterdir():
        try:
            uid = entry.stat().st_uid if entry.name.isdigit() else -1
        except OSError:
            continue
        if _SANDBOX_UID_BASE <= uid < _SANDBOX_UID_BASE + _SANDBOX_UID_SPAN:
            pids.append(int(entry.name))
    return pids


def processes_with_marker(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids
