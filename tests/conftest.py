"""Shared fixtures: every test runs offline, on CPU, with its own Hugging Face and Trackio homes."""

import os

import pytest

# Two torch threads on two cores made tiny runs 5-10x slower and erratic; one thread is fast and repeatable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_addoption(parser):
    parser.addoption("--run-gpu", action="store_true", help="run tests marked `gpu` (needs CUDA)")
    parser.addoption("--run-network", action="store_true", help="run tests marked `network` (needs the Hub)")


def pytest_collection_modifyitems(config, items):
    for marker, flag in (("gpu", "--run-gpu"), ("network", "--run-network")):
        if config.getoption(flag):
            continue
        skip = pytest.mark.skip(reason=f"needs {flag}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_homes(tmp_path, monkeypatch):
    """Point the Hugging Face and Trackio homes at a temporary folder and keep the Hub offline."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield
