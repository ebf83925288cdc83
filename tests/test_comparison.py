"""Comparing a fine-tuned score with the base model's, in words."""

from autotrain_agent.comparison import describe_change
from autotrain_agent.state import Score


def _score(value, stderr):
    return Score(benchmark="humaneval", metric="pass@1", value=value, num_samples=40, stderr=stderr)


def test_equal_scores_are_no_change():
    text = describe_change(_score(0.15, 0.056), _score(0.15, 0.056))

    assert text.startswith("+0.000 pass@1")
    assert "no measurable change" in text


def test_small_drop_is_within_noise():
    assert "no measurable change" in describe_change(_score(0.15, 0.056), _score(0.125, 0.052))


def test_large_gain_is_better():
    assert "better than the base model" in describe_change(_score(0.10, 0.02), _score(0.30, 0.02))


def test_large_drop_is_worse():
    assert "worse than the base model" in describe_change(_score(0.30, 0.02), _score(0.10, 0.02))
