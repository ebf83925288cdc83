"""The benchmark suite's page handling: records are split by heading and a skipped benchmark keeps its last one."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

PAGE = """# Benchmarks

Introduction.

### Monitoring poll cost (2026-12-04)

first

### Training throughput: the job vs TRL defaults (2026-12-04)

older

### Training throughput: the job vs TRL defaults (2026-12-05)

newer
"""


@pytest.fixture(scope="module")
def run_all():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("run_all", BENCH / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class body runs.
    sys.modules["run_all"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["run_all"]
    sys.path.remove(str(BENCH))


def test_page_splits_into_records(run_all):
    records = run_all.split_records(PAGE)

    assert len(records) == 3
    assert records[0].startswith("### Monitoring poll cost")
    assert "Introduction" not in "".join(records)


def test_latest_record_wins(run_all):
    records = run_all.split_records(PAGE)

    kept = run_all.latest_record(records, "Training throughput")

    assert kept.strip().endswith("newer")


def test_missing_record_is_none(run_all):
    assert run_all.latest_record(run_all.split_records(PAGE), "Agent overhead") is None


def test_page_header_is_stripped(run_all):
    text = run_all.strip_page_header("# Benchmarks\n\nMeasured records.\n\n### A record (today)\n\nbody\n")

    assert text == "### A record (today)\n\nbody\n"


def test_suite_names_existing_scripts(run_all):
    missing = [benchmark.name for benchmark in run_all.SUITE if not (BENCH / f"{benchmark.name}.py").is_file()]

    assert missing == []
