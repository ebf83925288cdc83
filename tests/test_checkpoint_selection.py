"""The best checkpoint by score, ties broken by evaluation loss then step, and the report's below-base flag."""

import pytest

from autotrain_agent.backends.local import LocalBackend
from autotrain_agent.config import Settings
from autotrain_agent.context import ExperimentContext
from autotrain_agent.recipes import make_plan
from autotrain_agent.report import render_report
from autotrain_agent.state import (
    BenchmarkSpec,
    Checkpoint,
    DatasetSpec,
    Experiment,
    Plan,
    Run,
    Score,
)
from autotrain_agent.store import ExperimentStore
from autotrain_agent.tools.evaluate import _select_best_checkpoint


def _score(value: float) -> Score:
    return Score(benchmark="humaneval", metric="pass@1", value=value, num_samples=40, num_passed=round(value * 40),
                 harness="autotrain_agent.evaluation.sandbox")


def _context(tmp_path, checkpoints: list[Checkpoint], *, base_value: float = 0.1) -> ExperimentContext:
    plan = make_plan("improve code solving with SFT")
    run = Run(run_id="run-1", title="SFT run 1", output_dir=str(tmp_path / "run-1"), trackio_project="p",
              trackio_run="r", status="succeeded", checkpoints=checkpoints)
    experiment = Experiment(id="exp", goal=plan.goal, plan=plan, runs=[run], baseline_scores=[_score(base_value)])
    settings = Settings(output_dir=tmp_path, cache_dir=tmp_path / "cache", progress=False)
    return ExperimentContext(experiment=experiment, store=ExperimentStore(settings.runs_dir), settings=settings,
                             backend=LocalBackend(tmp_path / "jobs"), echo=lambda line: None)


@pytest.mark.parametrize(("checkpoints", "best_path"), [
    ([Checkpoint(step=10, path="c10", scores=[_score(0.2)]), Checkpoint(step=20, path="final", scores=[_score(0.1)])],
     "c10"),  # higher score wins over the final checkpoint
    ([Checkpoint(step=10, path="c10", eval_loss=0.5, scores=[_score(0.2)]),
      Checkpoint(step=20, path="final", eval_loss=0.7, scores=[_score(0.2)])], "c10"),  # tie: lower eval loss
    ([Checkpoint(step=10, path="c10", scores=[_score(0.2)]), Checkpoint(step=20, path="final", scores=[_score(0.2)])],
     "final"),  # tie without eval loss: later step
    ([Checkpoint(step=10, path="c10"), Checkpoint(step=20, path="final", scores=[_score(0.05)])],
     "final"),  # unscored checkpoints are not candidates
])
def test_best_checkpoint_selection(tmp_path, checkpoints, best_path):
    ctx = _context(tmp_path, checkpoints)

    _select_best_checkpoint(ctx, ctx.experiment.runs[0])

    assert ctx.experiment.runs[0].best_checkpoint_path == best_path
    decision = ctx.experiment.decisions[-1]
    assert decision.by == "system"
    assert decision.action.startswith("select run-1 checkpoint at step")
    assert decision.evidence["path"] == best_path


def test_report_flags_score_below_base(tmp_path):
    ctx = _context(tmp_path, [Checkpoint(step=10, path="c10", scores=[_score(0.15)]),
                              Checkpoint(step=20, path="final", scores=[_score(0.05)])], base_value=0.1)
    _select_best_checkpoint(ctx, ctx.experiment.runs[0])

    report = render_report(ctx.experiment)

    assert "**Fine-tuned score below the base model:**" in report
    assert "SFT run 1 at step 20: humaneval pass@1 0.050 is below the base model's 0.100" in report
    assert "SFT run 1 at step 10:" not in report
    assert "| SFT run 1, step 10 (best) | humaneval pass@1 |" in report
    assert "Scored by: `autotrain_agent.evaluation.sandbox`." in report


def test_report_without_regression_has_no_flag(tmp_path):
    ctx = _context(tmp_path, [Checkpoint(step=20, path="final", scores=[_score(0.2)])], base_value=0.1)

    report = render_report(ctx.experiment)

    assert "below the base model" not in report


def _other_score(value: float) -> Score:
    return Score(benchmark="humaneval", metric="pass@1", value=value, num_samples=164, num_passed=round(value * 164))


def test_primary_benchmark_picks_the_best_checkpoint(tmp_path):
    ctx = _context(tmp_path, [Checkpoint(step=10, path="c10", scores=[_score(0.3), _other_score(0.10)]),
                              Checkpoint(step=20, path="final", scores=[_score(0.2), _other_score(0.15)])])
    plan = ctx.experiment.plan
    plan.benchmarks = [BenchmarkSpec(limit=40), BenchmarkSpec(primary=True)]

    _select_best_checkpoint(ctx, ctx.experiment.runs[0])

    assert ctx.experiment.runs[0].best_checkpoint_path == "final"
    assert ctx.experiment.decisions[-1].evidence["primary_benchmark"] == 1
    report = render_report(ctx.experiment)
    assert "humaneval (all problems; primary: picks the best checkpoint)" in report
    assert "| SFT run 1, step 10 | humaneval pass@1 | 0.300" in report


def test_first_benchmark_is_primary_by_default():
    plan = make_plan("improve code solving with SFT")
    plan.benchmarks = [BenchmarkSpec(limit=40), BenchmarkSpec()]

    assert plan.primary_benchmark_index() == 0


def test_plan_rejects_two_primary_benchmarks():
    with pytest.raises(ValueError, match="at most one benchmark as primary"):
        Plan(goal="g", base_model="m", dataset=DatasetSpec(reference="d"),
             benchmarks=[BenchmarkSpec(primary=True), BenchmarkSpec(primary=True)])


def test_report_names_the_exported_checkpoint(exported_experiment):
    exported_experiment.export.checkpoint_path = "/runs/run-1/checkpoint-10"

    report = render_report(exported_experiment)

    assert "Merged weights of `run-1` from checkpoint `/runs/run-1/checkpoint-10`:" in report
