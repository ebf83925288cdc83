"""Policy rules: the condition language, its validation, and every shipped rule on streams in real Trackio projects."""

import json
import math

import pytest
import yaml
from trackio_streams import log_series, trackio_writes_to_test_dir  # noqa: F401 - pytest fixture

from autotrain_agent.errors import IncompleteMetricsError, PolicyError, StateError
from autotrain_agent.monitor_metrics import MetricsCursor, read_trackio_metrics
from autotrain_agent.policy import (
    SIGNALS,
    Action,
    Observation,
    check_resume_has_steps,
    extension_config,
    load_policy,
    parse_policy,
    plan_extension,
    resubmission_config,
)

pytestmark = pytest.mark.usefixtures("trackio_writes_to_test_dir")


def observe_from_trackio(series, *, phase="running", **facts):
    """Write `series` to a real Trackio project, read it back incrementally, and return the observation."""
    log_series("policy-test", "run-1", series)
    metrics = MetricsCursor("policy-test", "run-1").read_new()
    step = max((points[-1][0] for points in metrics.values() if points), default=0)
    facts.setdefault("runs_left", 2)
    return Observation(metrics=metrics, phase=phase, step=step, **facts)


def falling_loss(steps, *, start=3.0, rate=0.05):
    return [(step, start * math.exp(-rate * step)) for step in range(1, steps + 1)]


def default_verdict(observation, times_fired=None):
    return load_policy().evaluate(observation, times_fired=times_fired)


# Each shipped rule, driven by a stream that should trigger it.


def test_budget_spent_stops():
    observation = observe_from_trackio({"loss": falling_loss(5)}, budget_left_minutes=-0.5)

    verdict = default_verdict(observation)

    assert verdict.rule == "stop-when-budget-spent"
    assert verdict.action.type == "stop"
    assert verdict.evidence["budget_left_minutes() at_most 0"] == -0.5


def test_nonfinite_loss_resubmits_with_lower_lr():
    observation = observe_from_trackio({"loss": [(1, 2.1), (2, 2.0), (3, math.nan), (4, math.inf), (5, math.nan)]})

    verdict = default_verdict(observation)

    assert verdict.rule == "resubmit-on-nonfinite-loss"
    assert verdict.action.parameters == {"learning_rate_factor": 0.1}
    assert verdict.step == 5


def test_divergence_resubmits_with_lower_lr():
    observation = observe_from_trackio({"loss": [(1, 2.0), (2, 1.5), (3, 1.0), (4, 2.5), (5, 3.5)]})

    verdict = default_verdict(observation)

    assert verdict.rule == "resubmit-on-divergence"
    assert verdict.evidence["divergence_ratio(metric=loss, min_steps=3) at_least 3.0"] == pytest.approx(3.5)


def test_divergence_stops_once_retries_are_used():
    observation = observe_from_trackio({"loss": [(1, 2.0), (2, 1.5), (3, 1.0), (4, 2.5), (5, 3.5)]})

    verdict = default_verdict(observation, times_fired={"resubmit-on-divergence": 2})

    assert verdict.rule == "stop-on-divergence"
    assert verdict.action.type == "stop"


def test_divergence_stops_when_no_run_is_left():
    observation = observe_from_trackio({"loss": [(1, 2.0), (2, 1.5), (3, 1.0), (4, 2.5), (5, 3.5)]}, runs_left=0)

    verdict = default_verdict(observation)

    assert verdict.rule == "stop-on-divergence"


@pytest.mark.parametrize(
    ("failure_phase", "batch_size", "rule", "parameters"),
    [
        ("training", 4, "halve-batch-on-oom", {"halve_batch": True}),  # batch can shrink
        ("training", 1, "checkpointing-on-oom-at-batch-1", {"gradient_checkpointing": True}),  # batch is already 1
        ("evaluation", 4, "smaller-eval-batch-on-eval-oom", {"halve_eval_batch": True}),  # training fit, evaluation did not
    ],
)
def test_oom_recovery_rules(failure_phase, batch_size, rule, parameters):
    observation = observe_from_trackio(
        {"loss": falling_loss(3)}, phase="end", job_state="failed", failure_kind="oom", failure_phase=failure_phase,
        per_device_train_batch_size=batch_size,
    )

    verdict = default_verdict(observation)

    assert verdict.rule == rule
    assert verdict.action.parameters == parameters


def test_loss_plateau_stops_and_keeps_result():
    loss = [(step, 1.0 + 0.0001 * (step % 3)) for step in range(1, 61)]
    observation = observe_from_trackio({"loss": loss}, max_steps=80)

    verdict = default_verdict(observation)

    assert verdict.rule == "stop-at-loss-plateau"
    assert verdict.action.parameters == {"evaluate": True}


def test_plateau_ignored_before_half_of_the_steps():
    loss = [(step, 1.0) for step in range(1, 31)]
    observation = observe_from_trackio({"loss": loss}, max_steps=100)

    assert default_verdict(observation) is None


def test_falling_loss_at_end_extends():
    observation = observe_from_trackio({"loss": falling_loss(40)}, phase="end", job_state="succeeded", max_steps=40)

    verdict = default_verdict(observation)

    assert verdict.rule == "extend-while-loss-falls"
    assert verdict.action.parameters == {"steps_fraction": 0.5}


def test_falling_loss_while_running_continues():
    observation = observe_from_trackio({"loss": falling_loss(40)}, max_steps=80)

    assert default_verdict(observation) is None


def test_dpo_flat_margins_at_chance_stop():
    margins = [(step, 0.01) for step in range(1, 41)]
    accuracies = [(step, 0.5) for step in range(1, 41)]
    observation = observe_from_trackio(
        {"loss": falling_loss(40), "rewards/margins": margins, "rewards/accuracies": accuracies}, method="dpo", max_steps=60
    )

    verdict = default_verdict(observation)

    assert verdict.rule == "dpo-stop-when-preferences-not-learned"


def test_dpo_growing_margins_extend():
    margins = [(step, 0.05 * step) for step in range(1, 41)]
    accuracies = [(step, 0.8) for step in range(1, 41)]
    observation = observe_from_trackio(
        {"loss": falling_loss(40), "rewards/margins": margins, "rewards/accuracies": accuracies},
        phase="end", job_state="succeeded", method="dpo", max_steps=40,
    )

    verdict = default_verdict(observation)

    assert verdict.rule == "dpo-extend-while-margins-grow"


def test_dpo_ignores_sign_of_chosen_reward():
    margins = [(step, 0.05 * step) for step in range(1, 41)]
    accuracies = [(step, 0.97) for step in range(1, 41)]
    chosen = [(step, -0.1 * step) for step in range(1, 41)]
    observation = observe_from_trackio(
        {"loss": [(s, 0.3) for s in range(1, 41)], "rewards/margins": margins, "rewards/accuracies": accuracies, "rewards/chosen": chosen},
        phase="end", job_state="succeeded", method="dpo", max_steps=40,
    )

    assert default_verdict(observation) is None


def test_grpo_equal_rewards_stop():
    equal = [(step, 1.0) for step in range(1, 7)]
    observation = observe_from_trackio({"frac_reward_zero_std": equal}, method="grpo", max_steps=40)

    verdict = default_verdict(observation)

    assert verdict.rule == "grpo-stop-without-reward-differences"
    assert verdict.action.parameters == {"evaluate": True}
    assert verdict.evidence["window_min(metric=frac_reward_zero_std, window_steps=5) at_least 1.0"] == 1.0


def test_grpo_equal_rewards_need_full_window():
    observation = observe_from_trackio({"frac_reward_zero_std": [(step, 1.0) for step in range(1, 5)]},
                                       method="grpo", max_steps=40)

    assert default_verdict(observation) is None


def test_grpo_code_never_passing_stops_halfway():
    never = [(step, 0.0) for step in range(1, 7)]
    some_differences = [(step, 0.5) for step in range(1, 7)]
    metrics = {"rewards/code_pass_fraction/mean": never, "frac_reward_zero_std": some_differences}

    halfway = default_verdict(observe_from_trackio(metrics, method="grpo", max_steps=12))
    early = default_verdict(observe_from_trackio(metrics, method="grpo", max_steps=40))

    assert halfway.rule == "grpo-stop-when-code-never-passes"
    assert early is None


def test_grpo_one_passing_step_continues():
    rewards = [(step, 0.25 if step == 5 else 0.0) for step in range(1, 9)]
    observation = observe_from_trackio({"rewards/code_pass_fraction/mean": rewards}, method="grpo", max_steps=12)

    assert default_verdict(observation) is None


# The condition language and its validation.


def test_extend_epochs_on_plateau_is_writable(tmp_path):
    rules = tmp_path / "extend.yaml"
    rules.write_text(
        """
rules:
  - name: extend-epochs-if-loss-plateaus
    phase: end
    when:
      - {signal: job_state, equals: succeeded}
      - {signal: relative_improvement, metric: loss, window_steps: 10, below: 0.01}
    action: {type: extend, steps_fraction: 1.0}
"""
    )
    observation = observe_from_trackio({"loss": [(s, 1.0) for s in range(1, 31)]}, phase="end", job_state="succeeded")

    verdict = load_policy([rules]).evaluate(observation)

    assert verdict.rule == "extend-epochs-if-loss-plateaus"
    assert verdict.action.type == "extend"


def test_nonfinite_rule_stops_at_step_five_only():
    policy = parse_policy(
        {"rules": [{"name": "stop-on-nan", "when": [{"signal": "nonfinite_streak", "metric": "loss", "at_least": 3}], "action": "stop"}]}
    )
    stream = [(1, 2.1), (2, 2.0), (3, math.nan), (4, math.nan), (5, math.nan)]
    log_series("nan-test", "run-1", {"loss": stream})
    cursor = MetricsCursor("nan-test", "run-1")
    metrics = cursor.read_new()

    verdicts = [
        policy.evaluate(Observation(metrics={"loss": metrics["loss"][:count]}, phase="running", step=count))
        for count in range(1, 6)
    ]

    assert verdicts[:4] == [None] * 4
    assert verdicts[4].rule == "stop-on-nan"
    assert verdicts[4].action.type == "stop"
    assert verdicts[4].step == 5
    assert verdicts[4].evidence == {"nonfinite_streak(metric=loss) at_least 3": 3}


def test_user_file_replaces_and_removes_rules(tmp_path):
    rules = tmp_path / "mine.yaml"
    rules.write_text(yaml.safe_dump({"rules": [
        {"name": "stop-when-budget-spent", "enabled": False},
        {"name": "stop-at-loss-plateau", "phase": "running", "when": [{"signal": "step", "at_least": 10}], "action": "stop"},
    ]}))

    policy = load_policy([rules])

    names = [rule.name for rule in policy.rules]
    # The removed first rule moves every later rule up by one; the replaced rule keeps its place.
    place = [rule.name for rule in load_policy().rules].index("stop-at-loss-plateau") - 1
    assert "stop-when-budget-spent" not in names
    assert names.index("stop-at-loss-plateau") == place
    assert policy.rules[place].when.parts[0].signal == "step"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        # unknown signal
        ({"name": "r1", "when": [{"signal": "vibes", "above": 1}], "action": "stop"}, r"rule 'r1'.*`when\[0\]\.signal`"),
        # missing parameter of a signal
        ({"name": "r2", "when": [{"signal": "slope", "metric": "loss", "below": 0}], "action": "stop"}, r"rule 'r2'.*missing \['window_steps'\]"),
        # two comparators
        ({"name": "r3", "when": [{"signal": "step", "above": 1, "below": 5}], "action": "stop"}, r"rule 'r3'.*exactly one comparator"),
        # order comparison on a label
        ({"name": "r4", "when": [{"signal": "failure_kind", "above": 1}], "action": "stop"}, r"rule 'r4'.*`when\[0\]\.above`"),
        # unknown action
        ({"name": "r5", "when": [{"signal": "step", "above": 1}], "action": "explode"}, r"rule 'r5'.*`action\.type`"),
        # action parameter of the wrong type
        ({"name": "r6", "when": [{"signal": "step", "above": 1}], "action": {"type": "resubmit", "learning_rate_factor": "x"}}, r"rule 'r6'.*`action\.learning_rate_factor`"),
        # Python text is not a condition
        ({"name": "r7", "when": "__import__('os').system('true')", "action": "stop"}, r"rule 'r7'.*`when`"),
        # missing action
        ({"name": "r8", "when": [{"signal": "step", "above": 1}]}, r"rule 'r8'.*`action` is missing"),
        # bad phase
        ({"name": "r9", "phase": "later", "when": [{"signal": "step", "above": 1}], "action": "stop"}, r"rule 'r9'.*`phase`"),
        # nested condition with a bad parameter
        ({"name": "r10", "when": {"any": [{"signal": "last", "metric": 3, "above": 1}]}, "action": "stop"}, r"rule 'r10'.*`when\[0\]\.metric`"),
    ],
)
def test_invalid_rule_names_rule_and_field(rule, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy({"rules": [rule]})


def test_unreadable_policy_file_names_the_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [unclosed")

    with pytest.raises(PolicyError, match="broken.yaml"):
        load_policy([broken])


# Steps, windows and complete series.


def test_windows_count_global_steps_not_rows():
    log_series("steps", "run-1", {"eval_loss": [(100, 0.5), (0, 1.5), (50, 1.0)]})
    metrics = MetricsCursor("steps", "run-1").read_new()
    observation = Observation(metrics=metrics, phase="running", step=100)
    policy = parse_policy({"rules": [{"name": "eval-trend", "when": [{"signal": "slope", "metric": "eval_loss", "window_steps": 150, "below": -0.009}], "action": "stop"}]})

    verdict = policy.evaluate(observation)

    assert [step for step, _ in metrics["eval_loss"]] == [0, 50, 100]
    assert verdict.evidence["slope(metric=eval_loss, window_steps=150) below -0.009"] == pytest.approx(-0.01)


def test_plateau_rule_reads_sparse_eval_points():
    series = {f"train/metric_{i}": [(step, step * 0.001) for step in range(1, 801)] for i in range(9)}
    series["eval/loss"] = [(step, 0.5) for step in range(10, 810, 10)]
    log_series("sparse", "run-1", series)
    policy = parse_policy({"rules": [{"name": "eval-plateau", "when": [
        {"signal": "relative_improvement", "metric": "eval/loss", "window_steps": 100, "below": 0.01},
        {"signal": "last", "metric": "eval/loss", "at_most": 1.0},
    ], "action": "stop"}]})

    metrics = MetricsCursor("sparse", "run-1").read_new()
    verdict = policy.evaluate(Observation(metrics=metrics, phase="running", step=800))

    assert len(metrics["eval/loss"]) == 80
    assert metrics["eval/loss"][-1][0] == 800
    assert verdict.step == 800


def test_partial_series_gets_no_verdict(monkeypatch):
    from trackio import SQLiteStorage

    log_series("partial", "run-1", {"eval/loss": [(step, 0.5) for step in range(10, 810, 10)]})
    full_get_logs = SQLiteStorage.get_logs
    monkeypatch.setattr(SQLiteStorage, "get_logs", lambda *args, **kwargs: full_get_logs(*args, **kwargs)[:70])
    policy = parse_policy({"rules": [{"name": "any-eval", "when": [{"signal": "step", "at_least": 0}], "action": "stop"}]})
    verdicts = []

    with pytest.raises(IncompleteMetricsError, match="70 of the 80"):
        metrics = read_trackio_metrics("partial", "run-1")
        verdicts.append(policy.evaluate(Observation(metrics=metrics, phase="running")))

    assert verdicts == []


def test_cursor_returns_only_new_rows():
    log_series("incremental", "run-1", {"loss": [(1, 1.0), (2, 0.9)]})
    cursor = MetricsCursor("incremental", "run-1")
    first = cursor.read_new()
    log_series("incremental", "run-1", {"loss": [(3, 0.8)]})

    second = cursor.read_new()

    assert first == {"loss": [(1, 1.0), (2, 0.9)]}
    assert second == {"loss": [(3, 0.8)]}
    assert cursor.read_new() == {}


# Changes made by verdicts.


def test_resubmission_halves_batch_and_keeps_effective_batch():
    config = {"learning_rate": 1e-3, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}

    new, changes = resubmission_config(config, Action("resubmit", {"halve_batch": True, "learning_rate_factor": 0.5}))

    assert new["per_device_train_batch_size"] * new["gradient_accumulation_steps"] == 8
    assert new["per_device_train_batch_size"] == 2
    assert new["learning_rate"] == pytest.approx(5e-4)
    assert changes["learning_rate"] == {"from": 1e-3, "to": pytest.approx(5e-4)}


def write_finished_checkpoint(folder, *, global_step=100, max_steps=100):
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": global_step, "max_steps": max_steps, "num_train_epochs": 1}))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    (folder / "adapter_config.json").write_text("{}")
    return folder


def test_extension_plans_new_schedule(tmp_path):
    checkpoint = write_finished_checkpoint(tmp_path / "checkpoint-100")

    extension = plan_extension(checkpoint, extra_epochs=1)

    assert extension.max_steps == 100
    assert extension.init_adapter_path == str(checkpoint)
    assert extension.optimizer_state == "reset"
    assert "fresh warmup" in extension.learning_rate_choice


def test_plain_resume_of_finished_run_raises(tmp_path):
    checkpoint = write_finished_checkpoint(tmp_path / "checkpoint-100")

    with pytest.raises(StateError, match="No steps remain"):
        check_resume_has_steps(checkpoint)


def test_extend_verdict_config_starts_from_adapter(tmp_path):
    config = {"max_steps": 30, "learning_rate": 2e-4, "lora": {"r": 8}}

    new, changes = extension_config(config, tmp_path / "final", Action("extend", {"steps_fraction": 0.5}))

    assert new["max_steps"] == 15
    assert new["init_adapter_path"] == str(tmp_path / "final")
    assert changes["optimizer_state"] == "reset"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"phase": "running", "action": "export"}, "field `phase` must be `end`"),
        ({"action": "pick_best_checkpoint"}, "field `phase` must be `end`"),  # `any` includes running
        ({"phase": "end", "action": "evaluate_checkpoint"}, "needs `step`"),
        ({"phase": "end", "action": {"type": "pick_best_checkpoint", "metric": "bleu"}}, "ranked by"),
    ],
)
def test_result_actions_checked_at_load(rule, message):
    raw = {"name": "act-early", "when": [{"signal": "step", "above": 1}], **rule}

    with pytest.raises(PolicyError, match=rf"rule 'act-early'.*{message}"):
        parse_policy({"rules": [raw]})


def test_result_actions_load_in_end_phase():
    actions = ["export", {"type": "pick_best_checkpoint", "metric": "pass@1"}, {"type": "evaluate_checkpoint", "step": 20}]
    rules = [{"name": f"rule-{index}", "phase": "end", "when": [{"signal": "step", "above": 1}], "action": action}
             for index, action in enumerate(actions)]

    policy = parse_policy({"rules": rules})

    assert [rule.action.type for rule in policy.rules] == ["export", "pick_best_checkpoint", "evaluate_checkpoint"]


def test_carried_extremes_match_fresh_evaluation():
    loss = [(step, 3.0 - 0.01 * step) for step in range(1, 61)]
    carried: dict = {}
    divergence = SIGNALS["divergence_ratio"].compute
    improvement = SIGNALS["relative_improvement"].compute

    def carried_and_fresh():
        carried_observation = Observation(metrics={"loss": loss}, phase="running", finite_series=carried)
        fresh_observation = Observation(metrics={"loss": loss}, phase="running")
        return (
            (divergence(carried_observation, metric="loss"), divergence(fresh_observation, metric="loss")),
            (improvement(carried_observation, metric="loss", window_steps=20), improvement(fresh_observation, metric="loss", window_steps=20)),
        )

    before = carried_and_fresh()
    loss.append((61, 9.0))  # appended in place: the carried extremes are extended
    appended = carried_and_fresh()
    loss[:] = sorted(dict([*loss, (30, 0.1)]).items())  # a step logged again: the carried extremes are rebuilt
    rewritten = carried_and_fresh()

    for ratios, improvements in (before, appended, rewritten):
        assert ratios[0] == ratios[1]
        assert improvements[0] == improvements[1]
    assert appended[0][0] == pytest.approx(9.0 / 2.4)
    assert rewritten[0][0] == pytest.approx(9.0 / 0.1)
