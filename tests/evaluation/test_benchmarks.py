"""Benchmark names resolve to an implementation at planning time, whatever the evaluation backend."""

import pytest

from autotrain_agent.errors import ConfigError
from autotrain_agent.evaluation.benchmarks import resolve_benchmark
from autotrain_agent.recipes import PlanOverrides, make_plan


@pytest.mark.parametrize("name", ["humaneval", "openai_humaneval"])
def test_lighteval_humaneval_resolves_to_sandbox(name):
    implementation = resolve_benchmark(name, backend="lighteval")

    assert implementation.name == "humaneval"
    assert implementation.harness == "autotrain_agent.evaluation.sandbox"
    assert implementation.lighteval_task == "humaneval_sandbox"
    assert "built-in sandboxed harness" in implementation.note


def test_builtin_humaneval_resolves_to_sandbox():
    implementation = resolve_benchmark("openai/openai_humaneval")

    assert implementation.harness == "autotrain_agent.evaluation.sandbox"
    assert implementation.lighteval_task == ""


def test_unknown_benchmark_lists_known_names():
    with pytest.raises(ConfigError, match="Unknown benchmark 'no_such_bench'; known benchmarks: humaneval, "
                                          "openai/openai_humaneval, openai_humaneval"):
        resolve_benchmark("no_such_bench", backend="lighteval")


def test_plan_rejects_unknown_benchmark_before_any_job():
    with pytest.raises(ConfigError, match="known benchmarks: humaneval"):
        make_plan("improve code solving", PlanOverrides(benchmark="no_such_bench"))


def test_plan_stores_canonical_benchmark_name():
    plan = make_plan("improve code solving", PlanOverrides(benchmark="openai_humaneval"))

    assert plan.benchmarks[0].name == "humaneval"
