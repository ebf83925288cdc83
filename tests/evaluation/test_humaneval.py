"""HumanEval loading, calibration and scoring through the real sandbox."""

import json
import math

import pytest
from humaneval_fakes import CannedGenerator

from autotrain_agent.errors import ConfigError, HarnessCalibrationError
from autotrain_agent.evaluation.humaneval import (
    DEFAULT_CPU_SUBSET_SIZE,
    HumanEvalProblem,
    build_prompt,
    calibrate_harness,
    evaluate_humaneval,
    load_humaneval_problems,
    pass_at_k,
)
from autotrain_agent.evaluation.sandbox import SandboxLimits


def _toy_problem(number: int, name: str, body: str, tests: str) -> HumanEvalProblem:
    prompt = f"import math\n\n\ndef {name}(x):\n    \"\"\"Toy problem {number}.\"\"\"\n"
    return HumanEvalProblem(task_id=f"Toy/{number}", prompt=prompt, entry_point=name, canonical_solution=body,
                            test=f"\n\ndef check(candidate):\n{tests}")


TOY_PROBLEMS = [
    _toy_problem(0, "square", "    return x * x\n", "    assert candidate(3) == 9\n    assert candidate(-2) == 4\n"),
    _toy_problem(1, "halve", "    return x / 2\n", "    assert abs(candidate(3) - 1.5) < 1e-9\n"),
    _toy_problem(2, "root", "    return math.isqrt(x)\n", "    assert candidate(17) == 4\n    assert candidate(0) == 0\n"),
]


def _answer_forms(problem: HumanEvalProblem) -> dict[str, str]:
    signature = problem.prompt.split("\n\n\n", 1)[1].splitlines()[0]
    function = f"import math\n\n{signature}\n{problem.canonical_solution}"
    return {
        "raw": problem.canonical_solution,
        "prose_around_fence": f"Here is my solution.\n\n```python\n{function}```\n\nIt works for all inputs.",
        "signature_with_main": f"{function}\nif __name__ == \"__main__\":\n    print({problem.entry_point}(4))\n",
    }


def test_canonical_solutions_pass_default_subset():
    problems = load_humaneval_problems(limit=DEFAULT_CPU_SUBSET_SIZE)

    calibration = calibrate_harness(problems)

    assert calibration.canonical_pass_rate == 1.0
    assert set(calibration.timeouts_s) == {problem.task_id for problem in problems}
    assert min(calibration.timeouts_s.values()) >= 3.0


@pytest.mark.slow
def test_canonical_solutions_pass_all_problems():
    problems = load_humaneval_problems()

    calibration = calibrate_harness(problems)

    assert len(problems) == 164
    assert calibration.canonical_pass_rate == 1.0


@pytest.mark.parametrize("form", ["raw", "prose_around_fence", "signature_with_main"])
def test_every_answer_form_scores_full_marks(form):
    answers = {problem.prompt: _answer_forms(problem)[form] for problem in TOY_PROBLEMS}
    chat_answers = {build_prompt(problem, chat=True)[-1]["content"]: _answer_forms(problem)[form]
                    for problem in TOY_PROBLEMS}
    chat = form != "raw"

    result = evaluate_humaneval(CannedGenerator(chat_answers if chat else answers), TOY_PROBLEMS, chat=chat,
                                progress=False)

    assert result.value == 1.0
    assert result.num_passed == 3


def test_wrong_solution_scores_zero():
    answers = {TOY_PROBLEMS[0].prompt: "    return x + x\n"}

    result = evaluate_humaneval(CannedGenerator(answers), TOY_PROBLEMS[:1], chat=False, progress=False)

    assert result.value == 0.0
    assert result.results[0].outcome == "failed"


def test_broken_canonical_solution_stops_evaluation():
    broken = TOY_PROBLEMS[0].model_copy(update={"canonical_solution": "    return x + 1\n"})
    generator = CannedGenerator({broken.prompt: TOY_PROBLEMS[0].canonical_solution})

    with pytest.raises(HarnessCalibrationError, match="harness unreliable.*Toy/0") as raised:
        evaluate_humaneval(generator, [broken, *TOY_PROBLEMS[1:]], chat=False, progress=False)

    assert raised.value.outcomes["Toy/0"] == "failed"
    assert raised.value.outcomes["Toy/1"] == "passed"


SLOW_PROBLEM = _toy_problem(
    9, "slow_sum",
    "    import time\n    deadline = time.perf_counter() + 0.03\n    while time.perf_counter() < deadline:\n"
    "        pass\n    return x\n",
    "    assert candidate(5) == 5\n",
)


def test_tight_timeout_marks_harness_uncalibrated():
    with pytest.raises(HarnessCalibrationError, match="timed_out") as raised:
        calibrate_harness([SLOW_PROBLEM], limits=SandboxLimits(timeout_s=0.01))

    assert raised.value.outcomes == {"Toy/9": "timed_out"}


def test_calibrated_timeout_lets_slow_solution_pass():
    calibration = calibrate_harness([SLOW_PROBLEM])
    generator = CannedGenerator({SLOW_PROBLEM.prompt: SLOW_PROBLEM.canonical_solution})

    result = evaluate_humaneval(generator, [SLOW_PROBLEM], chat=False, calibration=calibration, progress=False)

    assert calibration.timeouts_s["Toy/9"] > 0.03
    assert result.value == 1.0


def test_details_file_has_one_line_per_problem(tmp_path):
    answers = {problem.prompt: problem.canonical_solution for problem in TOY_PROBLEMS}
    details_path = tmp_path / "details.jsonl"

    evaluate_humaneval(CannedGenerator(answers), TOY_PROBLEMS, chat=False, details_path=details_path,
                       progress=False)

    lines = [json.loads(line) for line in details_path.read_text().splitlines()]
    assert [line["task_id"] for line in lines] == ["Toy/0", "Toy/1", "Toy/2"]
    assert {line["outcome"] for line in lines} == {"passed"}


def test_score_reports_standard_error():
    answers = {problem.prompt: "    return None\n" for problem in TOY_PROBLEMS[:2]}
    answers[TOY_PROBLEMS[2].prompt] = TOY_PROBLEMS[2].canonical_solution

    result = evaluate_humaneval(CannedGenerator(answers), TOY_PROBLEMS, chat=False, progress=False)

    assert result.value == pytest.approx(1 / 3)
    assert result.stderr == pytest.approx(math.sqrt((1 / 3) * (2 / 3) / 3))
    assert result.generator == "canned"


def test_load_filters_by_task_id_and_limit():
    problems = load_humaneval_problems(task_ids=["HumanEval/10", "HumanEval/2", "HumanEval/33"], limit=2)

    assert [problem.task_id for problem in problems] == ["HumanEval/2", "HumanEval/10"]


def test_load_rejects_unknown_task_id():
    with pytest.raises(ConfigError, match="HumanEval/999"):
        load_humaneval_problems(task_ids=["HumanEval/999"])


def test_chat_prompt_asks_for_fenced_function():
    problem = load_humaneval_problems(limit=1)[0]

    messages = build_prompt(problem, chat=True)

    assert messages[0]["role"] == "user"
    assert "```python\n" + problem.prompt in messages[0]["content"]
    assert build_prompt(problem, chat=False) == problem.prompt


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (1, 1, 1, 1.0),  # one sample, correct
    (10, 0, 1, 0.0),  # no correct sample
    (10, 3, 1, 0.3),  # pass@1 is the pass fraction
    (10, 3, 5, 1 - math.comb(7, 5) / math.comb(10, 5)),  # closed form
    (5, 4, 2, 1.0),  # fewer failures than k
])
def test_pass_at_k_matches_closed_form(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_inconsistent_counts():
    with pytest.raises(ConfigError, match="c=4"):
        pass_at_k(3, 4, 1)


class SeedDependentGenerator:
    """Return the canonical solution only for the sample drawn with seed 0, to check the pass@k bookkeeping."""

    name = "seed-dependent"

    def __init__(self):
        self.seeds = []

    def complete(self, prompts, *, max_new_tokens, stop, sampling=None):
        self.seeds.append(sampling.seed)
        answer = {problem.prompt: problem.canonical_solution for problem in TOY_PROBLEMS}
        return [answer[prompt] if sampling.seed == 0 else "    return None\n" for prompt in prompts]


def test_sampled_answers_give_unbiased_pass_at_k(tmp_path):
    from autotrain_agent.evaluation.generation import Sampling

    generator = SeedDependentGenerator()
    details_path = tmp_path / "details.jsonl"

    result = evaluate_humaneval(generator, TOY_PROBLEMS[:2], chat=False, samples=3,
                                sampling=Sampling(temperature=0.8, seed=0), details_path=details_path, progress=False)

    assert generator.seeds == [0, 1, 2]
    assert result.value == pytest.approx(1 / 3)
    assert result.pass_at_k == {"pass@1": pytest.approx(1 / 3)}
    assert result.stderr == 0.0
    assert result.num_passed == 2
    assert [(r.task_id, r.sample, r.outcome) for r in result.results][:3] == [
        ("Toy/0", 0, "passed"), ("Toy/0", 1, "failed"), ("Toy/0", 2, "failed")]
    assert len(details_path.read_text().splitlines()) == 6


def test_pass_at_10_reported_with_ten_samples():
    from autotrain_agent.evaluation.generation import Sampling

    result = evaluate_humaneval(SeedDependentGenerator(), TOY_PROBLEMS[:1], chat=False, samples=10,
                                sampling=Sampling(temperature=0.8), progress=False)

    assert result.pass_at_k["pass@1"] == pytest.approx(0.1)
    assert result.pass_at_k["pass@10"] == pytest.approx(1.0)


def test_several_greedy_samples_rejected():
    with pytest.raises(ConfigError, match="`samples`=3 with greedy decoding"):
        evaluate_humaneval(SeedDependentGenerator(), TOY_PROBLEMS[:1], chat=False, samples=3, progress=False)
