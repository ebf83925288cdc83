"""Job time, cost and timeout estimates; the timeout is written in whole minutes."""

import pytest

from autotrain_agent.errors import ConfigError
from autotrain_agent.estimate import TIMEOUT_MARGIN, estimate_job, format_timeout, training_tokens
from autotrain_agent.hardware import load_bundled_price_table
from autotrain_agent.recipes import GPU_HYPERPARAMETERS, PlanOverrides, make_plan


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5400, "90m"),  # 1.5 h, never "1.5h"
        (5400.0000001, "90m"),  # float noise does not add a minute
        (5401, "91m"),  # rounded up
        (59, "1m"),
        (86400, "1440m"),  # a day stays in minutes
    ],
)
def test_timeout_in_whole_minutes(seconds, text):
    assert format_timeout(seconds) == text


@pytest.mark.parametrize("seconds", [0.5, 61.7, 1234.5678, 5399.99, 7777.1])
def test_timeout_never_has_decimal(seconds):
    text = format_timeout(seconds)

    assert text[:-1].isdigit()
    assert text.endswith("m")


@pytest.mark.parametrize("seconds", [0, -5, float("nan")])
def test_timeout_must_be_positive(seconds):
    with pytest.raises(ConfigError, match="positive"):
        format_timeout(seconds)


def gpu_plan(**updates):
    plan = make_plan("improve code solving", PlanOverrides(backend="hf-jobs", hub_repo="me/out"))
    plan.hyperparameters = GPU_HYPERPARAMETERS.model_copy(update=updates)
    return plan


def test_tokens_from_rows_and_epochs():
    assert training_tokens(gpu_plan(num_train_epochs=2.0), num_rows=1000, tokens_per_row=300) == 600_000


def test_tokens_from_steps():
    assert training_tokens(gpu_plan(max_steps=10), num_rows=1000, tokens_per_row=300) == 10 * 16 * 300


def test_cost_is_time_times_price():
    flavor = load_bundled_price_table().flavor("a10g-large")

    job = estimate_job(gpu_plan(), flavor, num_parameters=3_000_000_000, num_rows=10_000)

    assert job.cost_usd == pytest.approx(job.minutes / 60 * 1.5, abs=0.01)
    assert job.timeout == format_timeout(job.minutes * 60 * TIMEOUT_MARGIN)


def test_measured_throughput_replaces_model():
    flavor = load_bundled_price_table().flavor("a10g-large")

    job = estimate_job(gpu_plan(max_steps=100), flavor, num_parameters=3_000_000_000, num_rows=0, tokens_per_s=1000.0)

    assert job.tokens_per_s == 1000.0
    assert job.minutes == pytest.approx(6.0 + job.tokens / 1000 / 60, abs=0.1)


def test_bigger_model_takes_longer():
    flavor = load_bundled_price_table().flavor("a100-large")

    small = estimate_job(gpu_plan(), flavor, num_parameters=600_000_000, num_rows=10_000)
    large = estimate_job(gpu_plan(), flavor, num_parameters=8_000_000_000, num_rows=10_000)

    assert large.minutes > small.minutes


def test_grpo_estimate_counts_generation():
    from autotrain_agent.estimate import estimate_training_minutes
    from autotrain_agent.recipes import make_plan

    grpo = make_plan("improve code solving with GRPO")
    without_generation = grpo.model_copy(deep=True)
    without_generation.hyperparameters.max_completion_length = None

    assert estimate_training_minutes(grpo) > estimate_training_minutes(without_generation)


@pytest.mark.parametrize(("load", "warns"), [(0.5, False), (2.0, False), (11.3, True)])
def test_busy_machine_warning_names_load(monkeypatch, load, warns):
    from autotrain_agent.estimate import busy_machine_warning

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("os.getloadavg", lambda: (load, load, load))

    warning = busy_machine_warning()

    assert (warning is not None) == warns
    if warns:
        assert "load average 11.3 on 2 cores" in warning
