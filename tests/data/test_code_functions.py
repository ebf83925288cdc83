"""The code SFT dataset built from the `algorithms` package."""

import json

import pytest

from autotrain_agent.data.code_functions import build_code_sft_dataset, load_humaneval_problems


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_code_sft_dataset(cache_dir=tmp_path_factory.mktemp("cache"), seed=0, progress=False)


@pytest.fixture(scope="module")
def rows(built):
    return [json.loads(line) for line in (built.path / "train.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_counts_shrink_at_each_filter(built, rows):
    counts = built.provenance["counts"]

    assert counts["functions_with_docstring"] >= counts["doctests_passed"] >= counts["no_humaneval_overlap"]
    assert counts["deduplicated"] == built.num_rows == len(rows)
    assert built.num_rows > 300
    assert built.provenance["package"]["license"] == "MIT"
    assert built.provenance["removed"]["no_doctest"]


@pytest.mark.slow
def test_no_humaneval_entry_point_names(rows):
    entry_points = {problem["entry_point"] for problem in load_humaneval_problems()}

    names = {row["source"].split(":")[1] for row in rows}

    assert not names & entry_points


@pytest.mark.slow
def test_rows_hold_instruction_and_fenced_code(rows):
    for row in rows:
        user, assistant = row["messages"]
        assert user["role"] == "user"
        assert user["content"].startswith("Write a Python function `")
        assert ">>>" not in user["content"]
        assert assistant["content"].startswith("```python\n")
        assert assistant["content"].endswith("\n```")


@pytest.mark.slow
def test_same_seed_gives_identical_file(built, tmp_path):
    again = build_code_sft_dataset(cache_dir=tmp_path, seed=0, progress=False)

    assert (again.path / "train.jsonl").read_bytes() == (built.path / "train.jsonl").read_bytes()


@pytest.mark.slow
def test_cached_dataset_reused(built):
    mtime_ns = (built.path / "train.jsonl").stat().st_mtime_ns

    again = build_code_sft_dataset(cache_dir=built.path.parents[1], seed=0, progress=False)

    assert again.path == built.path
    assert (again.path / "train.jsonl").stat().st_mtime_ns == mtime_ns
