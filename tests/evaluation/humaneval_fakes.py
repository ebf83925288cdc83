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
    """Return the pids of processes under a sandbox uid in this process's pids cgroup.

    Other sessions on the machine may run sandboxes too, with uids from the same range; the cgroup that
    `outer_limits` creates holds only this test's processes and their descendants.
    """
    from autotrain_agent.evaluation.sandbox import _SANDBOX_UID_BASE, _SANDBOX_UID_SPAN

    pids = []
    for pid in _pids_in_own_cgroup():
        try:
            uid = Path(f"/proc/{pid}").stat().st_uid
        except OSError:
            continue
        if _SANDBOX_UID_BASE <= uid < _SANDBOX_UID_BASE + _SANDBOX_UID_SPAN:
            pids.append(pid)
    return pids


def _pids_in_own_cgroup() -> list[int]:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, group = line.split(":", 2)
        if "pids" in controllers.split(","):
            procs = Path("/sys/fs/cgroup/pids") / group.lstrip("/") / "cgroup.procs"
            return [int(pid) for pid in procs.read_text().split()]
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def processes_with_marker(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids
